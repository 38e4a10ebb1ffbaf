/* weft_task_started moves a task from its starter's scopes to its
 * nursery's; the tasks below it must follow at once.
 *  1. Stale verdicts: the starter is inside a scope with a short deadline
 *     when it starts a child; the child opens a nursery with a grandchild
 *     that sleeps in a loop, then calls weft_task_started; the starter
 *     leaves its scope. Nothing on the grandchild's chain has a deadline
 *     any more: it must never see -ECANCELED (before the fix it did, at the
 *     old deadline, and wrote into the starter's dead scope frame: ASan
 *     reported stack-use-after-return). 1 and 4 workers.
 *  2. No gap for a cancel: with a delay injected inside weft_task_started
 *     (WEFT_TEST_DELAY, standing in for a preemption), a plain thread
 *     cancels the target nursery meanwhile. The grandchild must see the
 *     cancel (before the fix, the task and its subtree were on no list: the
 *     cancel was lost until a false deadlock report, -EDEADLK).
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>

static weft_event stop;
static atomic_int grand_cancelled, grand_loops, about_to_start;
static weft_nursery *target;

static int grandchild(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = weft_sleep(test_ms(5));
        if (rc == -ECANCELED) {
            atomic_fetch_add(&grand_cancelled, 1);
            return rc;
        }
        CHECK_OK(rc);
        atomic_fetch_add(&grand_loops, 1);
        if (weft_event_is_set(&stop))
            return 0;
    }
}

static int started_child(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, grandchild, NULL));
    CHECK_OK(weft_sleep(test_ms(1)));
    atomic_store(&about_to_start, 1);
    weft_task_started();
    int rc = weft_nursery_close(n);
    return rc;
}

/* Case 1: the scope with the deadline is a frame of this function. */
__attribute__((noinline)) static void start_under_deadline(weft_nursery *n)
{
    weft_scope s;
    weft_scope_enter(&s, weft_now() + test_ms(100));
    CHECK_OK(weft_nursery_start(n, started_child, NULL));
    CHECK(!weft_scope_exit(&s));
}

static int case_stale(void *arg)
{
    (void)arg;
    weft_event_init(&stop);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    start_under_deadline(n);
    /* Well past the old deadline, with stack churn over the dead frame. */
    volatile char scrub[4096];
    memset((char *)scrub, 0xEE, sizeof scrub);
    CHECK_OK(weft_sleep(test_ms(400)));
    weft_event_set(&stop);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&grand_cancelled), 0);
    CHECK(atomic_load(&grand_loops) > 0);
    return 0;
}

static void *canceller(void *arg)
{
    (void)arg;
    while (!atomic_load(&about_to_start))
        usleep(100);
    usleep(20000); /* inside the injected 100 ms delay */
    weft_nursery_cancel(target);
    return NULL;
}

static int case_gap(void *arg)
{
    (void)arg;
    weft_event_init(&stop);
    CHECK_OK(weft_nursery_open(&target));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, canceller, NULL));
    CHECK_OK(weft_nursery_start(target, started_child, NULL));
    int rc = weft_nursery_close(target);
    CHECK_OK(pthread_join(th, NULL));
    CHECK_OK(rc); /* a deliberate cancel is success */
    CHECK_EQ(atomic_load(&grand_cancelled), 1);
    return 0;
}

int main(void)
{
    test_watchdog(100);
    for (unsigned w = 1; w <= 4; w *= 4) {
        atomic_store(&grand_cancelled, 0);
        atomic_store(&grand_loops, 0);
        CHECK_OK(test_run(w, case_stale, NULL));
    }
    setenv("WEFT_TEST_DELAY", "task_started=100000", 1);
    for (unsigned w = 1; w <= 2; w++) {
        atomic_store(&grand_cancelled, 0);
        atomic_store(&about_to_start, 0);
        int rc = test_run(w, case_gap, NULL);
        CHECK(rc != -EDEADLK);
        CHECK_OK(rc);
    }
    unsetenv("WEFT_TEST_DELAY");
    printf("structured_start_relink: ok\n");
    return 0;
}
