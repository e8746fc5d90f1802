#!/bin/bash
# gpu-check.sh - the stream-ordered vendor path (src/backend) on a real
# NVIDIA GPU, run blind: build scomm, find libnccl and the CUDA runtime,
# run bench/vendor_check's checks with world size 1 on GPU 0, and write a
# report (markdown and raw logs) into OUTDIR.
#
# Usage: scripts/gpu-check.sh OUTDIR
#
# Checks (each its own process, each under its own timeout; one failing
# never stops the others; the whole run stays under SCOMM_GPU_CHECK_BUDGET
# seconds, default 360):
#   correct   all_reduce, all_gather, broadcast right on device buffers
#   async     an all_reduce issued behind a 200 ms GPU spin (a PTX kernel
#             through the driver API: no nvcc) returns in under 1 ms
#   graph     100 replays of a CUDA graph holding an all_reduce, checked
#   watchdog  a stream blocked 3 s, timeout 1 s: SCOMM_ERR_TIMED_OUT from
#             the watchdog within 2 s
#   cost      host cost per call of 10,000 scomm_all_reduce calls against
#             raw ncclAllReduce
#   staged-p2p, staged-coll (docs/device.md)  two processes on GPU 0, a
#             native communicator over shm, device buffers (cudaMalloc)
#             staged through pinned memory: tests/mp/test_p2p.c (every
#             pair, 0 B to 64 MiB) and test_coll.c's data sections (every
#             collective, dtype, op, algorithm; every collective
#             pipelined in 64 KiB chunks, as in ctest, with the section
#             "every collective over chunks"), both with ST_BUF=device,
#             built here with cc
#             against the build's libscomm.a
#   staged-icoll  the same for tests/mp/test_icoll.c: non-blocking and
#             grouped collectives (and isend/irecv) on device buffers
#   bench-device  `scomm bench --device --check` all_reduce and all_gather
#             between two processes on GPU 0 over tcp, 1 KiB to 64 MiB,
#             then bench/device_vs_host.sh (2 rounds, 64 MiB all_reduce):
#             the device / host time ratio as a NUMBER (acceptance: <= 1.3);
#             and all_gather, broadcast, reduce_scatter pipelined / staged
#             whole at 64 MiB (SIDES="host device whole", NUMBERs)
#   torch-cuda  torch.distributed backend "scomm" on CUDA tensors, two
#             processes on GPU 0 (python/tests/torch_cuda.py), when torch
#             has CUDA
#   ipc-bw (docs/device.md, "CUDA IPC")  two processes on GPU 0, a
#             broadcast of device memory under the hint SCOMM_MEM_CUDA
#             over CUDA IPC (bench/ipc_bw.c, built here with cc like the
#             tests above) at 64 MiB and 1 GiB, against a plain
#             device-to-device cudaMemcpy of the same size on the
#             receiver; passes at >= 80 % of the copy rate, and when the
#             all_gather's record says "path cuda_ipc"
#   ipc-p2p (docs/device.md, "CUDA IPC")  blocking send/recv of device
#             memory between two processes on GPU 0 over CUDA IPC
#             (tests/mp/test_ipc_p2p.c, built here with cc): every pair,
#             0 B to 1 MiB + 3, from an odd offset, the sender overwriting
#             its buffer as soon as the send returns; order on one tag,
#             device -> host declined and staged, truncation; then the
#             same for scomm_isend (irecv, recv, scomm_test polling, nine
#             in flight on one tag, a group); the metrics say which
#             messages went over IPC
#   kv-device  the KV channel between two processes on GPU 0, both caches
#             device memory (tests/mp/test_kv.c, test_kv_heads.c with
#             ST_BUF=device, built here with cc): every layout staged and
#             over CUDA IPC, the stream wait, head ranges over IPC
#   kv-llama  a timed 32K-token Llama-3-8B-shaped KV transfer (32 layers,
#             8 KV heads, head_dim 128, bf16, K and V: 4 GiB), device
#             region to device region between two processes on GPU 0
#             (`scomm kv-bench --device`), over CUDA IPC and staged
#             (SCOMM_KV_IPC=0), the receiver's region checked; and
#             `kv-bench --memcpy`, one cudaMemcpy device to device of the
#             same 4 GiB: the GB/s of each, ipc / staged, ipc / memcpy
# Not here yet: 1 GiB staged sizes.
#
# Finding things (override any with the variable):
#   SCOMM_NCCL_LIBRARY    libnccl.so.2: the nvidia-nccl-cu13/-cu12 wheel
#                         (python3 -c 'import nvidia.nccl'), torch's lib
#                         directory, the loader's cache
#   SCOMM_CUDART_LIBRARY  libcudart.so.13/.12: the nvidia wheels, torch's
#                         lib directory, /usr/local/cuda*, the loader's cache
#   SCOMM_GPU_CHECK_DRY=1 force the dry mode
#   SCOMM_GPU_CHECK_BUILD build directory (default: a fresh one in /tmp)
# The build turns every optional dependency off (SCOMM_WITH_<DEP>=OFF, for
# each the tree knows), needs no -dev package, and stands in a stub for a
# missing pkg-config; without cmake it compiles the sources with cc.
#
# Without a GPU (no nvidia-smi, or it lists none) it runs dry: says so in
# the report and exits 0 (ctest gpu_check.dry runs that).
# Exit status: 0 all checks passed (or dry), 1 a check failed or could not
# run, 2 usage.
set -u

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT" || { echo "gpu-check: cannot create $OUT" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUDGET=${SCOMM_GPU_CHECK_BUDGET:-360}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
REPORT=$OUT/report.md
LOG=$OUT/gpu-check.log
: > "$LOG"

log() {
    echo "[$(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"
}

# run_step NAME MAXSEC CMD...: CMD's output into $OUT/NAME.log, bounded by
# MAXSEC and by what is left of the budget; its exit status (124: timed out,
# 125: no time left).
run_step() {
    local name=$1 max=$2 left t rc
    shift 2
    left=$((DEADLINE - $(date +%s) - 10))
    t=$max
    [ "$left" -lt "$t" ] && t=$left
    if [ "$t" -lt 5 ]; then
        log "$name: skipped, no time left in the ${BUDGET} s budget"
        echo "skipped: no time left" > "$OUT/$name.log"
        return 125
    fi
    log "$name: $* (at most ${t} s)"
    timeout -k 5 "$t" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        log "$name: timed out after ${t} s"
        echo "gpu-check: timed out after ${t} s" >> "$OUT/$name.log"
        rc=124
    else
        log "$name: exit $rc"
    fi
    return $rc
}

# The CHECK line of step check-NAME from its exit status RC.
check_line() { # NAME RC PASS-DETAIL
    if [ "$2" -eq 0 ]; then
        echo "CHECK $1 PASS $3"
    else
        echo "CHECK $1 FAIL see check-$1.log"
    fi >> "$OUT/check-$1.log"
}

# ---- 1. is there a GPU? ----
gpu_reason=""
if [ "${SCOMM_GPU_CHECK_DRY:-0}" = "1" ]; then
    gpu_reason="SCOMM_GPU_CHECK_DRY=1"
elif ! command -v nvidia-smi > /dev/null 2>&1; then
    gpu_reason="no nvidia-smi on PATH"
elif ! nvidia-smi -L > "$OUT/nvidia-smi.log" 2>&1 ||
     ! grep -q '^GPU ' "$OUT/nvidia-smi.log"; then
    gpu_reason="nvidia-smi lists no GPU ($(head -1 "$OUT/nvidia-smi.log"))"
fi
if [ -n "$gpu_reason" ]; then
    log "dry run: $gpu_reason"
    {
        echo "# gpu-check: dry run"
        echo
        echo "No NVIDIA GPU here: $gpu_reason. Nothing was built or run on a"
        echo "device. On a machine with a GPU this script builds scomm and runs"
        echo "\`bench/vendor_check\` (correct, async, graph, watchdog, cost) on"
        echo "GPU 0 with world size 1; \`ctest -R bench.vendor_check\` runs the"
        echo "same checks on the fake device."
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "- host: $(uname -n) ($(uname -srm))"
        echo "- tree: $(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null)"
    } > "$REPORT"
    echo "gpu-check: dry run ($gpu_reason); report in $REPORT"
    exit 0
fi

# ---- 2. the environment ----
{
    echo "== nvidia-smi"
    nvidia-smi 2>&1 | head -30
    echo "== uname"; uname -a
    echo "== cc"; (cc --version 2>&1 || gcc --version 2>&1) | head -1
    echo "== cmake"; cmake --version 2>&1 | head -1
    echo "== pkg-config"; pkg-config --version 2>&1
    echo "== python3"; python3 --version 2>&1
    echo "== torch"
    timeout 60 python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1
    echo "== tree"; git -C "$REPO" log -1 --format='%H %s' 2>&1
} > "$OUT/env.log" 2>&1
log "environment in env.log"

# ---- 3. libnccl and the CUDA runtime ----
# Directories where pip wheels keep them: nvidia/*/lib (nvidia-nccl-cu13,
# nvidia-cuda-runtime), nvidia/cu13/lib, torch/lib.
wheel_dirs() {
    timeout 60 python3 - 2>/dev/null <<'EOF'
import os, site, sys
roots = set()
try:
    import nvidia
    roots.update(list(nvidia.__path__))
except Exception:
    pass
try:
    import nvidia.nccl as n
    roots.update(list(n.__path__))
except Exception:
    pass
try:
    import torch
    roots.add(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
for p in site.getsitepackages() + [site.getusersitepackages()]:
    roots.add(os.path.join(p, "nvidia"))
for r in sorted(roots):
    if os.path.isdir(r):
        print(r)
EOF
}

WHEEL_DIRS=$(wheel_dirs)

find_lib() { # find_lib PATTERN...: the first file found
    local pat d f
    for pat in "$@"; do
        for d in $WHEEL_DIRS /usr/local/cuda*/lib64 \
                 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu \
                 /usr/lib64 /usr/lib; do
            [ -d "$d" ] || continue
            f=$(find -L "$d" -maxdepth 4 -name "$pat" 2>/dev/null | head -1)
            if [ -n "$f" ]; then
                echo "$f"
                return 0
            fi
        done
        f=$(ldconfig -p 2>/dev/null |
            awk -v p="$pat" '$1 == p {print $NF; exit}')
        [ -n "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

NCCL=${SCOMM_NCCL_LIBRARY:-$(find_lib libnccl.so.2 libnccl.so)}
CUDART=${SCOMM_CUDART_LIBRARY:-$(find_lib libcudart.so.13 libcudart.so.12 libcudart.so)}
log "libnccl: ${NCCL:-not found}"
log "libcudart: ${CUDART:-not found}"
{
    echo "libnccl: ${NCCL:-not found}"
    echo "libcudart: ${CUDART:-not found}"
} >> "$OUT/env.log"

# ---- 4. build ----
BUILD=${SCOMM_GPU_CHECK_BUILD:-$(mktemp -d /tmp/scomm-gpu-check.XXXXXX)}
mkdir -p "$BUILD"
JOBS=$(nproc 2>/dev/null || echo 4)
CHECK_BIN=""
SCOMM_BIN=""

build_cmake() {
    local opts=() dep stub
    for dep in HWLOC YAML JANSSON MHD ZSTD LZ4 OFI; do
        if grep -q "scomm_optional_dep($dep\b\|SCOMM_WITH_$dep" \
               "$REPO/CMakeLists.txt"; then
            opts+=("-DSCOMM_WITH_$dep=OFF")
        fi
    done
    if ! command -v pkg-config > /dev/null 2>&1; then
        stub=$BUILD/stub-bin/pkg-config
        mkdir -p "$BUILD/stub-bin"
        printf '#!/bin/sh\n[ "$1" = --version ] && echo 0.29.2 && exit 0\nexit 1\n' > "$stub"
        chmod +x "$stub"
        opts+=("-DPKG_CONFIG_EXECUTABLE=$stub")
    fi
    echo "cmake options: ${opts[*]+${opts[*]}}"
    cmake -S "$REPO" -B "$BUILD/cmake" -DCMAKE_BUILD_TYPE=Release \
          -DSCOMM_BUILD_TESTS=OFF ${opts[@]+"${opts[@]}"} &&
        cmake --build "$BUILD/cmake" -j "$JOBS" --target vendor_check scomm_cli scomm
}

# Without cmake (or when it fails): every source with cc, no optional
# library (the tree's SCOMM_HAVE_* guards leave them out).
build_cc() {
    local list=$BUILD/cc/objs objs
    mkdir -p "$BUILD/cc"
    find "$REPO/src" -name '*.c' | sort | while read -r s; do
        o=$BUILD/cc/$(echo "${s#"$REPO"/}" | tr '/' '_').o
        echo "$o" >> "$list.tmp"
        printf '%s\n%s\n' "$s" "$o"
    done | xargs -d '\n' -n 2 -P "$JOBS" sh -c 'echo "cc -c $1" &&
        cc -O2 -std=c11 -D_GNU_SOURCE -fvisibility=hidden -I"$0/include" \
           -I"$0/src" -c "$1" -o "$2"' "$REPO" || return 1
    mv "$list.tmp" "$list"
    mapfile -t objs < "$list"
    cc -O2 -std=c11 -D_GNU_SOURCE -I"$REPO/include" \
       -o "$BUILD/cc/vendor_check" "$REPO/bench/vendor_check.c" \
       "${objs[@]}" -ldl -lpthread -lm -lrt &&
    cc -O2 -std=c11 -D_GNU_SOURCE -I"$REPO/include" -I"$REPO/src" \
       -I"$REPO/tools/scomm" -o "$BUILD/cc/scomm" "$REPO"/tools/scomm/*.c \
       "${objs[@]}" -ldl -lpthread -lm -lrt
}
export -f build_cmake build_cc
export REPO BUILD JOBS

if command -v cmake > /dev/null 2>&1 &&
   run_step build 240 bash -c build_cmake; then
    CHECK_BIN=$BUILD/cmake/vendor_check
    SCOMM_BIN=$BUILD/cmake/scomm
else
    log "cmake build failed or no cmake: trying cc directly"
    if run_step build_cc 200 bash -c build_cc; then
        CHECK_BIN=$BUILD/cc/vendor_check
        SCOMM_BIN=$BUILD/cc/scomm
    fi
fi
[ -x "$CHECK_BIN" ] || CHECK_BIN=""

# ---- 5. the checks ----
export SCOMM_NCCL_LIBRARY=${NCCL:-/nonexistent/libnccl.so.2}
export SCOMM_CUDART_LIBRARY=${CUDART:-}
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
CHECKS="correct async graph watchdog cost"
if [ -n "$SCOMM_BIN" ] && [ -x "$SCOMM_BIN" ]; then
    run_step probe 60 "$SCOMM_BIN" probe
fi
for c in $CHECKS; do
    if [ -z "$CHECK_BIN" ]; then
        echo "CHECK $c FAIL not built (see build.log, build_cc.log)" > "$OUT/check-$c.log"
        continue
    fi
    case $c in
        cost)     n="-n 10000 -c 1024" ;;     # the host cost of small calls
        graph)    n="-c 65536" ;;             # 100 inputs kept in pinned memory
        watchdog) n="-c 1024" ;;
        *)        n="-c 1048576" ;;           # 4 MiB of float32
    esac
    # shellcheck disable=SC2086
    run_step "check-$c" 90 "$CHECK_BIN" $n "$c"
    if ! grep -q "^CHECK " "$OUT/check-$c.log"; then
        echo "CHECK $c FAIL no result (exit status above, or a crash: see the log)" >> "$OUT/check-$c.log"
    fi
done

# ---- 5b. device buffers on a native communicator (docs/device.md) ----
build_dev_tests() { # the mp tests named, on the cmake build's libscomm.a
    local t
    for t in "$@"; do
        cc -O2 -std=c11 -D_GNU_SOURCE -I"$REPO/include" -I"$REPO/src" \
           -I"$REPO/tests/harness" -o "$BUILD/$t" "$REPO/tests/mp/$t.c" \
           "$REPO/tests/harness/st_ranks.c" "$BUILD/cmake/libscomm.a" \
           -ldl -lpthread -lm -lrt || return 1
    done
}
export -f build_dev_tests
if [ -n "$CUDART" ] && [ -f "$BUILD/cmake/libscomm.a" ] &&
   run_step build_dev 60 bash -c 'build_dev_tests test_p2p test_coll test_icoll'; then
    for t in p2p coll icoll; do
        # test_coll at 64 KiB chunks: its sizes span several, and its
        # "every collective over chunks" section runs (as in ctest)
        chunk=4m
        [ "$t" = coll ] && chunk=64k
        run_step "check-staged-$t" 75 env ST_BUF=device SCOMM_TRANSPORTS=shm \
            SCOMM_DEVICE_CHUNK=$chunk "$BUILD/test_$t" -n 2 -t 70
        check_line "staged-$t" $? "device buffers staged, 2 ranks on GPU 0 ($(tail -1 "$OUT/check-staged-$t.log"))"
    done
else
    echo "CHECK staged FAIL not built (no libcudart, or see build_dev.log)" > "$OUT/check-staged.log"
fi

# ---- 5c. scomm bench --device; torch CUDA tensors (docs/device.md) ----
if [ -n "$SCOMM_BIN" ] && [ -x "$SCOMM_BIN" ] && [ -n "$CUDART" ]; then
    run_step check-bench-device 60 env SCOMM_TRANSPORTS=tcp "$SCOMM_BIN" \
        launch -n 2 --timeout 55 -- "$SCOMM_BIN" bench all_reduce,all_gather \
        --device --check --sizes 1K,1M,64M -n 3 -w 1 --quiet --out none
    if [ $? -eq 0 ] && grep -q "0 wrong elements" "$OUT/check-bench-device.log"; then
        echo "CHECK bench-device PASS all_reduce, all_gather on device buffers over tcp, 1 KiB to 64 MiB, every element checked" >> "$OUT/check-bench-device.log"
    else
        echo "CHECK bench-device FAIL see check-bench-device.log" >> "$OUT/check-bench-device.log"
    fi
    run_step device-vs-host 60 env SCOMM="$SCOMM_BIN" SIZES=64M TARGET=0.5 \
        OUT="$OUT/device_vs_host" bash "$REPO/bench/device_vs_host.sh" 2
    ratio=$(sed -n 's/^| all_reduce | [0-9]* | .* | \([0-9.]*\)x |$/\1/p' \
            "$OUT/device-vs-host.log" | tail -1)
    echo "NUMBER staged_allreduce_64M_tcp_device_over_host ${ratio:-none} (acceptance <= 1.3; bench/device_vs_host.sh, 2 rounds)" >> "$OUT/check-bench-device.log"
    # every blocking collective pipelines under the hint: the pipeline
    # against staged whole (SCOMM_DEVICE_CHUNK=1g), IPC off so both stage
    run_step device-vs-whole 90 env SCOMM="$SCOMM_BIN" SIZES=64M TARGET=0.5 \
        OPS=all_gather,broadcast,reduce_scatter SIDES="host device whole" \
        SCOMM_DEVICE_IPC=0 OUT="$OUT/device_vs_whole" \
        bash "$REPO/bench/device_vs_host.sh" 2
    for op in all_gather broadcast reduce_scatter; do
        ratio=$(sed -n "s/^| $op | [0-9]* | .* | \([0-9.]*\)x |\$/\1/p" \
                "$OUT/device-vs-whole.log" | tail -1)
        echo "NUMBER staged_${op}_64M_tcp_pipelined_over_whole ${ratio:-none} (bench/device_vs_host.sh SIDES=\"host device whole\", 2 rounds)" >> "$OUT/check-bench-device.log"
    done
else
    echo "CHECK bench-device FAIL not built (no scomm CLI or no libcudart)" > "$OUT/check-bench-device.log"
fi
if timeout 60 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null &&
   [ -f "$BUILD/cmake/libscomm.so" ]; then
    run_step check-torch-cuda 120 env SCOMM_LIBRARY="$BUILD/cmake/libscomm.so" \
        python3 "$REPO/python/tests/torch_cuda.py" 2
    check_line "torch-cuda" $? "backend scomm on CUDA tensors, 2 ranks on GPU 0 (torch_cuda.py)"
else
    echo "CHECK torch-cuda FAIL torch without CUDA here, or no libscomm.so in the build" > "$OUT/check-torch-cuda.log"
fi

# ---- 5d. CUDA IPC between two processes of one GPU (docs/device.md) ----
build_ipc_bw() {
    cc -O2 -std=c11 -D_GNU_SOURCE -I"$REPO/include" -I"$REPO/src" \
       -I"$REPO/tests/harness" -o "$BUILD/ipc_bw" "$REPO/bench/ipc_bw.c" \
       "$REPO/tests/harness/st_ranks.c" "$BUILD/cmake/libscomm.a" \
       -ldl -lpthread -lm -lrt
}
export -f build_ipc_bw
if [ -n "$CUDART" ] && [ -f "$BUILD/cmake/libscomm.a" ] &&
   run_step build_ipc_bw 60 bash -c build_ipc_bw; then
    run_step check-ipc-bw 120 env SCOMM_TRANSPORTS=shm SCOMM_DEVICE_IPC=1 \
        IPC_BW_SIZES=64m,1g IPC_BW_ITERS=5 IPC_BW_MIN_RATIO=0.8 \
        "$BUILD/ipc_bw" -n 2 -t 110
    rc=$?
    if ! grep -q "^CHECK ipc-bw" "$OUT/check-ipc-bw.log"; then
        echo "CHECK ipc-bw FAIL no result (exit status $rc: see check-ipc-bw.log)" >> "$OUT/check-ipc-bw.log"
    fi
else
    echo "CHECK ipc-bw FAIL not built (no libcudart, or see build_ipc_bw.log)" > "$OUT/check-ipc-bw.log"
fi
if [ -n "$CUDART" ] && [ -f "$BUILD/cmake/libscomm.a" ] &&
   run_step build_ipc_p2p 60 bash -c 'build_dev_tests test_ipc_p2p'; then
    run_step check-ipc-p2p 60 env SCOMM_TRANSPORTS=shm IPC_P2P_MODE=ipc \
        P2P_EAGER=4096 SCOMM_SHM_EAGER_MAX=4096 SCOMM_DEVICE_CHUNK=64k \
        SCOMM_CUDART_LIBRARY="$CUDART" "$BUILD/test_ipc_p2p" -n 2 -t 55
    check_line "ipc-p2p" $? "send/recv and isend of device memory over CUDA IPC, 2 ranks on GPU 0, 0 B to 1 MiB + 3, every byte and the path checked"
else
    echo "CHECK ipc-p2p FAIL not built (no libcudart, or see build_ipc_p2p.log)" > "$OUT/check-ipc-p2p.log"
fi

# ---- 5e. the KV channel on device regions (docs/kv.md, docs/device.md) ----
# tests/mp/test_kv.c and test_kv_heads.c with ST_BUF=device: both caches
# in cudaMalloc memory on GPU 0, one process per side. "cma" stages
# through pinned memory (SCOMM_KV_IPC=0: a device region never takes the
# process_vm_readv copy); "ipc" copies device to device over CUDA IPC and
# fails unless the IPC path carried the chunks (scomm_kv_debug_ipc_chunks).
if [ -n "$CUDART" ] && [ -f "$BUILD/cmake/libscomm.a" ] &&
   run_step build_kv 60 bash -c 'build_dev_tests test_kv test_kv_heads'; then
    for c in "layouts cma staged" "layouts ipc ipc" "stream_wait ipc ipc"; do
        set -- $c
        run_step "check-kv-$3-$1" 60 env ST_BUF=device \
            SCOMM_CUDART_LIBRARY="$CUDART" "$BUILD/test_kv" "$1" "$2"
        check_line "kv-$3-$1" $? "KV $1, device region to device region ($3), every byte checked"
    done
    run_step check-kv-ipc-heads 60 env ST_BUF=device \
        SCOMM_CUDART_LIBRARY="$CUDART" "$BUILD/test_kv_heads" tp ipc
    check_line "kv-ipc-heads" $? "head ranges (TP 1->2 ... 2->4) over CUDA IPC"
else
    echo "CHECK kv-device FAIL not built (no libcudart, or see build_kv.log)" > "$OUT/check-kv-device.log"
fi

# ---- 5f. a 32K-token Llama-3-8B KV transfer, device to device (docs/kv.md) ----
# Each run forks its two processes, fills 4 GiB on the host and copies it
# in, moves it (one warm-up, then the median of the timed transfers) and
# copies the receiver's 4 GiB back to compare: about 15 s, at most 90.
kv_gbps() { # the path and GB/s of kv-bench's JSON line in log $1
    sed -n 's/.*"path":"\([a-z0-9_]*\)".*"gbps":\([0-9.]*\).*/\1 \2/p' "$1" | tail -1
}
if [ -n "$SCOMM_BIN" ] && [ -x "$SCOMM_BIN" ] && [ -n "$CUDART" ]; then
    kvb="kv-bench --device --shape 8b --dtype bf16 --tokens 32768 --json"
    # kv_step NAME MAXSEC PATH TEXT CMD...: run one transfer, check that it
    # went by PATH, write its line; its GB/s in $kv_gbps (0 when it failed)
    kv_step() {
        local name=$1 maxsec=$2 want=$3 text=$4 rc
        shift 4
        run_step "check-$name" "$maxsec" "$@"
        rc=$?
        set -- $(kv_gbps "$OUT/check-$name.log") none 0
        [ "$1" = "$want" ] || rc=1
        check_line "$name" $rc "$text: $2 GB/s"
        kv_gbps=$2
    }
    # shellcheck disable=SC2086
    kv_step kv-llama-ipc 90 ipc "32K tokens Llama-3-8B bf16 (4 GiB) device to device over CUDA IPC, checked" \
        env SCOMM_KV_IPC=1 "$SCOMM_BIN" $kvb --iters 5
    kv_ipc=$kv_gbps
    # shellcheck disable=SC2086
    kv_step kv-llama-staged 90 staged "the same, staged through pinned memory (SCOMM_KV_IPC=0), checked" \
        env SCOMM_KV_IPC=0 "$SCOMM_BIN" $kvb --iters 2
    kv_staged=$kv_gbps
    # shellcheck disable=SC2086
    kv_step kv-llama-memcpy 60 memcpy_d2d "one cudaMemcpy device to device of the same 4 GiB, checked" \
        "$SCOMM_BIN" $kvb --memcpy --iters 5
    kv_memcpy=$kv_gbps
    {
        echo "NUMBER kv_llama8b_32k_ipc_gbps $kv_ipc (kv-bench --device, median of 5)"
        echo "NUMBER kv_llama8b_32k_staged_gbps $kv_staged (SCOMM_KV_IPC=0, median of 2)"
        echo "NUMBER kv_llama8b_32k_memcpy_d2d_gbps $kv_memcpy (kv-bench --memcpy, median of 5)"
        echo "NUMBER kv_llama8b_32k_ipc_over_staged $(awk -v a="$kv_ipc" -v b="$kv_staged" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "none" }')"
        echo "NUMBER kv_llama8b_32k_ipc_over_memcpy $(awk -v a="$kv_ipc" -v b="$kv_memcpy" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "none" }') (acceptance >= 0.8)"
    } >> "$OUT/check-kv-llama-ipc.log"
else
    echo "CHECK kv-llama FAIL not built (no scomm CLI or no libcudart)" > "$OUT/check-kv-llama-ipc.log"
fi

# ---- 6. the report ----
fails=$(cat "$OUT"/check-*.log | grep -c '^CHECK .* FAIL')
total=$(cat "$OUT"/check-*.log | grep -c '^CHECK ')
{
    echo "# gpu-check: $((total - fails)) of $total checks passed"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - START )) s"
    echo "- host: $(uname -n) ($(uname -srm)), $JOBS cores"
    echo "- GPU: $(head -1 "$OUT/nvidia-smi.log")"
    echo "- driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "- torch: $(grep -A1 '^== torch' "$OUT/env.log" | tail -1)"
    echo "- libnccl: ${NCCL:-not found}"
    echo "- libcudart: ${CUDART:-not found}"
    echo "- tree: $(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null)"
    if [ -f "$OUT/probe.log" ]; then
        echo "- scomm probe: $(grep -A1 '^  nccl ' "$OUT/probe.log" | tr -s ' ' | tr '\n' ' ')"
    fi
    echo
    echo "| check | result | detail |"
    echo "|---|---|---|"
    cat "$OUT"/check-*.log | sed -n 's/^CHECK \([^ ]*\) \([A-Z]*\) \(.*\)$/| \1 | \2 | \3 |/p'
    echo
    echo "| number | value |"
    echo "|---|---|"
    cat "$OUT"/check-*.log | sed -n 's/^NUMBER \([^ ]*\) \(.*\)$/| \1 | \2 |/p'
    echo
    echo "Raw logs: $(cd "$OUT" && ls *.log | tr '\n' ' ')"
} > "$REPORT"
log "report: $REPORT ($((total - fails))/$total passed)"
cat "$REPORT"
[ "$fails" -eq 0 ] && [ "$total" -gt 0 ]
exit $?
