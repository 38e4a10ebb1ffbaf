// bench_switch.cc - the raw context switch (weft__ctx_switch, the assembly
// in sched/switch_*.S) and two tasks yielding to each other on one worker.
// Peers: Boost.Context's jump_fcontext (bench/peers/boost_switch.cc) and
// Go's runtime.Gosched with GOMAXPROCS=1 (bench/peers/go/sched.go).
#include "common.h"

#include <cstdint>
#include <sys/mman.h>

// The internal switch: hidden in the shared library, reachable from the
// static one this benchmark links.
extern "C" {
struct weft__ctx {
    void *sp;
};
void weft__ctx_switch(weft__ctx *from, weft__ctx *to);
void weft__ctx_init(weft__ctx *ctx, void *top, void (*entry)(void));
}

namespace
{

weft__ctx main_ctx, other_ctx;

void other_entry()
{
    for (;;)
        weft__ctx_switch(&other_ctx, &main_ctx);
}

void BM_raw_switch(benchmark::State &state)
{
    const size_t size = 64 * 1024;
    void *stack = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bench_check(stack != MAP_FAILED, "mmap");
    weft__ctx_init(&other_ctx, static_cast<char *>(stack) + size, other_entry);
    for (auto _ : state)
        weft__ctx_switch(&main_ctx, &other_ctx); // there and back: 2 switches
    state.counters["switches"] = 2;
    state.counters["ns_per_switch"] = benchmark::Counter(
        2e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    munmap(stack, size);
}
BENCHMARK(BM_raw_switch);

constexpr long kYields = 2000000;

int yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < kYields; i++)
        if (weft_yield())
            return -1;
    return 0;
}

int yield_pair(void *arg)
{
    (void)arg;
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    (weft_spawn)(n, yielder, nullptr);
    (weft_spawn)(n, yielder, nullptr);
    return weft_nursery_close(n);
}

void BM_yield_pair(benchmark::State &state)
{
    bench_in_task(state, 1,
                  [&](benchmark::State &) { bench_check(yield_pair(nullptr) == 0, "yield pair"); });
    state.counters["ns_per_op"] = benchmark::Counter(2.0 * kYields * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
    bench_report_stats(state);
}
BENCHMARK(BM_yield_pair)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
