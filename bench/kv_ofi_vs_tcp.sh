#!/usr/bin/env bash
# The KV channel over libfabric RMA (transport ofi, here the tcp;ofi_rxm
# provider) against its own TCP streams, on loopback: `scomm kv-bench
# --transport ofi` and `--transport tcp` (a forked pair over 127.0.0.1)
# interleaved per case and round, the order swapped every other round so
# the machine's drift hits both alike. Prints a Markdown table of the
# medians (min-max) of GB/s and ofi / tcp, and keeps the JSON lines in OUT.
#
#   bench/kv_ofi_vs_tcp.sh [BUILD_DIR [ROUNDS]]   (default build, 5)
#   KV_CASES="1b:2k" bench/kv_ofi_vs_tcp.sh build 1   (a quick check)
#
# Environment: KV_CASES (SHAPE:TOKENS ..., default "8b:4k 1b:32k"),
# KV_OPTS (more kv-bench options for both, e.g. "--compress lz4" or
# "--streams 4"), KV_ITERS (default 5), OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
ROUNDS=${2:-${ROUNDS:-5}}
KV_CASES=${KV_CASES:-"8b:4k 1b:32k"}
KV_OPTS=${KV_OPTS:-}
KV_ITERS=${KV_ITERS:-5}
out=${OUT:-$here/bench/out/kv_ofi_vs_tcp_$(date +%Y%m%d_%H%M%S)}
mkdir -p "$out"

[[ -x $build/scomm ]] || { echo "build scomm first ($build/scomm)"; exit 1; }

# one TRANSPORT SHAPE TOKENS ROUND: one kv-bench run, its JSON line kept.
one() {
    local j
    # shellcheck disable=SC2086
    if ! j=$(timeout 600 "$build/scomm" kv-bench --transport "$1" \
                 --shape "$2" --tokens "$3" --iters "$KV_ITERS" --json \
                 $KV_OPTS 2> "$out/$1_$2_$3_r$4.err"); then
        echo "kv_ofi_vs_tcp: $1 $2@$3 round $4 failed:" \
             "$(tail -1 "$out/$1_$2_$3_r$4.err")" >&2
        return 1
    fi
    echo "$j" | grep '^{' | sed "s/^{/{\"transport\":\"$1\",\"round\":$4,/" \
        >> "$out/kv.jsonl"
}

for r in $(seq 1 "$ROUNDS"); do
    for c in $KV_CASES; do
        shape=${c%%:*}
        tok=${c##*:}
        order=(ofi tcp)
        (( r % 2 == 0 )) && order=(tcp ofi)
        for t in "${order[@]}"; do
            echo "[$(date +%H:%M:%S)] round $r/$ROUNDS: $shape@$tok $t" >&2
            one "$t" "$shape" "$tok" "$r" || true
        done
    done
done

[[ -s $out/kv.jsonl ]] \
    || { echo "kv_ofi_vs_tcp: no results (see $out)"; exit 1; }
python3 - "$out/kv.jsonl" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = []
for r in rows:
    k = (r["shape"], r["tokens"])
    if k not in cases:
        cases.append(k)
def cell(v):
    return "%.3f (%.3f-%.3f)" % (st.median(v), min(v), max(v)) if v else "-"
print("| case | MiB | tcp GB/s | ofi GB/s | ofi / tcp | rounds |")
print("|---|---|---|---|---|---|")
for shape, tok in cases:
    got = {t: [r["gbps"] for r in rows if r["transport"] == t and
               (r["shape"], r["tokens"]) == (shape, tok)]
           for t in ("tcp", "ofi")}
    mib = next(r["bytes"] for r in rows
               if (r["shape"], r["tokens"]) == (shape, tok)) / 1048576
    ratio = (st.median(got["ofi"]) / st.median(got["tcp"])
             if got["ofi"] and got["tcp"] else float("nan"))
    print("| %s@%d | %.0f | %s | %s | %.2f | %d |" % (
        shape, tok, mib, cell(got["tcp"]), cell(got["ofi"]), ratio,
        min(len(got["tcp"]), len(got["ofi"]))))
PY
echo "raw: $out/kv.jsonl" >&2
