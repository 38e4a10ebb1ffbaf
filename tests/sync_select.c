/* weft_select / weft_select_try: mixes of ready, closed and NULL channels
 * and their result codes; deadlines (a past deadline times out at once
 * unless a case is ready); all-NULL and n == 0 park until the deadline or a
 * cancel; the choice among ready cases is uniform (chi-square); exactly one
 * case is performed; a select never pairs its own SEND with its own RECV;
 * two selects with opposite cases on one unbuffered channel meet; selects
 * from plain threads; and a stress of selects against selects across
 * workers with exactly-once delivery.
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>

static const unsigned worker_counts[] = {1, 2, 4};

static weft_case mk(weft_chan *c, weft_case_op op, void *elem)
{
    weft_case k;
    memset(&k, 0, sizeof k);
    k.chan = c;
    k.op = op;
    k.elem = elem;
    k.result = 12345; /* a sentinel: only the chosen case's is set */
    return k;
}

static weft_chan *open_chan(size_t cap)
{
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(long), cap));
    return c;
}

static void put(weft_chan *c, long v) { CHECK_OK(weft_chan_try_send(c, &v)); }

/* ---- 1. ready, closed and NULL mixes; result codes ----------------------- */

static int mixes_root(void *arg)
{
    (void)arg;
    weft_chan *empty = open_chan(4), *full = open_chan(2), *closed = open_chan(4),
              *closed_items = open_chan(4), *unbuf = open_chan(0);
    put(full, 1);
    put(full, 2);
    weft_chan_close(closed);
    put(closed_items, 77);
    weft_chan_close(closed_items);
    long a = -1, b = -1;

    /* One ready RECV among NULL and not-ready cases. */
    put(empty, 5);
    weft_case cs[5] = {mk(NULL, WEFT_RECV, &b), mk(unbuf, WEFT_RECV, &b), mk(empty, WEFT_RECV, &a),
                       mk(full, WEFT_SEND, &b), mk(NULL, WEFT_SEND, &b)};
    CHECK_EQ(weft_select(cs, 5, WEFT_FOREVER), 2);
    CHECK_EQ(cs[2].result, 0);
    CHECK_EQ(a, 5);
    CHECK_EQ(b, -1);
    CHECK_EQ(weft_chan_len(empty), 0);
    CHECK_EQ(weft_chan_len(full), 2);

    /* A closed (and drained) channel is ready: its case reports -EPIPE. */
    weft_case cc[3] = {mk(empty, WEFT_RECV, &a), mk(closed, WEFT_RECV, &a),
                       mk(NULL, WEFT_RECV, &a)};
    a = -1;
    CHECK_EQ(weft_select(cc, 3, WEFT_FOREVER), 1);
    CHECK_EQ(cc[1].result, -EPIPE);
    CHECK_EQ(a, -1);
    weft_case cs2[2] = {mk(unbuf, WEFT_SEND, &a), mk(closed, WEFT_SEND, &a)};
    CHECK_EQ(weft_select(cs2, 2, WEFT_FOREVER), 1);
    CHECK_EQ(cs2[1].result, -EPIPE);
    CHECK_EQ(weft_select_try(cs2, 2), 1);
    CHECK_EQ(cs2[1].result, -EPIPE);

    /* A closed channel with items still delivers them (result 0), then -EPIPE. */
    weft_case ci[2] = {mk(closed_items, WEFT_RECV, &a), mk(empty, WEFT_RECV, &b)};
    CHECK_EQ(weft_select(ci, 2, WEFT_FOREVER), 0);
    CHECK_EQ(ci[0].result, 0);
    CHECK_EQ(a, 77);
    ci[0].result = 12345;
    CHECK_EQ(weft_select_try(ci, 2), 0);
    CHECK_EQ(ci[0].result, -EPIPE);

    /* SEND into room. */
    long v = 9;
    weft_case s1[2] = {mk(full, WEFT_SEND, &v), mk(empty, WEFT_SEND, &v)};
    CHECK_EQ(weft_select(s1, 2, WEFT_FOREVER), 1);
    CHECK_EQ(s1[1].result, 0);
    CHECK_EQ(weft_chan_len(empty), 1);
    CHECK_OK(weft_chan_recv(empty, &a));
    CHECK_EQ(a, 9);

    /* RECV into NULL drops the item. */
    put(empty, 3);
    put(empty, 4);
    weft_case dn[1] = {mk(empty, WEFT_RECV, NULL)};
    CHECK_EQ(weft_select(dn, 1, WEFT_FOREVER), 0);
    CHECK_OK(weft_chan_recv(empty, &a));
    CHECK_EQ(a, 4);

    /* Bad arguments. */
    weft_case bad[2] = {mk(empty, WEFT_RECV, &a), mk(empty, (weft_case_op)3, &a)};
    CHECK_EQ(weft_select(bad, 2, WEFT_FOREVER), -EINVAL);
    CHECK_EQ(weft_select_try(bad, 2), -EINVAL);
    bad[1].op = (weft_case_op)0;
    CHECK_EQ(weft_select(bad, 2, WEFT_FOREVER), -EINVAL);
    bad[1].chan = NULL; /* a disabled case's op does not matter */
    put(empty, 8);
    CHECK_EQ(weft_select(bad, 2, WEFT_FOREVER), 0);
    CHECK_EQ(a, 8);
    CHECK_EQ(weft_select(bad, (size_t)INT_MAX + 1, WEFT_FOREVER), -EINVAL);
    CHECK_EQ(weft_select_try(bad, (size_t)INT_MAX + 1), -EINVAL);

    /* More cases than fit on the stack; duplicates of one channel. */
    enum { MANY = 40 };
    weft_chan *many[MANY];
    weft_case mc[MANY];
    long out[MANY];
    for (int i = 0; i < MANY; i++) {
        many[i] = open_chan(1);
        out[i] = -1;
        mc[i] = mk(many[i], WEFT_RECV, &out[i]);
    }
    for (int round = 0; round < 200; round++) {
        int k = (round * 7) % MANY;
        put(many[k], 1000 + k);
        int r = weft_select(mc, MANY, WEFT_FOREVER);
        CHECK_EQ(r, k);
        CHECK_EQ(out[k], 1000 + k);
        CHECK_EQ(mc[k].result, 0);
    }
    CHECK_EQ(weft_select_try(mc, MANY), -EAGAIN);
    for (int i = 0; i < MANY; i++)
        mc[i] = mk(many[i % 3], i % 2 ? WEFT_RECV : WEFT_SEND, &out[i]); /* duplicates */
    out[0] = 55;
    int r = weft_select(mc, MANY, WEFT_FOREVER); /* all three have room: some SEND */
    CHECK(r >= 0 && r % 2 == 0);
    CHECK_EQ(weft_chan_len(many[0]) + weft_chan_len(many[1]) + weft_chan_len(many[2]), 1);
    for (int i = 0; i < MANY; i++)
        weft_chan_free(many[i]);

    weft_chan_free(empty);
    weft_chan_free(full);
    weft_chan_free(closed);
    weft_chan_free(closed_items);
    weft_chan_free(unbuf);
    return 0;
}

/* ---- 2. deadlines, select_try, all-NULL / n == 0 -------------------------- */

static int canceller_after(void *arg)
{
    CHECK_OK(weft_sleep(test_ms(20)));
    weft_scope_cancel(arg);
    return 0;
}

static int deadline_root(void *arg)
{
    (void)arg;
    weft_chan *u = open_chan(0), *b = open_chan(1);
    long v = 1;
    weft_case cs[2] = {mk(u, WEFT_RECV, &v), mk(b, WEFT_RECV, &v)};

    /* Nothing ready: -ETIMEDOUT at (not before) the deadline. */
    int64_t t0 = weft_now(), dl = t0 + test_ms(20);
    CHECK_EQ(weft_select(cs, 2, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    CHECK(weft_now() - t0 < PROMPT_NS); /* liveness */
    CHECK_EQ(cs[0].result, 12345);
    CHECK_EQ(cs[1].result, 12345);
    /* The timed-out select left no waiter behind. */
    CHECK_EQ(weft_chan_try_send(u, &v), -EAGAIN);
    CHECK_EQ(weft_chan_len(b), 0);

    /* A past deadline with nothing ready: -ETIMEDOUT at once. */
    t0 = weft_now();
    CHECK_EQ(weft_select(cs, 2, t0 - 1), -ETIMEDOUT);
    CHECK_EQ(weft_select(cs, 2, 0), -ETIMEDOUT);
    CHECK(weft_now() - t0 < PROMPT_NS); /* at once: not at some later wakeup */
    /* ... but with a ready case it performs it. */
    put(b, 42);
    v = 0;
    CHECK_EQ(weft_select(cs, 2, t0 - 1), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(v, 42);
    weft_case sc[2] = {mk(u, WEFT_SEND, &v), mk(b, WEFT_SEND, &v)};
    CHECK_EQ(weft_select(sc, 2, 0), 1);
    CHECK_EQ(weft_chan_len(b), 1);

    /* select_try: -EAGAIN when nothing is ready, else performs one. */
    CHECK_EQ(weft_select_try(sc, 2), -EAGAIN); /* b is full, nobody on u */
    CHECK_EQ(weft_chan_len(b), 1);
    CHECK_EQ(weft_select_try(cs, 2), 1);
    CHECK_EQ(weft_select_try(cs, 2), -EAGAIN);
    CHECK_EQ(weft_select_try(NULL, 0), -EAGAIN);

    /* n == 0 and all-NULL cases park until the deadline. */
    t0 = weft_now();
    dl = t0 + test_ms(15);
    CHECK_EQ(weft_select(NULL, 0, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    weft_case nul[3] = {mk(NULL, WEFT_RECV, &v), mk(NULL, WEFT_SEND, &v),
                        mk(NULL, WEFT_RECV, NULL)};
    dl = weft_now() + test_ms(15);
    CHECK_EQ(weft_select(nul, 3, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    CHECK_EQ(weft_select_try(nul, 3), -EAGAIN);
    CHECK_EQ(weft_select(nul, 3, 0), -ETIMEDOUT);

    /* ... or until a cancel: another task cancels the scope. */
    weft_nursery *n;
    weft_scope s;
    CHECK_OK(weft_nursery_open(&n));
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_OK(weft_spawn(n, canceller_after, &s));
    CHECK_EQ(weft_select(NULL, 0, WEFT_FOREVER), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_OK(weft_spawn(n, canceller_after, &s));
    CHECK_EQ(weft_select(nul, 3, WEFT_FOREVER), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    /* A scope deadline is a cancel too (not the select's -ETIMEDOUT). */
    weft_scope_enter(&s, weft_now() + test_ms(10));
    CHECK_EQ(weft_select(nul, 3, WEFT_FOREVER), -ECANCELED);
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    /* The select's own, earlier deadline: -ETIMEDOUT. */
    weft_scope_enter(&s, weft_now() + LONG_NS);
    CHECK_EQ(weft_select(cs, 2, weft_now() + test_ms(5)), -ETIMEDOUT);
    CHECK(!weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));

    weft_chan_free(u);
    weft_chan_free(b);
    return 0;
}

/* ---- 3. uniform choice among ready cases (chi-square) --------------------- */

/* Runs `rounds` selects over 4 always-ready channels (RECV or SEND, with
 * `extra` never-ready cases mixed in); returns chi-square with 3 degrees of
 * freedom. */
static double uniform_once(long rounds, weft_case_op op, bool extra)
{
    enum { K = 4 };
    weft_chan *ch[K], *dead = open_chan(0), *dead2 = open_chan(1);
    long sink, src = 7;
    weft_case cs[K + 3];
    int map[K + 3];
    int n = 0;
    if (op == WEFT_SEND)
        put(dead2, 0); /* full: SEND never ready */
    for (int i = 0; i < K; i++) {
        ch[i] = open_chan(2);
        if (op == WEFT_RECV)
            put(ch[i], i);
        if (extra && i == 1) {
            map[n] = -1;
            cs[n++] = mk(dead, op, op == WEFT_RECV ? (void *)&sink : (void *)&src);
            map[n] = -1;
            cs[n++] = mk(NULL, op, &sink);
        }
        map[n] = i;
        cs[n++] = mk(ch[i], op, op == WEFT_RECV ? (void *)&sink : (void *)&src);
        if (extra && i == 2) {
            map[n] = -1;
            cs[n++] = mk(dead2, op, op == WEFT_RECV ? (void *)&sink : (void *)&src);
        }
    }
    long count[K] = {0};
    for (long r = 0; r < rounds; r++) {
        int idx = (r & 1) ? weft_select(cs, (size_t)n, WEFT_FOREVER)
                          : weft_select_try(cs, (size_t)n);
        CHECK(idx >= 0 && idx < n);
        int which = map[idx];
        CHECK(which >= 0); /* never a case that was not ready */
        CHECK_EQ(cs[idx].result, 0);
        count[which]++;
        /* Exactly one case was performed: only that channel changed. */
        for (int i = 0; i < K; i++)
            CHECK_EQ(weft_chan_len(ch[i]),
                     op == WEFT_RECV ? (i == which ? 0 : 1) : (i == which ? 1 : 0));
        if (op == WEFT_RECV) {
            CHECK_EQ(sink, which);
            put(ch[which], which);
        } else {
            CHECK_OK(weft_chan_try_recv(ch[which], &sink));
            CHECK_EQ(sink, 7);
        }
    }
    double expect = (double)rounds / K, chi2 = 0;
    for (int i = 0; i < K; i++)
        chi2 += ((double)count[i] - expect) * ((double)count[i] - expect) / expect;
    for (int i = 0; i < K; i++)
        weft_chan_free(ch[i]);
    weft_chan_free(dead);
    weft_chan_free(dead2);
    return chi2;
}

/* p = 0.001 for 3 degrees of freedom. A fair choice fails one experiment
 * with probability 1e-3; the check fails only if two independent ones do
 * (1e-6), while a bias of one percentage point fails both almost surely. */
#define CHI2_CRIT 16.27

static void check_uniform(const char *what, weft_case_op op, bool extra)
{
    long rounds = 40000;
    double c1 = uniform_once(rounds, op, extra);
    printf("sync_select: %s: chi2 %.2f\n", what, c1);
    if (c1 < CHI2_CRIT)
        return;
    double c2 = uniform_once(rounds, op, extra);
    fprintf(stderr, "sync_select: %s: chi2 %.2f then %.2f (limit %.2f)\n", what, c1, c2, CHI2_CRIT);
    CHECK(c2 < CHI2_CRIT);
}

static int uniform_root(void *arg)
{
    (void)arg;
    check_uniform("recv", WEFT_RECV, false);
    check_uniform("send", WEFT_SEND, false);
    check_uniform("recv+not ready", WEFT_RECV, true);
    check_uniform("send+not ready", WEFT_SEND, true);
    return 0;
}

static void *uniform_thread(void *arg)
{
    (void)arg;
    CHECK(!weft_in_task());
    check_uniform("thread recv", WEFT_RECV, true);
    return NULL;
}

/* ---- 4. a select never pairs with itself; opposite selects meet ----------- */

typedef struct {
    weft_chan *c, *other;
    long val;
    long got;
    int idx;
    atomic_int parked;
} side;

static int self_pair_root(void *arg)
{
    (void)arg;
    weft_chan *c = open_chan(0);
    long out = -1, in = 5;
    weft_case cs[2] = {mk(c, WEFT_SEND, &in), mk(c, WEFT_RECV, &out)};
    int64_t dl = weft_now() + test_ms(30);
    CHECK_EQ(weft_select(cs, 2, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    CHECK_EQ(out, -1);
    CHECK_EQ(weft_select_try(cs, 2), -EAGAIN);
    /* Duplicated cases and the order reversed: still no self-pairing. */
    weft_case cs4[4] = {mk(c, WEFT_RECV, &out), mk(c, WEFT_SEND, &in), mk(c, WEFT_RECV, &out),
                        mk(c, WEFT_SEND, &in)};
    CHECK_EQ(weft_select(cs4, 4, weft_now() + test_ms(10)), -ETIMEDOUT);
    CHECK_EQ(out, -1);
    /* Nothing was left behind on the channel. */
    CHECK_EQ(weft_chan_try_send(c, &in), -EAGAIN);
    CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
    weft_chan_free(c);
    return 0;
}

static int plain_receiver(void *arg)
{
    side *s = arg;
    CHECK_OK(weft_sleep(test_ms(5)));
    CHECK_OK(weft_chan_recv(s->c, &s->got));
    return 0;
}

static int opposite_select(void *arg)
{
    side *s = arg;
    long dummy;
    atomic_store(&s->parked, 1);
    weft_case cs[3] = {mk(s->other, WEFT_RECV, &dummy), mk(s->c, WEFT_SEND, &s->val),
                       mk(s->c, WEFT_RECV, &s->got)};
    s->idx = weft_select(cs, 3, WEFT_FOREVER);
    CHECK(s->idx == 1 || s->idx == 2);
    CHECK_EQ(cs[s->idx].result, 0);
    return 0;
}

static int meet_root(void *arg)
{
    (void)arg;
    int rounds = (int)test_scale(300);
    weft_chan *c = open_chan(0), *other = open_chan(0);
    /* A select with SEND and RECV on c meets a plain recv with its SEND. */
    side s1;
    memset(&s1, 0, sizeof s1);
    s1.c = c;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, plain_receiver, &s1));
    long in = 31, out = -1;
    weft_case cs[2] = {mk(c, WEFT_RECV, &out), mk(c, WEFT_SEND, &in)};
    CHECK_EQ(weft_select(cs, 2, WEFT_FOREVER), 1);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(s1.got, 31);
    CHECK_EQ(out, -1);

    /* Two selects, each with SEND and RECV on c: the second to come meets
     * the first, and their indices and values agree. */
    int saw_send = 0, saw_recv = 0;
    for (int r = 0; r < rounds; r++) {
        side a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        a.c = b.c = c;
        a.other = b.other = other;
        a.val = 1000 + r;
        b.val = 2000 + r;
        a.got = b.got = -1;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, opposite_select, &a));
        if (r % 2) /* sometimes a parks first for sure */
            CHECK_OK(weft_sleep(test_ms(1)));
        CHECK_OK(weft_spawn(n, opposite_select, &b));
        CHECK_OK(weft_nursery_close(n));
        if (a.idx == 1) {
            CHECK_EQ(b.idx, 2);
            CHECK_EQ(b.got, a.val);
            CHECK_EQ(a.got, -1);
            saw_send++;
        } else {
            CHECK_EQ(a.idx, 2);
            CHECK_EQ(b.idx, 1);
            CHECK_EQ(a.got, b.val);
            CHECK_EQ(b.got, -1);
            saw_recv++;
        }
    }
    /* The second comer chooses at random between its two ready cases. */
    if (rounds >= 100)
        CHECK(saw_send > 0 && saw_recv > 0);
    CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
    CHECK_EQ(weft_chan_try_send(c, &in), -EAGAIN);
    weft_chan_free(c);
    weft_chan_free(other);
    return 0;
}

/* Parked select RECV meets a later select SEND (one case each side plus
 * never-ready cases): both return the matching index. */
static int parked_recv_select(void *arg)
{
    side *s = arg;
    long d;
    weft_case cs[2] = {mk(s->other, WEFT_RECV, &d), mk(s->c, WEFT_RECV, &s->got)};
    atomic_store(&s->parked, 1);
    s->idx = weft_select(cs, 2, WEFT_FOREVER);
    return 0;
}

static int parked_send_select(void *arg)
{
    side *s = arg;
    long d = 0;
    weft_case cs[3] = {mk(s->c, WEFT_SEND, &s->val), mk(s->other, WEFT_SEND, &d),
                       mk(NULL, WEFT_RECV, &d)};
    atomic_store(&s->parked, 1);
    s->idx = weft_select(cs, 3, WEFT_FOREVER);
    return 0;
}

static int meet_one_way_root(void *arg)
{
    (void)arg;
    weft_chan *c = open_chan(0), *o1 = open_chan(0), *o2 = open_chan(0);
    for (int order = 0; order < 2; order++) {
        side r, s;
        memset(&r, 0, sizeof r);
        memset(&s, 0, sizeof s);
        r.c = s.c = c;
        r.other = o1;
        s.other = o2;
        s.val = 99 + order;
        r.got = -1;
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, order ? parked_send_select : parked_recv_select, order ? &s : &r));
        CHECK_OK(weft_sleep(test_ms(10))); /* the first one parks */
        CHECK_OK(weft_spawn(n, order ? parked_recv_select : parked_send_select, order ? &r : &s));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(r.idx, 1);
        CHECK_EQ(s.idx, 0);
        CHECK_EQ(r.got, 99 + order);
    }
    weft_chan_free(c);
    weft_chan_free(o1);
    weft_chan_free(o2);
    return 0;
}

/* ---- 5. stress: select senders and select receivers across workers ------- */

enum { SCH = 3, SEL_SENDERS = 4 };

typedef struct {
    weft_chan *ch[SCH]; /* all closed once every value was received */
    long per, total;
    atomic_int next;
    atomic_uchar *seen;
    atomic_long received, sent;
} sel_stress;

static void got_value(sel_stress *s, long v)
{
    CHECK(v >= 0 && v < s->total);
    CHECK_EQ(atomic_fetch_add(&s->seen[v], 1), 0);
    if (atomic_fetch_add(&s->received, 1) + 1 == s->total)
        for (int k = 0; k < SCH; k++)
            weft_chan_close(s->ch[k]);
}

static int sel_sender(void *arg)
{
    sel_stress *s = arg;
    int p = atomic_fetch_add(&s->next, 1);
    for (long i = 0; i < s->per; i++) {
        long v = p * s->per + i;
        weft_case cs[SCH];
        for (int k = 0; k < SCH; k++)
            cs[k] = mk(s->ch[k], WEFT_SEND, &v);
        int r = (i % 5 == 0) ? weft_select_try(cs, SCH) : -EAGAIN;
        if (r == -EAGAIN)
            r = weft_select(cs, SCH, WEFT_FOREVER);
        CHECK(r >= 0 && r < SCH);
        CHECK_EQ(cs[r].result, 0);
        atomic_fetch_add(&s->sent, 1);
    }
    return 0;
}

/* A plain sender on one channel competes with the selects. */
static int plain_sender(void *arg)
{
    sel_stress *s = arg;
    int p = atomic_fetch_add(&s->next, 1);
    for (long i = 0; i < s->per; i++) {
        long v = p * s->per + i;
        CHECK_OK(weft_chan_send(s->ch[1], &v));
        atomic_fetch_add(&s->sent, 1);
    }
    return 0;
}

static int sel_receiver(void *arg)
{
    sel_stress *s = arg;
    for (;;) {
        long v = -1, d = -1;
        weft_case cs[SCH + 1];
        for (int k = 0; k < SCH; k++)
            cs[k] = mk(s->ch[k], WEFT_RECV, &v);
        cs[SCH] = mk(NULL, WEFT_RECV, &d);
        int r = weft_select(cs, SCH + 1, WEFT_FOREVER);
        CHECK(r >= 0 && r < SCH);
        if (cs[r].result == -EPIPE) {
            CHECK_EQ(atomic_load(&s->received), s->total);
            CHECK_EQ(v, -1);
            break;
        }
        CHECK_EQ(cs[r].result, 0);
        got_value(s, v);
    }
    return 0;
}

/* A plain receiver on one channel competes with the selects. */
static int plain_receiver_ch0(void *arg)
{
    sel_stress *s = arg;
    long v;
    int r;
    while ((r = weft_chan_recv(s->ch[0], &v)) == 0)
        got_value(s, v);
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(atomic_load(&s->received), s->total);
    return 0;
}

static int sel_stress_root(void *arg)
{
    sel_stress *s = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn(n, sel_receiver, s));
    CHECK_OK(weft_spawn(n, plain_receiver_ch0, s));
    for (int i = 0; i < SEL_SENDERS; i++)
        CHECK_OK(weft_spawn(n, sel_sender, s));
    CHECK_OK(weft_spawn(n, plain_sender, s));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static void test_sel_stress(unsigned workers, size_t cap)
{
    sel_stress s;
    memset(&s, 0, sizeof s);
    s.per = test_scale(60000);
    s.total = (SEL_SENDERS + 1) * s.per;
    s.seen = calloc((size_t)s.total, 1);
    CHECK(s.seen != NULL);
    for (int k = 0; k < SCH; k++)
        s.ch[k] = open_chan(k == 0 ? 0 : cap);
    CHECK_OK(test_run(workers, sel_stress_root, &s));
    CHECK_EQ(atomic_load(&s.sent), s.total);
    CHECK_EQ(atomic_load(&s.received), s.total);
    for (long i = 0; i < s.total; i++)
        CHECK_EQ(atomic_load(&s.seen[i]), 1);
    for (int k = 0; k < SCH; k++) {
        CHECK_EQ(weft_chan_len(s.ch[k]), 0);
        weft_chan_free(s.ch[k]);
    }
    free(s.seen);
}

/* ---- 6. select from a plain thread --------------------------------------- */

typedef struct {
    weft_chan *a, *b, *back;
    long n;
    long sum;
} thr_set;

static void *select_thread(void *arg)
{
    thr_set *t = arg;
    CHECK(!weft_in_task());
    /* Receive n values arriving on a or b (tasks send), answer each on
     * back through a select with a never-ready case. */
    weft_chan *never = open_chan(0);
    for (long i = 0; i < t->n; i++) {
        long v = -1, d;
        weft_case cs[3] = {mk(t->a, WEFT_RECV, &v), mk(NULL, WEFT_RECV, &d),
                           mk(t->b, WEFT_RECV, &v)};
        int r = weft_select(cs, 3, WEFT_FOREVER);
        CHECK(r == 0 || r == 2);
        CHECK_EQ(cs[r].result, 0);
        t->sum += v;
        weft_case sc[2] = {mk(never, WEFT_RECV, &d), mk(t->back, WEFT_SEND, &v)};
        CHECK_EQ(weft_select(sc, 2, WEFT_FOREVER), 1);
    }
    /* A deadline and n == 0 from a thread. */
    long d;
    weft_case cs[1] = {mk(never, WEFT_RECV, &d)};
    int64_t dl = weft_now() + test_ms(10);
    CHECK_EQ(weft_select(cs, 1, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    dl = weft_now() + test_ms(5);
    CHECK_EQ(weft_select(NULL, 0, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    CHECK_EQ(weft_select_try(cs, 1), -EAGAIN);
    /* A select with SEND and RECV on one channel does not pair with itself
     * on a thread either. */
    long x = 1, y = -1;
    weft_case self[2] = {mk(never, WEFT_SEND, &x), mk(never, WEFT_RECV, &y)};
    CHECK_EQ(weft_select(self, 2, weft_now() + test_ms(5)), -ETIMEDOUT);
    CHECK_EQ(y, -1);
    weft_chan_free(never);
    return NULL;
}

static int thr_sender(void *arg)
{
    thr_set *t = arg;
    for (long i = 0; i < t->n; i++) {
        long v = i;
        CHECK_OK(weft_chan_send(i % 3 ? t->a : t->b, &v));
        long w;
        CHECK_OK(weft_chan_recv(t->back, &w));
        CHECK_EQ(w, i);
    }
    return 0;
}

static int join_fn(void *arg)
{
    CHECK_OK(pthread_join(*(pthread_t *)arg, NULL));
    return 0;
}

static int thread_root(void *arg)
{
    (void)arg;
    thr_set t;
    memset(&t, 0, sizeof t);
    t.n = test_scale(5000);
    t.a = open_chan(0);
    t.b = open_chan(2);
    t.back = open_chan(0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, select_thread, &t));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, thr_sender, &t));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK_EQ(t.sum, (t.n - 1) * t.n / 2);
    weft_chan_free(t.a);
    weft_chan_free(t.b);
    weft_chan_free(t.back);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static double now_s(void) { return (double)weft_now() / 1e9; }

#define PHASE(name, ...)                                                                           \
    do {                                                                                           \
        double t0_ = now_s();                                                                      \
        __VA_ARGS__;                                                                               \
        printf("sync_select: %-18s %.2f s\n", name, now_s() - t0_);                                \
        fflush(stdout);                                                                            \
    } while (0)

int main(void)
{
    test_watchdog(115);
    PHASE("mixes", {
        CHECK_OK(test_run(1, mixes_root, NULL));
        CHECK_OK(mixes_root(NULL)); /* from the main thread, no runtime */
    });
    PHASE("deadlines", {
        for (size_t w = 0; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], deadline_root, NULL));
    });
    PHASE("uniform", {
        CHECK_OK(test_run(2, uniform_root, NULL));
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, uniform_thread, NULL));
        CHECK_OK(pthread_join(th, NULL));
    });
    PHASE("self pairing", {
        for (size_t w = 0; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], self_pair_root, NULL));
        CHECK_OK(self_pair_root(NULL));
    });
    PHASE("selects meet", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(test_run(worker_counts[w], meet_root, NULL));
            CHECK_OK(test_run(worker_counts[w], meet_one_way_root, NULL));
        }
    });
    PHASE("thread", {
        for (size_t w = 0; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], thread_root, NULL));
    });
    PHASE("stress", {
        for (size_t w = 0; w < 3; w++) {
            test_sel_stress(worker_counts[w], 0);
            test_sel_stress(worker_counts[w], 4);
        }
    });
    printf("sync_select: ok\n");
    return 0;
}
