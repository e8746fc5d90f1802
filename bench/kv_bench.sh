#!/bin/bash
# kv_bench.sh - the KV-transfer benchmark set of issue 7, in one run:
# iperf3 (the link), `scomm kv-bench` (tcp and shm, lossless and fp8) and
# the gloo per-layer send/recv baseline (bench/kv_gloo_baseline.py), for
# Llama-3-8B at 4K and 32K tokens and Llama-3.2-1B at 128K, then the TTFT
# emulation. Loopback only (netns runs: see docs/kv.md).
# usage: bench/kv_bench.sh [BUILD_DIR]   (prints JSON lines and a summary)
set -u
B=${1:-build-kv}/scomm
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ST="--streams 1 --chunk 4M --depth 4"   # best on a 2-core host (docs/kv.md)
port=$((5300 + RANDOM % 500))
iperf3 -s -1 -p $port >/dev/null 2>&1 &
sleep 0.5
link=$(iperf3 -c 127.0.0.1 -p $port -t 5 -J | $PY -c \
  'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9)')
echo "{\"bench\":\"iperf3\",\"link\":\"loopback\",\"gbps\":$link}"
for case in "8b 4096 3" "8b 32768 2" "1b 131072 2"; do
  set -- $case
  for tr in tcp shm; do
    $B kv-bench --shape $1 --tokens $2 --iters $3 --transport $tr $ST --json
  done
  $B kv-bench --shape $1 --tokens $2 --iters $3 --transport tcp $ST --wire fp8 --json
  $B kv-bench --shape $1 --tokens $2 --iters $3 --transport tcp $ST --compress lz4 --json
  $PY $HERE/kv_gloo_baseline.py --shape $1 --tokens $2 --iters $3 \
      --port $((29500 + RANDOM % 400))
done
$B kv-bench --ttft --shape 8b --tokens 4096 $ST --json
