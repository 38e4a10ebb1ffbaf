#!/bin/sh
# io/tools/defer_ab.sh - interleaved A/B of the io_uring ring flags on the
# echo benchmark (io/README.md, "SINGLE_ISSUER + DEFER_TASKRUN ..."): weft
# as shipped, the measurement mode WEFT_IO_EXPERIMENT=defer
# (SINGLE_ISSUER|DEFER_TASKRUN, the ring enabled by its worker's thread)
# and defer+regfd (plus a registered ring fd), and the plain C epoll
# server; same binary for the three weft variants. The mode exists only
# with io/tools/defer_experiment.patch applied (without it the defer
# variants silently run the shipped ring):
#
#   git apply io/tools/defer_experiment.patch && ninja -C build/release
#   cd build/release && sh ../../io/tools/defer_ab.sh ROUNDS CONNS SIZE [OUT]
#   cd ../.. && git apply -R io/tools/defer_experiment.patch
#
# io/README.md's figures: 30 rounds of 100 64 and 20 of 1000 4096 (in
# batches of 10 and 5, one OUT file: io/tools/defer_ab_2026-12-02.tsv;
# the "+lazy" batch: defer_ab_lazy_2026-12-02.tsv). ROUNDS=0 only
# summarizes OUT.
#
# VARIANTS="default defer+regfd+lazy ..." picks others (any WEFT_IO_EXPERIMENT
# value of io/ring.c; "+lazy" fetches completion work only with a submit).
#
# Each round runs every variant once (bench/loadgen, 3 s rate window, then
# 0.5 s perf syscall window), in a rotating order. Raw lines go to OUT
# (default /tmp/defer_ab.tsv, appended): variant, conns, size, round trips/s,
# server CPU us/rt, syscalls/rt. Then prints median [min-max] per variant
# over every matching line of OUT, and each variant against the shipped
# ring in the same round (the comparison io/README.md decides by).
set -u
rounds=${1:?rounds} conns=${2:?conns} size=${3:?size} out=${4:-/tmp/defer_ab.tsv}
variants=${VARIANTS:-default defer defer+regfd epoll}
nv=$(echo "$variants" | wc -w)

cmd_of() {
    case $1 in
    default) echo "env WEFT_IO=uring bench/loadgen --serve weft" ;;
    epoll) echo "bench/loadgen --serve epoll" ;;
    *) echo "env WEFT_IO=uring WEFT_IO_EXPERIMENT=$1 bench/loadgen --serve weft" ;;
    esac
}

r=0
while [ "$r" -lt "$rounds" ]; do
    # rotate the order by one each round so no variant always runs first
    set -- $variants
    k=0
    while [ "$k" -lt $((r % nv)) ]; do
        first=$1
        shift
        set -- "$@" "$first"
        k=$((k + 1))
    done
    order="$*"
    for v in $order; do
        log=$(bench/loadgen --server "$(cmd_of "$v")" --conns "$conns" --size "$size" \
            --name "$v" 2>&1)
        rate=$(echo "$log" | sed -n 's/^BENCH [^ ]* \([0-9.]*\) rt\/s$/\1/p')
        cpu=$(echo "$log" | sed -n 's/.*server CPU \([0-9.]*\) us\/rt$/\1/p')
        sc=$(echo "$log" | sed -n 's/.*server: \([0-9.n\/a]*\) syscalls\/rt.*/\1/p')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$conns" "$size" "${rate:-?}" "${cpu:-?}" \
            "${sc:-?}" | tee -a "$out"
    done
    r=$((r + 1))
done

# medians and ranges over every line of OUT with these conns and size
for v in $variants; do
    for col in 4 5 6; do
        awk -F'\t' -v v="$v" -v c="$conns" -v s="$size" -v k="$col" \
            '$1 == v && $2 == c && $3 == s && $k ~ /^[0-9.]+$/ { print $k }' "$out" |
            sort -g | awk -v v="$v" -v k="$col" '
                { a[NR] = $1 }
                END {
                    if (!NR) { printf "%s col%d: none\n", v, k; exit }
                    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
                    name = k == 4 ? "rt/s" : k == 5 ? "cpu us/rt" : "syscalls/rt"
                    printf "%-12s %-12s median %10.2f  range %10.2f - %10.2f  (n=%d)\n",
                        v, name, m, a[1], a[NR], NR
                }'
    done
done

# Each variant against "default" in the same round (OUT's lines for these
# conns and size in groups of one round, as this script writes them):
# median per-round rt/s ratio, CPU us/rt and syscalls/rt differences, and
# in how many rounds it was faster / used less CPU.
for v in $variants; do
    [ "$v" = default ] && continue
    awk -F'\t' -v c="$conns" -v s="$size" -v nv="$nv" -v v="$v" '
        $2 == c && $3 == s { r = int(n / nv); n++; rate[r, $1] = $4; cpu[r, $1] = $5; sc[r, $1] = $6 }
        END {
            R = int(n / nv); w = 0; l = 0
            for (i = 0; i < R; i++) {
                if (rate[i, v] > rate[i, "default"]) w++
                if (cpu[i, v] < cpu[i, "default"]) l++
                print rate[i, v] / rate[i, "default"], cpu[i, v] - cpu[i, "default"],
                    sc[i, v] - sc[i, "default"]
            }
            printf "%s vs default, %d rounds: faster in %d, less CPU in %d\n", v, R, w, l > "/dev/stderr"
        }' "$out" 2>&1 >/tmp/defer_ab_pairs.$$
    for k in 1 2 3; do
        cut -d' ' -f$k /tmp/defer_ab_pairs.$$ | sort -g | awk -v k=$k '
            { a[NR] = $1 }
            END {
                if (!NR) exit
                m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
                printf "  %-18s median %8.3f  range %8.3f .. %8.3f\n",
                    k == 1 ? "rt/s ratio" : k == 2 ? "cpu us/rt diff" : "syscalls/rt diff", m, a[1], a[NR]
            }'
    done
    rm -f /tmp/defer_ab_pairs.$$
done
