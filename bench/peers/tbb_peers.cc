// Peer baselines on oneTBB task_group (work-stealing fork-join).
//
//   BM_tbb_fib/threads:N   fib(32), one tbb::task_group per call, BOTH
//                          children spawned with tg.run(), then tg.wait();
//                          no cutoff. Mirrors weft's fib and the Go `fib`.
//                          Result checked against 2178309.
//   BM_tbb_tree/threads:N  10-ary spawn tree of depth 6 (1,000,000 leaves):
//                          each inner node runs 10 children in a task_group,
//                          children write their value (leaf: 1) into the
//                          parent's int64_t[10], the parent waits, sums and
//                          writes into its own parent's slot. Root checked
//                          against 1e6. Mirrors weft's tree and the Go `tree`.
//
// N (the benchmark Arg) is applied with tbb::global_control
// max_allowed_parallelism (1 = only the calling thread, 2 = caller + 1
// worker). Times are wall clock (UseRealTime), in ms per fib / per tree.
#include <benchmark/benchmark.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>

#include <cstdint>

namespace
{

constexpr int kFibN = 32;
constexpr long kFibResult = 2178309;
constexpr int kTreeDepth = 6;
constexpr int64_t kTreeLeaves = 1000000;

long fib(int n)
{
    if (n < 2)
        return n;
    long a = 0, b = 0;
    tbb::task_group tg;
    tg.run([&] { a = fib(n - 1); });
    tg.run([&] { b = fib(n - 2); });
    tg.wait();
    return a + b;
}

void tree_node(int depth, int64_t *out)
{
    if (depth == 0) {
        *out = 1;
        return;
    }
    int64_t vals[10] = {};
    tbb::task_group tg;
    for (int i = 0; i < 10; ++i) {
        int64_t *slot = &vals[i];
        tg.run([depth, slot] { tree_node(depth - 1, slot); });
    }
    tg.wait();
    int64_t s = 0;
    for (int64_t v : vals)
        s += v;
    *out = s;
}

void BM_tbb_fib(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        long r = fib(kFibN);
        benchmark::DoNotOptimize(r);
        if (r != kFibResult) {
            state.SkipWithError("fib: wrong result");
            break;
        }
    }
}

void BM_tbb_tree(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        int64_t sum = 0;
        tree_node(kTreeDepth, &sum);
        benchmark::DoNotOptimize(sum);
        if (sum != kTreeLeaves) {
            state.SkipWithError("tree: wrong sum");
            break;
        }
    }
}

} // namespace

BENCHMARK(BM_tbb_fib)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_tbb_tree)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
