#!/usr/bin/env bash
# test_install.sh - install scomm from a build tree and use it from outside,
# as a user would (ctest install.consumer).
#
#   test_install.sh SRC_DIR BUILD_DIR [asan|tsan|""]
#
# 1. `cmake --install` with DESTDIR: every file lands under DESTDIR/PREFIX,
#    scomm.pc names PREFIX (not DESTDIR).
# 2. `cmake --install --prefix P` into a temporary prefix, then from a
#    directory outside the tree:
#    - pkg-config: the consumer built shared (with -Wl,-rpath from
#      `pkg-config --variable=libdir`) and static (libscomm.a with the
#      libraries of Requires.private and Libs.private: they must be
#      complete for the link to succeed);
#    - find_package(scomm): tests/install/consumer, scomm::scomm and
#      scomm::scomm_static;
#    each run as 2 ranks under the installed `scomm launch`; the static
#    ones must not load libscomm.so, the installed CLI neither.
# A sanitizer build's library needs the same sanitizer in the consumer:
# the third argument adds its flags. Exit 0 when every check passes.
set -u
SRC=${1:?usage: test_install.sh SRC_DIR BUILD_DIR [SANITIZE]}
BUILD=${2:?usage: test_install.sh SRC_DIR BUILD_DIR [SANITIZE]}
SAN=${3:-}
case $SAN in
    asan) SANFLAGS="-fsanitize=address,undefined" ;;
    tsan) SANFLAGS="-fsanitize=thread" ;;
    *) SANFLAGS="" ;;
esac
# lib, or lib/<multiarch> when the build was configured for /usr
LIBDIR=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
LIBDIR=${LIBDIR:-lib}
VERSION=$(sed -n 's/^#define SCOMM_VERSION_STRING "\(.*\)"/\1/p' "$SRC/include/scomm.h")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scomm-install-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
ok() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; FAILS=$((FAILS + 1)); }
# check DESCRIPTION CMD...: run CMD with its output in $TMP/log.
check()
{
    local what=$1
    shift
    if "$@" > "$TMP/log" 2>&1; then
        ok "$what"
    else
        bad "$what (exit $?)"
        sed 's/^/       /' "$TMP/log" | tail -30
    fi
}

# ---- 1. DESTDIR ----
DEST=$TMP/dest
check "cmake --install with DESTDIR" \
    env DESTDIR="$DEST" cmake --install "$BUILD" --prefix /usr/local
for f in bin/scomm include/scomm.h "$LIBDIR/libscomm.so.0" \
         "$LIBDIR/libscomm.a" "$LIBDIR/pkgconfig/scomm.pc" \
         "$LIBDIR/cmake/scomm/scommConfig.cmake" \
         "$LIBDIR/cmake/scomm/scommConfigVersion.cmake" \
         "$LIBDIR/cmake/scomm/scommTargets.cmake"; do
    [ -e "$DEST/usr/local/$f" ] || bad "DESTDIR: no \$DESTDIR/usr/local/$f"
done
if grep -qx 'prefix=/usr/local' "$DEST/usr/local/$LIBDIR/pkgconfig/scomm.pc"; then
    ok "DESTDIR: scomm.pc says prefix=/usr/local"
else
    bad "DESTDIR: scomm.pc does not say prefix=/usr/local"
    sed 's/^/       /' "$DEST/usr/local/$LIBDIR/pkgconfig/scomm.pc"
fi
soname=$(readelf -d "$DEST/usr/local/$LIBDIR/libscomm.so.0" |
         sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libscomm.so.0 ] && ok "soname libscomm.so.0" ||
    bad "soname is '$soname', want libscomm.so.0"

# ---- 2. a prefix, and consumers from outside the tree ----
P=$TMP/prefix
check "cmake --install --prefix" cmake --install "$BUILD" --prefix "$P"
LAUNCH="$P/bin/scomm launch -n 2 --timeout 60 --"
if ldd "$P/bin/scomm" | grep -q libscomm; then
    bad "the installed CLI loads libscomm.so"
else
    ok "the installed CLI needs no libscomm.so (it links libscomm.a)"
fi
check "installed scomm version" "$P/bin/scomm" version

mkdir -p "$TMP/work"
cp "$SRC/tests/install/consumer/consumer.c" "$TMP/work/"
cd "$TMP/work" || exit 1
export PKG_CONFIG_PATH=$P/$LIBDIR/pkgconfig
if pkg-config --exists scomm 2> "$TMP/log"; then
    ok "pkg-config finds scomm $(pkg-config --modversion scomm)"
else
    bad "pkg-config does not find scomm"
    cat "$TMP/log"
fi
libdir=$(pkg-config --variable=libdir scomm)
# shellcheck disable=SC2046,SC2086
check "pkg-config: build shared" \
    cc consumer.c $SANFLAGS $(pkg-config --cflags --libs scomm) \
       -Wl,-rpath,"$libdir" -o consumer_pc
# libscomm.a by path, with the shared libraries of its dependencies: the
# modules of Requires.private, and Libs.private (scomm.pc alone: pkgconf's
# traverse depth 2). `pkg-config --static --libs scomm` would also want
# the static archives of those modules' own dependencies.
static_libs=""
for w in $(pkg-config --static --maximum-traverse-depth=2 --libs scomm) \
         $(pkg-config --libs $(pkg-config --print-requires-private scomm)); do
    case $w in -lscomm|-L*) ;; *) static_libs="$static_libs $w" ;; esac
done
# shellcheck disable=SC2046,SC2086
check "pkg-config: build static" \
    cc consumer.c $SANFLAGS $(pkg-config --cflags scomm) "$libdir/libscomm.a" \
       $static_libs -o consumer_pc_static
check "find_package: configure" \
    cmake -S "$SRC/tests/install/consumer" -B fp -DCMAKE_PREFIX_PATH="$P" \
          -DCMAKE_C_FLAGS="$SANFLAGS" -DCMAKE_BUILD_TYPE=Release
check "find_package: build" cmake --build fp

for exe in consumer_pc consumer_pc_static fp/consumer_shared \
           fp/consumer_static; do
    [ -x "$exe" ] || { bad "$exe was not built"; continue; }
    case $exe in
        *static)
            if ldd "$exe" | grep -q libscomm; then
                bad "$exe loads libscomm.so"
            fi ;;
        *)
            if ! ldd "$exe" | grep -q "libscomm.so.0 => $P/$LIBDIR/"; then
                bad "$exe does not load $P/$LIBDIR/libscomm.so.0"
                ldd "$exe" | sed 's/^/       /'
            fi ;;
    esac
    # shellcheck disable=SC2086
    check "$exe: 2 ranks under the installed scomm launch" \
        $LAUNCH "./$exe" "$VERSION"
    n=$(grep -c "sum 3 ok, scomm $VERSION" "$TMP/log")
    [ "$n" = 2 ] || bad "$exe: $n of 2 ranks said 'sum 3 ok'"
done

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all install checks passed"
