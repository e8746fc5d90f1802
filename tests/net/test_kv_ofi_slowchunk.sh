#!/usr/bin/env bash
# KV over ofi when one chunk takes longer than the streams' stall limit
# (KV_STALL_MS, 3 s) to move: two network namespaces joined by a veth
# pair, the sender's egress capped at 8 Mbit/s by tc tbf, one stream, one
# 4 MiB chunk per transfer (about 4.2 s). The sender's TX thread waits
# for its RMA writes meanwhile and must keep heartbeating (kv_ofi.c,
# invariant 6), and both sides must count completed and landed writes as
# progress; else the receiver drops the stream as dead at 3 s, the chunk
# is sent again, dropped again, and kv-bench never finishes. Both sides
# must exit 0 within 30 s (a warm-up and one timed transfer). Skips (77)
# when not root or without ip/tc/namespaces.
#   test_kv_ofi_slowchunk.sh PATH_TO_scomm
set -u
bin=${1:?usage: test_kv_ofi_slowchunk.sh scomm}
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: needs root for ip netns"; exit 77; fi
for t in ip tc; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
a=scomm_ks_a_$$; b=scomm_ks_b_$$; net=$(($$ % 200 + 20))
out=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT
if ! ip netns add "$a" 2>/dev/null || ! ip netns add "$b" 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here"; exit 77
fi
ip -n "$a" link add eth0 type veth peer name eth0 netns "$b" ||
    { echo "SKIP: no veth"; exit 77; }
ip -n "$a" addr add 10.204.$net.1/24 dev eth0
ip -n "$b" addr add 10.204.$net.2/24 dev eth0
for n in "$a" "$b"; do ip -n "$n" link set lo up; ip -n "$n" link set eth0 up; done
tc -n "$a" qdisc add dev eth0 root tbf rate 8mbit burst 32kb latency 400ms ||
    { echo "SKIP: tc tbf failed"; exit 77; }
args=(--layers 1 --heads 8 --dim 128 --tokens 1024 --chunk 4M --streams 1
      --depth 1 --iters 1 --transport ofi)
start=$(date +%s)
ip netns exec "$b" timeout 30 "$bin" kv-bench --serve 10.204.$net.2:7411 \
    "${args[@]}" >"$out/recv" 2>&1 & rp=$!
sleep 0.3
ip netns exec "$a" timeout 30 "$bin" kv-bench --connect 10.204.$net.2:7411 \
    "${args[@]}" >"$out/send" 2>&1
sr=$?
wait $rp; rr=$?
cat "$out/send" "$out/recv"
echo "sender exit $sr, receiver exit $rr, $(($(date +%s) - start)) s"
if grep -q "dropped" "$out/send" "$out/recv"; then
    echo "FAIL: a stream was dropped"; exit 1
fi
if [[ $sr -ne 0 || $rr -ne 0 ]]; then
    echo "FAIL: kv-bench did not finish (a stream dropped as dead?)"; exit 1
fi
echo "1 passed, 0 failed"
