#!/usr/bin/env bash
# cg_ops.sh [--cached] MODE [ir|bus]
#
# Instructions and locked (bus-locked, i.e. atomic read-modify-write)
# operations per operation of the weft runtime, counted by callgrind
# (valgrind --tool=callgrind --collect-bus=yes): this VM has no hardware
# performance counters, and callgrind's counts are deterministic up to a
# little noise from the runtime's background (monitor) thread.
#
#   MODE  yield     per weft_yield (two tasks on one worker yielding to
#                   each other; a "yield pair", as issue 8 counted it, is
#                   two of these)
#         pingpong  per round trip over two unbuffered channels, one worker
#         fib       per task of fork-join fib down to n < 12 (a nursery per
#                   call in the caller's frame; spawn, run and join, the
#                   leaves' work a table lookup), one worker
#         spawn     per spawn + join of a no-op task (the root spawns N into
#                   one nursery and closes it), one worker
#
# Runs bench/cg_ops MODE N and bench/cg_ops MODE 2N under callgrind and
# prints, per operation, (X(2N) - X(N)) / (ops(2N) - ops(N)) for X = Ir
# (instructions, all threads) and X = Bus (locked operations):
#
#   BENCH cg_<mode>_ir <value> instr/<op>
#   BENCH cg_<mode>_bus <value> locked/<op>
#
# (<op>: yield, roundtrip, spawn, task)
#
# the selected figure (default ir) first, since bench/run takes the first
# BENCH line. The difference of the two runs removes the runtime's start-up
# and tear-down. Caveat for spawn: the N tasks are all alive (unstarted) in
# the nursery at once, so the 2N run grows the runtime's per-task storage
# (task slab, run queue) further than the N run; the first-touch cost of
# that growth is part of the figure (amortised per task, as in any spawn of
# many tasks) - it is not a steady-state spawn of one task at a time.
#
# N: yield 20000 (each task yields N times: 2N yields), pingpong 20000,
# spawn 20000; a quarter of that with WEFT_BENCH_QUICK=1. WEFT_CG_N
# overrides it. Each callgrind run takes a few seconds.
#
# --cached: one pair of callgrind runs per MODE serves both rows (ir and bus)
# of one bench/run: the figures are kept in .cg-cache/ next to this script,
# under WEFT_BENCH_RUN_ID (bench/run exports a new one per run), MODE and N,
# and reused if newer than bench/cg_ops. Without WEFT_BENCH_RUN_ID it always
# measures. Needs valgrind (scripts/deps.sh installs it for bench/run).
set -euo pipefail

cached=0
if [ "${1:-}" = --cached ]; then
    cached=1
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 [--cached] yield|pingpong|spawn|fib [ir|bus]" >&2
    exit 2
fi
mode=$1 which=${2:-ir}
case "$mode" in yield | pingpong | spawn | fib) ;; *)
    echo "cg_ops.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
case "$which" in ir | bus) ;; *)
    echo "cg_ops.sh: unknown figure '$which' (ir or bus)" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
bin=$here/cg_ops
[ -x "$bin" ] || { echo "cg_ops.sh: $bin: no such executable" >&2; exit 127; }
command -v valgrind >/dev/null 2>&1 || {
    echo "cg_ops.sh: valgrind not found (apt-get install valgrind)" >&2
    exit 127
}

n=20000
[ "${WEFT_BENCH_QUICK:-0}" = 1 ] && n=5000
n=${WEFT_CG_N:-$n}

run_id=${WEFT_BENCH_RUN_ID:-}
case "$run_id" in *[!A-Za-z0-9._-]*) run_id= ;; esac # not usable in a file name
cache=
if [ "$cached" = 1 ] && [ -n "$run_id" ]; then
    cdir=$here/.cg-cache
    cache=$cdir/$run_id.$mode.$n
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cg_ops.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# measure K -> "ops Ir Bus" of one callgrind run of `cg_ops MODE K`.
measure() {
    local k=$1 out ops t0=$EPOCHREALTIME
    # WEFT_STUCK_MS=0: under valgrind the spawning root runs well over the
    # stuck-task threshold; its report would only add noise.
    out=$(WEFT_STUCK_MS=0 valgrind --tool=callgrind --collect-bus=yes --callgrind-out-file="$tmp/cg.$k" \
        "$bin" "$mode" "$k" 2>"$tmp/vg.$k") || {
        cat "$tmp/vg.$k" >&2
        echo "cg_ops.sh: valgrind $bin $mode $k failed" >&2
        return 1
    }
    ops=$(awk '$1 == "ops" { print $2 }' <<<"$out")
    [ -n "$ops" ] || { echo "cg_ops.sh: $bin $mode $k printed no op count" >&2; return 1; }
    # The events: line names the columns of the summary: (totals:) line;
    # callgrind calls the bus events "Ge" (global bus events).
    awk -v ops="$ops" -v k="$k" -v t0="$t0" -v t1="$EPOCHREALTIME" '
        $1 == "events:" { for (i = 2; i <= NF; i++) col[$i] = i; if (!col["Bus"]) col["Bus"] = col["Ge"] }
        $1 == "summary:" || $1 == "totals:" { for (i = 2; i <= NF; i++) tot[i] = $i; have = 1 }
        END {
            if (!have || !col["Ir"] || !col["Bus"]) exit 1
            printf "cg_ops.sh: N=%d: ops %d Ir %s Bus %s (%.1f s)\n", k, ops, tot[col["Ir"]], tot[col["Bus"]], t1 - t0 > "/dev/stderr"
            print ops, tot[col["Ir"]], tot[col["Bus"]]
        }' "$tmp/cg.$k" || { echo "cg_ops.sh: no Ir/Bus totals in $tmp/cg.$k" >&2; return 1; }
}

if [ -n "$cache" ] && [ -s "$cache" ] && [ "$cache" -nt "$bin" ]; then
    echo "cg_ops.sh: $mode N=$n: the figures of this bench run ($run_id) from $cache" >&2
    read -r ir bus <"$cache"
else
    a=$(measure "$n")
    b=$(measure $((2 * n)))
    read -r ir bus < <(awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " "); d = y[1] - x[1]
        if (d <= 0) exit 1
        printf "%.1f %.3f\n", (y[2] - x[2]) / d, (y[3] - x[3]) / d }') || {
        echo "cg_ops.sh: bad op counts ($a / $b)" >&2
        exit 1
    }
    if [ -n "$cache" ] && mkdir -p "$cdir"; then
        find "$cdir" -maxdepth 1 -type f ! -name "$run_id.*" -delete 2>/dev/null || true
        if ! { echo "$ir $bus" >"$cache.tmp.$$" && mv -f "$cache.tmp.$$" "$cache"; }; then
            rm -f "$cache.tmp.$$"
        fi
    fi
fi

op=$mode
[ "$mode" = pingpong ] && op=roundtrip
[ "$mode" = fib ] && op=task
if [ "$which" = ir ]; then
    echo "BENCH cg_${mode}_ir $ir instr/$op"
    echo "BENCH cg_${mode}_bus $bus locked/$op"
else
    echo "BENCH cg_${mode}_bus $bus locked/$op"
    echo "BENCH cg_${mode}_ir $ir instr/$op"
fi
