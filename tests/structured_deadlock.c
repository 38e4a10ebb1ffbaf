/* Deadlock detection: all tasks asleep in waits only another task could end
 * is reported within about a second, the root is cancelled so the tasks
 * unwind, and weft_run returns -EDEADLK. Sleeping tasks (a pending timer)
 * and a plain thread that could still act are not deadlocks.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>

static weft_event never = WEFT_EVENT_INIT;
static atomic_int unwound;

static int stuck(void *arg)
{
    (void)arg;
    int rc = weft_event_wait(&never);
    if (rc == -ECANCELED)
        atomic_fetch_add(&unwound, 1);
    return rc;
}

static int all_stuck(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 10; i++)
        CHECK_OK(weft_spawn(n, stuck, NULL));
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(int), 0));
    int v;
    int rc = weft_chan_recv(c, &v); /* nobody will ever send */
    CHECK_EQ(rc, -ECANCELED);
    weft_nursery_close(n);
    weft_chan_free(c);
    return rc;
}

static int sleeper(void *arg)
{
    (void)arg;
    /* 1.5 s of sleeping: a timer is pending, so this is no deadlock. */
    return weft_sleep(test_ms(1500));
}

static weft_event from_thread = WEFT_EVENT_INIT;

static void *late_setter(void *arg)
{
    (void)arg;
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    weft_event_set(&from_thread);
    return NULL;
}

static int waits_for_thread(void *arg)
{
    (void)arg;
    /* A running foreign thread could still set the event: no deadlock. */
    return weft_event_wait(&from_thread);
}

int main(void)
{
    test_watchdog(50);
    int64_t t0 = weft_now();
    CHECK_EQ(test_run(2, all_stuck, NULL), -EDEADLK);
    int64_t took = weft_now() - t0;
    CHECK_EQ(atomic_load(&unwound), 10);
    CHECK(took < PROMPT_NS); /* liveness: reported at all, not how fast */
    CHECK_OK(test_run(2, sleeper, NULL));
    pthread_t th;
    pthread_create(&th, NULL, late_setter, NULL);
    CHECK_OK(test_run(1, waits_for_thread, NULL));
    pthread_join(th, NULL);
    printf("structured_deadlock: ok (reported after %.0f ms)\n", took / 1e6);
    return 0;
}
