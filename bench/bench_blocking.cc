// bench_blocking.cc - what weft_blocking costs its caller (issue 8's rows).
//
//   BM_blocking/T/K  T tasks (1, 8, 64) on 2 workers each make calls of job
//                    K through weft_blocking; K: 0 = no-op, 1 = a 1 us spin,
//                    2 = a 4 KiB pread from a file in the page cache.
//   BM_inline/T/K    the same tasks running the same job directly on the
//                    worker (no weft_blocking): the baseline, what the job
//                    itself costs there.
// The figure is the caller's view: wall time / calls made by each task
// (counter ns_per_call), so with T tasks sharing 2 workers it includes the
// wait for a worker. The Go peer (bench/peers/go/blocking.go) does the same
// pread from T goroutines, where each call goes through Go's syscall entry
// (entersyscall/exitsyscall and the handoff of its P).
#include "common.h"

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <unistd.h>

namespace
{

constexpr long kCalls = 20000; // per round, over all tasks
constexpr size_t kFileSize = 4 << 20;
constexpr size_t kBlock = 4096;

int g_fd = -1;

void ensure_file()
{
    if (g_fd >= 0)
        return;
    char path[] = "/tmp/weft-bench-blocking.XXXXXX";
    g_fd = mkstemp(path);
    bench_check(g_fd >= 0, "mkstemp");
    unlink(path);
    static char buf[1 << 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 131);
    for (size_t off = 0; off < kFileSize; off += sizeof buf)
        bench_check(pwrite(g_fd, buf, sizeof buf, (off_t)off) == (ssize_t)sizeof buf, "pwrite");
    // In the page cache from here on: read it once.
    for (size_t off = 0; off < kFileSize; off += sizeof buf)
        bench_check(pread(g_fd, buf, sizeof buf, (off_t)off) == (ssize_t)sizeof buf, "pread");
}

// The 1 us job spins on the time-stamp counter until 1 us of wall time has
// passed: a job that takes 1 us in every process, whatever the VM's speed
// at the moment. (A calibrated loop of iterations ran 0.5-2.2 us from one
// process to the next here, so the weft side and the direct side, separate
// processes, compared different jobs; a clock_gettime poll costs a good
// part of a microsecond on some VMs, rdtsc ~10 ns.) The counter's rate is
// measured once against steady_clock over 20 ms; it does not change.
double g_ticks_per_us;

uint64_t ticks()
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
#endif
}

void spin_1us()
{
    uint64_t end = ticks() + (uint64_t)g_ticks_per_us;
    while (ticks() < end) {
    }
}

void calibrate()
{
    if (g_ticks_per_us > 0)
        return;
    auto t0 = std::chrono::steady_clock::now();
    uint64_t c0 = ticks();
    long ns;
    do {
        ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  t0)
                 .count();
    } while (ns < 20 * 1000 * 1000);
    g_ticks_per_us = (double)(ticks() - c0) * 1000.0 / (double)ns;
}

struct Job {
    int kind;
    unsigned long seed;
    char buf[kBlock];
};

int job_fn(void *arg)
{
    Job *j = static_cast<Job *>(arg);
    switch (j->kind) {
    case 0:
        return 0;
    case 1:
        spin_1us();
        return 0;
    default: {
        j->seed = j->seed * 6364136223846793005UL + 1442695040888963407UL;
        off_t off = (off_t)((j->seed >> 33) % (kFileSize / kBlock) * kBlock);
        return pread(g_fd, j->buf, kBlock, off) == (ssize_t)kBlock ? 0 : -EIO;
    }
    }
}

struct Round {
    int kind;
    long per_task;
    bool via_blocking;
};

int caller(void *arg)
{
    Round *r = static_cast<Round *>(arg);
    Job j;
    j.kind = r->kind;
    j.seed = (unsigned long)(uintptr_t)&j;
    for (long i = 0; i < r->per_task; i++) {
        int rc = r->via_blocking ? weft_blocking(job_fn, &j) : job_fn(&j);
        bench_check(rc == 0, "job failed");
    }
    return 0;
}

void run_calls(benchmark::State &state, bool via_blocking)
{
    ensure_file();
    calibrate();
    int tasks = (int)state.range(0);
    Round r{(int)state.range(1), kCalls / tasks, via_blocking};
    bench_in_task(state, 2, [&](benchmark::State &) {
        weft_nursery *n;
        bench_check(weft_nursery_open(&n) == 0, "open");
        for (int i = 0; i < tasks; i++)
            bench_check(weft_spawn(n, caller, &r) == 0, "spawn");
        bench_check(weft_nursery_close(n) == 0, "close");
    });
    // An inverted rate is seconds per unit: count the calls in billions to
    // get nanoseconds per call.
    state.counters["ns_per_call"] = benchmark::Counter((double)state.iterations() *
                                                           (double)r.per_task * 1e-9,
                                                       benchmark::Counter::kIsRate |
                                                           benchmark::Counter::kInvert);
    bench_report_stats(state);
}

void BM_blocking(benchmark::State &state) { run_calls(state, true); }
void BM_inline(benchmark::State &state) { run_calls(state, false); }

void args(benchmark::internal::Benchmark *b)
{
    for (int k = 0; k < 3; k++)
        for (int t : {1, 8, 64})
            b->Args({t, k});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_blocking)->Apply(args);
BENCHMARK(BM_inline)->Apply(args);

} // namespace

BENCHMARK_MAIN();
