#!/usr/bin/env bash
#
# test_tune.sh - smoke test of `scomm tune` (tools/scomm/tune.c): a quick
# 2-rank run writes the policy file into the cache named by
# XDG_CACHE_HOME (name keyed by CPU, rank layout, transports, version),
# with a machine block and rules; `scomm info` lists it; a later run loads
# it (rank 0 logs it at info level) unless SCOMM_TUNE_CACHE=off; --out -
# prints the policy instead.
#
# Usage: test_tune.sh /path/to/scomm
# Exits 0 when every check passes, 1 when one fails, 2 on bad usage.

set -u

SCOMM=${1:-}
if [ -z "$SCOMM" ] || [ ! -x "$SCOMM" ]; then
    echo "usage: $0 /path/to/scomm" >&2
    exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-tune-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
export XDG_CACHE_HOME=$TMP/xdg
unset SCOMM_SELECTOR_CONFIG SCOMM_TUNE_CACHE

check()
{
    # check NAME COMMAND...: run COMMAND, report it
    local name=$1
    shift
    if "$@"; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        FAILS=$((FAILS + 1))
    fi
}

timeout 60 "$SCOMM" launch -n 2 --timeout 50 -- "$SCOMM" tune --quick \
    > "$TMP/stdout" 2> "$TMP/stderr"
rc=$?
check "tune --quick exits 0 (rc=$rc)" test "$rc" -eq 0
FILE=$(ls "$XDG_CACHE_HOME"/scomm/policy-*-w2-l2-*-v*.json 2>/dev/null | head -1)
check "the cache file exists ($FILE)" test -n "$FILE"
check "tune names the file it wrote" grep -q "^wrote $XDG_CACHE_HOME/scomm/policy-" "$TMP/stdout"
check "tune prints a table per op" test "$(grep -c -E '^(all_reduce|all_gather|reduce_scatter|broadcast|all_to_all) ' "$TMP/stdout")" -eq 5
if [ -n "$FILE" ]; then
    check "the file has a machine block" grep -q '"machine": {"cpu": ' "$FILE"
    check "the file has an all_reduce rule" grep -q '"id": "tune.all_reduce.0"' "$FILE"
    check "the file's rules are for 2 ranks" grep -q '"min_ranks": 2, "max_ranks": 2' "$FILE"
fi
"$SCOMM" info 2>&1 | tr '\n' ' ' > "$TMP/info"
check "scomm info lists the file" grep -q "1 for this CPU and version: policy-" "$TMP/info"

SCOMM_LOG_LEVEL=info timeout 60 "$SCOMM" launch -n 2 --timeout 50 -- \
    "$SCOMM" bench all_reduce -b 8 -e 8 -n 2 -w 0 --check --out none \
    > "$TMP/run" 2>&1
rc=$?
check "a run with the file exits 0 (rc=$rc)" test "$rc" -eq 0
check "the run loads the tuned policy" grep -q "selector: tuned policy $FILE" "$TMP/run"
SCOMM_TUNE_CACHE=off SCOMM_LOG_LEVEL=info timeout 60 "$SCOMM" launch -n 2 \
    --timeout 50 -- "$SCOMM" bench all_reduce -b 8 -e 8 -n 2 -w 0 --out none \
    > "$TMP/run_off" 2>&1
check "SCOMM_TUNE_CACHE=off loads none" test "$(grep -c 'tuned policy' "$TMP/run_off")" -eq 0

timeout 60 "$SCOMM" launch -n 2 --timeout 50 -- "$SCOMM" tune --quick -e 256 \
    --out - > "$TMP/json" 2> "$TMP/stderr2"
rc=$?
check "tune --out - exits 0 (rc=$rc)" test "$rc" -eq 0
check "tune --out - prints the policy" grep -q '"rules": \[' "$TMP/json"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed"
    sed 's/^/  stderr: /' "$TMP/stderr" | head -10
    exit 1
fi
echo "all checks passed"
exit 0
