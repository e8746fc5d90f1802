#!/bin/bash
# test_config_vars.sh - every variable the sources read is listed by
# `scomm info -c` (the configuration registry, src/core/config.h).
#
# Usage: test_config_vars.sh SCOMM_CLI SOURCE_DIR
#
# What counts as a read:
#  - C (src/, tools/): every string literal that is exactly a SCOMM_* name
#    ("SCOMM_KV_TOKEN": a getenv argument, a registry lookup or row, a name
#    in a table handed to one), less the C identifiers of include/scomm.h
#    and the status names (SCOMM_ERR_..., from its X() table, and
#    SCOMM_UNKNOWN, scomm_status_name's answer for an unknown status);
#  - Python (python/sagellm_comm/): every string literal that is exactly a
#    SCOMM_* name (os.environ.get("SCOMM_LIBRARY")), less the same
#    identifiers (its status names).
# Also: outside src/core/config.c no C code calls getenv() on a SCOMM_*
# name or on a name it computes (which would hide the name from this
# check). Test scripts (tools/**/test_*) are not scanned.
set -u
cli=$1
root=$2
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
count() {
    echo "$1" | grep -c .
}

listed=$("$cli" info -c |
         sed -n 's/^  \([A-Za-z_][A-Za-z0-9_]*\) = .*/\1/p' | sort -u)
[ "$(count "$listed")" -gt 50 ] ||
    fail "scomm info -c lists too few variables: $listed"

# C identifiers of the public header (code only, comments dropped), and
# the status names.
idents=$( (sed -e 's://.*$::' -e 's:/\*.*\*/::g' "$root/include/scomm.h" |
           grep -vE '^[[:space:]]*(/\*|\*)' |
           grep -oE '\bSCOMM_[A-Z0-9_]+\b'
           sed -n 's/^[[:space:]]*X(\([A-Z0-9_]*\),.*/SCOMM_\1/p' \
               "$root/include/scomm.h"
           echo SCOMM_UNKNOWN) | sort -u)

csrc=$(find "$root/src" "$root/tools" -name '*.[ch]' ! -name 'test_*' |
       sort)
pysrc=$(find "$root/python/sagellm_comm" -name '*.py' | sort)

# getenv only in the registry, and only on names it can see.
bad=$(grep -nE '\bgetenv[[:space:]]*\(' $csrc |
      grep -v "^$root/src/core/config.c:" |
      grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)' |
      grep -E 'getenv[[:space:]]*\([[:space:]]*("SCOMM_|[^"[:space:]])')
[ -z "$bad" ] || fail "getenv of a SCOMM_* or computed name outside" \
    "src/core/config.c (use scomm_param_get):
$bad"

read_c=$(grep -ohE '"SCOMM_[A-Z0-9_]*[A-Z0-9]"' $csrc | tr -d '"' |
         sort -u)
read_py=$(grep -ohE "[\"']SCOMM_[A-Z0-9_]*[A-Z0-9][\"']" $pysrc |
          tr -d "\"'" | sort -u)
read=$(printf '%s\n%s\n' "$read_c" "$read_py" | sort -u |
       comm -23 - <(echo "$idents"))
[ "$(count "$read")" -gt 40 ] || fail "the grep found too few reads: $read"

missing=$(comm -23 <(echo "$read") <(echo "$listed"))
[ -z "$missing" ] || fail "read by the sources but not listed by" \
    "scomm info -c (add a row to the module's table, core/config.h):
$missing"
echo "ok: $(count "$read") variables read, all among the" \
    "$(count "$listed") listed"
