// Peer baselines on OpenMP (built with the compiler's -fopenmp: gcc's
// libgomp in the release tree): the fork-join workloads of
// bench/bench_forkjoin.cc, on the same serial code (bench/forkjoin.h). Every
// round is one `#pragma omp parallel` region (libgomp keeps its threads
// between regions); times are the wall clock of the workload alone (manual
// time).
//
//   BM_omp_fib30c12/threads:N  fib(30) with `#pragma omp task` for both
//                              children and `#pragma omp taskwait` down to
//                              n < 12, serial fib below, started from an
//                              `omp single`
//   BM_omp_fib30c12_cost       1 thread: serial fib(30) and fib30c12 timed
//                              apart each round; counter ns_per_task =
//                              (median T1 - median Tserial) / 21,890 tasks
//                              (ns_per_task_cpu: the same on process CPU
//                              time)
//   BM_omp_qsort/threads:N     quicksort of 20M ints, a task per half and a
//                              taskwait, std::sort below 4096; data
//                              regenerated before each round, untimed
//   BM_omp_mandel/threads:N    2000x2000 Mandelbrot, `omp parallel for
//                              schedule(dynamic,1)` over the 250 blocks of 8
//                              rows (a block at a time, as weft's task per
//                              block)
//
// N (the benchmark Arg) is applied with omp_set_num_threads.
#include "../forkjoin.h"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace
{

long fib_c12(int n)
{
    if (n < fj::kFibCutoff)
        return fj::fib_serial(n);
    long a = 0, b = 0;
#pragma omp task shared(a)
    a = fib_c12(n - 1);
#pragma omp task shared(b)
    b = fib_c12(n - 2);
#pragma omp taskwait
    return a + b;
}

double fib_c12_round()
{
    long r = 0;
    double t0 = fj::now_s();
#pragma omp parallel
#pragma omp single
    r = fib_c12(fj::kFibN);
    double t = fj::now_s() - t0;
    if (r != fj::kFibResult)
        std::abort();
    return t;
}

void BM_omp_fib30c12(benchmark::State &state)
{
    omp_set_num_threads((int)state.range(0));
    for (auto _ : state)
        state.SetIterationTime(fib_c12_round());
}

void BM_omp_fib30c12_cost(benchmark::State &state)
{
    omp_set_num_threads(1);
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
#pragma omp task
    qsort_par(a, k);
#pragma omp task
    qsort_par(a + k, n - k);
#pragma omp taskwait
}

void BM_omp_qsort(benchmark::State &state)
{
    omp_set_num_threads((int)state.range(0));
    std::vector<int> data(fj::kSortN);
    int *a = data.data();
    for (auto _ : state) {
        uint64_t sum = fj::sort_fill(a, data.size());
        double t0 = fj::now_s();
#pragma omp parallel
#pragma omp single
        qsort_par(a, fj::kSortN);
        state.SetIterationTime(fj::now_s() - t0);
        if (!fj::sort_check(a, data.size(), sum)) {
            state.SkipWithError("qsort: not sorted");
            break;
        }
    }
}

void BM_omp_mandel(benchmark::State &state)
{
    omp_set_num_threads((int)state.range(0));
    std::vector<uint16_t> img((std::size_t)fj::kMandelW * fj::kMandelH);
    uint16_t *p = img.data();
    for (auto _ : state) {
        double t0 = fj::now_s();
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < fj::kMandelBlocks; b++)
            fj::mandel_block(b, p);
        state.SetIterationTime(fj::now_s() - t0);
        if (fj::mandel_sum(p) != fj::kMandelSum) {
            state.SkipWithError("mandel: wrong checksum");
            break;
        }
    }
}

} // namespace

BENCHMARK(BM_omp_fib30c12)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseManualTime();
BENCHMARK(BM_omp_fib30c12_cost)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_omp_qsort)->ArgName("threads")->Arg(2)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_omp_mandel)
    ->ArgName("threads")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

BENCHMARK_MAIN();
