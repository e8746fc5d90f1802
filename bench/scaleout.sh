#!/usr/bin/env bash
# Scale-out numbers on the namespace cluster (tests/cluster/cluster.sh):
#  1. all_reduce, all_gather and reduce_scatter of 64 MiB on 2 hosts x 2
#     ranks with every host's link capped at RATE (tc tbf): hierarchical
#     against flat ring, interleaved (hier, ring, hier, ring, ...), each run
#     a fresh cluster running the three ops one after the other;
#  2. 8-byte all_reduce across 2 hosts (1 rank each, and 2 x 2), unshaped
#     veth: the seed's cross-node latency target is <= 80 us.
# Prints a Markdown table (medians over rounds) and keeps the raw CSVs.
#
#   bench/scaleout.sh [ROUNDS]      (default 3; needs root, a built tree)
#   RATE=1gbit bench/scaleout.sh    (the tbf cap, default 10gbit)
#   LAT=0 bench/scaleout.sh         (skip the 8-byte latency runs)
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-3}}
RATE=${RATE:-10gbit}
LAT=${LAT:-1}
OPS=all_reduce,all_gather,reduce_scatter
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
cluster=$here/tests/cluster/cluster.sh
out=${OUT:-$here/bench/out/scaleout_$(date +%Y%m%d_%H%M%S)}
mkdir -p "$out"
[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "scaleout.sh needs root (ip netns)"; exit 1; }

# run NAME HOSTS PER RATE OPS -- bench args: one cluster run, rank 0's CSV kept.
run() {
    local name=$1 h=$2 r=$3 rate=$4 ops=$5; shift 6
    local rate_args=()
    [[ $rate != none ]] && rate_args=(--rate "$rate")
    "$cluster" -H "$h" -r "$r" "${rate_args[@]}" -t 600 -- \
        "$build/scomm" bench "$ops" "$@" --out none --csv "$out/$name.csv" \
        > "$out/$name.log" 2>&1 || { echo "scaleout: $name failed:"; tail -5 "$out/$name.log"; exit 1; }
}

col() { # col FILE OP FIELD -> value of FIELD in OP's last row
    python3 - "$1" "$2" "$3" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["op_type"] == sys.argv[2]]
print(rows[-1][sys.argv[3]])
PY
}

for i in $(seq 1 "$ROUNDS"); do
    run "hier_r$i" 2 2 "$RATE" "$OPS" -- -b 64M -e 64M -w 2 --target 2 --algo hierarchical
    run "ring_r$i" 2 2 "$RATE" "$OPS" -- -b 64M -e 64M -w 2 --target 2 --algo ring
    line="round $i:"
    for op in ${OPS//,/ }; do
        line+=" $op hier $(col "$out/hier_r$i.csv" $op busbw_gbps) ring $(col "$out/ring_r$i.csv" $op busbw_gbps) GB/s;"
    done
    if [[ $LAT == 1 ]]; then
        run "lat1_r$i" 2 1 none all_reduce -- -b 8 -e 8 --target 1
        run "lat2_r$i" 2 2 none all_reduce -- -b 8 -e 8 --target 1
        line+=" 8 B 2x1 $(col "$out/lat1_r$i.csv" all_reduce latency_ms) ms,"
        line+=" 2x2 $(col "$out/lat2_r$i.csv" all_reduce latency_ms) ms"
    fi
    echo "$line"
done
python3 - "$out" "$ROUNDS" "$RATE" "$OPS" "$LAT" <<'PY' | tee "$out/summary.md"
import csv, statistics, sys
out, n, rate, ops, lat = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(","), sys.argv[5] == "1"
def med(name, op, field, scale=1.0):
    v = []
    for i in range(1, n + 1):
        rows = [r for r in csv.DictReader(open(f"{out}/{name}_r{i}.csv")) if r["op_type"] == op]
        v.append(float(rows[-1][field]) * scale)
    return statistics.median(v), v
print(f"| 64 MiB, 2 hosts x 2 ranks, tbf {rate} ({n} rounds, medians) | hierarchical busbw | flat ring busbw | hier / ring |")
print("|---|---:|---:|---:|")
for op in ops:
    (h, hv), (r, rv) = med("hier", op, "busbw_gbps"), med("ring", op, "busbw_gbps")
    print(f"| {op} | {h:.3f} GB/s | {r:.3f} GB/s | {h / r:.2f}x |")
    print(f"<!-- {op} rounds: hier {hv} ring {rv} -->")
if lat:
    l1, _ = med("lat1", "all_reduce", "latency_ms", 1000)
    l2, _ = med("lat2", "all_reduce", "latency_ms", 1000)
    print()
    print(f"| all_reduce 8 B, unshaped veth | 2 hosts x 1 rank: {l1:.1f} us | 2 hosts x 2 ranks: {l2:.1f} us | |")
PY
echo "raw data: $out"
