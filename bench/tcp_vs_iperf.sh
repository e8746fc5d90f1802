#!/usr/bin/env bash
# all_reduce over tcp against `iperf3 --bidir` on the same link, interleaved
# (iperf3, scomm, iperf3, scomm, ...), 2 ranks on loopback.
#
# Why --bidir: a 2-rank all_reduce sends N/2 and receives N/2 in its
# reduce-scatter and again in its all-gather, so each direction of the link
# carries N bytes per call while the other direction carries N too; busbw
# (nccl-tests, x1 for 2 ranks) is exactly that per-direction rate. iperf3
# --bidir measures the same: both directions at once, each reported alone.
# The table gives the median over rounds of iperf3's per-direction rate
# (mean of the two directions) and of scomm's busbw, and their ratio.
#
#   bench/tcp_vs_iperf.sh [ROUNDS]     (default 3)
#   SIZE=64M bench/tcp_vs_iperf.sh     (default 256M)
# Needs: iperf3 (scripts/install-deps.sh --bench), a built tree (make build).
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-3}}
SIZE=${SIZE:-256M}
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
out=${OUT:-$here/bench/out/tcp_$(date +%Y%m%d_%H%M%S)}
mkdir -p "$out"
command -v iperf3 > /dev/null || { echo "tcp_vs_iperf: no iperf3 (scripts/install-deps.sh --bench)"; exit 1; }
[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }

# A free port for iperf3 (never a fixed one).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "round,iperf3_bidir_GBps_per_dir,scomm_busbw_GBps" > "$out/rounds.csv"
for r in $(seq 1 "$ROUNDS"); do
    iperf3 -s -1 -B 127.0.0.1 -p "$port" > /dev/null 2>&1 &
    srv=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$port" --bidir -t 5 -J > "$out/iperf3_r$r.json"
    wait "$srv" || true
    ip=$(python3 - "$out/iperf3_r$r.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
e = j["end"]
a = e["sum_received"]["bits_per_second"]
b = e["sum_received_bidir_reverse"]["bits_per_second"]
print("%.3f" % ((a + b) / 2 / 8e9))
EOF
)
    SCOMM_TRANSPORTS=tcp "$build/scomm" launch -n 2 -- "$build/scomm" bench \
        all_reduce -b "$SIZE" -e "$SIZE" -w 2 --target 3 \
        --csv "$out/scomm_r$r.csv" > "$out/scomm_r$r.txt"
    bw=$(python3 - "$out/scomm_r$r.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("%.3f" % float(rows[-1]["busbw_gbps"]))
EOF
)
    echo "$r,$ip,$bw" >> "$out/rounds.csv"
    echo "round $r: iperf3 --bidir $ip GB/s per direction, scomm all_reduce busbw $bw GB/s"
done
python3 - "$out/rounds.csv" "$SIZE" <<'EOF' | tee "$out/summary.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ip = statistics.median(float(r["iperf3_bidir_GBps_per_dir"]) for r in rows)
bw = statistics.median(float(r["scomm_busbw_GBps"]) for r in rows)
print("| link | iperf3 --bidir, GB/s per direction | scomm all_reduce %s busbw GB/s | ratio |" % sys.argv[2])
print("|---|---:|---:|---:|")
print("| loopback, 2 ranks, %d rounds | %.2f | %.2f | %.0f %% |" % (len(rows), ip, bw, 100 * bw / ip))
EOF
echo "raw data: $out"
