#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR
#
# Installs BUILD_DIR into a temporary prefix and builds tests/consumer/main.c
# (C11) and tests/consumer/main.cc (C++17 over weft.hpp) against the
# installed tree, twice:
#   (a) with `pkg-config --cflags --libs weft`,
#   (b) with a CMake project that does find_package(weft) (weft::weft, and
#       weft::weft_static as a second executable, and the C++ consumer),
# runs the binaries (each must print "ok"), and checks that weft.h and
# weft.hpp compile as C++17. Exit 77 (ctest: skipped) when pkg-config is
# missing.
#
# Environment (set by tests/CMakeLists.txt): WEFT_CONSUMER_CC,
# WEFT_CONSUMER_CXX, WEFT_CONSUMER_FLAGS (the tree's sanitizer flags).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)

if ! command -v pkg-config >/dev/null 2>&1; then
    echo "install_test: pkg-config not found, skipping" >&2
    exit 77
fi

cc=${WEFT_CONSUMER_CC:-cc}
cxx=${WEFT_CONSUMER_CXX:-c++}
flags=${WEFT_CONSUMER_FLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

prefix=$tmp/prefix
echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log" >&2
    exit 1
}

test -f "$prefix/include/weft.h" || { echo "weft.h not installed" >&2; exit 1; }
test -f "$prefix/include/weft.hpp" || { echo "weft.hpp not installed" >&2; exit 1; }
pcfile=$(find "$prefix" -name weft.pc -path '*/pkgconfig/*' | head -n1)
test -n "$pcfile" || { echo "weft.pc not installed" >&2; exit 1; }
libdir=$(dirname "$(dirname "$pcfile")")
for f in libweft.so libweft.a; do
    test -e "$libdir/$f" || { echo "$f not installed in $libdir" >&2; exit 1; }
done
test -f "$libdir/cmake/weft/weftConfig.cmake" || { echo "weftConfig.cmake not installed" >&2; exit 1; }

check_ok() { # name binary
    local out
    out=$("$2") || { echo "$1: exited with $?" >&2; return 1; }
    if [ "$out" != "ok" ]; then
        echo "$1: expected 'ok', got: $out" >&2
        return 1
    fi
    echo "$1: ok"
}

# (a) pkg-config
echo "== pkg-config consumer"
PKG_CONFIG_PATH=$(dirname "$pcfile")
export PKG_CONFIG_PATH
pc_flags=$(pkg-config --cflags --libs weft)
echo "pkg-config --cflags --libs weft: $pc_flags"
pkg-config --static --libs weft >/dev/null
# shellcheck disable=SC2086 # word splitting of flag lists is intended
"$cc" -std=c11 -Wall -Wextra -Werror $flags -o "$tmp/consumer_pc" "$src/tests/consumer/main.c" $pc_flags
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" check_ok "pkg-config consumer" "$tmp/consumer_pc"
# shellcheck disable=SC2086
"$cxx" -std=c++17 -Wall -Wextra -Werror $flags -o "$tmp/consumer_pc_cxx" "$src/tests/consumer/main.cc" $pc_flags
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" check_ok "pkg-config consumer (C++)" "$tmp/consumer_pc_cxx"

# (b) CMake find_package
echo "== CMake consumer"
cmake -S "$src/tests/consumer" -B "$tmp/cmake-build" \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_C_FLAGS="$flags" \
    -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/cmake-configure.log" 2>&1 || {
    cat "$tmp/cmake-configure.log" >&2
    exit 1
}
cmake --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1 || {
    cat "$tmp/cmake-build.log" >&2
    exit 1
}
check_ok "CMake consumer (weft::weft)" "$tmp/cmake-build/consumer"
check_ok "CMake consumer (weft::weft_static)" "$tmp/cmake-build/consumer_static"
check_ok "CMake consumer (C++, weft.hpp)" "$tmp/cmake-build/consumer_cxx"
if ldd "$tmp/cmake-build/consumer_static" | grep -q 'libweft\.so'; then
    echo "consumer_static is linked against libweft.so" >&2
    exit 1
fi

# (c) the installed headers compile as C++17 (weft.hpp also with -Wpedantic
# and -Wshadow), and weft.hpp refuses C++14 with a message
echo "== C++ syntax check"
"$cxx" -x c++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$prefix/include" "$src/tests/consumer/main.c"
echo "weft.h compiles as C++17: ok"
"$cxx" -std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Werror -fsyntax-only -I"$prefix/include" "$src/tests/consumer/main.cc"
echo "weft.hpp compiles as C++17: ok"
if echo '#include <weft.hpp>' | "$cxx" -x c++ -std=c++14 -fsyntax-only -I"$prefix/include" - 2>"$tmp/cxx14.log"; then
    echo "weft.hpp compiled as C++14 (it should refuse)" >&2
    exit 1
fi
grep -q 'needs C++17' "$tmp/cxx14.log" || { cat "$tmp/cxx14.log" >&2; exit 1; }
echo "weft.hpp refuses C++14: ok"

echo "install_consumers: PASS"
