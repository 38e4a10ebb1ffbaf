// bench_hotpoints.cc - issue 11's shared hot points, on 2 workers.
//
//  BM_shared_nursery/2   two spawner tasks, one per worker, each spawn
//                        kPerSpawner trivial tasks (each writes its slot and
//                        exits) into ONE nursery the root opened: every spawn,
//                        start and exit of both workers takes that nursery's
//                        lock. Closed once all are spawned (the join).
//  BM_own_nurseries/2    the same, but each spawner spawns into a nursery of
//                        its own: the no-shared-lock baseline.
//  BM_deadline_churn/2   kChurnTasks tasks, each looping kChurnLoops times:
//                        enter its own weft_scope with deadline now + 1 ms,
//                        weft_yield() (a cancellation point that does not
//                        park for long), exit the scope.
//  BM_forever_churn/2    the same loop with a WEFT_FOREVER scope, and
//  BM_noscope_churn/2    without a scope: the ratio to them is the deadline
//                        scope's own cost.
//
// Counters (gbench user counters, so gbench2line.sh COUNTER can make rows of
// them), from weft_stats of the run that measured (its warm-up round
// included), per task (A) or per loop iteration (B): lock_contended and
// lock_wait_ns (waits for the runtime's internal locks: weft.h), and for B
// the yields that found the deadline passed. Lock hold time is not counted
// (weft.h says why). That entering and leaving a deadline scope never bumps
// the global cancel generation is checked by tests/wb_lockstat.c.
//
// Peers: the Go programs shared_nursery and deadline_churn
// (bench/peers/go/hotpoints.go).
#include "common.h"

#include <atomic>
#include <cerrno>
#include <vector>

namespace
{

constexpr long kPerSpawner = 100000;
constexpr int kSpawners = 2;
constexpr long kSpawnTasks = kPerSpawner * kSpawners;

struct Spawner {
    weft_nursery *into; // NULL: open one of its own
    long *slots;
    std::atomic<int> *ready;
    std::atomic<int> *worker_of;
    int index;
};

int leaf(void *arg)
{
    *static_cast<long *>(arg) = 1;
    return 0;
}

// The two spawners run on the two workers: the root spawns both and parks
// in its close, its worker runs the newer one, whose first spawn wakes the
// idle worker, which steals the older one. They meet at a brief barrier
// (bounded: if both landed on one worker, the first must not spin while
// the other cannot run) so that both spawn at once; split_rounds counts
// the rounds in which they did run on different workers.
void meet(Spawner *s)
{
    s->worker_of[s->index].store(weft_worker_id(), std::memory_order_relaxed);
    s->ready->fetch_add(1, std::memory_order_acq_rel);
    int64_t give_up = weft_now() + 200000;
    while (s->ready->load(std::memory_order_acquire) < kSpawners && weft_now() < give_up) {
    }
}

int spawner(void *arg)
{
    auto *s = static_cast<Spawner *>(arg);
    meet(s);
    weft_nursery *n = s->into;
    if (!n && weft_nursery_open(&n))
        return -1;
    for (long i = 0; i < kPerSpawner; i++)
        if ((weft_spawn)(n, leaf, &s->slots[i]))
            return -1;
    return s->into ? 0 : weft_nursery_close(n);
}

long split_rounds, rounds;

void spawn_round(std::vector<long> &slots, bool shared)
{
    std::fill(slots.begin(), slots.end(), 0);
    std::atomic<int> ready{0};
    std::atomic<int> worker_of[kSpawners];
    for (auto &w : worker_of)
        w.store(-1);
    weft_nursery *n;
    bench_check(weft_nursery_open(&n) == 0, "open");
    Spawner sp[kSpawners];
    for (int i = 0; i < kSpawners; i++) {
        sp[i] = Spawner{shared ? n : nullptr, &slots[(size_t)i * kPerSpawner], &ready, worker_of,
                        i};
        bench_check((weft_spawn)(n, spawner, &sp[i]) == 0, "spawn spawner");
    }
    bench_check(weft_nursery_close(n) == 0, "close");
    long sum = 0;
    for (long v : slots)
        sum += v;
    bench_check(sum == kSpawnTasks, "every task wrote its slot");
    split_rounds += worker_of[0].load() != worker_of[1].load();
    rounds++;
}

void report_locks(benchmark::State &state, double ops)
{
    weft_stats s;
    weft_stats_get(&s);
    state.counters["lock_contended"] = (double)s.lock_contended / ops;
    state.counters["lock_wait_ns"] = (double)s.lock_wait_ns / ops;
    state.counters["stack_pool_locks"] = (double)s.stack_pool_locks / ops;
    // The figures of the whole run, for the log: a rate per task or loop
    // hides a rare long wait.
    state.counters["run_lock_contended"] = (double)s.lock_contended;
    state.counters["run_lock_wait_ms"] = (double)s.lock_wait_ns / 1e6;
}

void spawn_bench(benchmark::State &state, bool shared)
{
    unsigned workers = (unsigned)state.range(0);
    std::vector<long> slots(kSpawnTasks);
    split_rounds = rounds = 0;
    bench_in_task(state, workers, [&](benchmark::State &) { spawn_round(slots, shared); });
    state.counters["split_rounds"] = (double)split_rounds / (double)rounds;
    state.counters["ns_per_op"] = benchmark::Counter((double)kSpawnTasks * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
    report_locks(state, (double)(state.iterations() + 1) * kSpawnTasks);
}

void BM_shared_nursery(benchmark::State &state) { spawn_bench(state, true); }
void BM_own_nurseries(benchmark::State &state) { spawn_bench(state, false); }
BENCHMARK(BM_shared_nursery)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_own_nurseries)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- deadline churn ----------------------------------------------------

constexpr long kChurnTasks = 10000;
constexpr long kChurnLoops = 20;
constexpr long kChurnOps = kChurnTasks * kChurnLoops;

enum Mode { DEADLINE, FOREVER, NOSCOPE };

struct Churn {
    Mode mode;
    std::atomic<long> late{0}; // yields that found the deadline passed
};

int churner(void *arg)
{
    auto *c = static_cast<Churn *>(arg);
    long late = 0;
    for (long i = 0; i < kChurnLoops; i++) {
        if (c->mode == NOSCOPE) {
            bench_check(weft_yield() == 0, "yield");
            continue;
        }
        weft_scope s;
        weft_scope_enter(&s, c->mode == DEADLINE ? weft_now() + 1000000 : WEFT_FOREVER);
        int rc = weft_yield();
        // The 1 ms deadline can pass while 10,000 tasks take their turns:
        // the yield then reports it, as it must.
        bench_check(rc == 0 || (rc == -ECANCELED && c->mode == DEADLINE), "yield in scope");
        late += rc != 0;
        weft_scope_exit(&s);
    }
    if (late)
        c->late.fetch_add(late, std::memory_order_relaxed);
    return 0;
}

void churn_round(Churn &c)
{
    weft_nursery *n;
    bench_check(weft_nursery_open(&n) == 0, "open");
    for (long i = 0; i < kChurnTasks; i++)
        bench_check((weft_spawn)(n, churner, &c) == 0, "spawn churner");
    bench_check(weft_nursery_close(n) == 0, "close");
}

void churn_bench(benchmark::State &state, Mode mode)
{
    unsigned workers = (unsigned)state.range(0);
    Churn c;
    c.mode = mode;
    bench_in_task(state, workers, [&](benchmark::State &) { churn_round(c); });
    state.counters["ns_per_op"] = benchmark::Counter((double)kChurnOps * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
    double ops = (double)(state.iterations() + 1) * kChurnOps;
    report_locks(state, ops);
    state.counters["late_yields"] = (double)c.late.load() / ops;
}

void BM_deadline_churn(benchmark::State &state) { churn_bench(state, DEADLINE); }
void BM_forever_churn(benchmark::State &state) { churn_bench(state, FOREVER); }
void BM_noscope_churn(benchmark::State &state) { churn_bench(state, NOSCOPE); }
BENCHMARK(BM_deadline_churn)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_forever_churn)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_noscope_churn)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
