/* weft_blocking when no thread can be created for a worker hand-off
 * (forced through WEFT_TEST_FAIL_THREADS): calls still run, on the
 * caller's worker thread; a long one just holds its worker's queue until
 * it returns (on 1 worker: everything waits, and still completes). The
 * calling task goes on exactly once, cancels racing with the calls are
 * honoured, and the task later parks and wakes normally (no stray wake
 * makes a later wait return early). Conservation: every call returns 0
 * (fn ran, once) or -ECANCELED (fn did not run); every later sleep lasted
 * its full time.
 * LABELS: unit
 */
#include "test.h"

#include <time.h>

static atomic_long fn_runs, calls_ok, calls_done, sleeps_ok;

/* Long enough, now and then, for the monitor to try a hand-off. */
static int body(void *arg)
{
    long i = *(long *)arg;
    atomic_fetch_add(&fn_runs, 1);
    if (i % 50 == 0) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int caller(void *arg)
{
    (void)arg;
    for (long i = 0; i < 200; i++) {
        int rc = weft_blocking(body, &i);
        CHECK(rc == 0 || rc == -ECANCELED);
        atomic_fetch_add(&calls_done, 1);
        if (rc == 0)
            atomic_fetch_add(&calls_ok, 1);
        if (rc == -ECANCELED)
            return rc;
        /* A later wait must last: no stray wake from an earlier one. */
        int64_t t0 = weft_now();
        rc = weft_sleep(20000);
        if (rc == -ECANCELED)
            return rc;
        CHECK_OK(rc);
        CHECK(weft_now() - t0 >= 20000);
        atomic_fetch_add(&sleeps_ok, 1);
    }
    return 0;
}

static int round_fn(void *arg)
{
    long *cancels = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, caller, NULL));
    /* Cancel while the callers are mid-way. */
    if ((*cancels)++ % 2)
        CHECK_OK(weft_yield());
    weft_nursery_cancel(n);
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    long cancels = 0;
    for (int r = 0; r < 50; r++)
        CHECK_OK(round_fn(&cancels));
    /* And without a cancel: every call runs. */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, caller, NULL));
    return weft_nursery_close(n);
}

int main(void)
{
    test_watchdog(100);
    setenv("WEFT_TEST_FAIL_THREADS", "1", 1);
    for (unsigned w = 1; w <= 2; w++)
        CHECK_OK(test_run(w, root, NULL));
    unsetenv("WEFT_TEST_FAIL_THREADS");
    CHECK_EQ(atomic_load(&fn_runs), atomic_load(&calls_ok));
    CHECK(atomic_load(&calls_done) > 0);
    printf("sched_blocking_nothread: %ld calls (%ld ran fn), %ld full sleeps after them\n",
           atomic_load(&calls_done), atomic_load(&calls_ok), atomic_load(&sleeps_ok));
    return 0;
}
