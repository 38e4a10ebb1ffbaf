/* Channels. Stress: N producers x M consumers over unbuffered and buffered
 * channels (capacity 0, 1, 16, 1024) on 1, 2 and 4 workers, every value
 * delivered exactly once (a seen[] count per value) and the checksums equal;
 * a close racing with parked senders and receivers (a send that returned 0
 * is received exactly once, one that returned -EPIPE never). Units: close
 * with parked parties, buffered items receivable after close, try_send /
 * try_recv, elem_size 0, recv into NULL, open errors, len/cap, no leaks
 * after free, happens-before of plain data through a send, and the OS-thread
 * bridge (plain pthreads and weft_blocking bodies talking to tasks, and two
 * pthreads talking while no runtime runs).
 * TIMEOUT: 120
 * LABELS: stress
 */
#include "test.h"

#include <pthread.h>
#include <sched.h>

static const unsigned worker_counts[] = {1, 2, 4};

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
    uint64_t idx;
    uint64_t check;
} item;

static uint64_t check_of(uint64_t idx) { return idx * 0x9E3779B97F4A7C15ULL ^ 0xC0FFEEULL; }

static item make_item(uint64_t idx)
{
    item it = {idx, check_of(idx)};
    return it;
}

static void spawn_n(weft_nursery *n, int count, weft_fn fn, void *arg)
{
    for (int i = 0; i < count; i++)
        CHECK_OK(weft_spawn(n, fn, arg));
}

/* ---- 1. producers x consumers: exactly once, checksums ------------------ */

typedef struct {
    weft_chan *c;
    int producers, consumers;
    long per;   /* values per producer */
    long total; /* producers * per */
    atomic_uchar *seen;
    atomic_ullong sum_sent, sum_recv;
    atomic_long n_recv;
    atomic_int next_prod;
    weft_waitgroup prod_wg;
} mpmc;

static int mpmc_producer(void *arg)
{
    mpmc *m = arg;
    int p = atomic_fetch_add(&m->next_prod, 1);
    uint64_t local = 0;
    for (long i = 0; i < m->per; i++) {
        uint64_t idx = (uint64_t)p * (uint64_t)m->per + (uint64_t)i;
        item it = make_item(idx);
        int r;
        if ((i & 3) == 0) {
            /* Some sends take the non-parking path first. */
            r = weft_chan_try_send(m->c, &it);
            if (r == -EAGAIN)
                r = weft_chan_send(m->c, &it);
        } else {
            r = weft_chan_send(m->c, &it);
        }
        CHECK_OK(r);
        local += idx;
    }
    atomic_fetch_add(&m->sum_sent, local);
    weft_waitgroup_done(&m->prod_wg);
    return 0;
}

static int mpmc_consumer(void *arg)
{
    mpmc *m = arg;
    uint64_t local = 0;
    long got = 0;
    for (long j = 0;; j++) {
        item it = {UINT64_MAX, 0};
        int r;
        if (j % 3 == 0) {
            r = weft_chan_try_recv(m->c, &it);
            if (r == -EAGAIN)
                r = weft_chan_recv(m->c, &it);
        } else {
            r = weft_chan_recv(m->c, &it);
        }
        if (r == -EPIPE)
            break;
        CHECK_OK(r);
        CHECK(it.idx < (uint64_t)m->total);
        CHECK_EQ(it.check, check_of(it.idx)); /* no torn copy */
        CHECK_EQ(atomic_fetch_add(&m->seen[it.idx], 1), 0);
        local += it.idx;
        got++;
    }
    atomic_fetch_add(&m->sum_recv, local);
    atomic_fetch_add(&m->n_recv, got);
    return 0;
}

static int mpmc_closer(void *arg)
{
    mpmc *m = arg;
    CHECK_OK(weft_waitgroup_wait(&m->prod_wg));
    weft_chan_close(m->c);
    return 0;
}

static int mpmc_root(void *arg)
{
    mpmc *m = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    spawn_n(n, m->consumers, mpmc_consumer, m);
    spawn_n(n, m->producers, mpmc_producer, m);
    CHECK_OK(weft_spawn(n, mpmc_closer, m));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static void run_mpmc(unsigned workers, int producers, int consumers, size_t cap, long total)
{
    mpmc m;
    memset(&m, 0, sizeof m);
    m.producers = producers;
    m.consumers = consumers;
    m.per = total / producers;
    m.total = m.per * producers;
    m.seen = calloc((size_t)m.total, sizeof *m.seen);
    CHECK(m.seen != NULL);
    weft_waitgroup_init(&m.prod_wg);
    weft_waitgroup_add(&m.prod_wg, producers);
    CHECK_OK(weft_chan_open(&m.c, sizeof(item), cap));
    CHECK_EQ(weft_chan_cap(m.c), cap);
    CHECK_OK(test_run(workers, mpmc_root, &m));
    CHECK_EQ(atomic_load(&m.n_recv), m.total);
    uint64_t expect = (uint64_t)(m.total - 1) * (uint64_t)m.total / 2;
    CHECK_EQ(atomic_load(&m.sum_sent), expect);
    CHECK_EQ(atomic_load(&m.sum_recv), expect);
    for (long i = 0; i < m.total; i++)
        CHECK_EQ(atomic_load(&m.seen[i]), 1);
    CHECK_EQ(weft_chan_len(m.c), 0);
    weft_chan_free(m.c);
    weft_waitgroup_destroy(&m.prod_wg);
    free(m.seen);
}

static void test_mpmc(void)
{
    static const int shapes[][2] = {{4, 4}, {8, 2}, {1, 8}, {2, 1}};
    /* 3: a ring whose size is not a power of two */
    static const size_t caps[] = {0, 1, 3, 16, 1024};
    long total = test_scale(200000);
    for (size_t w = 0; w < 3; w++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++)
                run_mpmc(worker_counts[w], shapes[s][0], shapes[s][1], caps[k], total);
}

/* ---- 2. close racing with parked senders and receivers ------------------ */

typedef struct {
    weft_chan *c;
    long per, total;
    atomic_int next_prod;
    atomic_uchar *ok;   /* the send of this value returned 0 */
    atomic_uchar *seen; /* times received */
    atomic_long n_ok, n_fail, n_recv, n_cons_done;
    long close_after; /* close once this many were received */
} closerace;

static int cr_producer(void *arg)
{
    closerace *m = arg;
    int p = atomic_fetch_add(&m->next_prod, 1);
    for (long i = 0; i < m->per; i++) {
        uint64_t idx = (uint64_t)p * (uint64_t)m->per + (uint64_t)i;
        item it = make_item(idx);
        int r = weft_chan_send(m->c, &it);
        if (r == 0) {
            atomic_store(&m->ok[idx], 1);
            atomic_fetch_add(&m->n_ok, 1);
        } else {
            CHECK_EQ(r, -EPIPE);
            atomic_fetch_add(&m->n_fail, 1);
        }
    }
    return 0;
}

static int cr_consumer(void *arg)
{
    closerace *m = arg;
    for (;;) {
        item it;
        int r = weft_chan_recv(m->c, &it);
        if (r == -EPIPE)
            break;
        CHECK_OK(r);
        CHECK(it.idx < (uint64_t)m->total);
        CHECK_EQ(it.check, check_of(it.idx));
        CHECK_EQ(atomic_fetch_add(&m->seen[it.idx], 1), 0);
        atomic_fetch_add(&m->n_recv, 1);
    }
    /* Closed and drained: stays so. */
    CHECK_EQ(weft_chan_recv(m->c, NULL), -EPIPE);
    CHECK_EQ(weft_chan_try_recv(m->c, NULL), -EPIPE);
    atomic_fetch_add(&m->n_cons_done, 1);
    return 0;
}

static int cr_closer(void *arg)
{
    closerace *m = arg;
    while (atomic_load(&m->n_recv) < m->close_after)
        CHECK_OK(weft_yield());
    weft_chan_close(m->c);
    weft_chan_close(m->c); /* idempotent */
    return 0;
}

static int cr_root(void *arg)
{
    closerace *m = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    spawn_n(n, 3, cr_consumer, m);
    spawn_n(n, 4, cr_producer, m);
    CHECK_OK(weft_spawn(n, cr_closer, m));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static void test_close_race(void)
{
    /* 3: a ring whose size is not a power of two */
    static const size_t caps[] = {0, 1, 3, 16, 1024};
    int rounds = (int)test_scale(6);
    long fails_total = 0, ok_total = 0;
    for (size_t w = 0; w < 3; w++)
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++)
            for (int round = 0; round < rounds; round++) {
                closerace m;
                memset(&m, 0, sizeof m);
                m.per = test_scale(20000);
                m.total = 4 * m.per;
                m.close_after = m.total / 4 + round * (m.total / 16);
                m.ok = calloc((size_t)m.total, 1);
                m.seen = calloc((size_t)m.total, 1);
                CHECK(m.ok && m.seen);
                CHECK_OK(weft_chan_open(&m.c, sizeof(item), caps[k]));
                CHECK_OK(test_run(worker_counts[w], cr_root, &m));
                /* delivered + failed == attempted, and exactly the sends
                 * that returned 0 were received, each once. */
                CHECK_EQ(atomic_load(&m.n_ok) + atomic_load(&m.n_fail), m.total);
                CHECK_EQ(atomic_load(&m.n_recv), atomic_load(&m.n_ok));
                CHECK_EQ(atomic_load(&m.n_cons_done), 3);
                for (long i = 0; i < m.total; i++)
                    CHECK_EQ(atomic_load(&m.seen[i]), atomic_load(&m.ok[i]));
                if (m.total >= 4 * (long)caps[k]) {
                    fails_total += atomic_load(&m.n_fail);
                    ok_total += atomic_load(&m.n_ok);
                }
                weft_chan_free(m.c);
                free(m.ok);
                free(m.seen);
            }
    printf("sync_chan: close race: %ld sends delivered, %ld failed by the close\n", ok_total,
           fails_total);
    /* The close really raced with the senders (not all done before it). */
    CHECK(fails_total > 0);
}

/* ---- 3. close with parked parties (deterministic outcomes) -------------- */

#define PARKED 12

typedef struct {
    weft_chan *c;
    atomic_int started;
    int result[PARKED];
    atomic_int next;
} parked_set;

static int parked_sender(void *arg)
{
    parked_set *s = arg;
    int i = atomic_fetch_add(&s->next, 1);
    item it = make_item((uint64_t)i);
    atomic_fetch_add(&s->started, 1);
    s->result[i] = weft_chan_send(s->c, &it);
    return 0;
}

static int parked_receiver(void *arg)
{
    parked_set *s = arg;
    int i = atomic_fetch_add(&s->next, 1);
    atomic_fetch_add(&s->started, 1);
    item it = {77, 77};
    s->result[i] = weft_chan_recv(s->c, &it);
    CHECK_EQ(it.idx, 77); /* -EPIPE wrote nothing */
    return 0;
}

static void wait_started(parked_set *s)
{
    CHECK_SOON(atomic_load(&s->started) == PARKED);
    CHECK_OK(weft_sleep(test_ms(10))); /* let them park; the outcome does not depend on it */
}

static int close_parked_root(void *arg)
{
    (void)arg;
    static const size_t caps[] = {0, 1, 5};
    for (size_t k = 0; k < 3; k++) {
        size_t cap = caps[k];
        /* Senders: cap of them fill the buffer, the rest park; close fails
         * the parked ones with -EPIPE and their values are not received. */
        parked_set s;
        memset(&s, 0, sizeof s);
        CHECK_OK(weft_chan_open(&s.c, sizeof(item), cap));
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        spawn_n(n, PARKED, parked_sender, &s);
        wait_started(&s);
        CHECK_SOON(weft_chan_len(s.c) == cap); /* liveness: the buffer fills */
        weft_chan_close(s.c);
        CHECK_OK(weft_nursery_close(n));
        int ok = 0, failed = 0;
        unsigned char okmask[PARKED] = {0};
        for (int i = 0; i < PARKED; i++) {
            if (s.result[i] == 0) {
                ok++;
                okmask[i] = 1;
            } else {
                CHECK_EQ(s.result[i], -EPIPE);
                failed++;
            }
        }
        CHECK_EQ(ok, (int)cap);
        CHECK_EQ(ok + failed, PARKED);
        /* Buffered items stay receivable after close: exactly the sends
         * that returned 0, then -EPIPE. */
        CHECK_EQ(weft_chan_len(s.c), cap);
        for (size_t j = 0; j < cap; j++) {
            item it;
            CHECK_OK(j % 2 ? weft_chan_recv(s.c, &it) : weft_chan_try_recv(s.c, &it));
            CHECK(it.idx < PARKED);
            CHECK_EQ(it.check, check_of(it.idx));
            CHECK_EQ(okmask[it.idx], 1);
            okmask[it.idx] = 0;
        }
        CHECK_EQ(weft_chan_recv(s.c, NULL), -EPIPE);
        CHECK_EQ(weft_chan_try_recv(s.c, NULL), -EPIPE);
        item it = make_item(99);
        CHECK_EQ(weft_chan_send(s.c, &it), -EPIPE);
        CHECK_EQ(weft_chan_try_send(s.c, &it), -EPIPE);
        CHECK_EQ(weft_chan_len(s.c), 0);
        weft_chan_free(s.c);

        /* Receivers parked on an empty channel: close wakes all with -EPIPE. */
        memset(&s, 0, sizeof s);
        CHECK_OK(weft_chan_open(&s.c, sizeof(item), cap));
        CHECK_OK(weft_nursery_open(&n));
        spawn_n(n, PARKED, parked_receiver, &s);
        wait_started(&s);
        weft_chan_close(s.c);
        CHECK_OK(weft_nursery_close(n));
        for (int i = 0; i < PARKED; i++)
            CHECK_EQ(s.result[i], -EPIPE);
        weft_chan_free(s.c);
    }
    return 0;
}

/* Items buffered before close are drained by several receivers, each once. */
typedef struct {
    weft_chan *c;
    atomic_uchar seen[64];
    atomic_int got, epipe;
} drain_set;

static int drainer(void *arg)
{
    drain_set *d = arg;
    for (;;) {
        item it;
        int r = weft_chan_recv(d->c, &it);
        if (r == -EPIPE)
            break;
        CHECK_OK(r);
        CHECK(it.idx < 64);
        CHECK_EQ(atomic_fetch_add(&d->seen[it.idx], 1), 0);
        atomic_fetch_add(&d->got, 1);
        CHECK_OK(weft_yield());
    }
    atomic_fetch_add(&d->epipe, 1);
    return 0;
}

static int drain_after_close_root(void *arg)
{
    (void)arg;
    drain_set d;
    memset(&d, 0, sizeof d);
    CHECK_OK(weft_chan_open(&d.c, sizeof(item), 64));
    for (int i = 0; i < 40; i++) {
        item it = make_item((uint64_t)i);
        CHECK_OK(weft_chan_send(d.c, &it));
    }
    weft_chan_close(d.c);
    CHECK_EQ(weft_chan_len(d.c), 40);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    spawn_n(n, 4, drainer, &d);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&d.got), 40);
    CHECK_EQ(atomic_load(&d.epipe), 4);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(atomic_load(&d.seen[i]), 1);
    weft_chan_free(d.c);
    return 0;
}

/* ---- 4. try_send / try_recv, len / cap ---------------------------------- */

static int recv_one(void *arg)
{
    weft_chan *c = arg;
    item it;
    CHECK_OK(weft_chan_recv(c, &it));
    CHECK_EQ(it.idx, 4242);
    CHECK_EQ(it.check, check_of(4242));
    return 0;
}

static int send_one(void *arg)
{
    weft_chan *c = arg;
    item it = make_item(4343);
    CHECK_OK(weft_chan_send(c, &it));
    return 0;
}

static int try_ops_root(void *arg)
{
    (void)arg;
    weft_chan *c;
    item it = make_item(1), out;
    /* Unbuffered, nobody waiting: both would park. */
    CHECK_OK(weft_chan_open(&c, sizeof(item), 0));
    CHECK_EQ(weft_chan_cap(c), 0);
    CHECK_EQ(weft_chan_try_send(c, &it), -EAGAIN);
    CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
    CHECK_EQ(weft_chan_len(c), 0);
    /* A parked receiver makes try_send succeed (straight into it). */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_one, c));
    it = make_item(4242);
    int r;
    CHECK_SOON((r = weft_chan_try_send(c, &it)) != -EAGAIN); /* once the receiver parked */
    CHECK_OK(r);
    CHECK_OK(weft_nursery_close(n));
    /* A parked sender makes try_recv succeed. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, send_one, c));
    CHECK_SOON((r = weft_chan_try_recv(c, &out)) != -EAGAIN); /* once the sender parked */
    CHECK_OK(r);
    CHECK_EQ(out.idx, 4343);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
    weft_chan_close(c);
    CHECK_EQ(weft_chan_try_send(c, &it), -EPIPE);
    CHECK_EQ(weft_chan_try_recv(c, &out), -EPIPE);
    weft_chan_free(c);

    /* Buffered: fills to cap, FIFO, then -EAGAIN both ways. */
    CHECK_OK(weft_chan_open(&c, sizeof(item), 3));
    CHECK_EQ(weft_chan_cap(c), 3);
    for (uint64_t i = 0; i < 3; i++) {
        it = make_item(i);
        CHECK_OK(weft_chan_try_send(c, &it));
        CHECK_EQ(weft_chan_len(c), i + 1);
    }
    it = make_item(3);
    CHECK_EQ(weft_chan_try_send(c, &it), -EAGAIN);
    CHECK_EQ(weft_chan_len(c), 3);
    CHECK_OK(weft_chan_try_recv(c, &out));
    CHECK_EQ(out.idx, 0);
    CHECK_OK(weft_chan_try_send(c, &it)); /* wraps around the ring */
    for (uint64_t i = 1; i < 4; i++) {
        CHECK_OK(weft_chan_try_recv(c, &out));
        CHECK_EQ(out.idx, i);
        CHECK_EQ(out.check, check_of(i));
    }
    CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
    /* Closed with items: try_send -EPIPE, try_recv drains then -EPIPE. */
    it = make_item(10);
    CHECK_OK(weft_chan_try_send(c, &it));
    it = make_item(11);
    CHECK_OK(weft_chan_send(c, &it));
    weft_chan_close(c);
    CHECK_EQ(weft_chan_try_send(c, &it), -EPIPE);
    CHECK_EQ(weft_chan_len(c), 2);
    CHECK_OK(weft_chan_try_recv(c, &out));
    CHECK_EQ(out.idx, 10);
    CHECK_OK(weft_chan_try_recv(c, &out));
    CHECK_EQ(out.idx, 11);
    CHECK_EQ(weft_chan_try_recv(c, &out), -EPIPE);
    CHECK_EQ(weft_chan_recv(c, &out), -EPIPE);
    weft_chan_free(c);
    return 0;
}

/* ---- 5. elem_size 0, recv into NULL ------------------------------------- */

typedef struct {
    weft_chan *c;
    long per;
    atomic_long sent, received;
    weft_waitgroup wg;
} sig_set;

static int sig_producer(void *arg)
{
    sig_set *s = arg;
    for (long i = 0; i < s->per; i++) {
        CHECK_OK(weft_chan_send(s->c, NULL));
        atomic_fetch_add(&s->sent, 1);
    }
    weft_waitgroup_done(&s->wg);
    return 0;
}

static int sig_consumer(void *arg)
{
    sig_set *s = arg;
    int r;
    while ((r = weft_chan_recv(s->c, NULL)) == 0)
        atomic_fetch_add(&s->received, 1);
    CHECK_EQ(r, -EPIPE);
    return 0;
}

static int sig_closer(void *arg)
{
    sig_set *s = arg;
    CHECK_OK(weft_waitgroup_wait(&s->wg));
    weft_chan_close(s->c);
    return 0;
}

static int zero_size_root(void *arg)
{
    (void)arg;
    static const size_t caps[] = {0, 1, 8};
    for (size_t k = 0; k < 3; k++) {
        sig_set s;
        memset(&s, 0, sizeof s);
        s.per = test_scale(30000);
        weft_waitgroup_init(&s.wg);
        weft_waitgroup_add(&s.wg, 3);
        CHECK_OK(weft_chan_open(&s.c, 0, caps[k]));
        CHECK_EQ(weft_chan_cap(s.c), caps[k]);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        spawn_n(n, 2, sig_consumer, &s);
        spawn_n(n, 3, sig_producer, &s);
        CHECK_OK(weft_spawn(n, sig_closer, &s));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&s.sent), 3 * s.per);
        CHECK_EQ(atomic_load(&s.received), 3 * s.per);
        weft_chan_free(s.c);
    }
    /* Size 0 with a non-NULL elem pointer: nothing is copied. */
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, 0, 2));
    int src = 5, dst = 9;
    CHECK_OK(weft_chan_send(c, &src));
    CHECK_OK(weft_chan_try_send(c, &src));
    CHECK_EQ(weft_chan_try_send(c, &src), -EAGAIN);
    CHECK_EQ(weft_chan_len(c), 2);
    CHECK_OK(weft_chan_recv(c, &dst));
    CHECK_EQ(dst, 9);
    weft_chan_free(c); /* with an item still buffered */
    /* Size 0 and a huge capacity: no overflow, a pure counter. */
    CHECK_OK(weft_chan_open(&c, 0, SIZE_MAX));
    CHECK_EQ(weft_chan_cap(c), SIZE_MAX);
    for (int i = 0; i < 100; i++)
        CHECK_OK(weft_chan_try_send(c, NULL));
    CHECK_EQ(weft_chan_len(c), 100);
    for (int i = 0; i < 100; i++)
        CHECK_OK(weft_chan_try_recv(c, NULL));
    CHECK_EQ(weft_chan_try_recv(c, NULL), -EAGAIN);
    weft_chan_free(c);
    return 0;
}

static int send_value(void *arg)
{
    void **a = arg;
    weft_chan *c = a[0];
    item it = make_item((uint64_t)(uintptr_t)a[1]);
    CHECK_OK(weft_chan_send(c, &it));
    return 0;
}

static int recv_null_root(void *arg)
{
    (void)arg;
    /* Buffered: the dropped item is gone, the next one is the next value. */
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(item), 4));
    for (uint64_t i = 1; i <= 3; i++) {
        item it = make_item(i);
        CHECK_OK(weft_chan_send(c, &it));
    }
    CHECK_OK(weft_chan_recv(c, NULL));
    CHECK_OK(weft_chan_try_recv(c, NULL));
    CHECK_EQ(weft_chan_len(c), 1);
    item out;
    CHECK_OK(weft_chan_recv(c, &out));
    CHECK_EQ(out.idx, 3);
    weft_chan_free(c);
    /* Unbuffered: a parked sender's value is consumed by recv(NULL), the
     * sender returns 0, and the next recv sees only the next value. */
    CHECK_OK(weft_chan_open(&c, sizeof(item), 0));
    for (int round = 0; round < 2; round++) {
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        void *a1[2] = {c, (void *)(uintptr_t)100};
        CHECK_OK(weft_spawn(n, send_value, a1));
        if (round)
            CHECK_OK(weft_sleep(test_ms(5))); /* the sender parks first */
        CHECK_OK(weft_chan_recv(c, NULL));
        CHECK_OK(weft_nursery_close(n));
        CHECK_OK(weft_nursery_open(&n));
        void *a2[2] = {c, (void *)(uintptr_t)200};
        CHECK_OK(weft_spawn(n, send_value, a2));
        CHECK_OK(weft_chan_recv(c, &out));
        CHECK_EQ(out.idx, 200);
        CHECK_OK(weft_nursery_close(n));
    }
    weft_chan_free(c);
    return 0;
}

/* ---- 6. open errors, leaks ---------------------------------------------- */

static void test_open_errors_and_leaks(void)
{
    weft_chan *c = (weft_chan *)(uintptr_t)1;
    CHECK_EQ(weft_chan_open(NULL, 8, 8), -EINVAL);
    CHECK_EQ(weft_chan_open(&c, SIZE_MAX / 2 + 1, 2), -EINVAL);
    CHECK_EQ(weft_chan_open(&c, SIZE_MAX, SIZE_MAX), -EINVAL);
    CHECK_EQ(weft_chan_open(&c, 2, SIZE_MAX / 2 + 1), -EINVAL);
    CHECK_EQ(weft_chan_open(&c, ((size_t)1 << 33), ((size_t)1 << 33)), -EINVAL);
    /* No runtime needed: open, use, close and free from main(). Anything
     * not freed is reported by the ASan build's leak checker. */
    for (int i = 0; i < 1000; i++) {
        size_t cap = (size_t)(i % 5) * 7, es = (size_t)(i % 3) * 24;
        CHECK_OK(weft_chan_open(&c, es, cap));
        CHECK(c != NULL);
        CHECK_EQ(weft_chan_cap(c), cap);
        CHECK_EQ(weft_chan_len(c), 0);
        unsigned char buf[48] = {0};
        for (size_t j = 0; j < cap && j < (size_t)(i % 11); j++)
            CHECK_OK(weft_chan_try_send(c, buf));
        if (i % 2)
            weft_chan_close(c);
        weft_chan_free(c);
    }
}

/* ---- 7. happens-before: plain data through a send ------------------------ */

typedef struct {
    long a[32];
    char text[40];
    long *heap;
    long nheap;
    long reply;
} payload;

typedef struct {
    weft_chan *to, *back;
    long iters;
    long plain_log[256]; /* written by the sender before each send, plain */
} hb_set;

static int hb_sender(void *arg)
{
    hb_set *h = arg;
    for (long i = 0; i < h->iters; i++) {
        payload *p = malloc(sizeof *p);
        CHECK(p != NULL);
        for (int j = 0; j < 32; j++)
            p->a[j] = i * 32 + j;
        snprintf(p->text, sizeof p->text, "payload %ld", i);
        p->nheap = 1 + i % 16;
        p->heap = malloc((size_t)p->nheap * sizeof *p->heap);
        CHECK(p->heap != NULL);
        for (long j = 0; j < p->nheap; j++)
            p->heap[j] = ~(i + j);
        p->reply = 0;
        h->plain_log[i % 256] = i;
        CHECK_OK(weft_chan_send(h->to, &p));
        payload *q;
        CHECK_OK(weft_chan_recv(h->back, &q));
        CHECK(q == p);
        CHECK_EQ(q->reply, i + 1); /* the receiver's plain write is visible */
        free(q->heap);
        free(q);
    }
    return 0;
}

static int hb_receiver(void *arg)
{
    hb_set *h = arg;
    for (long i = 0; i < h->iters; i++) {
        payload *p;
        CHECK_OK(weft_chan_recv(h->to, &p));
        CHECK_EQ(h->plain_log[i % 256], i);
        for (int j = 0; j < 32; j++)
            CHECK_EQ(p->a[j], i * 32 + j);
        char want[40];
        snprintf(want, sizeof want, "payload %ld", i);
        CHECK(strcmp(p->text, want) == 0);
        CHECK_EQ(p->nheap, 1 + i % 16);
        for (long j = 0; j < p->nheap; j++)
            CHECK_EQ(p->heap[j], ~(i + j));
        p->reply = i + 1;
        CHECK_OK(weft_chan_send(h->back, &p));
    }
    return 0;
}

static int hb_root(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    hb_set *h = calloc(1, sizeof *h);
    CHECK(h != NULL);
    h->iters = test_scale(100000);
    CHECK_OK(weft_chan_open(&h->to, sizeof(payload *), cap));
    CHECK_OK(weft_chan_open(&h->back, sizeof(payload *), cap));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, hb_receiver, h));
    CHECK_OK(weft_spawn(n, hb_sender, h));
    CHECK_OK(weft_nursery_close(n));
    weft_chan_free(h->to);
    weft_chan_free(h->back);
    free(h);
    return 0;
}

/* ---- 8. the OS-thread bridge ---------------------------------------------- */

typedef struct {
    weft_chan *to_thread, *from_thread;
    long n;
    long thread_sum;
    weft_event done;
} bridge;

static void *bridge_thread(void *arg)
{
    bridge *b = arg;
    CHECK(!weft_in_task());
    /* Interleaved: receive one, send one (both unbuffered: both sides
     * park in turn, the thread on its futex, the task in the scheduler). */
    for (long i = 0; i < b->n; i++) {
        long v;
        CHECK_OK(weft_chan_recv(b->to_thread, &v));
        CHECK_EQ(v, i);
        b->thread_sum += v;
        long w = v * 3;
        CHECK_OK(weft_chan_send(b->from_thread, &w));
    }
    CHECK_EQ(weft_chan_recv(b->to_thread, NULL), -EPIPE);
    weft_chan_close(b->from_thread);
    weft_event_set(&b->done);
    return NULL;
}

static int bridge_task_receiver(void *arg)
{
    bridge *b = arg;
    long i = 0, v;
    int r;
    while ((r = weft_chan_recv(b->from_thread, &v)) == 0) {
        CHECK_EQ(v, i * 3);
        i++;
    }
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(i, b->n);
    return 0;
}

static int join_fn(void *arg)
{
    CHECK_OK(pthread_join(*(pthread_t *)arg, NULL));
    return 0;
}

static int bridge_root(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    bridge b;
    memset(&b, 0, sizeof b);
    b.n = test_scale(20000);
    weft_event_init(&b.done);
    CHECK_OK(weft_chan_open(&b.to_thread, sizeof(long), cap));
    CHECK_OK(weft_chan_open(&b.from_thread, sizeof(long), cap));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, bridge_thread, &b));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, bridge_task_receiver, &b));
    for (long i = 0; i < b.n; i++)
        CHECK_OK(weft_chan_send(b.to_thread, &i));
    weft_chan_close(b.to_thread);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_event_wait(&b.done));
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK_EQ(b.thread_sum, (b.n - 1) * b.n / 2);
    weft_chan_free(b.to_thread);
    weft_chan_free(b.from_thread);
    weft_event_destroy(&b.done);
    return 0;
}

/* A weft_blocking body (a plain pool thread) using channels with tasks. */
typedef struct {
    weft_chan *req, *resp;
    long n;
} blk_set;

static int blocking_body(void *arg)
{
    blk_set *s = arg;
    CHECK(!weft_in_task());
    long sum = 0;
    for (long i = 0; i < s->n; i++) {
        CHECK_OK(weft_chan_send(s->req, &i));
        long r;
        CHECK_OK(weft_chan_recv(s->resp, &r));
        CHECK_EQ(r, i + 1000);
        sum += r;
    }
    weft_chan_close(s->req);
    return sum == s->n * 1000 + (s->n - 1) * s->n / 2 ? 0 : -EIO;
}

static int blocking_server(void *arg)
{
    blk_set *s = arg;
    long v;
    int r;
    while ((r = weft_chan_recv(s->req, &v)) == 0) {
        long w = v + 1000;
        CHECK_OK(weft_chan_send(s->resp, &w));
    }
    CHECK_EQ(r, -EPIPE);
    return 0;
}

static int blocking_client(void *arg) { return weft_blocking(blocking_body, arg); }

static int blocking_root(void *arg)
{
    (void)arg;
    blk_set s;
    s.n = test_scale(10000);
    CHECK_OK(weft_chan_open(&s.req, sizeof(long), 0));
    CHECK_OK(weft_chan_open(&s.resp, sizeof(long), 1));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, blocking_server, &s));
    CHECK_OK(weft_spawn(n, blocking_client, &s));
    CHECK_OK(weft_nursery_close(n));
    weft_chan_free(s.req);
    weft_chan_free(s.resp);
    return 0;
}

/* Two plain threads, no runtime running at all. */
typedef struct {
    weft_chan *c;
    long n;
    uint64_t sum;
} nort;

static void *nort_sender(void *arg)
{
    nort *s = arg;
    for (long i = 0; i < s->n; i++) {
        item it = make_item((uint64_t)i);
        CHECK_OK(weft_chan_send(s->c, &it));
    }
    weft_chan_close(s->c);
    return NULL;
}

static void test_no_runtime_threads(size_t cap)
{
    nort s;
    memset(&s, 0, sizeof s);
    s.n = test_scale(20000);
    CHECK_OK(weft_chan_open(&s.c, sizeof(item), cap));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, nort_sender, &s));
    long got = 0;
    item it;
    int r;
    while ((r = weft_chan_recv(s.c, &it)) == 0) {
        CHECK_EQ(it.idx, (uint64_t)got);
        CHECK_EQ(it.check, check_of(it.idx));
        got++;
    }
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(got, s.n);
    CHECK_OK(pthread_join(th, NULL));
    weft_chan_free(s.c);
}

/* ---- main ----------------------------------------------------------------- */

static double now_s(void) { return (double)weft_now() / 1e9; }

#define PHASE(name, ...)                                                                           \
    do {                                                                                           \
        double t0_ = now_s();                                                                      \
        __VA_ARGS__;                                                                               \
        printf("sync_chan: %-22s %.2f s\n", name, now_s() - t0_);                                  \
        fflush(stdout);                                                                            \
    } while (0)

int main(void)
{
    test_watchdog(115);
    PHASE("open errors, leaks", test_open_errors_and_leaks());
    PHASE("threads, no runtime", {
        test_no_runtime_threads(0);
        test_no_runtime_threads(7);
    });
    PHASE("try ops", CHECK_OK(test_run(2, try_ops_root, NULL)));
    PHASE("recv NULL", CHECK_OK(test_run(2, recv_null_root, NULL)));
    PHASE("close parked", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(test_run(worker_counts[w], close_parked_root, NULL));
            CHECK_OK(test_run(worker_counts[w], drain_after_close_root, NULL));
        }
    });
    PHASE("elem_size 0", {
        for (size_t w = 0; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], zero_size_root, NULL));
    });
    PHASE("happens-before", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(test_run(worker_counts[w], hb_root, (void *)(uintptr_t)0));
            CHECK_OK(test_run(worker_counts[w], hb_root, (void *)(uintptr_t)8));
        }
    });
    PHASE("thread bridge", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(test_run(worker_counts[w], bridge_root, (void *)(uintptr_t)0));
            CHECK_OK(test_run(worker_counts[w], bridge_root, (void *)(uintptr_t)4));
            CHECK_OK(test_run(worker_counts[w], blocking_root, NULL));
        }
    });
    PHASE("mpmc", test_mpmc());
    PHASE("close race", test_close_race());
    printf("sync_chan: ok\n");
    return 0;
}
