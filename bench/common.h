// bench/common.h - helpers shared by the weft benchmarks.
#pragma once
#include <weft.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

// Runs fn(arg) under a fresh runtime with `workers` workers; aborts on error
// so a broken run can never be reported as a fast one.
static inline void bench_run(unsigned workers, weft_fn fn, void *arg)
{
    weft_config cfg;
    std::memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    int rc = weft_run(&cfg, fn, arg);
    if (rc != 0) {
        std::fprintf(stderr, "bench: weft_run failed: %d\n", rc);
        std::abort();
    }
}

static inline void bench_check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "bench: result check failed: %s\n", what);
        std::abort();
    }
}

// Runs the benchmark loop inside one task of one runtime, as a long-lived
// program would (the Go peers also keep one runtime warm across iterations):
// body(state) is called once per iteration from that task.
template <typename F> struct BenchInTask {
    benchmark::State *state;
    F body;
    static int run(void *arg)
    {
        auto *self = static_cast<BenchInTask *>(arg);
        // One untimed warm-up round, as the Go peers do: the first round
        // faults in task blocks and stacks that later rounds reuse.
        self->body(*self->state);
        for (auto _ : *self->state)
            self->body(*self->state);
        return 0;
    }
};

template <typename F> static void bench_in_task(benchmark::State &state, unsigned workers, F body)
{
    BenchInTask<F> b{&state, body};
    bench_run(workers, BenchInTask<F>::run, &b);
}

// Adds weft's own counters for the last run (the one that ran the
// benchmark's rounds, its warm-up round included), per round: wakes of
// sleeping workers (what a hot path must avoid), steals and their attempts,
// worker parks and context switches.
static inline void bench_report_stats(benchmark::State &state)
{
    weft_stats s;
    weft_stats_get(&s);
    double rounds = (double)state.iterations() + 1;
    state.counters["worker_wakes"] = (double)s.worker_wakes / rounds;
    state.counters["steals"] = (double)s.steals / rounds;
    state.counters["steal_attempts"] = (double)s.steal_attempts / rounds;
    state.counters["parks"] = (double)s.worker_parks / rounds;
    state.counters["switches"] = (double)s.context_switches / rounds;
}
