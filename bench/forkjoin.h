// bench/forkjoin.h - the serial code of the fork-join workloads, shared by
// weft's bench/bench_forkjoin.cc and its peers bench/peers/tbb_peers.cc
// (oneTBB) and bench/peers/omp_peers.cc (OpenMP tasks), so that every C++
// runtime runs the same leaves, compiled by the same compiler with the same
// flags (-O3); only the fork-join around them differs. The Go peer
// (bench/peers/go/forkjoin.go) is a line-by-line translation.
//
//   fib30c12  fib(30) with a task per call down to n < 12, serial fib below
//             (10,945 forking calls, 21,890 tasks, 10,946 leaves of fib(11)
//             or fib(10)). fib_serial(30) is the serial reference.
//   qsort     20,000,000 ints (31-bit, splitmix64 from a fixed seed,
//             regenerated before each timed run), Hoare partition around the
//             median of first/middle/last, both halves forked, std::sort
//             below 4096 elements.
//   mandel    2000x2000 Mandelbrot of [-2,0.5]x[-1.25,1.25], at most 256
//             iterations per pixel, in 250 blocks of 8 rows, one task each.
//             Iteration counts go to a uint16_t image; the checksum (the sum
//             of all counts) is the same in every runtime, Go included (no
//             FMA contraction on baseline x86-64 in either compiler).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <vector>

namespace fj
{

// ---- fib ----------------------------------------------------------------
constexpr int kFibN = 30;
constexpr long kFibResult = 832040;
constexpr int kFibCutoff = 12; // fib(n) with n < kFibCutoff runs serially

// noinline: each program calls the same out-of-line recursion, whatever it
// would have inlined into its own callers.
__attribute__((noinline)) static long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

// Tasks spawned (two per forking call) and leaves of fib(n) with the cutoff.
constexpr long fib_tasks(int n)
{
    return n < kFibCutoff ? 0 : 2 + fib_tasks(n - 1) + fib_tasks(n - 2);
}
constexpr long fib_leaves(int n)
{
    return n < kFibCutoff ? 1 : fib_leaves(n - 1) + fib_leaves(n - 2);
}
static_assert(fib_tasks(kFibN) == 21890, "fib30c12 task count");
static_assert(fib_leaves(kFibN) == 10946, "fib30c12 leaf count");

// ---- quicksort -----------------------------------------------------------
constexpr std::size_t kSortN = 20000000;
constexpr std::size_t kSortCutoff = 4096; // below: std::sort
constexpr uint64_t kSortSeed = 0x5eed5eed2024ULL;

// Fills a[0..n) with the fixed sequence; returns the sum (checked after the
// sort, with the order).
static inline uint64_t sort_fill(int *a, std::size_t n)
{
    uint64_t s = kSortSeed, sum = 0;
    for (std::size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        a[i] = (int)(z >> 33);
        sum += (uint64_t)a[i];
    }
    return sum;
}

static inline bool sort_check(const int *a, std::size_t n, uint64_t sum)
{
    uint64_t s = 0;
    for (std::size_t i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i])
            return false;
        s += (uint64_t)a[i];
    }
    return s == sum;
}

// Hoare partition of a[0..n), n >= 3, around the median of a[0], a[n/2],
// a[n-1]: returns k with 0 < k < n, every a[0..k) <= every a[k..n).
__attribute__((noinline)) static std::size_t sort_partition(int *a, std::size_t n)
{
    int x = a[0], y = a[n / 2], z = a[n - 1];
    int p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
    std::ptrdiff_t i = -1, j = (std::ptrdiff_t)n;
    for (;;) {
        do
            i++;
        while (a[i] < p);
        do
            j--;
        while (a[j] > p);
        if (i >= j)
            return (std::size_t)j + 1;
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

__attribute__((noinline)) static void sort_leaf(int *a, std::size_t n) { std::sort(a, a + n); }

// ---- mandelbrot ------------------------------------------------------------
constexpr int kMandelW = 2000;
constexpr int kMandelH = 2000;
constexpr int kMandelBlocks = 250;
constexpr int kMandelRows = kMandelH / kMandelBlocks; // 8 rows per block
constexpr int kMandelMaxIter = 256;
static_assert(kMandelRows * kMandelBlocks == kMandelH, "blocks must tile the image");
constexpr uint64_t kMandelSum = 269789452; // sum of the iteration counts

__attribute__((noinline)) static void mandel_block(int block, uint16_t *img)
{
    const double x0 = -2.0, y0 = -1.25, dx = 2.5 / kMandelW, dy = 2.5 / kMandelH;
    for (int row = block * kMandelRows; row < (block + 1) * kMandelRows; row++) {
        double ci = y0 + row * dy;
        for (int col = 0; col < kMandelW; col++) {
            double cr = x0 + col * dx;
            double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
            int it = 0;
            while (it < kMandelMaxIter && zr2 + zi2 <= 4.0) {
                zi = 2 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                zr2 = zr * zr;
                zi2 = zi * zi;
                it++;
            }
            img[(std::size_t)row * kMandelW + col] = (uint16_t)it;
        }
    }
}

static inline uint64_t mandel_sum(const uint16_t *img)
{
    uint64_t s = 0;
    for (std::size_t i = 0; i < (std::size_t)kMandelW * kMandelH; i++)
        s += img[i];
    return s;
}

// ---- timing ----------------------------------------------------------------
static inline double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// CPU time of the whole process (every thread), seconds.
static inline double cpu_s()
{
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// The per-task cost of fib30c12 on one worker, from rounds that each ran the
// serial fib(30) and then fib30c12: (median T1 - median Tserial) / tasks,
// once on the wall clock and once on the process's CPU time (which a loaded
// machine inflates less: time spent preempted is not in it).
struct FibCost {
    std::vector<double> ser, par, ser_cpu, par_cpu;
};

static inline double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// One round: the serial fib(30), then par_round() (which runs fib30c12 and
// returns its wall time). Returns T1 of this round.
template <typename F> static double fib_cost_round(FibCost &c, F par_round)
{
    double c0 = cpu_s(), t0 = now_s();
    long r = fib_serial(kFibN);
    double t1 = now_s(), c1 = cpu_s();
    if (r != kFibResult)
        __builtin_trap();
    double tp = par_round();
    double c2 = cpu_s();
    c.ser.push_back(t1 - t0);
    c.ser_cpu.push_back(c1 - c0);
    c.par.push_back(tp);
    c.par_cpu.push_back(c2 - c1);
    return tp;
}

template <typename State> static void fib_cost_counters(State &state, const FibCost &c)
{
    double tasks = (double)fib_tasks(kFibN), ms = median(c.ser);
    state.counters["ns_per_task"] = (median(c.par) - ms) * 1e9 / tasks;
    state.counters["ns_per_task_cpu"] = (median(c.par_cpu) - median(c.ser_cpu)) * 1e9 / tasks;
    state.counters["serial_ms"] = ms * 1e3;
    state.counters["leaf_ns"] = ms * 1e9 / (double)fib_leaves(kFibN);
}

} // namespace fj
