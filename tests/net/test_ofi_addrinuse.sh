#!/usr/bin/env bash
# The ofi transport's endpoint when the tcp provider's listen() finds its
# port taken (EADDRINUSE, what a parallel job's explicit bind to a port
# the kernel just gave the provider causes), made certain by the
# fail_listen.so preload (only libfabric's listen() calls fail):
#  1. the first 2 listens of each rank fail: both ranks open their
#     endpoint again (its debug log says so), start, and ping-pong for a
#     second;
#  2. every listen of rank 1 fails: rank 1 gives up within seconds naming
#     fi_enable and the error; rank 0 fails (no hang) within its start-up
#     timeout (SCOMM_TIMEOUT_MS=4000) naming rank 1.
#   test_ofi_addrinuse.sh PATH_TO_loop_rank PATH_TO_fail_listen.so
set -u
bin=${1:?usage: test_ofi_addrinuse.sh loop_rank fail_listen.so}
shim=${2:?usage: test_ofi_addrinuse.sh loop_rank fail_listen.so}
out=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$out"
}
trap cleanup EXIT
# An ASan build's runtime would insist on coming first.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
rc=0

# world NAME TIMEOUT_MS ENV...: two loop_rank ranks on loopback; their exit codes in
# $out/NAME.rc<rank>, output in $out/NAME.<rank>, seconds in $out/NAME.t<rank>.
world() {
    local name=$1 tmo=$2 r port
    shift 2
    port=$((20000 + RANDOM % 20000))
    pids=()
    for r in 0 1; do
        (
            s=$(date +%s%N)
            env SCOMM_TRANSPORTS=ofi SCOMM_WORLD_SIZE=2 \
                SCOMM_MASTER_ADDR=127.0.0.1 SCOMM_MASTER_PORT=$port \
                SCOMM_JOB_TOKEN=addrinuse$$$name SCOMM_RANK=$r \
                LOOP_SECONDS=1 SCOMM_TIMEOUT_MS=$tmo LD_PRELOAD="$shim" \
                "$@" timeout 60 "$bin" >"$out/$name.$r" 2>&1
            echo $? >"$out/$name.rc$r"
            echo $((($(date +%s%N) - s) / 1000000)) >"$out/$name.t$r"
        ) &
        pids+=($!)
    done
    wait "${pids[@]}"
    pids=()
}
check() { # check WHAT CONDITION...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; rc=1; fi
}

world retry 30000 FAIL_LISTEN=2 SCOMM_LOG_SUBSYS=rdma SCOMM_LOG_LEVEL=debug
for r in 0 1; do
    cat "$out/retry.$r"
    # Whichever rank ends its second first leaves the other PEER_LOST
    # (exit 0): what counts is that both started and exchanged messages.
    check "retry: rank $r started (exit $(cat "$out/retry.rc$r"))" \
        test "$(cat "$out/retry.rc$r")" != 2
    check "retry: rank $r exchanged messages" \
        grep -qE "^loop_rank $r: [1-9][0-9]* iterations" "$out/retry.$r"
done
check "retry: the endpoint was opened again" \
    grep -q "opening the endpoint again (2 of" "$out/retry.0"

world fail 4000 FAIL_LISTEN=-1 FAIL_LISTEN_RANK=1
cat "$out/fail.0" "$out/fail.1"
echo "rank 0: exit $(cat "$out/fail.rc0") after $(cat "$out/fail.t0") ms;" \
     "rank 1: exit $(cat "$out/fail.rc1") after $(cat "$out/fail.t1") ms"
check "fail: rank 1 exits 2 (init failed)" test "$(cat "$out/fail.rc1")" = 2
check "fail: rank 1 names fi_enable and the error" \
    grep -q "fi_enable: Address already in use" "$out/fail.1"
check "fail: rank 0 exits 2 (init failed)" test "$(cat "$out/fail.rc0")" = 2
check "fail: rank 0 names rank 1" grep -qE "rank\(s\) 1|rank 1" "$out/fail.0"
check "fail: rank 0 within 4 s + slack" test "$(cat "$out/fail.t0")" -lt 15000
check "no rank crashed" bash -c "! grep -q \"terminated with signal\" $out/*.[01]"
[[ $rc -eq 0 ]] && echo "1 passed, 0 failed"
exit $rc
