#!/usr/bin/env bash
# interleave.sh [--cached] [--rounds N] [--show SIDE:FIGURE] NAME WEFT_CMD PEER_CMD
#
# Interleaved runs of a bimodal row (issue 11): runs WEFT_CMD and PEER_CMD
# alternately, weft first in every round, N rounds (default 10; 3 when
# WEFT_BENCH_QUICK=1), one short measurement each, from the current directory
# (bench/run: build/release). Each command must print "BENCH <name> <value>
# <unit>"; the first such line counts. The children get WEFT_BENCH_REPS=1
# and WEFT_BENCH_MIN_TIME=0.2 (0.05 when WEFT_BENCH_QUICK=1), so a
# bench/gbench2line.sh command reports one Google Benchmark batch: a fresh
# runtime, an untimed warm-up round, then the mean of the first batch of
# timed rounds (1-3 of the 0.1-0.3 s contention rounds) that lasts 0.2 s. A
# command starting with bench/peers/weftpeers gets -quick: a warm-up run,
# then the median of the repetitions that fill 0.2 s, or the warm-up itself
# as the one sample if it took 0.2 s or more (chan_buffered_4x4 mostly does).
#
# Prints to stdout, in lines not starting with BENCH (bench/run sends them to
# its log): every round's two values in order, then for each side the values,
# min, median and max, and the slow-mode count, defined as follows.
#   fast runs:   the runs within 1.5x of that side's fastest run (value <=
#                1.5 x min). The modes of these rows are 2-4x apart and one
#                mode spreads well under 1.5x, so this picks the fast mode
#                whatever share of the runs it has (a cut at the overall
#                median would not, once most runs are slow). min is always a
#                fast run, so the fast median exists.
#   fast median: the median of the fast runs.
#   slow runs:   the runs with value > 2 x fast median (issue 11's "slow
#                mode"). Runs between 1.5x min and 2x fast median are
#                neither fast nor slow.
# Medians of an even count are the mean of the two middle values.
# "Slower" means a larger value: the rows are times per operation.
#
# Then BENCH lines, the one chosen by --show first (bench/run takes the first
# BENCH line of a command; default weft:median):
#   BENCH <NAME>_<SIDE>_<FIGURE> <value> <unit>
# for SIDE weft and peer, FIGURE min, median, max (the side's own unit) and
# slow (unit "runs": the count of slow runs out of N).
#
# --cached: one measurement serves every row of one bench/run naming the same
# NAME, commands and N (the weft and peer columns of the _med10, _slow10,
# _min10 and _max10 rows). The values are kept in .interleave-cache/ in the
# current directory under WEFT_BENCH_RUN_ID (bench/run exports a new one per
# run) and read back instead of measuring again; files of other runs are
# removed when a new one is written. Without WEFT_BENCH_RUN_ID it always
# measures. A run that fails or prints no BENCH line fails the whole
# measurement (exit 1, its stderr shown; nothing cached).
set -euo pipefail

usage() {
    echo "usage: $0 [--cached] [--rounds N] [--show weft|peer:min|median|max|slow] NAME WEFT_CMD PEER_CMD" >&2
    exit 2
}

cached=0 show=weft:median
quick=${WEFT_BENCH_QUICK:-0}
rounds=10
[ "$quick" = 1 ] && rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
    --cached) cached=1 ;;
    --rounds)
        [ $# -ge 2 ] || usage
        rounds=$2
        shift
        ;;
    --show)
        [ $# -ge 2 ] || usage
        show=$2
        shift
        ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done
[ $# -eq 3 ] || usage
name=$1 wcmd=$2 pcmd=$3
case "$rounds" in '' | *[!0-9]* | 0) usage ;; esac
case "$show" in weft:min | weft:median | weft:max | weft:slow | peer:min | peer:median | peer:max | peer:slow) ;; *) usage ;; esac

min_time=0.2
[ "$quick" = 1 ] && min_time=0.05
export WEFT_BENCH_REPS=1 WEFT_BENCH_MIN_TIME=$min_time

# weftpeers (Go and Tokio): one short run, as bench/run --quick gives them.
short() {
    case "$1" in
    bench/peers/weftpeers*) printf '%s -quick\n' "$1" ;;
    *) printf '%s\n' "$1" ;;
    esac
}
wrun=$(short "$wcmd") prun=$(short "$pcmd")

vals=$(mktemp "${TMPDIR:-/tmp}/interleave.XXXXXX")
err=$(mktemp "${TMPDIR:-/tmp}/interleave.XXXXXX")
trap 'rm -f "$vals" "$err"' EXIT

run_id=${WEFT_BENCH_RUN_ID:-}
case "$run_id" in *[!A-Za-z0-9._-]*) run_id= ;; esac # not usable in a file name
cache=
if [ "$cached" = 1 ] && [ -n "$run_id" ]; then
    cdir=.interleave-cache
    key=$(printf '%s\n' "$name" "$wrun" "$prun" "$rounds" "$min_time" | md5sum | cut -c1-16)
    cache=$cdir/$run_id.$key.tsv
fi

# one SIDE CMD ROUND -> appends "ROUND SIDE value unit" to $vals.
one() {
    local side=$1 cmd=$2 round=$3 out line
    if ! out=$(bash -c "$cmd" 2>"$err"); then
        echo "interleave $name: round $round, $side failed: $cmd" >&2
        cat "$err" >&2
        return 1
    fi
    line=$(printf '%s\n' "$out" | awk '$1 == "BENCH" && NF >= 4 && $3 ~ /^[-+0-9.eE]+$/ { print $3, $4; exit }')
    if [ -z "$line" ]; then
        echo "interleave $name: round $round, $side printed no BENCH line: $cmd" >&2
        cat "$err" >&2
        return 1
    fi
    echo "$round $side $line" >>"$vals"
}

from_cache=0
if [ -n "$cache" ] && [ -s "$cache" ]; then
    # The row that measured listed every value in this run's log already.
    echo "interleave $name: the $rounds rounds of this bench run ($run_id) from $cache (values listed where measured)"
    cp "$cache" "$vals"
    from_cache=1
else
    echo "interleave $name: $rounds rounds, weft then peer in each (min time $min_time s per run)"
    echo "interleave $name: weft: $wrun"
    echo "interleave $name: peer: $prun"
    t0=$EPOCHREALTIME
    for ((i = 1; i <= rounds; i++)); do
        one weft "$wrun" "$i" || exit 1
        one peer "$prun" "$i" || exit 1
    done
    echo "interleave $name: measured in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
    if [ -n "$cache" ] && mkdir -p "$cdir"; then
        find "$cdir" -maxdepth 1 -name '*.tsv' ! -name "$run_id.*" -delete 2>/dev/null || true
        if ! { cp "$vals" "$cache.tmp.$$" && mv -f "$cache.tmp.$$" "$cache"; }; then
            rm -f "$cache.tmp.$$"
        fi
    fi
fi

awk -v name="$name" -v show="$show" -v rounds="$rounds" -v brief="$from_cache" '
function num(v,   a) {
    a = (v < 0) ? -v : v
    if (a >= 100) return sprintf("%.1f", v)
    if (a >= 10) return sprintf("%.2f", v)
    return sprintf("%.3f", v)
}
# median of x[1..n], sorted in place
function median(x, n,   i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    return (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
}
{
    s = $2; n[s]++; v[s, n[s]] = $3 + 0
    if (unit[s] == "") unit[s] = $4
    else if (unit[s] != $4) { print "interleave " name ": " s " printed both " unit[s] " and " $4 > "/dev/stderr"; bad = 1 }
    line[$1] = line[$1] sprintf("  %s %s %s", s, num($3 + 0), $4)
}
END {
    if (bad) exit 1
    if (!brief) for (r = 1; r <= rounds; r++) printf "interleave %s: round %d:%s\n", name, r, line[r]
    if (n["weft"] != rounds || n["peer"] != rounds) {
        print "interleave " name ": expected " rounds " values per side" > "/dev/stderr"; exit 1
    }
    split("weft peer", sides, " ")
    for (k = 1; k <= 2; k++) {
        s = sides[k]; m = n[s]; list = ""
        for (i = 1; i <= m; i++) { a[i] = v[s, i]; list = list " " num(v[s, i]) }
        med = median(a, m); lo = a[1]; hi = a[m]
        nf = 0
        for (i = 1; i <= m; i++) if (a[i] <= 1.5 * lo) f[++nf] = a[i]
        fmed = median(f, nf)
        slow = 0
        for (i = 1; i <= m; i++) if (a[i] > 2 * fmed) slow++
        if (!brief) printf "interleave %s: %s values (%s, in run order):%s\n", name, s, unit[s], list
        printf "interleave %s: %s min %s median %s max %s %s; fast runs (<= 1.5x min) %d, fast median %s; slow runs (> 2x fast median = %s) %d of %d\n",
            name, s, num(lo), num(med), num(hi), unit[s], nf, num(fmed), num(2 * fmed), slow, m
        fig[s ":min"] = lo " " unit[s]; fig[s ":median"] = med " " unit[s]; fig[s ":max"] = hi " " unit[s]
        fig[s ":slow"] = slow " runs"
        md[s] = med
    }
    if (md["peer"] > 0) printf "interleave %s: median weft/peer %.2fx\n", name, md["weft"] / md["peer"]
    split(show, p, ":")
    printf "BENCH %s_%s_%s %s\n", name, p[1], p[2], fig[show]
    split("min median max slow", figs, " ")
    for (k = 1; k <= 2; k++)
        for (j = 1; j <= 4; j++)
            if (sides[k] ":" figs[j] != show)
                printf "BENCH %s_%s_%s %s\n", name, sides[k], figs[j], fig[sides[k] ":" figs[j]]
}' "$vals"
