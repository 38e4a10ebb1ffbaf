/* Select fairness and a quit's liveness (issue 8): three producer tasks
 * each send on their own channel as fast as they can (always ready), a
 * consumer loops on weft_select over the three channels plus a quit
 * channel, and a fourth task sleeps ~200 ms (weft_sleep_until) and then
 * sends on quit.
 *  - 1 worker (weft_config.workers = 1), unbuffered and buffered channels:
 *    every producer is received from, each one's share of the receives
 *    before the quit is within [0.25, 0.42] (the bound: a fairness
 *    property of the scheduler and select, not a speed), over at least
 *    MIN_TOTAL receives (fewer would make the shares meaningless: the quit
 *    task sleeps on until there were that many). In a sanitizer build the
 *    bound is [0.10, 0.70], no producer starved: there the order in which
 *    the producers run, and so which channels are ready at each select,
 *    follows how fast the instrumented code runs (a fresh clone's tsan-full
 *    pass on a loaded machine saw 0.389 / 0.377 / 0.234 with capacity 8,
 *    at 17,683 receives where an idle run makes 60,000-120,000), and a
 *    test may not assert an order that depends on speed. The Release
 *    suite, and bench/select_fair's rows, hold the bound;
 *  - the quit arrives, within a liveness bound of its send (1 s, stretched
 *    for sanitizers: the 2 ms figure of the issue is measured by
 *    bench/select_fair, rows select_quit_delay_*_1w);
 *  - 2 workers: liveness and conservation only.
 * Conservation, every case: each value a producer's send returned 0 for is
 * received exactly once, in order (per channel); after the quit the
 * consumer closes the channels (the producers' sends return -EPIPE) and
 * drains what is buffered.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

enum { NPROD = 3 };
#define MIN_TOTAL 500
#define SHARE_LO 0.25
#define SHARE_HI 0.42
#define SHARE_LO_SANITIZED 0.10
#define SHARE_HI_SANITIZED 0.70
#define QUIT_AFTER_NS test_ms(200)

typedef struct fair fair;

typedef struct {
    fair *f;
    int i;
} producer_arg;

struct fair {
    size_t cap;
    weft_chan *ch[NPROD], *quit;
    producer_arg pa[NPROD];
    atomic_long sent[NPROD]; /* sends that returned 0 */
    atomic_long got[NPROD];  /* received before the quit */
    atomic_long total;       /* their sum, read by the quit task */
    long drained[NPROD];     /* received after the quit (buffered items) */
    long first_part_total;
    int64_t sleep_deadline, woke_at, quit_sent_at, quit_got_at;
    weft_event quit_received;
};

static int producer(void *arg)
{
    producer_arg *pa = arg;
    fair *f = pa->f;
    for (long seq = 0;; seq++) {
        long v = seq;
        int rc = weft_chan_send(f->ch[pa->i], &v);
        if (rc == -EPIPE)
            return 0; /* the consumer closed the channel after the quit */
        CHECK_OK(rc);
        atomic_fetch_add_explicit(&f->sent[pa->i], 1, memory_order_relaxed);
    }
}

static int quitter(void *arg)
{
    fair *f = arg;
    f->sleep_deadline = weft_now() + QUIT_AFTER_NS;
    CHECK_OK(weft_sleep_until(f->sleep_deadline));
    f->woke_at = weft_now();
    /* Too few receives for the shares to mean anything (a machine so
     * loaded that the run hardly ran): sleep on until there are enough. */
    int64_t give_up = weft_now() + PROMPT_NS;
    while (atomic_load_explicit(&f->total, memory_order_relaxed) < MIN_TOTAL &&
           weft_now() < give_up)
        CHECK_OK(weft_sleep(test_ms(10)));
    long q = 1;
    f->quit_sent_at = weft_now();
    CHECK_OK(weft_chan_send(f->quit, &q));
    return 0;
}

static void take(fair *f, int i, long v, long *expect)
{
    CHECK_EQ(v, expect[i]); /* exactly once, in order */
    expect[i]++;
}

static int consumer(void *arg)
{
    fair *f = arg;
    long v = -1, q = 0, expect[NPROD] = {0};
    weft_case cs[NPROD + 1];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < NPROD; i++) {
        cs[i].chan = f->ch[i];
        cs[i].op = WEFT_RECV;
        cs[i].elem = &v;
    }
    cs[NPROD].chan = f->quit;
    cs[NPROD].op = WEFT_RECV;
    cs[NPROD].elem = &q;
    for (;;) {
        int r = weft_select(cs, NPROD + 1, WEFT_FOREVER);
        CHECK(r >= 0 && r <= NPROD);
        CHECK_EQ(cs[r].result, 0);
        if (r == NPROD)
            break;
        take(f, r, v, expect);
        atomic_store_explicit(&f->got[r],
                              atomic_load_explicit(&f->got[r], memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&f->total, atomic_load_explicit(&f->total, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    f->quit_got_at = weft_now();
    CHECK_EQ(q, 1);
    f->first_part_total = atomic_load(&f->total);
    weft_event_set(&f->quit_received);
    /* Stop the producers: a send on a closed channel returns -EPIPE; what
     * is buffered stays receivable. */
    for (int i = 0; i < NPROD; i++)
        weft_chan_close(f->ch[i]);
    for (int i = 0; i < NPROD; i++) {
        int rc;
        while ((rc = weft_chan_recv(f->ch[i], &v)) == 0) {
            take(f, i, v, expect);
            f->drained[i]++;
        }
        CHECK_EQ(rc, -EPIPE);
    }
    return 0;
}

static int fair_root(void *arg)
{
    fair *f = arg;
    for (int i = 0; i < NPROD; i++) {
        CHECK_OK(weft_chan_open(&f->ch[i], sizeof(long), f->cap));
        f->pa[i] = (producer_arg){f, i};
    }
    CHECK_OK(weft_chan_open(&f->quit, sizeof(long), 0));
    weft_event_init(&f->quit_received);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, consumer, f));
    for (int i = 0; i < NPROD; i++)
        CHECK_OK(weft_spawn(n, producer, &f->pa[i]));
    CHECK_OK(weft_spawn(n, quitter, f));
    /* Liveness with a diagnostic rather than the watchdog's bare abort. */
    int rc = weft_event_wait_until(&f->quit_received, weft_now() + QUIT_AFTER_NS + LONG_NS);
    if (rc != 0) {
        fprintf(stderr,
                "sched_select_fair: the quit did not arrive (%d): receives %ld %ld %ld, sent "
                "at %lld ns (0: not yet)\n",
                rc, atomic_load(&f->got[0]), atomic_load(&f->got[1]), atomic_load(&f->got[2]),
                (long long)f->quit_sent_at);
        weft_dump(2);
        abort();
    }
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&f->quit_received);
    for (int i = 0; i < NPROD; i++)
        weft_chan_free(f->ch[i]);
    weft_chan_free(f->quit);
    return 0;
}

static void run_case(unsigned workers, size_t cap)
{
    char name[64];
    snprintf(name, sizeof name, "%uw_cap%zu", workers, cap);
    if (!test_case_selected(name))
        return;
    fair *f = calloc(1, sizeof *f);
    CHECK(f != NULL);
    f->cap = cap;
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    CHECK_OK(weft_run(&cfg, fair_root, f));

    long total = f->first_part_total, sent = 0, received = 0;
    double share[NPROD];
    for (int i = 0; i < NPROD; i++) {
        long got = atomic_load(&f->got[i]);
        share[i] = total ? (double)got / (double)total : 0;
        sent += atomic_load(&f->sent[i]);
        received += got + f->drained[i];
        /* Conservation, per producer: every send that returned 0 was
         * received once (before or after the quit). */
        CHECK_EQ(atomic_load(&f->sent[i]), got + f->drained[i]);
    }
    double delay_ms = (double)(f->quit_got_at - f->quit_sent_at) / 1e6;
    printf("sched_select_fair: %u worker(s), capacity %zu: %ld receives before the quit, "
           "shares %.3f %.3f %.3f; quit sent %.3f ms after the sleep's deadline, received "
           "%.3f ms after it was sent; %ld drained after it\n",
           workers, cap, total, share[0], share[1], share[2],
           (double)(f->quit_sent_at - f->sleep_deadline) / 1e6, delay_ms,
           f->drained[0] + f->drained[1] + f->drained[2]);
    fflush(stdout);
    CHECK_EQ(sent, received);
    CHECK(total >= MIN_TOTAL);
    CHECK(f->woke_at >= f->sleep_deadline);
    CHECK(f->quit_got_at >= f->quit_sent_at);
    CHECK(f->quit_got_at - f->quit_sent_at < test_bound_ns(1)); /* liveness */
    for (int i = 0; i < NPROD; i++)
        CHECK(atomic_load(&f->got[i]) > 0); /* every producer ran */
    if (workers == 1) {
        double lo = test_sanitized() ? SHARE_LO_SANITIZED : SHARE_LO;
        double hi = test_sanitized() ? SHARE_HI_SANITIZED : SHARE_HI;
        for (int i = 0; i < NPROD; i++) {
            if (share[i] < lo || share[i] > hi)
                fprintf(stderr,
                        "sched_select_fair: producer %d's share %.3f (%ld of %ld) is outside "
                        "[%.2f, %.2f]\n",
                        i, share[i], atomic_load(&f->got[i]), total, lo, hi);
            CHECK(share[i] >= lo && share[i] <= hi);
        }
    }
    free(f);
}

int main(void)
{
    test_watchdog(55);
    for (unsigned w = 1; w <= 2; w++) {
        run_case(w, 0); /* unbuffered: each send a rendezvous */
        run_case(w, 8); /* buffered */
    }
    printf("sched_select_fair: ok\n");
    return 0;
}
