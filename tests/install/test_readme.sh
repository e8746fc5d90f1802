#!/usr/bin/env bash
# test_readme.sh - the README's C quick start runs as written (ctest
# install.readme).
#
#   test_readme.sh SRC_DIR BUILD_DIR [asan|tsan|""]
#
# Takes the first ```c block under "## Quick start" in README.md as app.c
# and the first ```sh block after it as the commands, verbatim, and runs
# those commands with bash -e in an empty directory where include/ is the
# source tree's and build/ is BUILD_DIR, as in a checkout after `make`.
# A change to the README's text is what this runs next time. A sanitizer
# build's library needs the same sanitizer in app: then `cc` on PATH is a
# wrapper that adds its flags. Exit 0 when the commands all succeed.
set -u
SRC=${1:?usage: test_readme.sh SRC_DIR BUILD_DIR [SANITIZE]}
BUILD=${2:?usage: test_readme.sh SRC_DIR BUILD_DIR [SANITIZE]}
SAN=${3:-}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-readme-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Print the body of the first ```LANG fence at or after the line matching
# the heading: everything between the fence and the next ```.
extract()
{
    awk -v head="$1" -v lang="$2" '
        $0 == head { under = 1; next }
        under && !inside && $0 == "```" lang { inside = 1; next }
        inside && $0 == "```" { exit }
        inside { print }' "$SRC/README.md"
}
extract "## Quick start" c > "$TMP/app.c"
extract "## Quick start" sh > "$TMP/commands.sh"
if [ ! -s "$TMP/app.c" ] || [ ! -s "$TMP/commands.sh" ]; then
    echo "FAIL - README.md has no \`\`\`c and \`\`\`sh block under '## Quick start'"
    exit 1
fi
echo "== app.c: $(wc -l < "$TMP/app.c") lines; commands:"
sed 's/^/   $ /' "$TMP/commands.sh"

ln -s "$SRC/include" "$TMP/include"
ln -s "$BUILD" "$TMP/build"
case $SAN in
    asan|tsan)
        [ "$SAN" = asan ] && flags="-fsanitize=address,undefined" ||
            flags="-fsanitize=thread"
        mkdir "$TMP/bin"
        printf '#!/bin/sh\nexec /usr/bin/cc %s "$@"\n' "$flags" > "$TMP/bin/cc"
        chmod +x "$TMP/bin/cc"
        PATH=$TMP/bin:$PATH ;;
esac
cd "$TMP" || exit 1
timeout 120 bash -e commands.sh > out.txt 2>&1
rc=$?
if [ $rc -eq 0 ]; then
    sed 's/^/   | /' out.txt
    echo "ok   - the README's quick start builds and runs as written"
    exit 0
fi
sed 's/^/   | /' out.txt
echo "FAIL - the README's quick start commands failed (exit $rc)"
exit 1
