/* The cooperative budget: on one worker, a task that ticks every 1 ms gets
 * its ticks next to a loop that never parks (uncontended lock/unlock, or a
 * send and receive on its own buffered channel, or waits on a set event).
 * Liveness only: the ticks happen at all, within a generous bound; no
 * speed is asserted.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#define TICKS 20

static atomic_int ticks_done;
static atomic_int hog_kind;

static int ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < TICKS; i++)
        CHECK_OK(weft_sleep(test_ms(1)));
    atomic_store(&ticks_done, 1);
    return 0;
}

/* Loops over always-ready operations until the ticker is done; fails if
 * the bound passes first (the ticker starved). */
static int hog(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_event ev = WEFT_EVENT_INIT;
    weft_event_set(&ev);
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(int), 4));
    int64_t give_up = weft_now() + test_bound_ns(20);
    long rounds = 0;
    int kind = atomic_load(&hog_kind);
    while (!atomic_load(&ticks_done)) {
        if (kind == 0) {
            CHECK_OK(weft_mutex_lock(&m));
            weft_mutex_unlock(&m);
        } else if (kind == 1) {
            int v = (int)rounds, r;
            CHECK_OK(weft_chan_send(c, &v));
            CHECK_OK(weft_chan_recv(c, &r));
            CHECK_EQ(r, v);
        } else {
            CHECK_OK(weft_event_wait(&ev));
        }
        /* The clock only now and then: the loop itself must stay hot. */
        if ((++rounds & 1023) == 0 && weft_now() > give_up)
            break;
    }
    weft_chan_free(c);
    CHECK(atomic_load(&ticks_done));
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    atomic_store(&ticks_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    CHECK_OK(weft_spawn(n, hog, NULL));
    return weft_nursery_close(n);
}

int main(void)
{
    test_watchdog(50);
    for (int kind = 0; kind < 3; kind++) {
        fprintf(stderr, "-- hog kind %d\n", kind);
        atomic_store(&hog_kind, kind);
        CHECK_OK(test_run(1, root, NULL));
    }
    /* A bad value is a clear error. */
    setenv("WEFT_COOP_BUDGET", "lots", 1);
    CHECK_EQ(test_run(1, root, NULL), -EINVAL);
    unsetenv("WEFT_COOP_BUDGET");
    return 0;
}
