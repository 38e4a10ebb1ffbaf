/* weft_blocking: other tasks keep running while fn blocks (on one worker:
 * the worker is handed to another thread); a caller already cancelled
 * gets -ECANCELED and fn never runs; once started the call waits for fn;
 * inside fn weft_in_task() is false and weft_cancelled() reports the
 * waiting task.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>
#include <time.h>

static atomic_long ticks;
static atomic_bool stop_ticker;
static weft_event ticked; /* set by the ticker after 20 ticks */

static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticker)) {
        if (atomic_fetch_add(&ticks, 1) + 1 == 20)
            weft_event_set(&ticked);
        CHECK_OK(weft_sleep(100000));
    }
    return 0;
}

/* Blocks its thread until the ticker, a task on the only worker, has
 * ticked 20 times: it can only do so if the worker's queue moves to
 * another thread meanwhile. */
static int block_until_ticked(void *arg)
{
    CHECK(!weft_in_task());
    int r = weft_event_wait_until(&ticked, weft_now() + PROMPT_NS);
    if (r != 0) {
        fprintf(stderr, "the ticker did not tick while fn blocked: %d\n", r);
        return -EIO;
    }
    return (int)(intptr_t)arg;
}

static int keeps_workers_free(void *arg)
{
    (void)arg;
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticker, false);
    weft_event_init(&ticked);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    /* One worker: the ticker runs (and its timers fire) while fn blocks
     * this thread: the worker moved to another one. */
    CHECK_EQ(weft_blocking(block_until_ticked, (void *)(intptr_t)-42), -42);
    CHECK(atomic_load(&ticks) >= 20);
    atomic_store(&stop_ticker, true);
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&ticked);
    return 0;
}

static int long_caller(void *arg)
{
    CHECK_EQ(weft_blocking(block_until_ticked, arg), (int)(intptr_t)arg);
    return 0;
}

/* Every worker in a long call at once (2 workers, 2 callers): the ticker
 * still runs, on a thread the hand-off adds. */
static int all_workers_in_calls(void *arg)
{
    (void)arg;
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticker, false);
    weft_event_init(&ticked);
    weft_nursery *n, *callers;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    CHECK_OK(weft_nursery_open(&callers));
    CHECK_OK(weft_spawn(callers, long_caller, (void *)(intptr_t)3));
    CHECK_OK(weft_spawn(callers, long_caller, (void *)(intptr_t)3));
    CHECK_OK(weft_nursery_close(callers));
    CHECK(atomic_load(&ticks) >= 20);
    atomic_store(&stop_ticker, true);
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&ticked);
    return 0;
}

/* Hand-offs in a row, 1 worker: each round queues a child behind a call
 * that lasts until the child has run, then sleeps (so the monitor naps and
 * the next call asks a spare to watch it, blocking.c). Conservation: every
 * child runs exactly once, inside its own call; liveness: no call waits
 * out its 10 s bound. The rounds alternate the threads that drive the
 * worker, the spares that watch and the monitor's own hand-offs. */
#define HANDOFF_ROUNDS 200
static atomic_int child_runs, calls_seen_child;

static int handoff_child(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    atomic_fetch_add(&child_runs, 1);
    return 0;
}

static int wait_for_child(void *arg)
{
    int64_t give_up = weft_now() + 10 * (int64_t)1000000000;
    while (!atomic_load((atomic_int *)arg) && weft_now() < give_up) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load((atomic_int *)arg))
        atomic_fetch_add(&calls_seen_child, 1);
    return 0;
}

static int handoffs_in_a_row(void *arg)
{
    (void)arg;
    atomic_store(&child_runs, 0);
    atomic_store(&calls_seen_child, 0);
    for (int i = 0; i < HANDOFF_ROUNDS; i++) {
        atomic_int ran = 0;
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, handoff_child, &ran));
        CHECK_OK(weft_blocking(wait_for_child, &ran));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&ran), 1);
        CHECK_OK(weft_sleep((i % 4) * 1000000)); /* 0-3 ms: naps of every length */
    }
    CHECK_EQ(atomic_load(&child_runs), HANDOFF_ROUNDS);
    CHECK_EQ(atomic_load(&calls_seen_child), HANDOFF_ROUNDS);
    return 0;
}

/* A pinned task's worker is never handed off: its call runs on its own
 * thread, it resumes there, and the task queued behind it on its only
 * worker waits for the call (API.md). */
static atomic_int behind_ran, behind_ran_during_call;
static atomic_bool in_pinned_call;
static pthread_t fn_thread;

static int behind(void *arg)
{
    (void)arg;
    if (atomic_load(&in_pinned_call))
        atomic_store(&behind_ran_during_call, 1);
    atomic_store(&behind_ran, 1);
    return 0;
}

static int pinned_body(void *arg)
{
    (void)arg;
    fn_thread = pthread_self();
    atomic_store(&in_pinned_call, true);
    /* Long enough for the monitor to look many times. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&in_pinned_call, false);
    return 0;
}

static int pinned_caller(void *arg)
{
    (void)arg;
    weft_pin();
    pthread_t before = pthread_self();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, behind, NULL));
    CHECK_OK(weft_blocking(pinned_body, NULL));
    CHECK(pthread_equal(before, fn_thread));
    CHECK(pthread_equal(before, pthread_self()));
    CHECK_OK(weft_nursery_close(n));
    weft_unpin();
    CHECK_EQ(atomic_load(&behind_ran), 1);
    CHECK_EQ(atomic_load(&behind_ran_during_call), 0);
    return 0;
}

static atomic_int ran;
static weft_event first_started = WEFT_EVENT_INIT;
static weft_event release_first = WEFT_EVENT_INIT;

static int first_job(void *arg)
{
    (void)arg;
    weft_event_set(&first_started);
    /* A plain thread waiting on an event set by a task. */
    CHECK_OK(weft_event_wait(&release_first));
    return 7;
}

static int second_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static int holder(void *arg)
{
    *(int *)arg = weft_blocking(first_job, NULL);
    return 0;
}

/* Called with its scope's deadline already passed: fn never runs. */
static int already_cancelled(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, weft_now() - 1);
    *res = weft_blocking(second_job, NULL);
    CHECK(weft_scope_exit(&sc));
    return 0;
}

static weft_event checker_started = WEFT_EVENT_INIT;
static weft_event deadline_set = WEFT_EVENT_INIT;
static weft_scope *_Atomic waiting_scope;

static int slow_checker(void *arg)
{
    (void)arg;
    CHECK(!weft_cancelled());
    weft_event_set(&checker_started);
    /* Runs until the waiting task is cancelled, then reports it. */
    int64_t give_up = weft_now() + PROMPT_NS;
    while (!weft_cancelled() && weft_now() < give_up) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return weft_cancelled() ? 1 : 0;
}

static int started_waits(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, WEFT_FOREVER);
    atomic_store(&waiting_scope, &sc);
    *res = weft_blocking(slow_checker, NULL);
    /* Keep sc entered until the other task is done with it (shielded: we
     * are cancelled). */
    weft_scope sh;
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_shield(&sh, true);
    CHECK_OK(weft_event_wait(&deadline_set));
    CHECK(!weft_scope_exit(&sh));
    CHECK(weft_scope_exit(&sc));
    return 0;
}

/* Gives the waiting task's scope a deadline once fn has started (a deadline
 * set earlier could pass while the job is still queued: then fn would
 * never run). */
static int deadline_once_started(void *arg)
{
    (void)arg;
    CHECK_OK(weft_event_wait(&checker_started));
    weft_scope_set_deadline(atomic_load(&waiting_scope), weft_now() + test_ms(20));
    weft_event_set(&deadline_set);
    return 0;
}

static int cancellation(void *arg)
{
    (void)arg;
    int r1 = -1, r2 = -1, r3 = -1;
    weft_nursery *n, *m;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, holder, &r1));
    CHECK_OK(weft_event_wait(&first_started)); /* first_job holds its thread */
    /* A call made with the caller already cancelled: fn never runs. */
    CHECK_OK(weft_nursery_open(&m));
    CHECK_OK(weft_spawn(m, already_cancelled, &r2));
    CHECK_OK(weft_nursery_close(m));
    CHECK_EQ(r2, -ECANCELED);
    weft_event_set(&release_first);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r1, 7);
    CHECK_EQ(atomic_load(&ran), 0); /* the cancelled call's fn never ran */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, started_waits, &r3));
    CHECK_OK(weft_spawn(n, deadline_once_started, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r3, 1); /* fn saw the cancel and the call waited for it */
    return 0;
}

static int inline_fn(void *arg) { return *(int *)arg; }

int main(void)
{
    test_watchdog(50);
    int v = 5;
    CHECK_EQ(weft_blocking(inline_fn, &v), 5); /* outside a task: inline */
    CHECK_EQ(weft_blocking(NULL, NULL), -EINVAL);
    CHECK_OK(test_run(1, keeps_workers_free, NULL));
    CHECK_OK(test_run(2, all_workers_in_calls, NULL));
    CHECK_OK(test_run(1, handoffs_in_a_row, NULL));
    CHECK_OK(test_run(1, pinned_caller, NULL));
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.blocking_threads = 1;
    CHECK_OK(weft_run(&cfg, cancellation, NULL));
    printf("sched_blocking: ok\n");
    return 0;
}
