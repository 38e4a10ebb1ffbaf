/* The deadline watch stays bounded by what is alive. A keep-alive: a
 * long-lived nursery whose deadline is extended again and again while its
 * child is parked with no timer of its own (an event wait), so the monitor
 * must watch the deadline for it. 200,000 extensions must not grow memory
 * (before: one watch entry per extension, never deduplicated: +16 bytes
 * each, and a rescan of all of them on every call). The deadline still
 * works: once extensions stop, it fires and the parked child is cancelled.
 * Conservation: the child is cancelled exactly once, by the deadline.
 * LABELS: unit
 */
#include "test.h"

static weft_event never;
static atomic_int cancelled;

static int parked_child(void *arg)
{
    (void)arg;
    int rc = weft_event_wait(&never);
    CHECK_EQ(rc, -ECANCELED);
    atomic_fetch_add(&cancelled, 1);
    return rc;
}

static int root(void *arg)
{
    long rounds = *(long *)arg;
    weft_event_init(&never);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, parked_child, NULL));
    CHECK_OK(weft_sleep(test_ms(10)));
    long before = 0;
    for (long i = 0; i < rounds; i++) {
        if (i == rounds / 10)
            before = test_rss_bytes(); /* after warm-up */
        weft_nursery_set_deadline(n, weft_now() + 10LL * 1000000000);
        if (i % 1024 == 0)
            CHECK_OK(weft_yield());
    }
    long grown = test_rss_bytes() - before;
    printf("structured_watch: %ld extensions, RSS grew %ld KiB\n", rounds, grown / 1024);
    if (!test_sanitized())
        CHECK(grown < 1024 * 1024);
    CHECK_EQ(atomic_load(&cancelled), 0);
    /* Stop extending: the deadline fires and reaches the parked child. */
    weft_nursery_set_deadline(n, weft_now() + test_ms(20));
    CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&cancelled), 1);
    return 0;
}

int main(void)
{
    test_watchdog(100);
    long rounds = test_scale(200000);
    CHECK_OK(test_run(2, root, &rounds));
    return 0;
}
