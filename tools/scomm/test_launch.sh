#!/usr/bin/env bash
#
# test_launch.sh - end-to-end checks of `scomm launch`.
#
# Usage: test_launch.sh /path/to/scomm
#
# Runs the launcher on small shell programs and checks the environment each
# rank sees, --tag-output, exit-code propagation and teardown when a rank
# fails or is killed, --timeout, signal forwarding, a missing program and
# usage errors. Prints one line per check; exits 0 when all pass, 1 when
# any fails, 2 when the binary is missing.

set -u

SCOMM=${1:-}
if [ -z "$SCOMM" ] || [ ! -x "$SCOMM" ]; then
    echo "usage: $0 /path/to/scomm" >&2
    exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-launch-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
OUT="$TMP/out"
ERR="$TMP/err"
FAILS=0
CHECKS=0

pass()
{
    CHECKS=$((CHECKS + 1))
    echo "ok   - $1"
}

fail()
{
    CHECKS=$((CHECKS + 1))
    FAILS=$((FAILS + 1))
    echo "FAIL - $1"
    if [ -s "$OUT" ]; then
        sed 's/^/       stdout: /' "$OUT" | head -20
    fi
    if [ -s "$ERR" ]; then
        sed 's/^/       stderr: /' "$ERR" | head -20
    fi
}

# verdict STATUS "description": records the result of the condition that
# ran just before, e.g. `[ "$RC" -eq 0 ]; verdict $? "exits 0"`.
verdict()
{
    if [ "$1" -eq 0 ]; then
        pass "$2"
    else
        fail "$2"
    fi
}

# Run the launcher with stdout and stderr captured; sets RC and MS (elapsed
# milliseconds).
run()
{
    local t0 t1
    t0=$(date +%s%N)
    "$SCOMM" launch "$@" >"$OUT" 2>"$ERR"
    RC=$?
    t1=$(date +%s%N)
    MS=$(( (t1 - t0) / 1000000 ))
}

# Succeed when no live process has the marker in its command line; waits up
# to 1 s for processes that were just sent SIGKILL to disappear.
no_procs_left()
{
    local tries pid cmd found
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        found=0
        for pid in /proc/[0-9]*; do
            cmd=$( { tr '\0' ' ' <"$pid/cmdline"; } 2>/dev/null)
            if [[ $cmd == *"$1"* ]]; then
                found=1
                break
            fi
        done
        if [ "$found" -eq 0 ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "       still running: $cmd"
    return 1
}

# --------------------------------------------------------------------------
# 1. Environment of 3 ranks.
# --------------------------------------------------------------------------
ENV_PROG='echo $SCOMM_RANK $SCOMM_WORLD_SIZE $SCOMM_LOCAL_RANK $SCOMM_LOCAL_SIZE'
ENV_PROG="$ENV_PROG"' $SCOMM_MASTER_ADDR $SCOMM_MASTER_PORT $SCOMM_JOB_TOKEN'
ENV_PROG="$ENV_PROG"' $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE'
ENV_PROG="$ENV_PROG"' $MASTER_ADDR $MASTER_PORT $SCOMM_KEEP_ME'

SCOMM_KEEP_ME=kept SCOMM_RANK=99 SCOMM_JOB_TOKEN=stale run -n 3 -- \
    sh -c "$ENV_PROG"
[ "$RC" -eq 0 ]
verdict $? "env: 3 ranks exit 0"
[ "$(wc -l <"$OUT")" -eq 3 ]
verdict $? "env: 3 lines of output"

env_ok=1
port=""
token=""
for r in 0 1 2; do
    line=$(awk -v r="$r" '$1 == r' "$OUT")
    # shellcheck disable=SC2086
    set -- $line
    if [ "$#" -ne 14 ]; then
        echo "       rank $r: expected 14 fields, got $#: '$line'"
        env_ok=0
        continue
    fi
    [ "$1" = "$r" ] && [ "$2" = 3 ] && [ "$3" = "$r" ] && [ "$4" = 3 ] ||
        { echo "       rank $r: bad SCOMM_* rank/size: '$line'"; env_ok=0; }
    [ "$5" = 127.0.0.1 ] ||
        { echo "       rank $r: SCOMM_MASTER_ADDR is '$5'"; env_ok=0; }
    case "$6" in
        ''|*[!0-9]*) echo "       rank $r: bad port '$6'"; env_ok=0 ;;
    esac
    printf '%s' "$7" | grep -Eq '^[0-9a-f]{32}$' ||
        { echo "       rank $r: token '$7' is not 32 hex digits"; env_ok=0; }
    [ "$8" = "$r" ] && [ "$9" = 3 ] && [ "${10}" = "$r" ] &&
        [ "${11}" = 3 ] && [ "${12}" = 127.0.0.1 ] && [ "${13}" = "$6" ] ||
        { echo "       rank $r: torchrun variables wrong: '$line'"; env_ok=0; }
    [ "${14}" = kept ] ||
        { echo "       rank $r: SCOMM_KEEP_ME not passed through"; env_ok=0; }
    if [ -z "$port" ]; then
        port=$6
        token=$7
    elif [ "$port" != "$6" ] || [ "$token" != "$7" ]; then
        echo "       rank $r: port/token differ between ranks"
        env_ok=0
    fi
done
[ "$env_ok" -eq 1 ]
verdict $? "env: SCOMM_*, torchrun variables, shared port and token, SCOMM_* kept"

first_token=$token
run -n 1 sh -c 'echo $SCOMM_JOB_TOKEN'
[ "$(cat "$OUT")" != "$first_token" ]
verdict $? "env: a fresh job token per launch"

run -n 2 --master-port 23456 sh -c 'echo $SCOMM_MASTER_PORT $MASTER_PORT'
[ "$(sort -u "$OUT")" = "23456 23456" ]
verdict $? "env: --master-port is used"

# --------------------------------------------------------------------------
# 2. --tag-output.
# --------------------------------------------------------------------------
run -n 2 --tag-output sh -c \
    'echo out$SCOMM_RANK; echo err$SCOMM_RANK >&2; echo two$SCOMM_RANK; printf partial$SCOMM_RANK'
[ "$RC" -eq 0 ]
verdict $? "tag-output: exit 0"
tag_ok=1
for r in 0 1; do
    for want in "out$r" "two$r" "partial$r"; do
        grep -qx "\[rank $r\] $want" "$OUT" ||
            { echo "       missing '[rank $r] $want' on stdout"; tag_ok=0; }
    done
    grep -qx "\[rank $r\] err$r" "$ERR" ||
        { echo "       missing '[rank $r] err$r' on stderr"; tag_ok=0; }
    grep -q "err$r" "$OUT" &&
        { echo "       stderr line of rank $r went to stdout"; tag_ok=0; }
done
[ "$(grep -vc '^\[rank [01]\] ' "$OUT")" -eq 0 ] ||
    { echo "       untagged line on stdout"; tag_ok=0; }
[ "$tag_ok" -eq 1 ]
verdict $? "tag-output: stdout/stderr lines prefixed, partial last line flushed"

run -n 1 sh -c 'echo plain'
[ "$(cat "$OUT")" = plain ]
verdict $? "no tag-output: output inherited untouched"

# Many lines from several ranks must never be torn or mixed.
run -n 4 --tag-output sh -c \
    'i=0; while [ $i -lt 2000 ]; do echo "line-$SCOMM_RANK-$i-abcdefghijklmnopqrstuvwxyz"; i=$((i+1)); done'
torn=$(grep -Evc '^\[rank ([0-3])\] line-\1-[0-9]+-abcdefghijklmnopqrstuvwxyz$' "$OUT")
[ "$RC" -eq 0 ] && [ "$(wc -l <"$OUT")" -eq 8000 ] && [ "$torn" -eq 0 ]
verdict $? "tag-output: 8000 lines from 4 ranks, none torn"

# --------------------------------------------------------------------------
# 3. Exit status propagation and teardown.
# --------------------------------------------------------------------------
MARK=31.4159
run -n 3 sh -c "if [ \$SCOMM_RANK = 1 ]; then exit 3; fi; sleep $MARK"
[ "$RC" -ne 0 ]
verdict $? "exit 3 on rank 1: launcher exits non-zero (rc $RC)"
[ "$MS" -lt 5000 ]
verdict $? "exit 3 on rank 1: ended within 5 s (${MS} ms)"
grep -Eq '^scomm launch: rank 1 \(pid [0-9]+\) exited with status 3$' "$ERR"
verdict $? "exit 3 on rank 1: message names the rank and the status"
no_procs_left "sleep $MARK"
verdict $? "exit 3 on rank 1: no ranks left behind"

run -n 2 sh -c "if [ \$SCOMM_RANK = 0 ]; then kill -9 \$\$; fi; sleep $MARK"
[ "$RC" -eq 137 ]
verdict $? "kill -9 on rank 0: exit 128+9 (rc $RC)"
[ "$MS" -lt 5000 ]
verdict $? "kill -9 on rank 0: ended within 5 s (${MS} ms)"
grep -Eq '^scomm launch: rank 0 \(pid [0-9]+\) was killed by signal SIGKILL \(9\)$' "$ERR"
verdict $? "kill -9 on rank 0: message names the signal"
no_procs_left "sleep $MARK"
verdict $? "kill -9 on rank 0: no ranks left behind"

# A rank that ignores SIGTERM gets SIGKILL after the 3 s grace period.
# Rank 0 fails only once rank 1 has set up its trap.
READY="$TMP/ready"
run -n 2 sh -c "if [ \$SCOMM_RANK = 0 ]; then
                    while [ ! -e '$READY' ]; do sleep 0.02; done; exit 5
                fi
                trap '' TERM; touch '$READY'; sleep $MARK"
[ "$RC" -eq 1 ] && [ "$MS" -ge 2500 ] && [ "$MS" -lt 6000 ]
verdict $? "rank ignoring SIGTERM: killed after the grace period (${MS} ms, rc $RC)"
no_procs_left "sleep $MARK"
verdict $? "rank ignoring SIGTERM: no ranks left behind"

run -n 3 true
[ "$RC" -eq 0 ] && [ ! -s "$ERR" ]
verdict $? "all ranks exit 0: launcher exits 0"

# --------------------------------------------------------------------------
# 4. --timeout.
# --------------------------------------------------------------------------
run --timeout 1 -n 2 sh -c "if [ \$SCOMM_RANK = 1 ]; then exit 0; fi; sleep $MARK"
[ "$RC" -eq 124 ]
verdict $? "timeout: exit 124 (rc $RC)"
[ "$MS" -ge 900 ] && [ "$MS" -lt 4000 ]
verdict $? "timeout: ended within ~1 s (${MS} ms)"
grep -Eq '^scomm launch: timed out after 1 s; ranks still running: 0$' "$ERR"
verdict $? "timeout: message names the ranks still running"
no_procs_left "sleep $MARK"
verdict $? "timeout: no ranks left behind"

# --------------------------------------------------------------------------
# 5. Signals sent to the launcher are forwarded.
# --------------------------------------------------------------------------
t0=$(date +%s%N)
"$SCOMM" launch -n 2 sleep "$MARK" >"$OUT" 2>"$ERR" &
lpid=$!
sleep 0.5
kill -TERM "$lpid"
wait "$lpid"
RC=$?
MS=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$RC" -eq 143 ] && [ "$MS" -lt 4000 ]
verdict $? "SIGTERM to the launcher: forwarded, exit 143 (rc $RC, ${MS} ms)"
no_procs_left "sleep $MARK"
verdict $? "SIGTERM to the launcher: no ranks left behind"

# --------------------------------------------------------------------------
# 6. Missing program and usage errors.
# --------------------------------------------------------------------------
run -n 2 /nonexistent/scomm-no-such-prog
[ "$RC" -eq 1 ]
verdict $? "missing program: launcher exits 1 (rc $RC)"
grep -q "cannot execute '/nonexistent/scomm-no-such-prog'" "$ERR"
verdict $? "missing program: the program is named"
grep -q 'exited with status 127' "$ERR"
verdict $? "missing program: the rank exits 127"

usage_ok=1
for args in "" "-n" "-n 0" "-n 1025" "-n x true" "--bogus -n 1 true" \
            "-n 2" "-n 1 --timeout 0 true" "-n 1 --timeout -3 true" \
            "-n 1 --master-port 70000 true" "-n 1 --bind-to socket true"; do
    # shellcheck disable=SC2086
    run $args
    if [ "$RC" -ne 2 ] || [ "$(wc -l < "$ERR")" -ne 1 ] ||
       ! grep -q '^scomm launch: ' "$ERR"; then
        echo "       'scomm launch $args' gave rc $RC and:"
        sed 's/^/         /' "$ERR"
        usage_ok=0
    fi
done
[ "$usage_ok" -eq 1 ]
verdict $? "usage errors exit 2 with one line on stderr"

run --help
[ "$RC" -eq 0 ] && grep -q '^usage: scomm launch' "$OUT"
verdict $? "--help exits 0 and prints usage"

run -n 1 -- sh -c 'echo "$0 $1"' -n x
[ "$RC" -eq 0 ] && [ "$(cat "$OUT")" = "-n x" ]
verdict $? "options after the program belong to the program"

echo "$((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
