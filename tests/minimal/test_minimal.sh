#!/bin/bash
# test_minimal.sh - the build with every optional library left out
# (docs/design.md, "Dependencies"). Configures a second tree, build-min
# under the build directory, with SCOMM_WITH_<NAME>=OFF for each library,
# builds only the targets run here, then a smoke subset:
#   1. the configure summary and `scomm info` list no feature;
#   2. p2p (test_p2p) and the collectives (test_icoll: every collective,
#      blocking and not, against an independent reference) on 2 ranks over
#      shm and over tcp;
#   3. each left-out library's SCOMM_ERR_UNSUPPORTED message and the
#      fallbacks (test_features with an empty feature list; for lz4 and
#      zstd also `test_kv nocodec tcp`, which checks the refusal at a
#      transfer's start on both sides, where test_kv has that case);
#   4. `scomm probe` with the CPU side from sysfs against lstopo
#      (tests/topo/test_probe.sh, host part; skipped without lstopo).
#
# ctest (build.minimal) passes the main build's settings in the
# environment: MIN_SRC, MIN_BUILD (the main build directory), MIN_CC,
# MIN_LAUNCHER (e.g. ccache, may be empty), MIN_SANITIZE, MIN_TYPE.
set -u
SRC=${MIN_SRC:?}
MIN=${MIN_BUILD:?}/build-min
LOG=$MIN.log
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $*"; }

opts=(-DCMAKE_BUILD_TYPE="${MIN_TYPE:-Release}" -DCMAKE_C_COMPILER="${MIN_CC:?}"
      -DSCOMM_SANITIZE="${MIN_SANITIZE:-}" -DSCOMM_BUILD_TESTS=ON)
if [[ -n "${MIN_LAUNCHER:-}" ]]; then
    opts+=(-DCMAKE_C_COMPILER_LAUNCHER="$MIN_LAUNCHER")
fi
for lib in HWLOC YAML JANSSON MHD ZSTD LZ4 OFI; do
    opts+=(-DSCOMM_WITH_$lib=OFF)
done

step "configure $MIN (every optional library OFF)"
cmake -S "$SRC" -B "$MIN" "${opts[@]}" > "$LOG" 2>&1 \
    || { cat "$LOG"; fail "configure"; }
grep "scomm optional dependencies in: none" "$LOG" \
    || { cat "$LOG"; fail "the configure summary does not say none is in"; }
grep "scomm left out " "$LOG"
[[ $(grep -c "scomm left out " "$LOG") -eq 7 ]] \
    || fail "the summary should list 7 libraries left out"

targets=(scomm_cli test_p2p test_icoll test_features)
if grep -q '"nocodec"' "$SRC/tests/mp/test_kv.c"; then
    targets+=(test_kv)
fi
step "build ${targets[*]}"
cmake --build "$MIN" -j "$(nproc)" --target "${targets[@]}" \
    >> "$LOG" 2>&1 || { tail -60 "$LOG"; fail "build"; }
SCOMM=$MIN/scomm

step "scomm info"
info=$("$SCOMM" info) || fail "scomm info: $info"
echo "$info"
echo "$info" | grep -qx "features:   (none)" || fail "features line"

for tl in shm tcp; do
    for t in test_p2p test_icoll; do
        step "$t on 2 ranks over $tl"
        SCOMM_TRANSPORTS=$tl timeout 300 "$MIN/tests/$t" -n 2 -t 240 \
            > "$MIN/$t.$tl.log" 2>&1 \
            || { tail -30 "$MIN/$t.$tl.log"; fail "$t over $tl"; }
        tail -n 2 "$MIN/$t.$tl.log"
    done
done

step "UNSUPPORTED messages and fallbacks"
"$MIN/tests/test_features" "$SRC" "" || fail "test_features"
if [[ " ${targets[*]} " == *" test_kv "* ]]; then
    timeout 120 "$MIN/tests/test_kv" nocodec tcp || fail "test_kv nocodec tcp"
fi

step "scomm probe (CPUs from sysfs) against lstopo"
bash "$SRC/tests/topo/test_probe.sh" "$SCOMM" "$SRC" host
rc=$?
[[ $rc -eq 0 || $rc -eq 77 ]] || fail "test_probe.sh host"
echo "test_minimal: ok"
