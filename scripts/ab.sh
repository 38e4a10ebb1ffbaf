#!/usr/bin/env bash
# scripts/ab.sh BASE_TREE NEW_TREE [ROUNDS] - interleaved A/B medians of the
# hot-path rows ("no regression" in the issues' sense: the median of at
# least 10 interleaved runs no more than 5% slower).
#
# BASE_TREE and NEW_TREE are Release build trees (build/release of two
# checkouts, e.g. a `git worktree add /tmp/base REV` built with
# scripts/build.sh). Each round runs, for each tree in turn, yield (pair, 1
# worker), ping-pong on 1 and 2 workers, spawn+join of 1M tasks on 2
# workers and the uncontended mutex, once each (0.3 s min time), through
# bench/gbench2line.sh; the side that goes first alternates from round to
# round. AB_ROWS (names, e.g. "spawn_join yield") runs only those rows;
# it may also name the rows that are not in the default set: fib_cost
# (fib30c12's cost per task on 1 worker, CPU time), fib30c12_2w, skynet
# (2 workers) and spawn_join_1w.
# Prints each row's medians and new/base. ROUNDS
# defaults to 10; about 10 s per round on 2 cores. Run it on a quiet
# machine: both sides share whatever else runs, but noise widens the spread.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
base=$(cd "$1" && pwd) new=$(cd "$2" && pwd) rounds=${3:-10}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
export WEFT_BENCH_REPS=1 WEFT_BENCH_MIN_TIME=0.3
rows=("bench/bench_switch BM_yield_pair yield"
      "bench/bench_sync ^BM_pingpong/1/ pingpong_1w"
      "bench/bench_sync ^BM_pingpong/2/ pingpong_2w"
      "bench/bench_spawn ^BM_spawn_join/2/ spawn_join"
      "bench/bench_sync BM_mutex_uncontended mutex_uncontended")
extra=("bench/bench_forkjoin BM_fj_fib30c12_cost fib_cost ns_per_task_cpu"
       "bench/bench_forkjoin ^BM_fj_fib30c12/2/ fib30c12_2w"
       "bench/bench_sync ^BM_skynet/2/ skynet"
       "bench/bench_spawn ^BM_spawn_join/1/ spawn_join_1w")
if [ -n "${AB_ROWS:-}" ]; then
    rows+=("${extra[@]}")
fi
for ((i = 1; i <= rounds; i++)); do
    # ABBA: the side that goes first alternates, so that whatever the machine
    # does on a period of about one round does not always hit one side.
    sides="base new"
    [ $((i % 2)) = 0 ] && sides="new base"
    for side in $sides; do
        if [ $side = base ]; then dir=$base; else dir=$new; fi
        for row in "${rows[@]}"; do
            read -r bin filter name counter <<<"$row"
            if [ -n "${AB_ROWS:-}" ] && [[ " $AB_ROWS " != *" $name "* ]]; then
                continue
            fi
            v=$(cd "$dir" && bench/gbench2line.sh "$bin" "$filter" "$name" ${counter:-} 2>/dev/null |
                awk '/^BENCH/{print $3; exit}')
            printf '%s\t%s\t%s\n' "$side" "$name" "${v:-}" >>"$out"
        done
    done
done
python3 - "$out" <<'PY'
import statistics, sys, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, name, v = line.rstrip('\n').split('\t')
    if v:
        d[(name, side)].append(float(v))
for name in ['yield', 'pingpong_1w', 'pingpong_2w', 'spawn_join', 'mutex_uncontended',
             'fib_cost', 'fib30c12_2w', 'skynet', 'spawn_join_1w']:
    b, n = d.get((name, 'base')), d.get((name, 'new'))
    if b and n:
        mb, mn = statistics.median(b), statistics.median(n)
        print(f"{name:18} base {mb:9.2f}  new {mn:9.2f}  new/base {mn / mb:.3f}  ({len(n)} rounds)")
PY
