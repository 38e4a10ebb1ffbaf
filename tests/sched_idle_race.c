/* Idle parking under an injected stall: WEFT_TEST_DELAY stalls wake_idle
 * between claiming a parked worker and unparking it (a preemption there),
 * while timers are re-aimed (which nudges parked workers awake on their
 * own) and a plain OS thread keeps readying a task through the inject
 * queue. Before the fix a worker nudged in that window missed that it had
 * been made the spinner: nspinning leaked at 1, no worker would steal or be
 * woken again, and the plain thread's next hand-off sat in the inject
 * queue forever (the watchdog fires). Conservation: every release by the
 * plain thread is acquired by the task exactly once, and every answer
 * comes back.
 * TIMEOUT: 120
 * LABELS: stress
 */
#include "test.h"

#include <pthread.h>

static weft_sem ping, pong;
static long rounds;
static atomic_long got;
static atomic_int done;

static void *plain_thread(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        weft_sem_release(&ping);
        CHECK_OK(weft_sem_acquire(&pong)); /* blocks this thread */
        if (i % 16 == 0)
            usleep(300); /* let the workers go idle */
    }
    return NULL;
}

static int answerer(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        CHECK_OK(weft_sem_acquire(&ping));
        atomic_fetch_add(&got, 1);
        weft_sem_release(&pong);
    }
    atomic_store(&done, 1);
    return 0;
}

static int sleeper(void *arg)
{
    (void)arg;
    int rc = weft_sleep(test_ms(50));
    return rc;
}

/* Re-aims parked sleepers' timers by moving a scope's deadline back and
 * forth, and sleeps in short steps: timers fire and parked workers get
 * nudged all the time. */
static int retargeter(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        for (int k = 0; k < 4; k++)
            CHECK_OK(weft_spawn(n, sleeper, NULL));
        for (int k = 0; k < 4; k++) {
            weft_nursery_set_deadline(n, weft_now() + test_ms(20 + k));
            int rc = weft_sleep(200 * 1000); /* inside n: its deadline may pass */
            CHECK(rc == 0 || rc == -ECANCELED);
        }
        weft_nursery_set_deadline(n, weft_now());
        int rc = weft_nursery_close(n);
        CHECK(rc == 0 || rc == -ETIMEDOUT);
    }
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    weft_sem_init(&ping, 0);
    weft_sem_init(&pong, 0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, plain_thread, NULL));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, answerer, NULL));
    CHECK_OK(weft_spawn(n, retargeter, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(pthread_join(th, NULL));
    return 0;
}

int main(void)
{
    test_watchdog(110);
    rounds = test_scale(3000);
    setenv("WEFT_TEST_DELAY", "wake_idle=200", 1);
    for (unsigned w = 2; w <= 3; w++) {
        atomic_store(&got, 0);
        atomic_store(&done, 0);
        CHECK_OK(test_run(w, root, NULL));
        CHECK_EQ(atomic_load(&got), rounds);
    }
    printf("sched_idle_race: ok (%ld round trips, 2 and 3 workers)\n", rounds);
    return 0;
}
