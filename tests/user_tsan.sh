#!/usr/bin/env bash
# tests/user_tsan.sh BUILD_DIR SOURCE_DIR - a user's own ThreadSanitizer
# build against the uninstrumented Release library: builds
# tests/user_tsan_prog.c with clang -fsanitize=thread, links it to
# BUILD_DIR/libweft.so, runs it a few times, and fails on any TSan report;
# then runs its planted race, which TSan must report.
# Exit 77 (skip) when clang or its TSan runtime is missing.
set -u
bdir=$1 src=$2
command -v clang >/dev/null 2>&1 || { echo "no clang: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-user-tsan.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
if ! clang -fsanitize=thread -g -O1 -I"$src/include" "$src/tests/user_tsan_prog.c" \
    -o "$tmp/prog" -L"$bdir" -lweft -Wl,-rpath,"$bdir" -lpthread 2>"$tmp/cc.log"; then
    if grep -q "libclang_rt.tsan\|cannot find" "$tmp/cc.log"; then
        cat "$tmp/cc.log"
        echo "no TSan runtime for clang: skipped"
        exit 77
    fi
    cat "$tmp/cc.log"
    exit 1
fi
for i in 1 2 3 4 5; do
    if ! TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$tmp/prog" >"$tmp/out" 2>&1; then
        cat "$tmp/out"
        echo "user_tsan: run $i failed"
        exit 1
    fi
    if grep -q "ThreadSanitizer" "$tmp/out"; then
        cat "$tmp/out"
        exit 1
    fi
done
# Tasks that merely ran one after another on a worker are not ordered: a
# race between them must be reported.
TSAN_OPTIONS="exitcode=66" "$tmp/prog" race >"$tmp/out" 2>&1
if ! grep -q "WARNING: ThreadSanitizer: data race" "$tmp/out"; then
    cat "$tmp/out"
    echo "user_tsan: the race between two tasks on one worker was not reported"
    exit 1
fi
echo "user_tsan: 5 clean runs, and the planted race reported"
