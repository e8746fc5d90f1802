#!/usr/bin/env bash
# Device-buffer against host-buffer collectives of `scomm bench` on the same
# ranks and transport (docs/device.md, issue 19's acceptance: a device-buffer
# TCP all_reduce at 64 MiB within 1.3x of the host-buffer one). Interleaved
# host, device, host, device ... (A B A B) so drift of the machine lands on
# both; per size, the median over the rounds of each side's median call
# time, and device / host. Prints a Markdown table, also written to
# $OUT/summary.md with every run's JSON under $OUT/runs.
#
#   bench/device_vs_host.sh [ROUNDS]                 (default 5)
#   SIZES=1M,64M OPS=all_reduce bench/device_vs_host.sh 3
#   SCOMM_CUDART_LIBRARY=build/tests/fakevendor/fake_cudart/libcudart.so \
#       SIZES=4K,64K bench/device_vs_host.sh 2       (a smoke run on the fake)
#
# Environment: SIZES (default 1M,16M,64M), OPS (default all_reduce),
# SIDES (default "host device"; add "whole": device buffers with
# SCOMM_DEVICE_CHUNK=1g, so blocks up to 1 GiB are staged whole instead of
# pipelined: the staging before the pipeline, in the same binary),
# NP (ranks, default 2), TL (SCOMM_TRANSPORTS, default tcp), TARGET
# (seconds per size, default 0.5), OUT (result folder), SCOMM (the CLI,
# default build/scomm). The device side needs a CUDA runtime: a GPU's
# libcudart.so, or the fake named by SCOMM_CUDART_LIBRARY (its numbers say
# nothing about a GPU). Run it on a quiet machine: timings are meaningless
# while other work shares the cores.
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-5}}
here=$(cd "$(dirname "$0")/.." && pwd)
SCOMM=${SCOMM:-$here/build/scomm}
SIZES=${SIZES:-1M,16M,64M}
OPS=${OPS:-all_reduce}
SIDES=${SIDES:-host device}
NP=${NP:-2}
TL=${TL:-tcp}
TARGET=${TARGET:-0.5}
out=${OUT:-$here/bench/out/device_vs_host_$(date +%Y%m%d_%H%M%S)}
mkdir -p "$out/runs"
[[ -x $SCOMM ]] || { echo "device_vs_host: build scomm first ($SCOMM)" >&2; exit 1; }

for ((r = 1; r <= ROUNDS; r++)); do
    for side in $SIDES; do
        flag=(--device)
        echo "round $r/$ROUNDS: $side" >&2
        envx=()
        # the host side as a host-only process: no runtime named
        [[ $side == host ]] && { flag=(); envx=(-u SCOMM_CUDART_LIBRARY); }
        [[ $side == whole ]] && envx=(SCOMM_DEVICE_CHUNK=1g)
        env "${envx[@]}" SCOMM_TRANSPORTS=$TL "$SCOMM" launch -n "$NP" --timeout 600 -- \
            "$SCOMM" bench "$OPS" --sizes "$SIZES" --target "$TARGET" \
            "${flag[@]}" --quiet --out none \
            --json "$out/runs/${side}_$r.json" > "$out/runs/${side}_$r.log"
    done
done

python3 - "$out" "$ROUNDS" "$NP" "$TL" "$SIDES" <<'PY' | tee "$out/summary.md"
import json, statistics, sys
out, rounds, np_, tl = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sides = sys.argv[5].split()
t = {}  # (op, bytes, side) -> [median call time per round, ms]
path = {}  # (op, bytes, side) -> the staged path the record names
for side in sides:
    for r in range(1, rounds + 1):
        for rec in json.load(open("%s/runs/%s_%d.json" % (out, side, r))):
            t.setdefault((rec["op_type"], rec["bytes"], side), []).append(
                rec["t_median_ms"])
            why = rec.get("selection_reason", "")
            path[(rec["op_type"], rec["bytes"], side)] = (
                why.split(";")[0] if why.startswith("path ") else "host")
print("# device vs host buffers: %s ranks over %s, %d rounds A B A B\n"
      % (np_, tl, rounds))
others = [s for s in sides if s != "host"]
print("| op | bytes | host ms (median) | "
      + " | ".join("%s ms (median) | %s / host" % (s, s) for s in others)
      + (" | device / whole" if ("device" in sides and "whole" in sides)
         else "") + " |")
print("|---|---:|---:|" + "---:|---:|" * len(others)
      + ("---:|" if ("device" in sides and "whole" in sides) else ""))
for (op, b, side) in sorted(k for k in t if k[2] == "host"):
    m = {s: statistics.median(t.get((op, b, s), [float("nan")]))
         for s in sides}
    h = m["host"]
    row = "| %s | %d | %.3f |" % (op, b, h)
    for s in others:
        row += " %.3f | %.2fx |" % (m[s], m[s] / h)
    if "device" in sides and "whole" in sides:
        row += " %.2fx |" % (m["device"] / m["whole"])
    print(row)
print("\npaths (the selection record, last round): " + "; ".join(
    "%s %d %s: %s" % (k[0], k[1], k[2], v) for k, v in sorted(path.items())
    if k[2] != "host"))
PY
echo "results in $out" >&2
