/* weft_blocking: workers stay free while fn blocks; a cancel while fn is
 * queued means fn never runs; once started the call waits for fn; inside fn
 * weft_in_task() is false and weft_cancelled() reports the waiting task.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <time.h>

static atomic_long ticks;
static atomic_bool stop_ticker;

static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticker)) {
        atomic_fetch_add(&ticks, 1);
        CHECK_OK(weft_sleep(100000));
    }
    return 0;
}

static int block_200ms(void *arg)
{
    CHECK(!weft_in_task());
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return (int)(intptr_t)arg;
}

static int keeps_workers_free(void *arg)
{
    (void)arg;
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticker, false);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    CHECK_OK(weft_sleep(test_ms(5)));
    long before = atomic_load(&ticks);
    CHECK_EQ(weft_blocking(block_200ms, (void *)(intptr_t)-42), -42);
    long during = atomic_load(&ticks) - before;
    atomic_store(&stop_ticker, true);
    CHECK_OK(weft_nursery_close(n));
    /* One worker: the ticker ran while fn blocked a pool thread. */
    CHECK(during >= 20);
    return 0;
}

static atomic_int ran;
static weft_event release_first = WEFT_EVENT_INIT;

static int first_job(void *arg)
{
    (void)arg;
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

static int queued_then_cancelled(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, weft_now() + test_ms(30));
    *res = weft_blocking(second_job, NULL);
    CHECK(weft_scope_exit(&sc));
    return 0;
}

static int slow_checker(void *arg)
{
    (void)arg;
    /* Runs until the waiting task is cancelled, then reports it. */
    for (int i = 0; i < 5000 && !weft_cancelled(); i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return weft_cancelled() ? 1 : 0;
}

static int started_waits(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, weft_now() + test_ms(20));
    CHECK(!weft_cancelled());
    *res = weft_blocking(slow_checker, NULL);
    weft_scope_exit(&sc);
    return 0;
}

static int cancellation(void *arg)
{
    (void)arg;
    int r1 = -1, r2 = -1, r3 = -1;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, holder, &r1));
    CHECK_OK(weft_sleep(test_ms(10))); /* first_job now occupies the only thread */
    CHECK_OK(weft_spawn(n, queued_then_cancelled, &r2));
    CHECK_OK(weft_sleep(test_ms(80)));
    CHECK_EQ(r2, -ECANCELED);
    weft_event_set(&release_first);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r1, 7);
    CHECK_EQ(atomic_load(&ran), 0); /* the cancelled job never ran */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, started_waits, &r3));
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
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.blocking_threads = 1;
    CHECK_OK(weft_run(&cfg, cancellation, NULL));
    printf("sched_blocking: ok\n");
    return 0;
}
