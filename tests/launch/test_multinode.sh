#!/usr/bin/env bash
# test_multinode.sh - `scomm launch --nnodes 2`: two launchers on this
# machine over loopback, as two hosts would run them (ctest
# launch.multinode). The namespace cluster runs real hosts (cluster.sh
# --launch); this covers the launchers' protocol without root.
#
#   test_multinode.sh /path/to/scomm
#
# Checks: every rank's SCOMM_* and torchrun variables; a rank killed on
# node 1 ends node 0's launcher, naming node 1 and the rank, and no rank
# is left; a rank exiting 3 on node 0 ends node 1 with the job's code; a
# launcher killed with SIGKILL ends the other's ranks (either way); a
# wrong token and a different --nproc-per-node are refused; a successful
# job exits 0 on both. Then the default binding: with -n 1 the rank keeps
# every allowed CPU, with -n 2 the two sets are disjoint and cover them.
set -u
SCOMM=${1:?usage: test_multinode.sh /path/to/scomm}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-multinode.XXXXXX")
pids=()
cleanup()
{
    local p
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2> /dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
ok() { echo "ok   - $1"; }
bad()
{
    echo "FAIL - $1"
    FAILS=$((FAILS + 1))
    for f in "$TMP"/err0 "$TMP"/err1; do
        [ -s "$f" ] && sed "s|^|       $(basename "$f"): |" "$f" | head -8
    done
}

export SCOMM_JOB_TOKEN
SCOMM_JOB_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
PORT=$((30000 + $$ % 20000))

# start NODE [options...] -- prog...: one launcher in the background, its
# pid in L<NODE>, output in out<NODE>/err<NODE>.
start()
{
    local node=$1
    shift
    "$SCOMM" launch --nnodes 2 --node-rank "$node" --master-addr 127.0.0.1 \
        --master-port "$PORT" --join-timeout 20 "$@" \
        > "$TMP/out$node" 2> "$TMP/err$node" < /dev/null &
    eval "L$node=$!"
    pids+=($!)
}
# finish: wait for both launchers (at most 30 s); RC0, RC1
finish()
{
    local t=0
    while { kill -0 "$L0" 2> /dev/null || kill -0 "$L1" 2> /dev/null; } &&
          [ $t -lt 300 ]; do
        sleep 0.1
        t=$((t + 1))
    done
    kill -9 "$L0" "$L1" 2> /dev/null
    wait "$L0"; RC0=$?
    wait "$L1"; RC1=$?
    PORT=$((PORT + 2))
}
# ranks_gone: every pid in $TMP/pid.* has ended
ranks_gone()
{
    local f
    for f in "$TMP"/pid.*; do
        [ -e "$f" ] || continue
        if kill -0 "$(cat "$f")" 2> /dev/null; then
            echo "       rank ${f##*.} (pid $(cat "$f")) is still running"
            return 1
        fi
    done
    return 0
}
# wait_pids N: until N ranks wrote their pid (at most 10 s)
wait_pids()
{
    local t=0
    while [ "$(ls "$TMP"/pid.* 2> /dev/null | wc -l)" -lt "$1" ] &&
          [ $t -lt 100 ]; do
        sleep 0.1
        t=$((t + 1))
    done
}
# expect_end CODE NODE PATTERN WHAT: both launchers exited CODE, node
# NODE's stderr matches PATTERN, no rank is left
expect_end()
{
    if [ $RC0 -eq "$1" ] && [ $RC1 -eq "$1" ] && grep -q "$3" "$TMP/err$2" &&
       ranks_gone; then
        ok "$4"
    else
        bad "$4 (rc $RC0/$RC1)"
    fi
}
SLEEPER='echo $$ > '"$TMP"'/pid.$RANK; exec sleep 60'

# ---- 1. the environment of every rank ----
ENVP='echo "$RANK $SCOMM_RANK $LOCAL_RANK $SCOMM_LOCAL_RANK $WORLD_SIZE'
ENVP=$ENVP' $SCOMM_WORLD_SIZE $LOCAL_WORLD_SIZE $GROUP_RANK $GROUP_WORLD_SIZE'
ENVP=$ENVP' $MASTER_ADDR $SCOMM_MASTER_ADDR $MASTER_PORT $SCOMM_MASTER_PORT'
ENVP=$ENVP' $SCOMM_JOB_TOKEN"'
start 1 -n 2 -- sh -c "$ENVP"
start 0 -n 2 -- sh -c "$ENVP; sleep 0.5"
finish
want=""
for r in 0 1 2 3; do
    want="$want$r $r $((r % 2)) $((r % 2)) 4 4 2 $((r / 2)) 2 127.0.0.1 127.0.0.1"
    want="$want $((PORT - 2)) $((PORT - 2)) $SCOMM_JOB_TOKEN"$'\n'
done
got=$(cat "$TMP/out0" "$TMP/out1" | sort)
if [ $RC0 -eq 0 ] && [ $RC1 -eq 0 ] && [ "$got"$'\n' = "$want" ]; then
    ok "2 x 2: global ranks, local ranks and torchrun variables"
else
    bad "2 x 2 environment (rc $RC0/$RC1): got"$'\n'"$got"
fi

# ---- 2. a rank killed on node 1 ends node 0, naming it ----
rm -f "$TMP"/pid.*
start 0 -n 2 -- sh -c "$SLEEPER"
start 1 -n 2 -- sh -c "$SLEEPER"
wait_pids 4
kill -9 "$(cat "$TMP/pid.3")"
finish
expect_end 137 0 "node 1 ([^)]*): rank 3 (pid [0-9]*) was killed by signal SIGKILL (9); ending the job" \
    "rank 3 killed on node 1: both launchers exit 137, node 0 names node 1's rank 3"

# ---- 3. a rank exiting 3 on node 0 ends node 1 ----
rm -f "$TMP"/pid.*
start 0 -n 2 -- sh -c 'if [ "$RANK" = 1 ]; then sleep 0.5; exit 3; fi; '"$SLEEPER"
start 1 -n 2 -- sh -c "$SLEEPER"
finish
expect_end 1 1 "node 0 ([^)]*): rank 1 (pid [0-9]*) exited with status 3; ending the job" \
    "rank 1 exits 3 on node 0: node 1 ends its ranks, both exit 1"

# ---- 4. a launcher vanishes ----
for victim in 1 0; do
    other=$((1 - victim))
    rm -f "$TMP"/pid.*
    start 0 -n 2 -- sh -c "$SLEEPER"
    start 1 -n 2 -- sh -c "$SLEEPER"
    wait_pids 4
    eval "kill -9 \$L$victim"
    # the victim's own ranks are orphans now: this test ends them below
    finish
    eval "rc=\$RC$other"
    if [ "$rc" -eq 1 ] &&
       grep -q "node $victim ([^)]*): its launcher is gone" "$TMP/err$other"; then
        ok "launcher of node $victim killed: node $other ends its ranks and exits 1"
    else
        bad "launcher of node $victim killed (node $other rc $rc)"
    fi
    # node `other`'s ranks must be gone; the victim's are ended here
    for r in $((other * 2)) $((other * 2 + 1)); do
        if kill -0 "$(cat "$TMP/pid.$r")" 2> /dev/null; then
            bad "rank $r of node $other outlived its launcher's teardown"
        fi
    done
    for r in $((victim * 2)) $((victim * 2 + 1)); do
        kill -9 "$(cat "$TMP/pid.$r")" 2> /dev/null
    done
done

# ---- 5. refused: a wrong token, a different --nproc-per-node ----
start 0 --join-timeout 2 -n 1 -- true
SCOMM_JOB_TOKEN=ffffffffffffffffffffffff start 1 -n 1 -- true
finish
if [ $RC0 -eq 1 ] && [ $RC1 -eq 1 ] &&
   grep -q "job token mismatch" "$TMP/err1" &&
   grep -q "node(s) 1 did not join within 2 s" "$TMP/err0"; then
    ok "a wrong job token is refused; node 0 names the node that never joined"
else
    bad "wrong token (rc $RC0/$RC1)"
fi
start 0 -n 1 -- true
start 1 -n 2 -- true
rm -f "$TMP"/pid.*
finish
expect_end 1 0 "node 1 ([^)]*) has --nnodes 2 --nproc-per-node 2, node 0 has --nnodes 2 --nproc-per-node 1" \
    "a different --nproc-per-node fails the job at once, named"

# ---- 6. binding (the default: an equal share) ----
AFF='import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))'
mine=$(python3 -c "$AFF")
one=$("$SCOMM" launch -n 1 -- python3 -c "$AFF")
if [ "$one" = "$mine" ]; then
    ok "-n 1: the rank keeps every allowed CPU ($one)"
else
    bad "-n 1: the rank has CPUs '$one', the launcher '$mine'"
fi
ncpu=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
if [ "$ncpu" -ge 2 ]; then
    two=$("$SCOMM" launch -n 2 --tag-output -- python3 -c "$AFF" | sort)
    s0=$(sed -n 's/^\[rank 0\] //p' <<< "$two")
    s1=$(sed -n 's/^\[rank 1\] //p' <<< "$two")
    union=$(echo "$s0,$s1" | tr , '\n' | sort -n | paste -sd,)
    common=$(comm -12 <(tr , '\n' <<< "$s0" | sort) <(tr , '\n' <<< "$s1" | sort))
    if [ -n "$s0" ] && [ -n "$s1" ] && [ -z "$common" ] && [ "$union" = "$mine" ]; then
        ok "-n 2: disjoint shares that cover the CPUs ($s0 | $s1)"
    else
        bad "-n 2: shares '$s0' and '$s1' of '$mine'"
    fi
else
    echo "skip - -n 2 binding: only one CPU allowed"
fi
none=$("$SCOMM" launch -n 2 --bind-to none -- python3 -c "$AFF" | sort -u)
[ "$none" = "$mine" ] && ok "--bind-to none: every rank keeps every CPU" ||
    bad "--bind-to none gave '$none', want '$mine'"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all multi-node launch checks passed"
