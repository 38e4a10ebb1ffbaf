// bench_fib.cc - fork-join fib(32) spawning a task per call (no cutoff) on 1
// and 2 workers, with a serial cutoff, and the serial baseline. Peers:
// oneTBB task_group per call (bench/peers/tbb_peers.cc) and Go
// (bench/peers/go/spawn.go).
#include "common.h"

namespace
{

constexpr int kN = 32;
constexpr long kFib32 = 2178309;
constexpr int kCutoff = 20;

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

struct Fib {
    int n;
    long out;
};

int fib_task(void *arg)
{
    Fib *f = static_cast<Fib *>(arg);
    if (f->n < 2) {
        f->out = f->n;
        return 0;
    }
    Fib a{f->n - 1, 0}, b{f->n - 2, 0};
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    (weft_spawn)(n, fib_task, &a);
    (weft_spawn)(n, fib_task, &b);
    int rc = weft_nursery_close(n);
    f->out = a.out + b.out;
    return rc;
}

int fib_cut_task(void *arg)
{
    Fib *f = static_cast<Fib *>(arg);
    if (f->n <= kCutoff) {
        f->out = fib_serial(f->n);
        return 0;
    }
    Fib a{f->n - 1, 0}, b{f->n - 2, 0};
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    (weft_spawn)(n, fib_cut_task, &a);
    (weft_spawn)(n, fib_cut_task, &b);
    int rc = weft_nursery_close(n);
    f->out = a.out + b.out;
    return rc;
}

void BM_fib(benchmark::State &state)
{
    bench_in_task(state, (unsigned)state.range(0), [&](benchmark::State &) {
        Fib f{kN, 0};
        bench_check(fib_task(&f) == 0, "fib");
        bench_check(f.out == kFib32, "fib(32)");
    });
}
BENCHMARK(BM_fib)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_fib_cutoff(benchmark::State &state)
{
    bench_in_task(state, (unsigned)state.range(0), [&](benchmark::State &) {
        Fib f{kN, 0};
        bench_check(fib_cut_task(&f) == 0, "fib");
        bench_check(f.out == kFib32, "fib(32)");
    });
}
BENCHMARK(BM_fib_cutoff)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_fib_serial(benchmark::State &state)
{
    for (auto _ : state) {
        long r = fib_serial(kN);
        benchmark::DoNotOptimize(r);
        bench_check(r == kFib32, "fib(32)");
    }
}
BENCHMARK(BM_fib_serial)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
