# shellcheck shell=bash
# scripts/deps.sh - build/test dependencies of weft (Debian/Ubuntu packages).
# Sourced by tests/run and bench/run:
#
#   . scripts/deps.sh
#   weft_ensure_deps || exit 1          (tests/run)
#   weft_ensure_deps bench || exit 1    (bench/run: also what only the
#                                        benchmarks need, i.e. valgrind)
#
# weft_missing_packages [bench] prints the packages whose files are missing.
# weft_ensure_deps [bench] installs them with apt-get when running as root,
# and otherwise prints the exact install command and returns 1.
# WEFT_SKIP_DEPS=1 skips the check.

# The major version of the clang that `clang` runs (default: Debian 12's 14).
weft__clang_major() {
    local v=""
    if command -v clang >/dev/null 2>&1; then
        v=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
    fi
    echo "${v:-14}"
}

# True if clang's sanitizer runtimes (libclang-rt-N-dev) are installed.
weft__have_clang_rt() {
    command -v clang >/dev/null 2>&1 || return 1
    local arch f
    arch=$(uname -m)
    for f in "libclang_rt.tsan-$arch.a" "libclang_rt.asan-$arch.a"; do
        local p
        p=$(clang -print-file-name="$f" 2>/dev/null) || return 1
        # clang echoes the bare name back when it cannot find the file.
        [ "$p" != "$f" ] && [ -f "$p" ] || return 1
    done
}

weft_missing_packages() {
    local missing=() what=${1:-}
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    command -v gcc >/dev/null 2>&1 || missing+=(gcc)
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v go >/dev/null 2>&1 || missing+=(golang-go)
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    [ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
    [ -f /usr/include/ck_pr.h ] || missing+=(libck-dev)
    [ -f /usr/include/benchmark/benchmark.h ] || missing+=(libbenchmark-dev)
    [ -f /usr/include/boost/context/detail/fcontext.hpp ] || missing+=(libboost-context-dev)
    [ -f /usr/include/oneapi/tbb.h ] || [ -f /usr/include/tbb/tbb.h ] || missing+=(libtbb-dev)
    # The OpenMP peer (bench/peers/omp_peers.cc) is built by the release
    # tree's gcc with -fopenmp: libgomp comes with gcc, nothing to add.
    weft__have_clang_rt || missing+=("libclang-rt-$(weft__clang_major)-dev")
    # The Tokio peer (bench/peers/tokio) builds offline with Debian's own
    # toolchain (not a rustup one on PATH) against Debian's crate sources.
    [ -x /usr/bin/cargo ] || missing+=(cargo)
    [ -x /usr/bin/rustc ] || missing+=(rustc)
    compgen -G '/usr/share/cargo/registry/tokio-1.*/Cargo.toml' >/dev/null || missing+=(librust-tokio-dev)
    if [ "$what" = bench ]; then
        # bench/cg_ops.sh counts instructions and locked operations per
        # spawn, yield and ping-pong under callgrind (no hardware counters
        # on the VMs the benchmarks run on).
        command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
    fi
    echo "${missing[*]}"
}

weft_ensure_deps() {
    if [ "${WEFT_SKIP_DEPS:-0}" = 1 ]; then
        return 0
    fi
    local missing what=${1:-}
    missing=$(weft_missing_packages "$what")
    [ -z "$missing" ] && return 0

    echo "weft: missing build dependencies: $missing" >&2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "weft: no apt-get on this system; install the equivalents of: $missing" >&2
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "weft: run this, then try again:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y $missing" >&2
        return 1
    fi
    echo "weft: installing: $missing" >&2
    apt-get update || return 1
    # shellcheck disable=SC2086 # $missing is a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || return 1
    hash -r
    # A package may install under a different name than expected (clang-N):
    # check again so that a wrong guess fails here and not mid-build.
    missing=$(weft_missing_packages "$what")
    if [ -n "$missing" ]; then
        echo "weft: still missing after apt-get install: $missing" >&2
        return 1
    fi
}
