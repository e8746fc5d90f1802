#!/usr/bin/env bash
# Scale-out numbers on the namespace cluster (tests/cluster/cluster.sh):
#  1. all_reduce 64 MiB on 2 hosts x 2 ranks with every host's link capped
#     at 10 Gbit/s (tc tbf): hierarchical against flat ring, interleaved
#     (hier, ring, hier, ring, ...), each run a fresh cluster;
#  2. 8-byte all_reduce across 2 hosts (1 rank each, and 2 x 2), unshaped
#     veth: the seed's cross-node latency target is <= 80 us.
# Prints a Markdown table (medians over rounds) and keeps the raw CSVs.
#
#   bench/scaleout.sh [ROUNDS]      (default 3; needs root, a built tree)
#   RATE=1gbit bench/scaleout.sh    (the tbf cap, default 10gbit)
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-3}}
RATE=${RATE:-10gbit}
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
cluster=$here/tests/cluster/cluster.sh
out=${OUT:-$here/bench/out/scaleout_$(date +%Y%m%d_%H%M%S)}
mkdir -p "$out"
[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "scaleout.sh needs root (ip netns)"; exit 1; }

# run NAME HOSTS PER RATE -- bench args: one cluster run, rank 0's CSV kept.
run() {
    local name=$1 h=$2 r=$3 rate=$4; shift 5
    local rate_args=()
    [[ $rate != none ]] && rate_args=(--rate "$rate")
    "$cluster" -H "$h" -r "$r" "${rate_args[@]}" -t 600 -- \
        "$build/scomm" bench all_reduce "$@" --csv "$out/$name.csv" \
        > "$out/$name.log" 2>&1 || { echo "scaleout: $name failed:"; tail -5 "$out/$name.log"; exit 1; }
}

col() { # col FILE FIELD -> value of FIELD in the last row
    python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]])
EOF
}

for i in $(seq 1 "$ROUNDS"); do
    run "hier_r$i" 2 2 "$RATE" -- -b 64M -e 64M -w 2 --target 2 --algo hierarchical
    run "ring_r$i" 2 2 "$RATE" -- -b 64M -e 64M -w 2 --target 2 --algo ring
    run "lat1_r$i" 2 1 none -- -b 8 -e 8 --target 1
    run "lat2_r$i" 2 2 none -- -b 8 -e 8 --target 1
    echo "round $i: hier $(col "$out/hier_r$i.csv" busbw_gbps) GB/s," \
         "ring $(col "$out/ring_r$i.csv" busbw_gbps) GB/s," \
         "8 B 2x1 $(col "$out/lat1_r$i.csv" latency_ms) ms," \
         "8 B 2x2 $(col "$out/lat2_r$i.csv" latency_ms) ms"
done
python3 - "$out" "$ROUNDS" "$RATE" <<'EOF' | tee "$out/summary.md"
import csv, statistics, sys
out, n, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def med(name, field, scale=1.0):
    v = []
    for i in range(1, n + 1):
        rows = list(csv.DictReader(open(f"{out}/{name}_r{i}.csv")))
        v.append(float(rows[-1][field]) * scale)
    return statistics.median(v)
h, r = med("hier", "busbw_gbps"), med("ring", "busbw_gbps")
l1, l2 = med("lat1", "latency_ms", 1000), med("lat2", "latency_ms", 1000)
print(f"| measurement ({n} rounds, medians) | value |")
print("|---|---:|")
print(f"| all_reduce 64 MiB, 2 hosts x 2 ranks, tbf {rate}: hierarchical busbw | {h:.3f} GB/s |")
print(f"| same, flat ring busbw | {r:.3f} GB/s |")
print(f"| hierarchical / ring | {h / r:.2f}x |")
print(f"| all_reduce 8 B, 2 hosts x 1 rank, unshaped veth | {l1:.1f} us |")
print(f"| all_reduce 8 B, 2 hosts x 2 ranks, unshaped veth | {l2:.1f} us |")
EOF
echo "raw data: $out"
