/* weft_blocking when no pool thread can be created (forced through
 * WEFT_TEST_FAIL_THREADS): the call returns -EAGAIN, fn never runs, the
 * calling task goes on exactly once, and cancels racing with the call are
 * honoured (the task later parks and wakes normally: a stray hand-off from
 * a cancel that claimed a wait the call retired itself would have made a
 * later wait return early or run the task twice). Conservation: every
 * call returns -EAGAIN or -ECANCELED, fn ran 0 times, every later sleep
 * lasted its full time.
 * LABELS: unit
 */
#include "test.h"

static atomic_long fn_runs, calls_done, sleeps_ok;

static int never_runs(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fn_runs, 1);
    return 0;
}

static int caller(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        int rc = weft_blocking(never_runs, NULL);
        CHECK(rc == -EAGAIN || rc == -ECANCELED);
        atomic_fetch_add(&calls_done, 1);
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
    /* And without a cancel: every call fails cleanly. */
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
    CHECK_EQ(atomic_load(&fn_runs), 0);
    CHECK(atomic_load(&calls_done) > 0);
    printf("sched_blocking_nothread: %ld calls, %ld full sleeps after them, fn ran 0 times\n",
           atomic_load(&calls_done), atomic_load(&sleeps_ok));
    return 0;
}
