/* White-box test of the lock contention counters (weft_stats.lock_contended,
 * lock_wait_ns, stack_pool_locks). Contention is forced, not hoped for: a
 * holder keeps a spin lock until it has seen the waiter counted (the slow
 * path counts on entry, before it waits), then a millisecond longer, so the
 * waiter is counted exactly once and waits at least that long, on a worker
 * (its worker's counters) and on a plain thread (the shared pair). Under
 * real churn (two workers spawning into one nursery) the test checks only
 * what always holds: the counters never go down, no wait is reported
 * without a contended acquisition, and the figures survive the run's end.
 * Also: a deadline scope entered and left does not bump the global cancel
 * generation (issue 11's other shared hot point).
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "sched/internal.h"

#include "test.h"

#include <pthread.h>
#include <time.h>

static weft__spin lock;
static atomic_int phase;
static _Atomic(weft__worker *) waiter_w;
static _Atomic uint64_t waiter_base;

static uint64_t ctr(weft__worker *w, size_t index)
{
    return atomic_load_explicit(&w->ctr.v[index], memory_order_relaxed);
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Waits (a plain thread, or a task that may block its worker) until
 * cond() holds; fails after the liveness bound. */
static void wait_until(bool (*cond)(void))
{
    int64_t dl = weft_now() + PROMPT_NS;
    while (!cond()) {
        CHECK(weft_now() < dl);
        sleep_ns(100000);
    }
}

static bool waiter_counted(void)
{
    weft__worker *w = atomic_load(&waiter_w);
    return w && ctr(w, WEFT__CTR_INDEX(lock_contended)) > atomic_load(&waiter_base);
}

/* ---- a waiter on a worker -------------------------------------------- */

static void *holder_thread(void *arg)
{
    (void)arg;
    weft__spin_lock(&lock);
    atomic_store(&phase, 1); /* held */
    wait_until(waiter_counted);
    sleep_ns(1000000);
    weft__spin_unlock(&lock);
    return NULL;
}

static int worker_waiter(void *arg)
{
    (void)arg;
    weft_stats s0, s1;
    weft_stats_get(&s0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, holder_thread, NULL));
    while (atomic_load(&phase) != 1)
        CHECK_OK(weft_yield());
    /* From here to the lock this task cannot move: its worker's counters
     * are its own. */
    weft__worker *w = weft__self_fresh();
    uint64_t base = ctr(w, WEFT__CTR_INDEX(lock_contended));
    uint64_t wait0 = ctr(w, WEFT__CTR_INDEX(lock_wait));
    atomic_store(&waiter_base, base);
    atomic_store(&waiter_w, w);
    weft__spin_lock(&lock); /* held: the slow path, counted on entry */
    weft__spin_unlock(&lock);
    CHECK_EQ(ctr(w, WEFT__CTR_INDEX(lock_contended)), base + 1);
    CHECK(ctr(w, WEFT__CTR_INDEX(lock_wait)) > wait0);
    weft_stats_get(&s1);
    CHECK(s1.lock_contended >= s0.lock_contended + 1);
    /* The holder kept the lock >= 1 ms after it saw the waiter counted. */
    CHECK(s1.lock_wait_ns >= s0.lock_wait_ns + 500000);
    CHECK_OK(pthread_join(th, NULL));
    return 0;
}

/* ---- a waiter on a plain thread ---------------------------------------- */

static uint64_t foreign_base;
static bool foreign_counted(void)
{
    return atomic_load(&weft__lock_foreign_contended) > foreign_base;
}

static void *waiter_thread(void *arg)
{
    (void)arg;
    weft__spin_lock(&lock);
    weft__spin_unlock(&lock);
    return NULL;
}

static int foreign_waiter(void *arg)
{
    (void)arg;
    weft_stats s0, s1;
    weft_stats_get(&s0);
    weft__spin_lock(&lock); /* this task holds it: a test lock, not weft's */
    foreign_base = atomic_load(&weft__lock_foreign_contended);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, waiter_thread, NULL));
    wait_until(foreign_counted); /* blocks this worker: the other one runs on */
    sleep_ns(1000000);
    weft__spin_unlock(&lock);
    CHECK_OK(pthread_join(th, NULL));
    weft_stats_get(&s1);
    CHECK(s1.lock_contended >= s0.lock_contended + 1);
    CHECK(s1.lock_wait_ns >= s0.lock_wait_ns + 500000);
    return 0;
}

/* ---- real churn: two spawners, one nursery ----------------------------- */

#define SPAWNERS 2
static atomic_int spawners_left;

static int nop(void *arg)
{
    (void)arg;
    return 0;
}

static int spawner(void *arg)
{
    weft_nursery *n = arg;
    long count = test_scale(50000);
    int64_t dl = weft_now() + test_bound_ns(2) / 4;
    for (long i = 0; i < count && weft_now() < dl; i++)
        CHECK_OK(weft_spawn(n, nop, NULL));
    atomic_fetch_sub(&spawners_left, 1);
    return 0;
}

static void check_consistent(const weft_stats *s)
{
    /* Wait ticks are added only by an acquisition that was counted. */
    if (s->lock_contended == 0)
        CHECK_EQ(s->lock_wait_ns, 0);
}

static void check_grew(const weft_stats *a, const weft_stats *b)
{
    CHECK(b->lock_contended >= a->lock_contended);
    CHECK(b->lock_wait_ns >= a->lock_wait_ns);
    CHECK(b->stack_pool_locks >= a->stack_pool_locks);
    CHECK(b->tasks_spawned >= a->tasks_spawned);
}

static weft_stats churn_last;

static int churn(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_stats prev;
    weft_stats_get(&prev);
    check_consistent(&prev);
    atomic_store(&spawners_left, SPAWNERS);
    for (int i = 0; i < SPAWNERS; i++)
        CHECK_OK(weft_spawn(n, spawner, n));
    /* Sample while the spawners run. */
    while (atomic_load(&spawners_left) > 0) {
        weft_stats s;
        weft_stats_get(&s);
        check_consistent(&s);
        check_grew(&prev, &s);
        prev = s;
        CHECK_OK(weft_yield());
    }
    CHECK_OK(weft_nursery_close(n));
    weft_stats_get(&churn_last);
    check_consistent(&churn_last);
    check_grew(&prev, &churn_last);
    fprintf(stderr,
            "churn: %llu spawned, lock_contended %llu, lock_wait_ns %llu, "
            "stack_pool_locks %llu\n",
            (unsigned long long)churn_last.tasks_spawned,
            (unsigned long long)churn_last.lock_contended,
            (unsigned long long)churn_last.lock_wait_ns,
            (unsigned long long)churn_last.stack_pool_locks);
    return 0;
}

static void churn_case(void)
{
    CHECK_OK(test_run(2, churn, NULL));
    /* The last runtime's figures stay readable after it ended. */
    weft_stats after;
    weft_stats_get(&after);
    check_consistent(&after);
    check_grew(&churn_last, &after);
}

/* ---- the stack pool's lock --------------------------------------------- */

static weft_event release_ev;
static atomic_int nparked;

static int parked(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nparked, 1);
    return weft_event_wait(&release_ev);
}

static int pool(void *arg)
{
    (void)arg;
    /* Each parked task holds a stack: more than any worker's cache keeps,
     * so workers refill from the shared pool (starting empty, at least
     * once). */
    weft_event_init(&release_ev);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 4 * WEFT__STACK_CACHE_MAX; i++)
        CHECK_OK(weft_spawn(n, parked, NULL));
    CHECK_SOON(atomic_load(&nparked) == 4 * WEFT__STACK_CACHE_MAX);
    weft_event_set(&release_ev);
    CHECK_OK(weft_nursery_close(n));
    weft_stats s;
    weft_stats_get(&s);
    CHECK(s.stack_pool_locks >= 1);
    check_consistent(&s);
    weft_event_destroy(&release_ev);
    return 0;
}

/* ---- per-task deadlines stay per task ----------------------------------- */

/* Issue 11: with a deadline scope per request, entering and leaving one
 * must not touch the global cancel generation (every task would re-walk
 * its chain at its next cancellation point): only a cancel, a deadline
 * move or a shield change bumps it. Nothing else runs here that could. */
static int deadline_scopes(void *arg)
{
    (void)arg;
    weft__rt *rt = atomic_load(&weft__g_rt);
    uint64_t g0 = atomic_load(&rt->cancel_gen);
    for (int i = 0; i < 1000; i++) {
        weft_scope sc;
        weft_scope_enter(&sc, weft_now() + test_bound_ns(5));
        CHECK_OK(weft_yield());
        CHECK(!weft_scope_exit(&sc));
    }
    CHECK_EQ(atomic_load(&rt->cancel_gen), g0);
    return 0;
}

static void deadline_case(void) { CHECK_OK(test_run(1, deadline_scopes, NULL)); }

static void worker_case(void) { CHECK_OK(test_run(2, worker_waiter, NULL)); }
static void foreign_case(void) { CHECK_OK(test_run(2, foreign_waiter, NULL)); }
static void pool_case(void) { CHECK_OK(test_run(2, pool, NULL)); }

int main(void)
{
    test_watchdog(50);
    CASE(worker_case);
    CASE(foreign_case);
    CASE(churn_case);
    CASE(pool_case);
    CASE(deadline_case);
    return 0;
}
