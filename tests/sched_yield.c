/* Fairness: a ping-ponging pair (each wakes the other through runnext)
 * must not starve other runnable tasks, nor must a yielding crowd starve a
 * late task; weft_checkpoint yields once the budget is spent.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#define ROUNDS 20000

static weft_event *ping, *pong;
static atomic_bool pair_done;
static atomic_long side_progress, progress_during_pair;

static int pinger(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        weft_event_set(&ping[i]);
        CHECK_OK(weft_event_wait(&pong[i]));
    }
    atomic_store(&progress_during_pair, atomic_load(&side_progress));
    atomic_store(&pair_done, true);
    return 0;
}

static int ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_OK(weft_event_wait(&ping[i]));
        weft_event_set(&pong[i]);
    }
    return 0;
}

static int side(void *arg)
{
    (void)arg;
    while (!atomic_load(&pair_done)) {
        atomic_fetch_add(&side_progress, 1);
        CHECK_OK(weft_yield());
    }
    return 0;
}

static int pair_test(void *arg)
{
    (void)arg;
    ping = calloc(ROUNDS, sizeof *ping);
    pong = calloc(ROUNDS, sizeof *pong);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, side, NULL));
    CHECK_OK(weft_spawn(n, pinger, NULL));
    CHECK_OK(weft_spawn(n, ponger, NULL));
    CHECK_OK(weft_nursery_close(n));
    /* The side task ran while the pair was busy: at least once per 64 rounds. */
    CHECK(atomic_load(&progress_during_pair) >= ROUNDS / 64);
    free(ping);
    free(pong);
    return 0;
}

static atomic_bool stop_crowd;
static atomic_int late_ran;

static int crowd(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_crowd))
        CHECK_OK(weft_checkpoint()); /* no explicit yield: the budget must */
    return 0;
}

static int late(void *arg)
{
    (void)arg;
    atomic_store(&late_ran, 1);
    atomic_store(&stop_crowd, true);
    return 0;
}

static int crowd_test(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 50; i++)
        CHECK_OK(weft_spawn(n, crowd, NULL));
    CHECK_OK(weft_spawn(n, late, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&late_ran), 1);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    CHECK_OK(test_run(1, pair_test, NULL));
    CHECK_OK(test_run(1, crowd_test, NULL));
    atomic_store(&stop_crowd, false);
    atomic_store(&late_ran, 0);
    CHECK_OK(test_run(2, crowd_test, NULL));
    printf("sched_yield: ok (side task ran %ld times during %d ping-pongs)\n",
           atomic_load(&progress_during_pair), ROUNDS);
    return 0;
}
