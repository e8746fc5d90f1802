#!/bin/bash
# kv_netns.sh - the KV benchmark across a veth pair between two network
# namespaces (issue 7, "across a veth pair ... where root"): prefill in
# namespace A (10.9.<n>.1), decode in namespace B (10.9.<n>.2). In every
# tool A sends and B receives, so all move the same bytes the same way
# over the same link. Per round, interleaved:
#   iperf3 (client in A, server in B), scomm kv-bench lossless, scomm
#   kv-bench fp8, the gloo per-layer send/recv baseline.
# Rounds repeat ROUNDS times (A B C D A B C D ...); the summary gives
# medians and ratios. Namespaces are removed on every exit path.
#
# usage: bench/kv_netns.sh [BUILD_DIR] [SHAPE TOKENS]...   (root)
#   env: ROUNDS (3), MTU (veth MTU, 1500), KVARGS (extra kv-bench flags),
#        RATE (cap A's egress with tc tbf, e.g. 10gbit; default: none)
set -u
B=$(cd "${1:-build}" && pwd)/scomm
shift || true
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(8b 32768 1b 131072)
ROUNDS=${ROUNDS:-3}
MTU=${MTU:-1500}
KVARGS=${KVARGS:---streams 1 --chunk 4M --depth 4}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for ip netns"; exit 77; }
command -v iperf3 > /dev/null || { echo "SKIP: no iperf3"; exit 77; }

tag=$$
net=$((tag % 200 + 20))
A=kvA_$tag
Z=kvB_$tag
pids=()
cleanup() {
    local p
    for p in "${pids[@]:-}"; do [[ -n $p ]] && kill "$p" 2> /dev/null; done
    ip netns del "$A" 2> /dev/null
    ip netns del "$Z" 2> /dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ip netns add "$A" && ip netns add "$Z" || exit 1
ip -n "$A" link add eth0 mtu "$MTU" type veth peer name eth0 netns "$Z" mtu "$MTU" || exit 1
ip -n "$A" addr add 10.9.$net.1/24 dev eth0
ip -n "$Z" addr add 10.9.$net.2/24 dev eth0
for n in "$A" "$Z"; do ip -n "$n" link set lo up; ip -n "$n" link set eth0 up; done
if [[ -n ${RATE:-} ]]; then
    tc -n "$A" qdisc add dev eth0 root tbf rate "$RATE" burst 1mb latency 10ms ||
        { echo "kv_netns.sh: tc tbf $RATE failed" >&2; exit 1; }
fi
SA=10.9.$net.1 SB=10.9.$net.2
out=$(mktemp)
echo "# veth pair $A <-> $Z, MTU $MTU, cap ${RATE:-none}, $ROUNDS rounds; JSON lines in $out" >&2

for ((i = 0; i < ${#cases[@]}; i += 2)); do
    shape=${cases[i]} tokens=${cases[i + 1]}
    for ((r = 0; r < ROUNDS; r++)); do
        # iperf3: A sends to B for 5 s.
        port=$((5300 + RANDOM % 500))
        ip netns exec "$Z" iperf3 -s -1 -p $port > /dev/null 2>&1 &
        pids+=($!)
        sleep 0.5
        ip netns exec "$A" iperf3 -c $SB -p $port -t 5 -J | $PY -c \
            'import json,sys; print(json.dumps({"bench":"iperf3","case":sys.argv[1],"gbps":json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9}))' \
            "$shape@$tokens" >> "$out"
        wait
        # scomm kv-bench: lossless and fp8; the receiver (decode) serves in
        # B, prefill connects from A and sends.
        for wire in native fp8; do
            port=$((7000 + RANDOM % 500))
            ip netns exec "$Z" "$B" kv-bench --serve $SB:$port --shape $shape \
                --tokens $tokens --iters 2 --transport tcp --wire $wire $KVARGS \
                --json > /dev/null 2>&1 &
            pids+=($!)
            sleep 0.3
            ip netns exec "$A" "$B" kv-bench --connect $SB:$port --shape $shape \
                --tokens $tokens --iters 2 --transport tcp --wire $wire $KVARGS \
                --json | sed "s/^{/{\"case\":\"$shape@$tokens\",\"wire\":\"$wire\",/" >> "$out"
            wait
        done
        # gloo: rank 0 (the sender) in A with the store, rank 1 in B.
        port=$((29500 + RANDOM % 400))
        ip netns exec "$Z" env GLOO_SOCKET_IFNAME=eth0 $PY "$HERE/kv_gloo_baseline.py" --rank 1 --addr $SA \
            --port $port --shape $shape --tokens $tokens --iters 2 > /dev/null 2>&1 &
        pids+=($!)
        ip netns exec "$A" env GLOO_SOCKET_IFNAME=eth0 $PY "$HERE/kv_gloo_baseline.py" --rank 0 --addr $SA \
            --port $port --shape $shape --tokens $tokens --iters 2 |
            sed "s/^{/{\"case\":\"$shape@$tokens\",/" >> "$out"
        wait
        pids=()
    done
done
cat "$out"
$PY - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cases = []
for r in rows:
    if r["case"] not in cases:
        cases.append(r["case"])
def med(case, pred, key="gbps"):
    v = [r[key] for r in rows if r["case"] == case and pred(r) and key in r]
    return statistics.median(v) if v else float("nan")
print("| case | iperf3 GB/s | kv lossless GB/s (% link) | kv fp8 GB/s | gloo GB/s | lossless/gloo | fp8/gloo |")
print("|---|---:|---:|---:|---:|---:|---:|")
for c in cases:
    l = med(c, lambda r: r.get("bench") == "iperf3")
    n = med(c, lambda r: r.get("wire") == "native")
    f = med(c, lambda r: r.get("wire") == "fp8")
    g = med(c, lambda r: "gloo" in json.dumps(r) and "wire" not in r and r.get("bench") != "iperf3")
    print("| %s | %.2f | %.2f (%.0f %%) | %.2f | %.2f | %.2f | %.2f |" % (c, l, n, 100 * n / l, f, g, n / g, f / g))
EOF
