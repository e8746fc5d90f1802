#!/bin/bash
# kv_bench.sh - the KV-transfer benchmark set of issue 7 in one run, every
# peer interleaved with scomm: for Llama-3-8B at 4K and 32K tokens and
# Llama-3.2-1B at 128K, ROUNDS rounds of
#   iperf3 (the link) | kv tcp | gloo per-layer send/recv | kv shm | kv fp8
#   (tcp) | kv lz4 (tcp) | kv tcp, shm and fp8 again with 2 streams
# in that order on odd rounds and reversed on even rounds (A B ... B A), then
# the TTFT emulation ROUNDS times, then one table of medians (GB/s = 10^9
# B/s). Each round starts with the core-to-core probe of
# ../shared/anchors/membw.c (one-way ns), which shows the VM's placement
# state. Loopback only (netns runs: see docs/kv.md).
#
# usage: bench/kv_bench.sh [BUILD_DIR [ROUNDS]]
#   KV_OPTS   kv-bench transport options (default --streams 1 --chunk 4M
#             --depth 4: best on a 2-core host, docs/kv.md)
#   KV_THP    on|off: transparent huge pages for both kv-bench and gloo
#             (default on; both sides always pre-fault their memory)
#   KV_CASES  "shape tokens iters;..." (default the three issue-7 cases)
#   KV_OUT    folder for the raw JSON lines (default a new /tmp folder)
#   KV_BASE   a build folder of an older scomm: its kv-bench (tcp and fp8,
#             1 stream, its own memory handling) joins the rounds as
#             "before" columns
set -u
BUILD=${1:-build}
ROUNDS=${2:-3}
B=$BUILD/scomm
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ST=${KV_OPTS:---streams 1 --chunk 4M --depth 4}
THP=${KV_THP:-on}
CASES=${KV_CASES:-8b 4096 5;8b 32768 2;1b 131072 2}
OUT=${KV_OUT:-$(mktemp -d /tmp/kv_bench.XXXXXX)}
RUNS=$OUT/runs.jsonl
mkdir -p "$OUT"
: > "$RUNS"

MEMBW=""
if [[ -f $HERE/../../shared/anchors/membw.c ]] &&
   gcc -O3 -march=native -pthread -o "$OUT/membw" \
       "$HERE/../../shared/anchors/membw.c" 2> /dev/null; then
    MEMBW=$OUT/membw
fi

# record KIND CASE ROUND < json-lines: keep the last JSON line, tagged.
record() {
    local line
    line=$(grep '^{' | tail -n 1)
    if [[ -z $line ]]; then
        echo "kv_bench: $1 ($2, round $3) gave no result" >&2
        return
    fi
    echo "{\"kind\":\"$1\",\"case\":\"$2\",\"round\":$3,\"r\":$line}" >> "$RUNS"
}

run_iperf3() {
    local port=$((5300 + RANDOM % 500))
    iperf3 -s -1 -p $port > /dev/null 2>&1 &
    sleep 0.5
    iperf3 -c 127.0.0.1 -p $port -t 3 -J 2> /dev/null | $PY -c '
import json, sys
print(json.dumps({"gbps": json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e9}))'
    wait
}

run_kind() {  # KIND SHAPE TOKENS ITERS
    local k=$1 shape=$2 tok=$3 it=$4
    local kv="$B kv-bench --shape $shape --tokens $tok --iters $it --thp $THP $ST --json"
    if [[ $k == base_* ]]; then
        kv="${KV_BASE:-}/scomm kv-bench --shape $shape --tokens $tok --iters $it $ST --json"
        k=kv_${k#base_}
    fi
    if [[ $k == *_s2 ]]; then
        kv="$kv --streams 2"
        k=${k%_s2}
    fi
    case $k in
    iperf3) run_iperf3 ;;
    kv_tcp) $kv --transport tcp 2> /dev/null ;;
    kv_shm) $kv --transport shm 2> /dev/null ;;
    kv_fp8) $kv --transport tcp --wire fp8 2> /dev/null ;;
    kv_lz4) $kv --transport tcp --compress lz4 2> /dev/null ;;
    gloo) $PY "$HERE/kv_gloo_baseline.py" --shape "$shape" --tokens "$tok" \
              --iters "$it" --thp "$THP" --port $((29500 + RANDOM % 400)) \
              2> /dev/null ;;
    esac
}

KINDS=(iperf3 kv_tcp gloo kv_shm kv_fp8 kv_lz4 kv_tcp_s2 kv_shm_s2 kv_fp8_s2)
if [[ -n ${KV_BASE:-} ]]; then
    KINDS+=(base_tcp base_fp8)
fi
IFS=';' read -r -a CASE_LIST <<< "$CASES"
for c in "${CASE_LIST[@]}"; do
    read -r shape tok it <<< "$c"
    name="$shape@$tok"
    for r in $(seq 1 "$ROUNDS"); do
        if [[ -n $MEMBW ]]; then
            "$MEMBW" --c2c --reps 1 --label "r$r" | tail -n 1 | $PY -c '
import sys
f = sys.stdin.read().strip().split(",")
print("{\"oneway_ns\": %s}" % f[-1])' | record c2c "$name" "$r"
        fi
        order=("${KINDS[@]}")
        if ((r % 2 == 0)); then
            order=()
            for ((j = ${#KINDS[@]} - 1; j >= 0; j--)); do
                order+=("${KINDS[j]}")
            done
        fi
        for k in "${order[@]}"; do
            echo "[$(date +%H:%M:%S)] $name round $r/$ROUNDS: $k" >&2
            run_kind "$k" "$shape" "$tok" "$it" | record "$k" "$name" "$r"
        done
    done
done
for r in $(seq 1 "$ROUNDS"); do
    echo "[$(date +%H:%M:%S)] ttft round $r/$ROUNDS" >&2
    $B kv-bench --ttft --shape 8b --tokens 4096 --thp "$THP" $ST --json \
        2> /dev/null | record ttft "8b@4096" "$r"
done

echo "raw results: $RUNS" >&2
$PY - "$RUNS" "$ST" "$THP" "$ROUNDS" <<'PY'
import json, statistics as st, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
opts, thp, rounds = sys.argv[2], sys.argv[3], sys.argv[4]
cases = []
for x in runs:
    if x["kind"] not in ("ttft",) and x["case"] not in cases:
        cases.append(x["case"])
def vals(case, kind, key="gbps"):
    return [x["r"][key] for x in runs if x["case"] == case and x["kind"] == kind]
def med(case, kind, key="gbps"):
    v = vals(case, kind, key)
    return st.median(v) if v else None
def cell(case, kind):
    v = vals(case, kind)
    if not v:
        return "-"
    return "%.2f (%.2f-%.2f)" % (st.median(v), min(v), max(v))
print("\nkv_bench: %s rounds, interleaved; kv-bench %s; thp %s; medians, "
      "(min-max) over the rounds; GB/s = 10^9 B/s\n" % (rounds, opts, thp))
print("| case | c2c ns | iperf3 | kv tcp | gloo | kv shm | kv fp8 (tcp) | kv lz4 (tcp) |"
      " tcp/iperf3 | tcp/gloo | shm/gloo | fp8/gloo |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rows2 = []
for c in cases:
    i, t, g = med(c, "iperf3"), med(c, "kv_tcp"), med(c, "gloo")
    s, f = med(c, "kv_shm"), med(c, "kv_fp8")
    c2c = med(c, "c2c", "oneway_ns")
    def ratio(a, b, pct=False):
        if a is None or not b:
            return "-"
        return "%.0f %%" % (100 * a / b) if pct else "%.2fx" % (a / b)
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        c, "%.0f" % c2c if c2c else "-", cell(c, "iperf3"), cell(c, "kv_tcp"),
        cell(c, "gloo"), cell(c, "kv_shm"), cell(c, "kv_fp8"),
        cell(c, "kv_lz4"), ratio(t, i, True), ratio(t, g), ratio(s, g),
        ratio(f, g)))
    t2, s2, f2 = med(c, "kv_tcp_s2"), med(c, "kv_shm_s2"), med(c, "kv_fp8_s2")
    if t2 or s2 or f2:
        rows2.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c, cell(c, "kv_tcp_s2"), cell(c, "kv_shm_s2"), cell(c, "kv_fp8_s2"),
            ratio(t2, i, True), ratio(t2, g), ratio(s2, g), ratio(f2, g)))
rows3 = []
for c in cases:
    bt, bf = med(c, "base_tcp"), med(c, "base_fp8")
    if bt or bf:
        rows3.append("| %s | %s | %s | %s | %s |" % (
            c, cell(c, "base_tcp"), cell(c, "kv_tcp"), cell(c, "base_fp8"),
            cell(c, "kv_fp8")))
if rows3:
    print("\nBefore (KV_BASE build) and after, same rounds, 1 stream:\n")
    print("| case | kv tcp before | kv tcp after | kv fp8 before | kv fp8 after |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows3))
if rows2:
    print("\nThe same rounds, kv with 2 streams:\n")
    print("| case | kv tcp | kv shm | kv fp8 (tcp) | tcp/iperf3 | tcp/gloo | shm/gloo | fp8/gloo |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows2))
tt = [x["r"] for x in runs if x["kind"] == "ttft"]
if tt:
    a = st.median([x["ttft_after_s"] for x in tt])
    b = st.median([x["ttft_stream_s"] for x in tt])
    print("\nTTFT (8b@4096, median of %d): after prefill %.3f s, layer-wise "
          "streaming %.3f s: %.1f %% better" % (len(tt), a, b, 100 * (1 - b / a)))
PY
