#!/usr/bin/env bash
# Collectives side by side on 2 ranks: Open MPI (shared memory) and MPICH
# running ../shared/anchors/mpi_coll_bench.c, torch.distributed gloo
# (../shared/anchors/torch_gloo_bench.py, when /usr/bin/python3 has torch)
# and scomm over shm (`scomm bench`), all with the same sizes and
# definitions (nccl-tests time per call, slowest rank; algbw, busbw).
# Interleaved A B A B ... in one run, with the core-to-core probe before
# each round (the host places the two vCPUs; results swing with that).
# Prints a Markdown table per op -- medians over the rounds of t_median at
# 8 B and of busbw at 1 MiB, 16 MiB and 256 MiB, and scomm / best peer --
# also written to $OUT/summary.md, with busbw and latency plots in
# $OUT/plots when gnuplot is installed.
#
#   bench/compare_coll.sh [ROUNDS]          (default 3; about 25 min)
#   SIZES=8,1M,16M bench/compare_coll.sh 1  (a quick check)
#
# Environment: SIZES (default the anchors' 8,64,256,1K,...,64M,256M),
# OPS (default all_reduce,all_gather,reduce_scatter,broadcast,all_to_all),
# TARGET (seconds per size, default 0.3), OUT (result folder), ANCHORS.
# Needs: scripts/install-deps.sh --bench (Open MPI, MPICH, gnuplot);
# gloo needs Debian's python3-torch and is skipped without it.
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-3}}
here=$(cd "$(dirname "$0")/.." && pwd)
anchors=${ANCHORS:-$here/../shared/anchors}
out=${OUT:-$here/bench/out/coll_$(date +%Y%m%d_%H%M%S)}
build=$here/build
SIZES=${SIZES:-8,64,256,1K,4K,16K,64K,256K,1M,4M,16M,64M,256M}
OPS=${OPS:-all_reduce,all_gather,reduce_scatter,broadcast,all_to_all}
TARGET=${TARGET:-0.3}
PY=/usr/bin/python3
mkdir -p "$out/bin" "$out/logs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }
# The anchors' names for the ops (allreduce, allgather, alltoall).
mpi_ops=$(echo "$OPS" | sed -e 's/all_reduce/allreduce/' -e 's/all_gather/allgather/' \
    -e 's/all_to_all/alltoall/')

peers=()
if command -v mpicc.openmpi > /dev/null; then
    mpicc.openmpi -O2 -o "$out/bin/mpi_bench.openmpi" "$anchors/mpi_coll_bench.c"
    peers+=(openmpi_shm)
else
    echo "compare_coll: no Open MPI (scripts/install-deps.sh --bench): skipped" >&2
fi
if command -v mpicc.mpich > /dev/null; then
    mpicc.mpich -O2 -o "$out/bin/mpi_bench.mpich" "$anchors/mpi_coll_bench.c"
    peers+=(mpich)
else
    echo "compare_coll: no MPICH (scripts/install-deps.sh --bench): skipped" >&2
fi
if $PY -c 'import torch' 2> /dev/null; then
    peers+=(gloo)
else
    echo "compare_coll: $PY has no torch (apt-get install python3-torch): gloo skipped" >&2
fi
gcc -O3 -march=native -pthread -o "$out/bin/membw" "$anchors/membw.c"

HDR="label,op,nranks,bytes,count,iters,window,t_mean_us,t_median_us,t_min_us,t_max_us,algbw_GBps,busbw_GBps,busbw_med_GBps,check"
echo "$HDR" > "$out/peers.csv"
echo "round,test,label,sample,roundtrips,oneway_ns" > "$out/c2c.csv"

keep() {  # append a peer's CSV rows (no header, no comments) to peers.csv
    grep -v '^#' | grep -v '^label,' >> "$out/peers.csv" || true
}
openmpi_shm() {
    timeout 1800 mpirun.openmpi --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -np 2 \
        "$out/bin/mpi_bench.openmpi" --ops "$mpi_ops" --sizes "$SIZES" --target "$TARGET" \
        --label openmpi_shm 2> "$out/logs/openmpi_shm_$r.err" | keep
}
mpich() {
    timeout 1800 mpirun.mpich -np 2 "$out/bin/mpi_bench.mpich" --ops "$mpi_ops" --sizes "$SIZES" \
        --target "$TARGET" --label mpich 2> "$out/logs/mpich_$r.err" | keep
}
gloo() {
    timeout 2400 $PY "$anchors/torch_gloo_bench.py" --nprocs 2 --ops "$OPS" --sizes "$SIZES" \
        --target "$TARGET" --label gloo --port $((29600 + r)) 2> "$out/logs/gloo_$r.err" | keep
}
scomm_shm() {
    SCOMM_TRANSPORTS=shm timeout 1800 "$build/scomm" launch -n 2 -- "$build/scomm" bench "$OPS" \
        --sizes "$SIZES" --target "$TARGET" --quiet --out "$out/scomm_r$r" \
        --csv "$out/scomm_r$r.csv" > "$out/scomm_r$r.txt" 2> "$out/logs/scomm_$r.err"
}

for r in $(seq 1 "$ROUNDS"); do
    "$out/bin/membw" --c2c --reps 1 --label "round$r" | tail -n +2 | sed "s/^/$r,/" >> "$out/c2c.csv"
    for p in openmpi_shm scomm_shm mpich gloo; do
        [[ $p == scomm_shm || " ${peers[*]} " == *" $p "* ]] || continue
        echo "[$(date +%H:%M:%S)] round $r/$ROUNDS: $p" >&2
        "$p" || echo "compare_coll: $p failed in round $r (see $out/logs)" >&2
    done
done

"$PY" - "$out" "$ROUNDS" "$SIZES" "$OPS" <<'PY'
import csv, glob, os, shutil, statistics as st, subprocess, sys
out, rounds, sizes_arg, ops_arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
alias = {"allreduce": "all_reduce", "allgather": "all_gather", "alltoall": "all_to_all"}
def size(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip()
    return int(float(s[:-1]) * m[s[-1].upper()]) if s[-1].upper() in m else int(s)
sizes = [size(s) for s in sizes_arg.split(",")]
ops = ops_arg.split(",")
rows = []  # (label, op, bytes, t_mean_us, t_median_us, busbw)
for x in csv.DictReader(open(f"{out}/peers.csv")):
    if x["check"] == "UNSUPPORTED" or int(x["nranks"]) != 2 or not x["t_mean_us"]:
        continue
    rows.append((x["label"], alias.get(x["op"], x["op"]), int(x["bytes"]),
                 float(x["t_mean_us"]), float(x["t_median_us"]), float(x["busbw_GBps"])))
for f in sorted(glob.glob(f"{out}/scomm_r*.csv")):
    for x in csv.DictReader(open(f)):
        rows.append(("scomm", x["op_type"], int(x["bytes"]), float(x["latency_ms"]) * 1e3,
                     float(x["t_median_ms"]) * 1e3, float(x["busbw_gbps"])))
labels = [l for l in ("openmpi_shm", "mpich", "gloo") if any(r[0] == l for r in rows)]
names = {"openmpi_shm": "Open MPI shm", "mpich": "MPICH", "gloo": "gloo", "scomm": "scomm shm"}
def med(label, op, b, k):
    v = [r[k] for r in rows if r[0] == label and r[1] == op and r[2] == b]
    return (st.median(v), len(v)) if v else (None, 0)
def fmt(v):
    return "n/a" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")
def human(b):
    for u, s in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 1 << s and b % (1 << s) == 0:
            return f"{b >> s} {u}"
    return f"{b} B"
c2c = []
for x in csv.DictReader(open(f"{out}/c2c.csv")):
    c2c.append(x["oneway_ns"])
lines = [f"# Collectives, 2 ranks: scomm vs peers ({rounds} round(s), interleaved)", "",
         "Medians over rounds; per run, time = per call with the slowest rank counting "
         "(t_median over calls), busbw = nccl-tests bus bandwidth from the mean time, "
         "GB/s = 1e9 B/s. Ratio = scomm / best peer: for time lower is better for scomm, "
         "for busbw higher is better.", "",
         f"core-to-core probe per round (one-way ns): {', '.join(c2c) or 'n/a'}", ""]
metrics = [("t_median us, 8 B", 8, 4, "time")]
metrics += [(f"busbw GB/s, {human(b)}", b, 5, "bw") for b in (1 << 20, 16 << 20, 256 << 20)
            if b in sizes]
for op in ops:
    lines += [f"## {op}", "",
              "| metric | " + " | ".join(names[l] for l in labels) + " | scomm shm | scomm / best peer |",
              "|---|" + "---:|" * (len(labels) + 2)]
    for title, b, k, kind in metrics:
        if b not in sizes:
            continue
        vals = {l: med(l, op, b, k)[0] for l in labels}
        s, _ = med("scomm", op, b, k)
        have = {l: v for l, v in vals.items() if v is not None}
        ratio = "n/a"
        if have and s is not None:
            best = (min if kind == "time" else max)(have, key=have.get)
            if have[best] > 0:
                ratio = f"{s / have[best]:.2f}x {'time' if kind == 'time' else 'bw'} (vs {names[best]})"
        lines.append(f"| {title} | " + " | ".join(fmt(vals[l]) for l in labels) +
                     f" | {fmt(s)} | {ratio} |")
    lines.append("")
lines.append(f"raw data: {out} (peers.csv, scomm_r*.csv, c2c.csv)")
text = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(text)
sys.stdout.write(text)

# Plots: medians over rounds per size, busbw and latency vs size.
if shutil.which("gnuplot") is None:
    print("\n(gnuplot not installed: no plots; scripts/install-deps.sh --bench)")
    sys.exit(0)
pd = f"{out}/plots"
os.makedirs(pd, exist_ok=True)
gp = ["set terminal pngcairo size 1000,650 noenhanced", "set logscale x 2",
      "set format x '%.0b%B'", "set grid", "set key top left", "set xlabel 'size (bytes)'"]
for op in ops:
    series = []
    for l in labels + ["scomm"]:
        bs = sorted({r[2] for r in rows if r[0] == l and r[1] == op})
        if not bs:
            continue
        dat = f"{pd}/{op}_{l}.dat"
        with open(dat, "w") as f:
            for b in bs:
                f.write(f"{b} {med(l, op, b, 3)[0]:.6g} {med(l, op, b, 4)[0]:.6g} {med(l, op, b, 5)[0]:.6g}\n")
        series.append((dat, names[l]))
    if not series:
        continue
    gp += [f"set output '{pd}/{op}_busbw.png'", "unset logscale y",
           f"set title '{op}, 2 ranks: busbw (median of {rounds} round(s))'",
           "set ylabel 'busbw (GB/s)'",
           "plot " + ", ".join(f"'{d}' using 1:4 with linespoints lw 2 title '{n}'" for d, n in series),
           f"set output '{pd}/{op}_latency.png'", "set logscale y 10",
           f"set title '{op}, 2 ranks: time per call, median (median of {rounds} round(s))'",
           "set ylabel 'time (us)'",
           "plot " + ", ".join(f"'{d}' using 1:3 with linespoints lw 2 title '{n}'" for d, n in series)]
open(f"{pd}/plots.gp", "w").write("\n".join(gp) + "\n")
rc = subprocess.call(["gnuplot", f"{pd}/plots.gp"])
print(f"\nplots: {pd}/<op>_busbw.png, <op>_latency.png" + ("" if rc == 0 else " (gnuplot failed)"))
PY
