#!/usr/bin/env bash
# The ofi transport (libfabric, here the tcp;ofi_rxm provider) against
# scomm's own tcp transport and Open MPI, collectives on 2 ranks, runs
# interleaved (ofi, tcp, openmpi, ofi, tcp, ...) so the machine's drift
# hits every contender alike:
#  1. loopback: `scomm launch -n 2` with every rank a host of its own
#     (SCOMM_HOST_ID), so shared memory is out of the way; Open MPI's tcp
#     BTL (--mca pml ob1 --mca btl tcp,self) and, where Open MPI has it,
#     its ofi MTL (--mca pml cm --mca mtl ofi, provider tcp) running
#     ../shared/anchors/mpi_coll_bench.c with the same sizes;
#  2. two network namespaces joined over a veth bridge
#     (tests/cluster/cluster.sh, 2 hosts x 1 rank), uncapped and with each
#     host's egress capped at RATE (tc tbf), scomm only (mpirun would need
#     ssh into the namespaces).
# Prints a Markdown table (medians over rounds of t_median at 8 B and of
# busbw at the larger sizes, and ofi / tcp) and keeps the raw CSVs in OUT.
#
#   bench/ofi_vs_tcp.sh [ROUNDS]                 (default 3; needs root for
#                                                 the namespace part)
#   SIZES=8,64K,1M ROUNDS=1 bench/ofi_vs_tcp.sh  (a quick check)
#
# Environment: SIZES (default 8,4K,64K,1M,16M,64M), OPS (default
# all_reduce,all_gather), RATE (default 10gbit), NETNS=0 (loopback only),
# TARGET (seconds per size, default 0.3), OUT, BUILD, ANCHORS.
set -euo pipefail
ROUNDS=${1:-${ROUNDS:-3}}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
anchors=${ANCHORS:-$here/../shared/anchors}
if [[ -z ${ANCHORS:-} && ! -d $anchors ]]; then
    # A git worktree elsewhere: next to the main checkout's.
    common=$(git -C "$here" rev-parse --path-format=absolute --git-common-dir 2> /dev/null || true)
    [[ -n $common && -d $common/../../shared/anchors ]] && anchors=$common/../../shared/anchors
fi
cluster=$here/tests/cluster/cluster.sh
out=${OUT:-$here/bench/out/ofi_vs_tcp_$(date +%Y%m%d_%H%M%S)}
SIZES=${SIZES:-8,4K,64K,1M,16M,64M}
OPS=${OPS:-all_reduce,all_gather}
RATE=${RATE:-10gbit}
NETNS=${NETNS:-1}
TARGET=${TARGET:-0.3}
mkdir -p "$out/bin" "$out/logs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

[[ -x $build/scomm ]] || { echo "build scomm first (make build)"; exit 1; }
"$build/scomm" info | grep -q "features:.*ofi" \
    || { echo "this scomm has no ofi transport (install libfabric-dev, rebuild)"; exit 1; }
if [[ $NETNS == 1 && $(id -u) -ne 0 ]]; then
    echo "ofi_vs_tcp: not root: the namespace runs are skipped" >&2
    NETNS=0
fi

mpi=()
if command -v mpicc.openmpi > /dev/null && [[ -f $anchors/mpi_coll_bench.c ]]; then
    mpicc.openmpi -O2 -o "$out/bin/mpi_bench" "$anchors/mpi_coll_bench.c"
    mpi+=(openmpi_tcp)
    if ompi_info 2> /dev/null | grep -q "MCA mtl: ofi"; then
        mpi+=(openmpi_ofi)
    else
        echo "ofi_vs_tcp: this Open MPI has no ofi MTL: only its tcp BTL" >&2
    fi
else
    echo "ofi_vs_tcp: no Open MPI or no anchors ($anchors): scomm only" >&2
fi
mpi_ops=$(echo "$OPS" | sed -e 's/all_reduce/allreduce/' -e 's/all_gather/allgather/')
echo "label,op,nranks,bytes,count,iters,window,t_mean_us,t_median_us,t_min_us,t_max_us,algbw_GBps,busbw_GBps,busbw_med_GBps,check" \
    > "$out/mpi.csv"

# scomm_lo TL ROUND: 2 ranks on loopback, each its own host.
scomm_lo() {
    SCOMM_TRANSPORTS=$1 timeout 1800 "$build/scomm" launch -n 2 -- \
        sh -c 'SCOMM_HOST_ID=bench$SCOMM_RANK exec "$0" "$@"' \
        "$build/scomm" bench "$OPS" --sizes "$SIZES" --target "$TARGET" \
        --quiet --out none --csv "$out/lo_$1_r$2.csv" \
        > "$out/logs/lo_$1_r$2.log" 2>&1
}
# scomm_ns TL RATE ROUND: 2 namespace hosts, 1 rank each.
scomm_ns() {
    local rate_args=()
    [[ $2 != none ]] && rate_args=(--rate "$2")
    SCOMM_TRANSPORTS=$1 "$cluster" -H 2 -r 1 "${rate_args[@]}" -t 900 -- \
        "$build/scomm" bench "$OPS" --sizes "$SIZES" --target "$TARGET" \
        --quiet --out none --csv "$out/ns_$2_$1_r$3.csv" \
        > "$out/logs/ns_$2_$1_r$3.log" 2>&1
}
openmpi_tcp() {
    timeout 1800 mpirun.openmpi --mca pml ob1 --mca btl tcp,self \
        --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -np 2 \
        "$out/bin/mpi_bench" --ops "$mpi_ops" --sizes "$SIZES" \
        --target "$TARGET" --label openmpi_tcp 2> "$out/logs/openmpi_tcp_$1.err" \
        | grep -v '^#' | grep -v '^label,' >> "$out/mpi.csv" || true
}
openmpi_ofi() {
    # the MTL leaves the tcp provider out by default (its exclude list)
    FI_PROVIDER=tcp timeout 1800 mpirun.openmpi --mca pml cm --mca mtl ofi \
        --mca mtl_ofi_provider_exclude shm,sockets,udp,rstream \
        --mca oob_tcp_if_include lo -np 2 "$out/bin/mpi_bench" \
        --ops "$mpi_ops" --sizes "$SIZES" --target "$TARGET" \
        --label openmpi_ofi 2> "$out/logs/openmpi_ofi_$1.err" \
        | grep -v '^#' | grep -v '^label,' >> "$out/mpi.csv" || true
}

for r in $(seq 1 "$ROUNDS"); do
    for tl in ofi tcp; do
        echo "[$(date +%H:%M:%S)] round $r/$ROUNDS: loopback $tl" >&2
        scomm_lo "$tl" "$r" || echo "ofi_vs_tcp: loopback $tl failed (see $out/logs)" >&2
    done
    for p in "${mpi[@]}"; do
        echo "[$(date +%H:%M:%S)] round $r/$ROUNDS: $p" >&2
        "$p" "$r"
    done
    if [[ $NETNS == 1 ]]; then
        for rate in none "$RATE"; do
            for tl in ofi tcp; do
                echo "[$(date +%H:%M:%S)] round $r/$ROUNDS: veth ($rate) $tl" >&2
                scomm_ns "$tl" "$rate" "$r" || echo "ofi_vs_tcp: veth $rate $tl failed (see $out/logs)" >&2
            done
        done
    fi
done

python3 - "$out" "$SIZES" "$OPS" "$RATE" <<'PY'
import csv, glob, re, statistics as st, sys
out, sizes_arg, ops_arg, rate = sys.argv[1:5]
def size(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip()
    return int(float(s[:-1]) * m[s[-1].upper()]) if s[-1].upper() in m else int(s)
sizes = [size(s) for s in sizes_arg.split(",")]
ops = ops_arg.split(",")
alias = {"allreduce": "all_reduce", "allgather": "all_gather"}
rows = []  # (setting, label, op, bytes, t_median_us, busbw)
for f in glob.glob(f"{out}/*_r*.csv"):
    m = re.match(r"(lo|ns_[^_]+)_(ofi|tcp)_r\d+\.csv", f.split("/")[-1])
    if not m:
        continue
    setting = "loopback" if m.group(1) == "lo" else \
        ("veth" if m.group(1) == "ns_none" else f"veth {rate}")
    for x in csv.DictReader(open(f)):
        rows.append((setting, "scomm " + m.group(2), x["op_type"], int(x["bytes"]),
                     float(x["t_median_ms"]) * 1e3, float(x["busbw_gbps"])))
for x in csv.DictReader(open(f"{out}/mpi.csv")):
    if x.get("check") == "UNSUPPORTED" or not x.get("t_median_us"):
        continue
    rows.append(("loopback", x["label"].replace("_", " "), alias.get(x["op"], x["op"]),
                 int(x["bytes"]), float(x["t_median_us"]), float(x["busbw_GBps"])))
def med(s, l, op, b, k):
    v = [r[k] for r in rows if r[0] == s and r[1] == l and r[2] == op and r[3] == b]
    return st.median(v) if v else None
def fmt(v):
    return "n/a" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")
labels = ["scomm ofi", "scomm tcp", "openmpi tcp", "openmpi ofi"]
lines = ["# ofi against tcp, 2 ranks (medians over rounds, interleaved)", "",
         "t_median in us at 8 B (lower is better), busbw in GB/s above "
         "(higher is better); ofi / tcp compares scomm's two transports.", ""]
for setting in ("loopback", "veth", f"veth {rate}"):
    have = [l for l in labels if any(r[0] == setting and r[1] == l for r in rows)]
    if not have:
        continue
    lines += [f"## {setting}", "",
              "| op | size | " + " | ".join(have) + " | ofi / tcp |",
              "|---|---:|" + "---:|" * (len(have) + 1)]
    for op in ops:
        for b in sizes:
            k = 4 if b <= 8 else 5
            v = {l: med(setting, l, op, b, k) for l in have}
            o, t = v.get("scomm ofi"), v.get("scomm tcp")
            ratio = f"{o / t:.2f}" if (o is not None and t) else "n/a"
            unit = "us" if k == 4 else "GB/s"
            lines.append(f"| {op} | {b} B ({unit}) | " +
                         " | ".join(fmt(v[l]) for l in have) + f" | {ratio} |")
    lines.append("")
lines.append(f"raw data: {out}")
text = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(text)
sys.stdout.write(text)
PY
