// Peer baseline: the raw Boost.Context context switch (fcontext), the
// lowest-level user-space switch available on this platform. It is the floor
// against which weft's own task switch is compared.
//
// Meaning of one benchmark iteration: the benchmark (main) context does ONE
// jump_fcontext() to a partner context, which immediately does ONE
// jump_fcontext() back. So one iteration = one round trip = 2 context
// switches, and "Time" per iteration is the cost of 2 switches.
//
// Counters:
//   switches       = 2 (switches per iteration)
//   ns_per_switch  = measured wall time of the loop / (2 * iterations), in ns
//   items_per_second = switches per second
#include <benchmark/benchmark.h>
#include <boost/context/detail/fcontext.hpp>

#include <chrono>
#include <cstddef>
#include <cstdlib>

namespace ctx = boost::context::detail;

namespace
{

constexpr std::size_t kStackSize = 64 * 1024;

// Partner context: bounce straight back to whoever jumped here, forever. It
// is never resumed after the benchmark loop ends; it owns no resources, so
// simply freeing its stack is fine.
void partner(ctx::transfer_t t)
{
    for (;;)
        t = ctx::jump_fcontext(t.fctx, t.data);
}

void BM_boost_switch(benchmark::State &state)
{
    void *stack = std::aligned_alloc(64, kStackSize);
    if (stack == nullptr) {
        state.SkipWithError("stack allocation failed");
        return;
    }
    ctx::fcontext_t other = ctx::make_fcontext(static_cast<char *>(stack) + kStackSize, kStackSize,
                                               partner);
    other = ctx::jump_fcontext(other, nullptr).fctx; // start partner

    auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        other = ctx::jump_fcontext(other, nullptr).fctx; // there and back
    }
    auto t1 = std::chrono::steady_clock::now();

    const double switches = 2.0 * static_cast<double>(state.iterations());
    state.SetItemsProcessed(static_cast<int64_t>(switches));
    state.counters["switches"] = benchmark::Counter(switches, benchmark::Counter::kAvgIterations);
    state.counters["ns_per_switch"] = std::chrono::duration<double, std::nano>(t1 - t0).count() /
                                      switches;
    std::free(stack);
}

} // namespace

BENCHMARK(BM_boost_switch);

BENCHMARK_MAIN();
