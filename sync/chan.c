/*
 * chan.c - channels, and select (one mechanism: select with one case is a
 * send or a receive).
 *
 * A channel is a spin lock, a ring buffer of `cap` elements, a closed
 * flag, and two waiter queues. Every operation runs under the lock:
 *   send: closed -> -EPIPE; a parked receiver -> copy straight into its
 *         buffer; room in the ring -> copy in; else park on sendq.
 *   recv: an item in the ring -> copy out, and refill the ring from the
 *         first parked sender; a parked sender (unbuffered) -> copy from
 *         it; closed -> -EPIPE; else park on recvq.
 * Copying into a parked party happens between claim and finish (see
 * sync/internal.h), so it has happened before that party runs.
 *
 * select locks every distinct channel of its cases in address order (the
 * one lock order every select follows), looks at all cases, performs one
 * ready case chosen uniformly at random, or else queues a waiter per case,
 * all sharing one parker, and parks. Whoever claims the parker first
 * completes exactly that case; afterwards select unlinks its other waiters.
 * A select skips its own waiters, so it never pairs its own SEND with its
 * own RECV, while two selects parked with opposite cases meet: the second
 * to arrive finds the first's waiter.
 */
#include "internal.h"

#include <limits.h>

#define CHAN_MAGIC 0x6368616eu
#define STACK_CASES 8

struct weft_chan {
    weft__spin lock;
    uint32_t magic;
    bool closed;
    size_t elem_size, cap;
    size_t head, len;
    weft__waitq sendq, recvq;
    unsigned char *buf;
};

static inline void copy(void *dst, const void *src, size_t n)
{
    if (!dst || !src)
        return;
    if (n == sizeof(uint64_t))
        memcpy(dst, src, sizeof(uint64_t)); /* the common case, inlined */
    else if (n)
        memcpy(dst, src, n);
}

static inline unsigned char *slot(weft_chan *c, size_t i)
{
    return c->buf + (i % c->cap) * c->elem_size;
}

int weft_chan_open(weft_chan **out, size_t elem_size, size_t capacity)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (capacity && elem_size > SIZE_MAX / capacity)
        return -EINVAL;
    weft_chan *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (capacity) {
        size_t bytes = elem_size * capacity;
        c->buf = malloc(bytes ? bytes : 1);
        if (!c->buf) {
            free(c);
            return -ENOMEM;
        }
    }
    c->magic = CHAN_MAGIC;
    c->elem_size = elem_size;
    c->cap = capacity;
    *out = c;
    return 0;
}

void weft_chan_free(weft_chan *c)
{
    if (!c)
        return;
    if (c->magic != CHAN_MAGIC) {
        weft__misuse("weft_chan_free on something that is not an open channel");
        return;
    }
    weft__spin_lock(&c->lock);
    bool waited_on = c->sendq.head || c->recvq.head;
    weft__spin_unlock(&c->lock);
    if (waited_on) {
        /* Freeing it would leave them parked on freed memory, beyond the
         * reach of a cancel. Close it instead (they return -EPIPE, or
         * take what is buffered) and leak it: a leak is the lesser harm. */
        weft__misuse("weft_chan_free while tasks or threads are still parked on the channel; "
                     "closing it instead (they get -EPIPE) and leaking its memory");
        weft_chan_close(c);
        return;
    }
    c->magic = 0;
    free(c->buf);
    free(c);
}

size_t weft_chan_len(weft_chan *c)
{
    weft__spin_lock(&c->lock);
    size_t n = c->len;
    weft__spin_unlock(&c->lock);
    return n;
}

size_t weft_chan_cap(weft_chan *c) { return c->cap; }

/* Parties claimed under a lock, finished after it is dropped. */
typedef struct {
    weft__parker *p[2];
    int n;
} finish_list;

static void hand(finish_list *f, weft__waiter *w, int result)
{
    w->p->result = result;
    w->p->chosen = w->index;
    f->p[f->n++] = w->p;
}

/* Under c->lock: 1 and *res if the send happened (or failed for good). */
static int send_locked(weft_chan *c, const void *src, weft__parker *self, int *res, finish_list *f)
{
    if (c->closed) {
        *res = -EPIPE;
        return 1;
    }
    weft__waiter *r = weft__waitq_claim_first(&c->recvq, self);
    if (r) {
        copy(r->elem, src, c->elem_size);
        hand(f, r, 0);
        *res = 0;
        return 1;
    }
    if (c->len < c->cap) {
        copy(slot(c, c->head + c->len), src, c->elem_size);
        c->len++;
        *res = 0;
        return 1;
    }
    return 0;
}

static int recv_locked(weft_chan *c, void *dst, weft__parker *self, int *res, finish_list *f)
{
    if (c->len > 0) {
        copy(dst, slot(c, c->head), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->len--;
        weft__waiter *s = weft__waitq_claim_first(&c->sendq, self);
        if (s) {
            copy(slot(c, c->head + c->len), s->elem, c->elem_size);
            c->len++;
            hand(f, s, 0);
        }
        *res = 0;
        return 1;
    }
    weft__waiter *s = weft__waitq_claim_first(&c->sendq, self);
    if (s) {
        copy(dst, s->elem, c->elem_size);
        hand(f, s, 0);
        *res = 0;
        return 1;
    }
    if (c->closed) {
        *res = -EPIPE;
        return 1;
    }
    return 0;
}

/* Could the case proceed now (a cheap look; stale waiters may disappoint)? */
static bool looks_ready(weft_chan *c, weft_case_op op, weft__parker *self)
{
    if (c->closed)
        return true;
    weft__waitq *q = op == WEFT_SEND ? &c->recvq : &c->sendq;
    for (weft__waiter *w = q->head; w; w = w->next)
        if (w->p != self)
            return true;
    return op == WEFT_SEND ? c->len < c->cap : c->len > 0;
}

static void finish_all(finish_list *f)
{
    for (int i = 0; i < f->n; i++)
        weft__parker_finish(f->p[i]);
    f->n = 0;
}

void weft_chan_close(weft_chan *c)
{
    weft__spin_lock(&c->lock);
    if (c->closed) {
        weft__spin_unlock(&c->lock);
        return;
    }
    c->closed = true;
    /* Claim everyone under the lock, chain them, finish after unlocking. */
    weft__parker *chain[64];
    int n = 0;
    weft__waiter *w;
    for (;;) {
        w = weft__waitq_claim_first(&c->recvq, NULL);
        if (!w)
            w = weft__waitq_claim_first(&c->sendq, NULL);
        if (!w)
            break;
        w->p->result = -EPIPE;
        w->p->chosen = w->index;
        if (n == 64) {
            /* Many waiters: finish in batches (finishing under the lock is
             * correct, just slower for the woken). */
            for (int i = 0; i < n; i++)
                weft__parker_finish(chain[i]);
            n = 0;
        }
        chain[n++] = w->p;
    }
    weft__spin_unlock(&c->lock);
    for (int i = 0; i < n; i++)
        weft__parker_finish(chain[i]);
}

/* ---- select (and the blocking single operations) -------------------------- */

static int cmp_chan(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (weft_chan *const *)a, y = (uintptr_t) * (weft_chan *const *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    weft_chan **locks; /* distinct channels, address order */
    int nlocks;
} lockset;

static void lock_all(lockset *l)
{
    for (int i = 0; i < l->nlocks; i++)
        weft__spin_lock(&l->locks[i]->lock);
}

static void unlock_all(lockset *l)
{
    for (int i = l->nlocks - 1; i >= 0; i--)
        weft__spin_unlock(&l->locks[i]->lock);
}

static int select_impl(weft_case *cases, size_t n, int64_t deadline, bool block)
{
    if (n > INT_MAX || (n && !cases))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        if (cases[i].op != WEFT_SEND && cases[i].op != WEFT_RECV) {
            weft__misuse("weft_select: case %zu has op %d (WEFT_SEND or WEFT_RECV)", i,
                         (int)cases[i].op);
            return -EINVAL;
        }
        if (cases[i].chan->magic != CHAN_MAGIC) {
            weft__misuse("weft_select: case %zu names a channel that is not open", i);
            return -EINVAL;
        }
        if (cases[i].op == WEFT_SEND && !cases[i].elem && cases[i].chan->elem_size) {
            weft__misuse("weft_select: case %zu sends from a NULL element", i);
            return -EINVAL;
        }
    }
    weft__task *t = weft__current();
    if (block && t) {
        weft__coop_spend(t);
        if (weft__task_cancelled(t))
            return -ECANCELED;
    }

    weft_chan *lk_stack[STACK_CASES];
    weft__waiter w_stack[STACK_CASES];
    int idx_stack[STACK_CASES];
    weft_chan **lk = lk_stack;
    weft__waiter *ws = w_stack;
    int *ready = idx_stack;
    if (n > STACK_CASES) {
        lk = malloc(n * sizeof *lk);
        ws = calloc(n, sizeof *ws);
        ready = malloc(n * sizeof *ready);
        if (!lk || !ws || !ready) {
            free(lk);
            free(ws);
            free(ready);
            return -ENOMEM;
        }
    }
    lockset l = {lk, 0};
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan)
            lk[l.nlocks++] = cases[i].chan;
    qsort(lk, (size_t)l.nlocks, sizeof *lk, cmp_chan);
    int d = 0;
    for (int i = 0; i < l.nlocks; i++)
        if (i == 0 || lk[i] != lk[d - 1])
            lk[d++] = lk[i];
    l.nlocks = d;

    int rc;
    finish_list f = {{NULL, NULL}, 0};
    lock_all(&l);
    /* Pass 1: perform one ready case, chosen uniformly among the ready. */
    for (;;) {
        int k = 0;
        for (size_t i = 0; i < n; i++)
            if (cases[i].chan && looks_ready(cases[i].chan, cases[i].op, NULL))
                ready[k++] = (int)i;
        if (k == 0)
            break;
        int pick = ready[weft__sync_rand() % (uint64_t)k];
        weft_case *cs = &cases[pick];
        int res;
        int done = cs->op == WEFT_SEND ? send_locked(cs->chan, cs->elem, NULL, &res, &f)
                                       : recv_locked(cs->chan, cs->elem, NULL, &res, &f);
        if (done) {
            unlock_all(&l);
            finish_all(&f);
            cs->result = res;
            rc = pick;
            goto out;
        }
        /* Only stale waiters were there (now unlinked): look again. */
    }
    if (!block) {
        unlock_all(&l);
        rc = -EAGAIN;
        goto out;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft__now()) {
        unlock_all(&l);
        rc = -ETIMEDOUT;
        goto out;
    }
    /* Pass 2: a waiter on every case, one parker for all. */
    /* For the dump, the first two channels and the count (the cases live
     * on our stack, which a dumping thread must not read). */
    const void *first = NULL;
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        if (k == 0)
            first = cases[i].chan;
        else if (k == 1 && t)
            atomic_store_explicit(&t->wait_chan2, cases[i].chan, memory_order_relaxed);
        k++;
    }
    if (t)
        atomic_store_explicit(&t->wait_nchans, k, memory_order_relaxed);
    weft__wait_note(l.nlocks ? "select" : "select with no cases", first);
    weft__parker p;
    weft__parker_begin(&p, true);
    for (size_t i = 0; i < n; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        if (!cases[i].chan)
            continue;
        ws[i].p = &p;
        ws[i].elem = cases[i].elem;
        ws[i].index = (int)i;
        weft__waitq_push(cases[i].op == WEFT_SEND ? &cases[i].chan->sendq : &cases[i].chan->recvq,
                         &ws[i]);
    }
    unlock_all(&l);
    int r = weft__parker_park(&p, deadline, true);
    lock_all(&l);
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan && ws[i].linked)
            weft__waitq_remove(cases[i].op == WEFT_SEND ? &cases[i].chan->sendq
                                                        : &cases[i].chan->recvq,
                               &ws[i]);
    unlock_all(&l);
    if (r == 0) {
        cases[p.chosen].result = p.result;
        rc = p.chosen;
    } else {
        rc = r; /* -ETIMEDOUT or -ECANCELED: no case was performed */
    }
out:
    if (n > STACK_CASES) {
        free(lk);
        free(ws);
        free(ready);
    }
    return rc;
}

int weft_select(weft_case *cases, size_t n, int64_t deadline)
{
    return select_impl(cases, n, deadline, true);
}

int weft_select_try(weft_case *cases, size_t n)
{
    return select_impl(cases, n, WEFT_FOREVER, false);
}

/* ---- single operations: fast paths, then the one-case select ------------ */

static bool valid(weft_chan *c)
{
    if (c && c->magic == CHAN_MAGIC)
        return true;
    weft__misuse("channel operation on something that is not an open channel");
    return false;
}

static inline __attribute__((always_inline)) int single(weft_chan *c, weft_case_op op, void *elem,
                                                        bool block)
{
    if (!valid(c))
        return -EINVAL;
    if (op == WEFT_SEND && !elem && c->elem_size) {
        weft__misuse("weft_chan_send from a NULL element (elem_size %zu)", c->elem_size);
        return -EINVAL;
    }
    weft__task *t = weft__current();
    if (block && t) {
        weft__coop_spend(t);
        if (weft__task_cancelled(t))
            return -ECANCELED;
    }
    finish_list f = {{NULL, NULL}, 0};
    int res;
    weft__spin_lock(&c->lock);
    int done = op == WEFT_SEND ? send_locked(c, elem, NULL, &res, &f)
                               : recv_locked(c, elem, NULL, &res, &f);
    if (done) {
        weft__spin_unlock(&c->lock);
        finish_all(&f);
        return res;
    }
    if (!block) {
        weft__spin_unlock(&c->lock);
        return -EAGAIN;
    }
    weft__wait_how how = {elem, WEFT_FOREVER, true, false};
    weft__wait_note(op == WEFT_SEND ? "channel send" : "channel receive", c);
    int r = weft__waitq_wait_how(&c->lock, op == WEFT_SEND ? &c->sendq : &c->recvq, &how, &res);
    return r ? r : res; /* -ECANCELED: nothing was sent or received */
}

int weft_chan_send(weft_chan *c, const void *elem)
{
    return single(c, WEFT_SEND, (void *)(uintptr_t)elem, true);
}

int weft_chan_recv(weft_chan *c, void *elem) { return single(c, WEFT_RECV, elem, true); }

int weft_chan_try_send(weft_chan *c, const void *elem)
{
    return single(c, WEFT_SEND, (void *)(uintptr_t)elem, false);
}

int weft_chan_try_recv(weft_chan *c, void *elem) { return single(c, WEFT_RECV, elem, false); }
