#!/bin/bash
# test_env_md.sh - docs/env.md is what `scomm info -c --markdown` prints
# now: regenerate it with
#   build/scomm info -c --markdown > docs/env.md
# after changing a row of the configuration registry (src/core/config.h).
#
# Usage: test_env_md.sh SCOMM_CLI SOURCE_DIR
set -u
if ! diff -u "$2/docs/env.md" <("$1" info -c --markdown); then
    echo "FAIL: docs/env.md is stale; run:" \
        "$1 info -c --markdown > docs/env.md" >&2
    exit 1
fi
echo "ok: docs/env.md is current"
