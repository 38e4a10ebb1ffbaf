#!/usr/bin/env bash
# gbench2line.sh [--cached] BINARY FILTER NAME [COUNTER]
#
# Runs a Google Benchmark binary on the benchmarks matching FILTER (a regex,
# as --benchmark_filter) and prints the first matching benchmark as
#
#   BENCH <NAME> <value> <unit>
#
# <value> is, in order of preference: the user counter COUNTER (if given
# and present), the user counter ns_per_op, both printed with unit "ns";
# else real_time with the benchmark's own time_unit (ns, us, ms or s).
# Min time per benchmark: 0.3 s, 0.05 s when WEFT_BENCH_QUICK=1, or
# WEFT_BENCH_MIN_TIME (seconds). The full run repeats each benchmark 3 times
# (WEFT_BENCH_REPS) and reports the median, since one run on a shared 2-core
# VM can be off by 2x; the quick run measures once. Needs jq. Exit status: 127 binary missing,
# 1 no match / benchmark error / run failure.
#
# --cached: one measurement serves every row of one bench/run that names the
# same BINARY and FILTER (the weft side of rows that compare one weft figure
# with several peers). The JSON report is kept in .gbench-cache/ next to
# BINARY under a name made of WEFT_BENCH_RUN_ID (bench/run exports a new one
# per run), the filter, min time and repetitions, and read instead of
# measuring again if it is newer than BINARY. Files of other runs are
# removed when a new one is written. Without WEFT_BENCH_RUN_ID it always
# measures.
set -euo pipefail

cached=0
if [ "${1:-}" = --cached ]; then
    cached=1
    shift
fi
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 [--cached] BINARY FILTER NAME [COUNTER]" >&2
    exit 2
fi
bin=$1 filter=$2 name=$3 counter=${4:-}

if [ ! -x "$bin" ]; then
    echo "gbench2line: $bin: no such executable" >&2
    exit 127
fi
command -v jq >/dev/null 2>&1 || { echo "gbench2line: jq not found" >&2; exit 1; }

min_time=0.3
[ "${WEFT_BENCH_QUICK:-0}" = 1 ] && min_time=0.05
min_time=${WEFT_BENCH_MIN_TIME:-$min_time}
reps=3
[ "${WEFT_BENCH_QUICK:-0}" = 1 ] && reps=1
reps=${WEFT_BENCH_REPS:-$reps}

out=$(mktemp "${TMPDIR:-/tmp}/gbench.XXXXXX.json")
trap 'rm -f "$out"' EXIT

run_id=${WEFT_BENCH_RUN_ID:-}
case "$run_id" in *[!A-Za-z0-9._-]*) run_id= ;; esac # not usable in a file name
cache=
if [ "$cached" = 1 ] && [ -n "$run_id" ]; then
    cdir=$(dirname "$bin")/.gbench-cache
    key=$(printf '%s\n' "$(basename "$bin")" "$filter" "$min_time" "$reps" | md5sum | cut -c1-16)
    cache=$cdir/$run_id.$key.json
fi

if [ -n "$cache" ] && [ -s "$cache" ] && [ "$cache" -nt "$bin" ]; then
    echo "gbench2line: $bin '$filter': the figures of this bench run ($run_id) from $cache" >&2
    cp "$cache" "$out"
else
    # The console report goes to stderr (the caller's log); the JSON to a file,
    # so that whatever the benchmark itself prints cannot corrupt it.
    "$bin" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
        --benchmark_repetitions="$reps" --benchmark_out="$out" --benchmark_out_format=json >&2
    if [ -n "$cache" ] && [ -s "$out" ] && mkdir -p "$cdir"; then
        find "$cdir" -maxdepth 1 -name '*.json' ! -name "$run_id.*" -delete 2>/dev/null || true
        if ! { cp "$out" "$cache.tmp.$$" && mv -f "$cache.tmp.$$" "$cache"; }; then
            rm -f "$cache.tmp.$$"
        fi
    fi
fi

if [ ! -s "$out" ]; then # nothing matched: no JSON written at all
    echo "gbench2line: no benchmark in $bin matches '$filter'" >&2
    exit 1
fi
line=$(jq -r --arg name "$name" --arg counter "$counter" '
    ([.benchmarks[] | select(.run_type == "aggregate" and .aggregate_name == "median")] | first)
      // ([.benchmarks[] | select((.run_type // "iteration") == "iteration")] | first)
    | if . == null then "NOMATCH"
      elif (.error_occurred // false) then "ERROR \(.error_message // "")"
      elif ($counter != "" and has($counter)) then "BENCH \($name) \(.[$counter]) ns"
      elif has("ns_per_op") then "BENCH \($name) \(.ns_per_op) ns"
      else "BENCH \($name) \(.real_time) \(.time_unit)"
      end' "$out")

case "$line" in
"" | NOMATCH)
    echo "gbench2line: no benchmark in $bin matches '$filter'" >&2
    exit 1
    ;;
ERROR*)
    echo "gbench2line: $bin ($filter): benchmark error: ${line#ERROR }" >&2
    exit 1
    ;;
esac
echo "$line"
