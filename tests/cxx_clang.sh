#!/usr/bin/env bash
# tests/cxx_clang.sh BUILD_DIR SOURCE_DIR - the C++ tests and the C++
# example built once more with clang++ (C++17, -O2, warnings as errors)
# against the tree's Release library, and run. The tree itself is built with
# gcc/g++; the ASan and TSan trees are clang already, so with this every C++
# test runs in Release with both compilers and under both sanitizers.
# Exit 77 (skip) when clang++ is missing.
set -u
bdir=$1 src=$2
cxx=${WEFT_CLANGXX:-clang++}
command -v "$cxx" >/dev/null 2>&1 || { echo "no clang++: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-cxx-clang.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
for f in "$src"/tests/*.cc "$src"/examples/*.cpp; do
    name=$(basename "${f%.*}")
    case "$name" in wb_*) continue ;; esac # white-box: needs the private objects
    if ! "$cxx" -std=c++17 -O2 -Wall -Wextra -Werror -I"$src/include" -I"$src/tests" \
        -o "$tmp/$name" "$f" -L"$bdir" -lweft -Wl,-rpath,"$bdir" -lpthread \
        >"$tmp/$name.cc.log" 2>&1; then
        cat "$tmp/$name.cc.log"
        echo "cxx_clang: $name: clang++ failed"
        fail=1
        continue
    fi
    # A test's own watchdog bounds it; 120 s more is the outer bound.
    timeout 120 "$tmp/$name" >"$tmp/$name.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        tail -n 40 "$tmp/$name.log"
        echo "cxx_clang: $name (clang++ -O2) exited with $rc"
        fail=1
    else
        n=$((n + 1))
        echo "cxx_clang: $name ok$([ $rc -eq 77 ] && echo ' (skipped)')"
    fi
done
[ $fail -eq 0 ] && echo "cxx_clang: $n programs built with $cxx and passed"
exit $fail
