#!/usr/bin/env bash
# onoff.sh - cost of telemetry on the smallest collective: 8-byte
# all_reduce on 2 ranks, metrics on (default) vs off (SCOMM_METRICS=0),
# runs interleaved (order alternating each round) so that drift of a noisy
# machine hits both sides alike; prints each run and the medians of the
# per-call mean ("time") and of the per-call median ("median") columns.
#
# usage: tests/telemetry/onoff.sh [SCOMM_BIN] [ROUNDS] [TARGET_SEC]
#   defaults: build-tm/scomm, 10, 0.5
# Run it alone on the machine (here: flock -x /tmp/scomm-cpu.lock ...).
set -euo pipefail
bin=${1:-build-tm/scomm}
rounds=${2:-10}
target=${3:-0.5}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

one() {  # $1 = SCOMM_METRICS value; prints "mean_us median_us"
    SCOMM_METRICS=$1 "$bin" launch -n 2 -- "$bin" bench all_reduce -b 8 \
        -e 8 --target "$target" --out none --quiet --json "$tmp/r.json" \
        >/dev/null 2>&1
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))[0]
print("%.4f %.4f" % (r["latency_ms"] * 1e3, r["t_median_ms"] * 1e3))' \
        "$tmp/r.json"
}

on_t=(); on_m=(); off_t=(); off_m=()
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then order="1 0"; else order="0 1"; fi
    for m in $order; do
        read -r t med < <(one "$m")
        echo "round $r metrics=$m mean_us=$t median_us=$med"
        if [[ $m == 1 ]]; then on_t+=("$t"); on_m+=("$med")
        else off_t+=("$t"); off_m+=("$med"); fi
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {
    if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

mt_on=$(median "${on_t[@]}"); mt_off=$(median "${off_t[@]}")
mm_on=$(median "${on_m[@]}"); mm_off=$(median "${off_m[@]}")
awk -v a="$mt_on" -v b="$mt_off" -v c="$mm_on" -v d="$mm_off" \
    -v n="$rounds" 'BEGIN {
    printf "medians over %d runs each: mean-per-call on %.4f us, off %.4f us " \
           "(%+.1f %%); median-per-call on %.4f us, off %.4f us (%+.1f %%)\n",
           n, a, b, 100 * (a - b) / b, c, d, 100 * (c - d) / d }'
