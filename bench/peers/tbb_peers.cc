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
// The fork-join workloads of bench/bench_forkjoin.cc, on the same serial
// code (bench/forkjoin.h); wall clock of the workload alone (manual time):
//
//   BM_tbb_fib30c12/threads:N  fib(30), a task_group per call (both children
//                              tg.run(), tg.wait()) down to n < 12, serial
//                              fib below
//   BM_tbb_fib30c12_cost       1 thread: serial fib(30) and fib30c12 timed
//                              apart each round; counter ns_per_task =
//                              (median T1 - median Tserial) / 21,890 tasks
//                              (ns_per_task_cpu: the same on process CPU
//                              time)
//   BM_tbb_qsort/threads:N     quicksort of 20M ints, tbb::parallel_invoke
//                              of both halves, std::sort below 4096; data
//                              regenerated before each round, untimed
//   BM_tbb_mandel/threads:N    2000x2000 Mandelbrot, tbb::parallel_for over
//                              the 250 blocks of 8 rows with
//                              simple_partitioner and grain 1: a task per
//                              block, as weft and Go
//
// N (the benchmark Arg) is applied with tbb::global_control
// max_allowed_parallelism (1 = only the calling thread, 2 = caller + 1
// worker). BM_tbb_fib and BM_tbb_tree times are wall clock (UseRealTime),
// in ms per fib / per tree.
#include "../forkjoin.h"

#include <benchmark/benchmark.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_invoke.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_group.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

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

// ---- fork-join workloads (bench/forkjoin.h) ----------------------------------
long fib_c12(int n)
{
    if (n < fj::kFibCutoff)
        return fj::fib_serial(n);
    long a = 0, b = 0;
    tbb::task_group tg;
    tg.run([&] { a = fib_c12(n - 1); });
    tg.run([&] { b = fib_c12(n - 2); });
    tg.wait();
    return a + b;
}

double fib_c12_round()
{
    double t0 = fj::now_s();
    long r = fib_c12(fj::kFibN);
    double t = fj::now_s() - t0;
    if (r != fj::kFibResult)
        std::abort();
    return t;
}

void BM_tbb_fib30c12(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           static_cast<std::size_t>(state.range(0)));
    for (auto _ : state)
        state.SetIterationTime(fib_c12_round());
}

void BM_tbb_fib30c12_cost(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, 1);
    fj::FibCost c;
    for (auto _ : state)
        state.SetIterationTime(fj::fib_cost_round(c, fib_c12_round));
    fj::fib_cost_counters(state, c);
}

void qsort_par(int *a, std::size_t n)
{
    if (n < fj::kSortCutoff) {
        fj::sort_leaf(a, n);
        return;
    }
    std::size_t k = fj::sort_partition(a, n);
    tbb::parallel_invoke([=] { qsort_par(a, k); }, [=] { qsort_par(a + k, n - k); });
}

void BM_tbb_qsort(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           static_cast<std::size_t>(state.range(0)));
    std::vector<int> data(fj::kSortN);
    for (auto _ : state) {
        uint64_t sum = fj::sort_fill(data.data(), data.size());
        double t0 = fj::now_s();
        qsort_par(data.data(), data.size());
        state.SetIterationTime(fj::now_s() - t0);
        if (!fj::sort_check(data.data(), data.size(), sum)) {
            state.SkipWithError("qsort: not sorted");
            break;
        }
    }
}

void BM_tbb_mandel(benchmark::State &state)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           static_cast<std::size_t>(state.range(0)));
    std::vector<uint16_t> img((std::size_t)fj::kMandelW * fj::kMandelH);
    uint16_t *p = img.data();
    for (auto _ : state) {
        double t0 = fj::now_s();
        tbb::parallel_for(
            tbb::blocked_range<int>(0, fj::kMandelBlocks, 1),
            [p](const tbb::blocked_range<int> &r) {
                for (int b = r.begin(); b != r.end(); ++b)
                    fj::mandel_block(b, p);
            },
            tbb::simple_partitioner());
        state.SetIterationTime(fj::now_s() - t0);
        if (fj::mandel_sum(p) != fj::kMandelSum) {
            state.SkipWithError("mandel: wrong checksum");
            break;
        }
    }
}

} // namespace

BENCHMARK(BM_tbb_fib30c12)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseManualTime();
BENCHMARK(BM_tbb_fib30c12_cost)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_tbb_qsort)->ArgName("threads")->Arg(2)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_tbb_mandel)
    ->ArgName("threads")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
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
