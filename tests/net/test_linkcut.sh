#!/usr/bin/env bash
# A peer's network link cut: two ranks in two network namespaces joined by
# a veth pair, over one transport (tcp unless named); after 1.5 s of
# ping-pong the link is set down (cut), or rank 1 is killed with SIGKILL
# (kill: a peer on another host dies; no pidfd can see it). The ranks
# left must end with an error (peer lost or timed out) within the 3 s
# timeout plus slack: never a hang. Skips (77) with a reason when not
# root or when network namespaces are unavailable.
#   test_linkcut.sh PATH_TO_loop_rank [tcp|ofi] [cut|kill]
set -u
bin=${1:?usage: test_linkcut.sh loop_rank [tcp|ofi] [cut|kill]}
tl=${2:-tcp}
mode=${3:-cut}
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root for ip netns"; exit 77; fi
if ! command -v ip >/dev/null; then echo "SKIP: iproute2 (ip) not installed"; exit 77; fi
a=scomm_lc_a_$$; b=scomm_lc_b_$$; va=sclca$$; vb=sclcb$$
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "${ready:-/nonexistent}"; }
trap cleanup EXIT
if ! ip netns add "$a" 2>/dev/null || ! ip netns add "$b" 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here"; exit 77
fi
ip link add "$va" type veth peer name "$vb" || { echo "SKIP: no veth"; exit 77; }
ip link set "$va" netns "$a"; ip link set "$vb" netns "$b"
ip -n "$a" addr add 10.203.0.1/24 dev "$va"; ip -n "$b" addr add 10.203.0.2/24 dev "$vb"
ip -n "$a" link set "$va" up; ip -n "$b" link set "$vb" up
ip -n "$a" link set lo up; ip -n "$b" link set lo up

common=(SCOMM_TRANSPORTS=$tl SCOMM_WORLD_SIZE=2 SCOMM_MASTER_ADDR=10.203.0.1
        SCOMM_MASTER_PORT=29511 SCOMM_JOB_TOKEN=linkcut$$ LOOP_TIMEOUT_MS=3000
        LOOP_SECONDS=30)
ready=$(mktemp -d)
# Two hosts to scomm (the namespaces share this machine's hostname).
ip netns exec "$a" env "${common[@]}" SCOMM_RANK=0 SCOMM_HOST_ID=lc-a \
    LOOP_READY_FILE="$ready/0" "$bin" & p0=$!
ip netns exec "$b" env "${common[@]}" SCOMM_RANK=1 SCOMM_HOST_ID=lc-b \
    LOOP_READY_FILE="$ready/1" "$bin" & p1=$!
# Fault the loop, not start-up (ofi's provider start-up alone takes about
# a second): both ranks are up, then 1.5 s of ping-pong.
for _ in $(seq 1 300); do
    [[ -e $ready/0 && -e $ready/1 ]] && break
    sleep 0.1
done
pause=1.5
sleep $pause
start=$(date +%s.%N)
survivors="$p0 $p1"
if [[ $mode == kill ]]; then
    kill -9 $p1
    echo "rank 1 killed at +$pause s"
    survivors=$p0
else
    ip -n "$b" link set "$vb" down
    echo "link down at +$pause s"
fi
rc=0
for p in $survivors; do
    for _ in $(seq 1 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
    if kill -0 $p 2>/dev/null; then echo "FAIL: rank pid $p still running 10 s after the cut"; kill -9 $p; rc=1; fi
    wait $p; r=$?
    [[ $r -eq 0 ]] || { echo "FAIL: rank pid $p exit $r (expected an error)"; rc=1; }
done
[[ $mode == kill ]] && wait $p1 2>/dev/null
echo "$survivors returned after $(echo "$(date +%s.%N) - $start" | bc) s"
[[ $rc -eq 0 ]] && echo "1 passed, 0 failed"
exit $rc
