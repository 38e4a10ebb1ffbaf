/* Timers: sleeps never return early; on one worker, sleepers with distinct
 * deadlines wake in deadline order; a cancelled sleep returns promptly;
 * weft_sleep outside a task sleeps the thread.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#define N 400

typedef struct {
    int64_t deadline;
    int64_t woke;
    int order;
} sleeper;

static sleeper s[N];
static atomic_int next_order;

static weft_event go;

static int sleeper_fn(void *arg)
{
    sleeper *me = arg;
    CHECK_OK(weft_event_wait(&go));
    CHECK_OK(weft_sleep_until(me->deadline));
    me->woke = weft_now();
    me->order = atomic_fetch_add(&next_order, 1);
    return 0;
}

static int order_test(void *arg)
{
    (void)arg;
    atomic_store(&next_order, 0);
    weft_event_init(&go);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    /* Spawned in a shuffled order; deadlines 50 us apart, set once all are
     * spawned and far enough out that every sleeper parks before the first. */
    for (int i = 0; i < N; i++)
        CHECK_OK(weft_spawn(n, sleeper_fn, &s[(i * 7919) % N]));
    int64_t base = weft_now() + test_ms(test_sanitized() ? 200 : 20);
    for (int k = 0; k < N; k++)
        s[k].deadline = base + (int64_t)k * 50000;
    weft_event_set(&go);
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < N; i++) {
        CHECK(s[i].woke >= s[i].deadline); /* never early */
        CHECK_EQ(s[i].order, i);           /* in deadline order (one worker) */
    }
    return 0;
}

static int never_early(void *arg)
{
    (void)arg;
    weft_event_init(&go);
    weft_event_set(&go);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    int64_t now = weft_now();
    for (int i = 0; i < N; i++) {
        s[i].deadline = now + (int64_t)((i * 104729) % 3000) * 1000;
        CHECK_OK(weft_spawn(n, sleeper_fn, &s[i]));
    }
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < N; i++)
        CHECK(s[i].woke >= s[i].deadline);
    /* A relative sleep, and sleeps of zero or less (still yields). */
    int64_t t0 = weft_now();
    CHECK_OK(weft_sleep(test_ms(5)));
    CHECK(weft_now() - t0 >= test_ms(5));
    CHECK_OK(weft_sleep(0));
    CHECK_OK(weft_sleep(-5));
    CHECK_OK(weft_sleep_until(0));
    return 0;
}

static int long_sleeper(void *arg)
{
    int *res = arg;
    *res = weft_sleep(60LL * 1000000000);
    return *res == -ECANCELED ? -ECANCELED : -EIO;
}

static int cancel_sleep(void *arg)
{
    (void)arg;
    int res = 1;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, long_sleeper, &res));
    CHECK_OK(weft_sleep(test_ms(10)));
    int64_t t0 = weft_now();
    weft_nursery_cancel(n);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(res, -ECANCELED);
    CHECK(weft_now() - t0 < test_ms(2000));
    weft_stats st;
    weft_stats_get(&st);
    CHECK(st.timers_fired > 0);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    int64_t t0 = weft_now();
    CHECK_OK(weft_sleep(test_ms(2))); /* outside a task: sleeps the thread */
    CHECK(weft_now() - t0 >= test_ms(2));
    CHECK_OK(test_run(1, order_test, NULL));
    for (unsigned w = 1; w <= 4; w *= 2)
        CHECK_OK(test_run(w, never_early, NULL));
    CHECK_OK(test_run(2, cancel_sleep, NULL));
    printf("sched_timer: ok\n");
    return 0;
}
