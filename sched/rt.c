/*
 * rt.c - the runtime object: creation, teardown, statistics, the seed.
 *
 * weft_run itself lives in structured/run.c, because it opens the root
 * nursery; this file is the part of it that only needs sched.
 */
#include "internal.h"

void (*weft__hook_task_exit)(weft__task *t);
void (*weft__hook_task_done)(weft__task *t, int result);
void (*weft__hook_task_started_running)(weft__task *t);
void (*weft__hook_task_list)(weft__task *t);

__attribute__((noinline, cold)) void weft__task_list_slow(weft__task *t)
{
    if (weft__hook_task_list)
        weft__hook_task_list(t);
}

atomic_int weft__threads_parked;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static weft__counters last_counters;
static _Atomic uint64_t last_seed;
static uint64_t lock_wait_floor; /* lock_wait_ns reported last (stats_lock) */

int weft__rt_create(weft__rt **out, unsigned nworkers, size_t stack_size, unsigned blocking_cap,
                    uint64_t seed, bool seeded)
{
    weft__rt *rt = aligned_alloc(WEFT__CACHELINE, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    memset(rt, 0, sizeof *rt);
    size_t wsz = ((sizeof(weft__worker) * nworkers + WEFT__CACHELINE - 1) / WEFT__CACHELINE) *
                 WEFT__CACHELINE;
    rt->workers = aligned_alloc(WEFT__CACHELINE, wsz);
    if (!rt->workers) {
        free(rt);
        return -ENOMEM;
    }
    memset(rt->workers, 0, wsz);
    rt->nworkers = nworkers;
    weft__steer_init(rt);
    rt->stack_size = stack_size;
    rt->blocking_cap = blocking_cap;
    rt->seed = seed;
    rt->seeded = seeded;
    atomic_store_explicit(&rt->cancel_gen, 1, memory_order_relaxed);
    /* The lock waits of threads driving no worker count from here (no
     * thread of this runtime exists yet). */
    atomic_store_explicit(&weft__lock_foreign_contended, 0, memory_order_relaxed);
    atomic_store_explicit(&weft__lock_foreign_wait, 0, memory_order_relaxed);
    rt->ticks0 = weft__ticks();
    rt->ns0 = weft__now();
    pthread_mutex_init(&rt->pool_lock, NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        w->id = (int)i;
        w->rt = rt;
        weft__runq_init(&w->runq);
        weft__deque_init(&w->spawnq);
        weft__inbox_init(&w->inbox);
        atomic_store_explicit(&w->timer_next, WEFT_FOREVER, memory_order_relaxed);
        /* splitmix64 of seed and id: distinct, never-zero xorshift states */
        uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        w->rng = (z ^ (z >> 31)) | 1;
    }
    weft__fiber_system_init();
    weft__test_delay_init();
    int rc = weft__stack_system_init(rt);
    if (rc == 0)
        rc = weft__blocking_init(rt);
    if (rc) {
        free(rt->workers);
        free(rt);
        return rc;
    }
    atomic_store_explicit(&last_seed, seed, memory_order_relaxed);
    *out = rt;
    return 0;
}

int64_t weft__ticks_to_ns(weft__rt *rt, uint64_t dticks)
{
    /* The rate over the whole run so far: no calibration loop at start,
     * and the longer the run, the better the figure. */
    uint64_t t = weft__ticks() - rt->ticks0;
    int64_t ns = weft__now() - rt->ns0;
    if (t == 0 || ns <= 0)
        return 0;
    return (int64_t)((long double)dticks * (long double)ns / (long double)t);
}

static void sum_counters(weft__rt *rt, weft__counters *c)
{
    uint64_t *dst = (uint64_t *)c;
    memset(c, 0, sizeof *c);
    for (unsigned i = 0; i < rt->nworkers; i++)
        for (size_t k = 0; k < sizeof *c / sizeof(uint64_t); k++)
            dst[k] += atomic_load_explicit(&rt->workers[i].ctr.v[k], memory_order_relaxed);
    c->stacks_returned = atomic_load_explicit(&rt->stacks_returned, memory_order_relaxed);
    c->tasks_stuck = atomic_load_explicit(&rt->tasks_stuck, memory_order_relaxed);
    c->mon_timers_fired = atomic_load_explicit(&rt->mon_timers_fired, memory_order_relaxed);
    c->mon_wakes = atomic_load_explicit(&rt->mon_wakes, memory_order_relaxed);
}

/* sum_counters, plus what weft_stats shows but the hot paths never need:
 * the lock waits of threads that drive no worker, and the wait in ns (the
 * workers count ticks: util.c). */
static void sum_stats(weft__rt *rt, weft__counters *c)
{
    sum_counters(rt, c);
    c->lock_contended += atomic_load_explicit(&weft__lock_foreign_contended, memory_order_relaxed);
    uint64_t ticks = c->lock_wait +
                     atomic_load_explicit(&weft__lock_foreign_wait, memory_order_relaxed);
    /* The tick rate is measured afresh at each call (over the run so far),
     * so the same ticks can come out a nanosecond shorter at a later call:
     * never report less than before, so the figure only grows. */
    uint64_t ns = (uint64_t)weft__ticks_to_ns(rt, ticks);
    if (ns < lock_wait_floor)
        ns = lock_wait_floor;
    lock_wait_floor = ns;
    c->lock_wait = ns;
}

void weft__rt_publish(weft__rt *rt)
{
    pthread_mutex_lock(&stats_lock);
    lock_wait_floor = 0;
    atomic_store_explicit(&weft__g_rt, rt, memory_order_release);
    pthread_mutex_unlock(&stats_lock);
}

void weft__rt_destroy(weft__rt *rt)
{
    pthread_mutex_lock(&stats_lock);
    sum_stats(rt, &last_counters);
    atomic_store_explicit(&weft__g_rt, NULL, memory_order_release);
    pthread_mutex_unlock(&stats_lock);
    weft__blocking_fini(rt);
    weft__stuck_fini(rt);
    /* After the monitor and the hand-off threads: both may still serve a ring
     * or unpark a worker (io/io.c). */
    weft__io_stop(rt);
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__timers_fini(&rt->workers[i]);
    weft__task_free_all(rt);
    weft__inject_fini(rt);
    weft__stack_system_fini(rt);
    pthread_mutex_destroy(&rt->pool_lock);
    free(rt->workers);
    free(rt);
}

void weft__rt_shutdown(weft__rt *rt)
{
    atomic_store_explicit(&rt->shutdown, true, memory_order_release);
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__idle_unpark(&rt->workers[i]);
    weft__spares_stop(rt);
}

uint64_t weft__tasks_live(weft__rt *rt)
{
    weft__counters c;
    sum_counters(rt, &c);
    return c.tasks_spawned >= c.tasks_done ? c.tasks_spawned - c.tasks_done : 0;
}

void weft_stats_get(weft_stats *out)
{
    if (!out)
        return;
    weft__counters c;
    pthread_mutex_lock(&stats_lock);
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_acquire);
    if (rt)
        sum_stats(rt, &c);
    else
        c = last_counters;
    pthread_mutex_unlock(&stats_lock);
    memset(out, 0, sizeof *out);
    out->tasks_spawned = c.tasks_spawned;
    out->tasks_live = c.tasks_spawned >= c.tasks_done ? c.tasks_spawned - c.tasks_done : 0;
    out->context_switches = c.context_switches;
    out->steals = c.steals;
    out->steal_attempts = c.steal_attempts;
    out->worker_parks = c.worker_parks;
    out->worker_wakes = c.worker_wakes;
    out->timers_fired = c.timers_fired;
    out->failures_dropped = c.failures_dropped;
    out->stacks_returned = c.stacks_returned;
    out->tasks_stuck = c.tasks_stuck;
    out->monitor_timers_fired = c.mon_timers_fired;
    out->monitor_wakes = c.mon_wakes;
    out->lock_contended = c.lock_contended;
    out->lock_wait_ns = c.lock_wait;
    out->stack_pool_locks = c.stack_pool_locks;
    weft__io_stats_fill(out);
}

uint64_t weft_seed(void) { return atomic_load_explicit(&last_seed, memory_order_relaxed); }
