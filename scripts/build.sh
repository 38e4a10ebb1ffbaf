# shellcheck shell=bash
# scripts/build.sh - the build trees shared by tests/run and bench/run.
#
#   . scripts/build.sh
#   weft_build release|asan|tsan|tsan-full   configure (if needed) and build
#                                    build/<name>; returns non-zero on failure
#
# Expects to be run from the repository root.
#   release: gcc,   Release,        -Werror, tests + bench + examples
#   asan:    clang, RelWithDebInfo, address+undefined, tests + examples
#   tsan:    clang, RelWithDebInfo, thread,            tests + examples
#            (library uninstrumented, no_sync fibers: the user's view)
#   tsan-full: as tsan, library instrumented too, sync fibers (the
#            runtime's own accesses checked)

WEFT_JOBS=${WEFT_JOBS:-2}

weft_config_args() {
    case "$1" in
    release)
        echo "-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++" \
            "-DCMAKE_BUILD_TYPE=Release -DWEFT_WERROR=ON -DWEFT_SANITIZE=" \
            "-DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_BENCH=ON -DWEFT_BUILD_EXAMPLES=ON"
        ;;
    asan | tsan | tsan-full)
        local san=address tsan_rt=user
        [ "$1" = asan ] || san=thread
        [ "$1" = tsan-full ] && tsan_rt=full
        echo "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++" \
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=$san -DWEFT_TSAN_RUNTIME=$tsan_rt" \
            "-DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_BENCH=OFF -DWEFT_BUILD_EXAMPLES=ON" \
            "-DWEFT_TEST_SCALE=0.3"
        ;;
    *)
        echo "weft_config_args: unknown build '$1'" >&2
        return 1
        ;;
    esac
}

weft_build() {
    local name=$1 dir=build/$1 args
    args=$(weft_config_args "$name") || return 1
    # A tree configured with another generator or compiler cannot be reused.
    if [ -f "$dir/CMakeCache.txt" ]; then
        local want_cc=gcc
        [ "$name" = release ] || want_cc=clang
        if ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt" ||
            ! grep -q "^CMAKE_C_COMPILER:[A-Z]*=\\(.*/\\)\\?$want_cc\$" "$dir/CMakeCache.txt"; then
            echo "weft: $dir was configured differently, starting it afresh"
            rm -rf "$dir"
        fi
    fi
    echo "=== [$name] configure"
    # shellcheck disable=SC2086 # $args is a list of -D options
    cmake -S . -B "$dir" -G Ninja $args || return 1
    echo "=== [$name] build"
    cmake --build "$dir" -j "$WEFT_JOBS" || return 1
}
