#!/usr/bin/env bash
#
# test_kv_bench_dev.sh - `scomm kv-bench` with device regions on the strict
# fake CUDA runtime (tests/backend: its device memory is PROT_NONE to the
# host, so any host access to a region crashes the run).
#
# Each run moves a small Llama-3-8B-shaped cache (4 layers, 8 KV heads,
# head_dim 128, 512 tokens: 8 MiB), and kv-bench checks the receiver's
# region against the pattern made again on the host; a wrong byte makes it
# exit 1, which fails this test. The path line must name the path taken:
# "ipc" (device to device, CUDA IPC) for device -> device, "staged" under
# SCOMM_KV_IPC=0 and with one side host memory; --memcpy times and checks
# a plain device-to-device copy; the device options' usage errors exit 2.
#
# Usage: test_kv_bench_dev.sh /path/to/scomm FAKE_LIBCUDART FAKE_LIBCUDA_DIR
# Exits 0 when every check passes, 1 when one fails, 2 on bad usage.

set -u

SCOMM=${1:-}
if [ $# -ne 3 ] || [ ! -x "$SCOMM" ] || [ ! -f "$2" ] || [ ! -d "$3" ]; then
    echo "usage: $0 /path/to/scomm FAKE_LIBCUDART FAKE_LIBCUDA_DIR" >&2
    exit 2
fi
export SCOMM_CUDART_LIBRARY=$2
export LD_LIBRARY_PATH=$3${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-kvb-dev.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
SHAPE="--layers 4 --tokens 512 --iters 2"
FAILS=0
CHECKS=0

# expect WHAT STATUS REGEX [ENV=V...] -- ARGS...: kv-bench's exit status
# and a line of its output (stdout and stderr) matching REGEX.
expect() {
    local what=$1 want=$2 re=$3 envs=() rc
    shift 3
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    CHECKS=$((CHECKS + 1))
    env ${envs[@]+"${envs[@]}"} timeout 60 "$SCOMM" kv-bench "$@" \
        > "$TMP/out" 2>&1
    rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -Eq -- "$re" "$TMP/out"; then
        echo "FAIL $what: exit $rc (want $want), no line matching '$re':"
        sed 's/^/    /' "$TMP/out" | head -8
        FAILS=$((FAILS + 1))
        return
    fi
    echo "ok   $what: $(grep -E -- "$re" "$TMP/out" | head -1)"
}

CHECKED="check: the receiver's (device|host) region matches the pattern \(8388608 bytes\)"
# device -> device over CUDA IPC, then staged
# shellcheck disable=SC2086
expect "device->device ipc" 0 "path ipc .* fp16 device -> device" -- \
    --device $SHAPE
grep -Eq "$CHECKED" "$TMP/out" || { echo "FAIL ipc: no check line"; FAILS=$((FAILS + 1)); }
# shellcheck disable=SC2086
expect "device->device staged" 0 '"path":"staged".*"dtype":"bf16","src_mem":"device","dst_mem":"device","zero_copy_bytes":0' \
    SCOMM_KV_IPC=0 -- --device --dtype bf16 --json $SHAPE
grep -Eq "$CHECKED" "$TMP/out" || { echo "FAIL staged: no check line"; FAILS=$((FAILS + 1)); }
# one side host memory: staged, the destination checked either way
# shellcheck disable=SC2086
expect "device->host" 0 "path staged .* device -> host" -- \
    --src-mem device $SHAPE
grep -Eq "$CHECKED" "$TMP/out" || { echo "FAIL device->host: no check line"; FAILS=$((FAILS + 1)); }
# shellcheck disable=SC2086
expect "host->device" 0 "path staged .* host -> device" -- \
    --dst-mem device --transport tcp $SHAPE
grep -Eq "$CHECKED" "$TMP/out" || { echo "FAIL host->device: no check line"; FAILS=$((FAILS + 1)); }
# the reference: a plain device-to-device copy of the same bytes
# shellcheck disable=SC2086
expect "memcpy" 0 '"path":"memcpy_d2d".*"gbps":[0-9.]+' -- \
    --device --memcpy --json $SHAPE
# usage
expect "tokens not whole blocks" 2 "must be a multiple of --block" -- \
    --device --tokens 100
expect "memcpy without device" 2 "--memcpy copies device to device" -- \
    --memcpy
expect "ttft on device" 2 "--ttft computes on host regions" -- \
    --src-mem device --ttft
expect "bad mem" 2 "src-mem" -- --src-mem gpu

echo "$((CHECKS - FAILS)) of $CHECKS checks passed"
[ "$FAILS" -eq 0 ]
