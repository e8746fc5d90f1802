#!/usr/bin/env bash
# Point-to-point side by side: Open MPI (vader shm and tcp BTL, from
# ../shared/anchors/mpi_coll_bench.c), scomm (shm and tcp) and iperf3 over
# loopback, interleaved A B A B ... in one run, with the core-to-core probe
# before each round. Prints a Markdown table of medians over the rounds.
#
#   bench/compare_p2p.sh [ROUNDS]      (needs: scripts/install-deps.sh --bench)
set -euo pipefail
ROUNDS=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
anchors=${ANCHORS:-$here/../shared/anchors}
out=${OUT:-$here/bench/out/p2p_$(date +%Y%m%d_%H%M%S)}
build=$here/build
mkdir -p "$out/bin"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

mpicc.openmpi -O2 -o "$out/bin/mpi_bench" "$anchors/mpi_coll_bench.c"
gcc -O3 -march=native -pthread -o "$out/bin/membw" "$anchors/membw.c"
[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }

mpi() {  # label, extra mca args...
    local label=$1; shift
    mpirun.openmpi --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -np 2 "$@" \
        "$out/bin/mpi_bench" --ops pingpong,p2p_bw --sizes 8,64M --target 0.3 --label "$label" \
        2>/dev/null | grep -v '^#' | grep -v '^label' >> "$out/mpi.csv"
}
sc() {  # transport
    SCOMM_TRANSPORTS=$1 "$build/scomm" launch -n 2 -- "$build/scomm" bench p2p -b 8 -e 64M -f 8388608 \
        --csv "$out/scomm_$1_$r.csv" > /dev/null
}
ip3() {
    iperf3 -s -1 -B 127.0.0.1 -p 5299 > /dev/null 2>&1 &
    sleep 0.3
    iperf3 -c 127.0.0.1 -p 5299 -t 3 -J > "$out/iperf3_$r.json" 2>/dev/null || true
    wait || true
}

echo "label,op,nranks,bytes,count,iters,window,t_mean_us,t_median_us,t_min_us,t_max_us,algbw_GBps,busbw_GBps,busbw_med_GBps,check" > "$out/mpi.csv"
for r in $(seq 1 "$ROUNDS"); do
    "$out/bin/membw" --c2c --reps 1 | tail -1 | sed "s/^/round $r,/" >> "$out/c2c.csv"
    mpi openmpi_shm
    sc shm
    mpi openmpi_tcp --mca btl tcp,self --mca pml ob1
    sc tcp
    ip3
    echo "round $r/$ROUNDS done" >&2
done

python3 - "$out" "$ROUNDS" <<'PY'
import csv, json, statistics as st, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
med = lambda xs: st.median(xs) if xs else float('nan')
rows = list(csv.DictReader(open(f"{out}/mpi.csv")))
def mpi(label, op, b, field):
    return med([float(x[field]) for x in rows if x['label']==label and x['op']==op and int(x['bytes'])==b])
def sc(tl, op, b, field):
    v=[]
    for f in glob.glob(f"{out}/scomm_{tl}_*.csv"):
        for x in csv.DictReader(open(f)):
            if x['op']==op and int(x['bytes'])==b: v.append(float(x[field]))
    return med(v)
ip=[]
for f in glob.glob(f"{out}/iperf3_*.json"):
    try: ip.append(json.load(open(f))['end']['sum_received']['bits_per_second']/8e9)
    except Exception: pass
c2c=[l.strip().split(',')[-1] for l in open(f"{out}/c2c.csv")]
print(f"c2c probe per round (ns): {', '.join(c2c)}\n")
print("| metric | scomm | Open MPI | ratio |")
print("|---|---|---|---|")
for tl, lab in (("shm","openmpi_shm"),("tcp","openmpi_tcp")):
    a=sc(tl,'pingpong',8,'t_median_us'); b=mpi(lab,'pingpong',8,'t_median_us')
    print(f"| {tl} 8 B ping-pong one-way, median us | {a:.3f} | {b:.3f} | {a/b:.2f}x time |")
    a=sc(tl,'pingpong',8,'t_mean_us'); b=mpi(lab,'pingpong',8,'t_mean_us')
    print(f"| {tl} 8 B ping-pong one-way, mean us | {a:.3f} | {b:.3f} | {a/b:.2f}x time |")
    a=sc(tl,'pingpong',64<<20,'busbw_gbps'); b=mpi(lab,'pingpong',64<<20,'busbw_GBps')
    print(f"| {tl} 64 MiB ping-pong GB/s | {a:.2f} | {b:.2f} | {a/b:.2f}x bw |")
    a=sc(tl,'p2p_bw',64<<20,'busbw_gbps'); b=mpi(lab,'p2p_bw',64<<20,'busbw_GBps')
    print(f"| {tl} 64 MiB streaming GB/s | {a:.2f} | {b:.2f} | {a/b:.2f}x bw |")
i=med(ip)
a=sc('tcp','p2p_bw',64<<20,'busbw_gbps')
print(f"| iperf3 loopback 1 stream GB/s | | | {i:.2f} |")
print(f"\nscomm tcp 64 MiB streaming / iperf3 loopback = {a/i*100:.0f} %")
print(f"\nraw data: {out}")
PY
