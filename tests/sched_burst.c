/* A burst's memory is given back: 200,000 tasks parked at once, then
 * released and joined. Once the burst is over, the stacks beyond the
 * workers' caches go back to the OS (about a second after they fall idle),
 * so RSS returns to at most 64 MiB + peak tasks x 640 bytes (the control
 * blocks stay mapped) above the figure before the burst. Liveness: the
 * bound must hold within a generous 20 s (the promise, 2 s, is measured by
 * bench/run's burst row). Conservation: every task parks once and is woken
 * once. The RSS bound is asserted in Release only; sanitizer builds scale
 * the burst down and check the rest.
 * TIMEOUT: 120
 * LABELS: stress
 */
#include "test.h"

static atomic_long parked, woken;
static weft_event go = WEFT_EVENT_INIT;
static long want;

static int waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
    CHECK_OK(weft_event_wait(&go));
    atomic_fetch_add_explicit(&woken, 1, memory_order_relaxed);
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    long before = test_rss_bytes();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (long i = 0; i < want; i++)
        CHECK_OK(weft_spawn(n, waiter, NULL));
    while (atomic_load(&parked) < want)
        CHECK_OK(weft_sleep(test_ms(1)));
    long peak = test_rss_bytes();
    weft_event_set(&go);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&woken), want);

    long bound = before + 64L * 1024 * 1024 + want * 640;
    int64_t t0 = weft_now();
    long now_rss = test_rss_bytes();
    while (now_rss > bound && weft_now() - t0 < 20LL * 1000000000) {
        CHECK_OK(weft_sleep(100 * 1000000));
        now_rss = test_rss_bytes();
    }
    weft_stats st;
    weft_stats_get(&st);
    printf("sched_burst: %ld tasks; RSS %ld MiB before, %ld MiB at the peak, %ld MiB %.1f s "
           "after the join (bound %ld MiB); %llu stacks returned\n",
           want, before >> 20, peak >> 20, now_rss >> 20, (double)(weft_now() - t0) / 1e9,
           bound >> 20, (unsigned long long)st.stacks_returned);
    CHECK(st.stacks_returned > 0);
    if (!test_sanitized())
        CHECK(now_rss <= bound);
    return 0;
}

int main(void)
{
    test_watchdog(110);
    want = test_scale(200000);
    if (test_sanitized() && want > 20000)
        want = 20000; /* each TSan fiber maps its own shadow stack */
    CHECK_OK(test_run(2, root, NULL));
    return 0;
}
