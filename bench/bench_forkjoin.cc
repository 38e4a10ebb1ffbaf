// bench_forkjoin.cc - CPU-parallel fork-join workloads whose serial code is
// shared with the oneTBB and OpenMP peers (bench/forkjoin.h; the Go peer
// translates it, bench/peers/go/forkjoin.go):
//
//   BM_fj_fib30c12/W      fib(30), a nursery per call (two spawns, close)
//                         down to n < 12, serial fib below; W workers. The
//                         nurseries here and in qsort live in the caller's
//                         frame (weft_nursery_init), as fork-join code would
//                         write it; bench_fib.cc's fib uses the pool
//                         (weft_nursery_open)
//   BM_fj_fib30c12_cost   1 worker: each round runs the serial fib(30) and
//                         then fib30c12, timed apart; counter ns_per_task =
//                         (median T1 - median Tserial) / 21,890 tasks (the
//                         time is T1's); also ns_per_task_cpu (the same on
//                         process CPU time), serial_ms and leaf_ns
//                         (Tserial / 10,946 leaves)
//   BM_fj_qsort/W         quicksort of 20M ints, a nursery per partition
//                         step (both halves spawned), std::sort below 4096;
//                         the data is regenerated before each round, untimed
//   BM_fj_mandel/W        2000x2000 Mandelbrot, one nursery, a task per
//                         block of 8 rows (250 tasks)
//
// All run inside one runtime per benchmark run (as bench_in_task) and time
// the workload itself (manual time, wall clock). fib30c12 does one untimed
// warm-up round as the other weft benchmarks do; qsort and mandel rounds
// take 0.1-1 s and touch their memory before timing, so they skip it.
#include "common.h"
#include "forkjoin.h"

#include <vector>

namespace
{

// Runs rounds inside one task of a runtime with `workers` workers. round()
// returns the seconds its timed part took.
template <typename F> struct FjBench {
    benchmark::State *state;
    bool warmup;
    F round;
    static int run(void *arg)
    {
        auto *self = static_cast<FjBench *>(arg);
        if (self->warmup)
            self->round();
        for (auto _ : *self->state)
            self->state->SetIterationTime(self->round());
        return 0;
    }
};

template <typename F> void fj_bench(benchmark::State &state, unsigned workers, bool warmup, F round)
{
    FjBench<F> b{&state, warmup, round};
    bench_run(workers, FjBench<F>::run, &b);
}

// ---- fib30c12 ---------------------------------------------------------------
struct Fib {
    int n;
    long out;
};

int fib_task(void *arg)
{
    Fib *f = static_cast<Fib *>(arg);
    if (f->n < fj::kFibCutoff) {
        f->out = fj::fib_serial(f->n);
        return 0;
    }
    Fib a{f->n - 1, 0}, b{f->n - 2, 0};
    weft_nursery n; // in caller storage: no pool round trip per fork
    if (weft_nursery_init(&n))
        return -1;
    (weft_spawn)(&n, fib_task, &a);
    (weft_spawn)(&n, fib_task, &b);
    int rc = weft_nursery_fini(&n);
    f->out = a.out + b.out;
    return rc;
}

double fib_round()
{
    Fib f{fj::kFibN, 0};
    double t0 = fj::now_s();
    int rc = fib_task(&f);
    double t = fj::now_s() - t0;
    bench_check(rc == 0 && f.out == fj::kFibResult, "fib30c12");
    return t;
}

void BM_fj_fib30c12(benchmark::State &state)
{
    fj_bench(state, (unsigned)state.range(0), true, fib_round);
}
BENCHMARK(BM_fj_fib30c12)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseManualTime();

void BM_fj_fib30c12_cost(benchmark::State &state)
{
    fj::FibCost c;
    fj_bench(state, 1, true, [&] { return fj::fib_cost_round(c, fib_round); });
    fj::fib_cost_counters(state, c);
}
BENCHMARK(BM_fj_fib30c12_cost)->Unit(benchmark::kMicrosecond)->UseManualTime();

// ---- qsort ------------------------------------------------------------------
struct Sort {
    int *a;
    std::size_t n;
};

int qsort_task(void *arg)
{
    Sort *s = static_cast<Sort *>(arg);
    if (s->n < fj::kSortCutoff) {
        fj::sort_leaf(s->a, s->n);
        return 0;
    }
    std::size_t k = fj::sort_partition(s->a, s->n);
    Sort lo{s->a, k}, hi{s->a + k, s->n - k};
    weft_nursery n;
    if (weft_nursery_init(&n))
        return -1;
    (weft_spawn)(&n, qsort_task, &lo);
    (weft_spawn)(&n, qsort_task, &hi);
    return weft_nursery_fini(&n);
}

void BM_fj_qsort(benchmark::State &state)
{
    std::vector<int> data(fj::kSortN);
    fj_bench(state, (unsigned)state.range(0), false, [&] {
        uint64_t sum = fj::sort_fill(data.data(), data.size());
        Sort s{data.data(), data.size()};
        double t0 = fj::now_s();
        int rc = qsort_task(&s);
        double t = fj::now_s() - t0;
        bench_check(rc == 0 && fj::sort_check(data.data(), data.size(), sum), "qsort");
        return t;
    });
}
BENCHMARK(BM_fj_qsort)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();

// ---- mandel -----------------------------------------------------------------
struct Block {
    int block;
    uint16_t *img;
};

int mandel_task(void *arg)
{
    Block *b = static_cast<Block *>(arg);
    fj::mandel_block(b->block, b->img);
    return 0;
}

void BM_fj_mandel(benchmark::State &state)
{
    std::vector<uint16_t> img((std::size_t)fj::kMandelW * fj::kMandelH);
    std::vector<Block> blocks(fj::kMandelBlocks);
    for (int i = 0; i < fj::kMandelBlocks; i++)
        blocks[i] = Block{i, img.data()};
    fj_bench(state, (unsigned)state.range(0), false, [&] {
        double t0 = fj::now_s();
        weft_nursery *n;
        int rc = weft_nursery_open(&n);
        bench_check(rc == 0, "nursery_open");
        for (Block &b : blocks)
            (weft_spawn)(n, mandel_task, &b);
        rc = weft_nursery_close(n);
        double t = fj::now_s() - t0;
        bench_check(rc == 0 && fj::mandel_sum(img.data()) == fj::kMandelSum, "mandel");
        return t;
    });
}
BENCHMARK(BM_fj_mandel)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();

} // namespace

BENCHMARK_MAIN();
