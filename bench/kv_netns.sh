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
# TRANSPORT picks scomm's KV transport: tcp (the streams), ofi (libfabric
# RMA writes, the tcp;ofi_rxm provider here) or both, interleaved within
# each round (tcp ofi for lossless, then for fp8; the order swapped every
# other round), with the ofi/tcp ratio of the medians.
#
# usage: bench/kv_netns.sh [BUILD_DIR] [SHAPE TOKENS]...   (root)
#   env: ROUNDS (3), MTU (veth MTU, 1500), KVARGS (extra kv-bench flags),
#        RATE (cap A's egress with tc tbf, e.g. 10gbit; default: none),
#        TRANSPORT (tcp|ofi|both; tcp), IPERF_T (iperf3 seconds, 5; 0:
#        none), GLOO (1; 0: no gloo baseline), ITERS (kv-bench iters, 2)
#   a quick check: ROUNDS=1 IPERF_T=0 GLOO=0 TRANSPORT=both \
#                  bench/kv_netns.sh build 1b 1024
set -u
B=$(cd "${1:-build}" && pwd)/scomm
shift || true
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(8b 32768 1b 131072)
ROUNDS=${ROUNDS:-3}
MTU=${MTU:-1500}
KVARGS=${KVARGS:---streams 1 --chunk 4M --depth 4}
TRANSPORT=${TRANSPORT:-tcp}
IPERF_T=${IPERF_T:-5}
GLOO=${GLOO:-1}
ITERS=${ITERS:-2}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
case $TRANSPORT in
    tcp | ofi) tls=("$TRANSPORT") ;;
    both) tls=(tcp ofi) ;;
    *) echo "kv_netns.sh: TRANSPORT='$TRANSPORT': tcp, ofi or both" >&2; exit 2 ;;
esac
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for ip netns"; exit 77; }
[[ $IPERF_T == 0 ]] || command -v iperf3 > /dev/null || { echo "SKIP: no iperf3 (IPERF_T=0: without it)"; exit 77; }
if [[ $TRANSPORT != tcp ]] && ! "$B" info | grep -q "features:.*ofi"; then
    echo "kv_netns.sh: this scomm has no ofi transport (install libfabric-dev, rebuild)" >&2
    exit 1
fi

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
        # iperf3: A sends to B for IPERF_T s.
        if [[ $IPERF_T != 0 ]]; then
            port=$((5300 + RANDOM % 500))
            ip netns exec "$Z" iperf3 -s -1 -p $port > /dev/null 2>&1 &
            pids+=($!)
            sleep 0.5
            ip netns exec "$A" iperf3 -c $SB -p $port -t "$IPERF_T" -J | $PY -c \
                'import json,sys; print(json.dumps({"bench":"iperf3","case":sys.argv[1],"gbps":json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9}))' \
                "$shape@$tokens" >> "$out"
            wait
        fi
        # scomm kv-bench: lossless and fp8, each over every transport (in
        # turn, the order swapped every other round); the receiver
        # (decode) serves in B, prefill connects from A and sends.
        order=("${tls[@]}")
        if ((r % 2 == 1)) && [[ ${#tls[@]} -eq 2 ]]; then order=("${tls[1]}" "${tls[0]}"); fi
        for wire in native fp8; do
            for tl in "${order[@]}"; do
                port=$((7000 + RANDOM % 500))
                ip netns exec "$Z" "$B" kv-bench --serve $SB:$port --shape $shape \
                    --tokens $tokens --iters "$ITERS" --transport $tl --wire $wire $KVARGS \
                    --json > /dev/null 2>&1 &
                pids+=($!)
                sleep 0.3
                ip netns exec "$A" "$B" kv-bench --connect $SB:$port --shape $shape \
                    --tokens $tokens --iters "$ITERS" --transport $tl --wire $wire $KVARGS \
                    --json | sed "s/^{/{\"case\":\"$shape@$tokens\",\"wire\":\"$wire\",\"transport\":\"$tl\",/" >> "$out"
                wait
            done
        done
        if [[ $GLOO == 0 ]]; then
            pids=()
            continue
        fi
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
tls = [t for t in ("tcp", "ofi") if any(r.get("transport") == t for r in rows)]
def kv(c, t, w):
    return med(c, lambda r: r.get("transport") == t and r.get("wire") == w)
head = "| case | iperf3 GB/s |"
for t in tls:
    head += " kv %s lossless GB/s (%% link) | kv %s fp8 GB/s |" % (t, t)
head += " gloo GB/s |"
for t in tls:
    head += " %s lossless/gloo | %s fp8/gloo |" % (t, t)
if len(tls) == 2:
    head += " ofi/tcp lossless | ofi/tcp fp8 |"
print(head)
print("|---" * (head.count("|") - 1) + "|")
for c in cases:
    l = med(c, lambda r: r.get("bench") == "iperf3")
    g = med(c, lambda r: "gloo" in json.dumps(r) and "wire" not in r and r.get("bench") != "iperf3")
    row = "| %s | %.2f |" % (c, l)
    for t in tls:
        n, f = kv(c, t, "native"), kv(c, t, "fp8")
        row += " %.2f (%.0f %%) | %.2f |" % (n, 100 * n / l if l == l and l else float("nan"), f)
    row += " %.2f |" % g
    for t in tls:
        row += " %.2f | %.2f |" % (kv(c, t, "native") / g, kv(c, t, "fp8") / g)
    if len(tls) == 2:
        row += " %.2f | %.2f |" % (kv(c, "ofi", "native") / kv(c, "tcp", "native"),
                                   kv(c, "ofi", "fp8") / kv(c, "tcp", "fp8"))
    print(row)
EOF
