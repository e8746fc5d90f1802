#!/usr/bin/env bash
# A peer's network link cut: two ranks in two network namespaces joined by
# a veth pair, TCP only; after 1.5 s of ping-pong the link is set down.
# Both ranks must end with an error (peer lost or timed out) within the
# 3 s timeout plus slack: never a hang. Skips (77) with a reason when not
# root or when network namespaces are unavailable.
#   test_linkcut.sh PATH_TO_loop_rank
set -u
bin=${1:?usage: test_linkcut.sh loop_rank}
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root for ip netns"; exit 77; fi
if ! command -v ip >/dev/null; then echo "SKIP: iproute2 (ip) not installed"; exit 77; fi
a=scomm_lc_a_$$; b=scomm_lc_b_$$; va=sclca$$; vb=sclcb$$
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; }
trap cleanup EXIT
if ! ip netns add "$a" 2>/dev/null || ! ip netns add "$b" 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here"; exit 77
fi
ip link add "$va" type veth peer name "$vb" || { echo "SKIP: no veth"; exit 77; }
ip link set "$va" netns "$a"; ip link set "$vb" netns "$b"
ip -n "$a" addr add 10.203.0.1/24 dev "$va"; ip -n "$b" addr add 10.203.0.2/24 dev "$vb"
ip -n "$a" link set "$va" up; ip -n "$b" link set "$vb" up
ip -n "$a" link set lo up; ip -n "$b" link set lo up

common=(SCOMM_TRANSPORTS=tcp SCOMM_WORLD_SIZE=2 SCOMM_MASTER_ADDR=10.203.0.1
        SCOMM_MASTER_PORT=29511 SCOMM_JOB_TOKEN=linkcut$$ SCOMM_TIMEOUT_MS=3000
        LOOP_SECONDS=30)
ip netns exec "$a" env "${common[@]}" SCOMM_RANK=0 "$bin" & p0=$!
ip netns exec "$b" env "${common[@]}" SCOMM_RANK=1 "$bin" & p1=$!
sleep 1.5
start=$(date +%s.%N)
ip -n "$b" link set "$vb" down
echo "link down at +1.5 s"
rc=0
for p in $p0 $p1; do
    for _ in $(seq 1 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
    if kill -0 $p 2>/dev/null; then echo "FAIL: rank pid $p still running 10 s after the cut"; kill -9 $p; rc=1; fi
    wait $p; r=$?
    [[ $r -eq 0 ]] || { echo "FAIL: rank pid $p exit $r (expected an error)"; rc=1; }
done
echo "both ranks returned after $(echo "$(date +%s.%N) - $start" | bc) s"
[[ $rc -eq 0 ]] && echo "1 passed, 0 failed"
exit $rc
