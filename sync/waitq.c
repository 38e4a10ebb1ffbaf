/*
 * waitq.c - parkers and the waiter queue (see sync/internal.h).
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- parkers --------------------------------------------------------------- */

void weft__parker_begin(weft__parker *p, bool cancellable)
{
    p->task = weft__current();
    p->chosen = -1;
    p->result = 0;
    atomic_store_explicit(&p->tstate, 0, memory_order_relaxed);
    atomic_store_explicit(&p->futex, 0, memory_order_relaxed);
    if (p->task)
        p->token = weft__wait_begin(p->task, cancellable ? WAIT_CANCELLABLE : 0);
}

bool weft__parker_claim(weft__parker *p)
{
    if (p->task)
        return weft__wake_claim(p->task, p->token, W_WOKEN);
    unsigned zero = 0;
    return atomic_compare_exchange_strong_explicit(&p->tstate, &zero, 1, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

void weft__parker_finish(weft__parker *p)
{
    if (p->task) {
        weft__wake_finish(p->task, W_WOKEN);
        return;
    }
    /* release: what the waker wrote happens-before the thread's return. The
     * thread may return (and its frame die) as soon as it sees 1; a futex
     * wake on a dead address is harmless. */
    atomic_uint *addr = &p->futex;
    weft__hb_release(p);
    atomic_store_explicit(addr, 1, memory_order_release);
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int thread_park_loop(weft__parker *p, int64_t deadline);

static int thread_park(weft__parker *p, int64_t deadline)
{
    /* Counted for the deadlock detector: a thread parked here can only be
     * woken by a task or another thread. */
    bool counted = deadline == WEFT_FOREVER && !weft__tls_never_wakes;
    if (counted) {
        weft__thread_wait_note(true);
        atomic_fetch_add_explicit(&weft__threads_parked, 1, memory_order_relaxed);
    }
    int r = thread_park_loop(p, deadline);
    if (counted) {
        atomic_fetch_sub_explicit(&weft__threads_parked, 1, memory_order_relaxed);
        weft__thread_wait_note(false);
    }
    return r;
}

static int thread_park_loop(weft__parker *p, int64_t deadline)
{
    while (atomic_load_explicit(&p->futex, memory_order_acquire) == 0) {
        struct timespec ts, *tsp = NULL;
        if (deadline != WEFT_FOREVER) {
            int64_t left = deadline - weft__now();
            if (left <= 0) {
                unsigned zero = 0;
                if (atomic_compare_exchange_strong_explicit(&p->tstate, &zero, 2,
                                                            memory_order_acq_rel,
                                                            memory_order_relaxed))
                    return -ETIMEDOUT;
                /* Claimed meanwhile: the finish is on its way. */
                deadline = WEFT_FOREVER;
                continue;
            }
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        syscall(SYS_futex, (unsigned *)&p->futex, FUTEX_WAIT_PRIVATE, 0, tsp, NULL, 0);
    }
    weft__hb_acquire(p);
    return 0;
}

int weft__parker_park(weft__parker *p, int64_t deadline, bool cancellable)
{
    if (!p->task)
        return thread_park(p, deadline);
    int r = weft__wait_park(p->task, p->token, deadline, cancellable ? WAIT_CANCELLABLE : 0);
    return r == W_WOKEN ? 0 : r == W_TIMER ? -ETIMEDOUT : -ECANCELED;
}

/* ---- the queue ------------------------------------------------------------- */

void weft__waitq_push(weft__waitq *q, weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
}

void weft__waitq_push_front(weft__waitq *q, weft__waiter *w)
{
    w->prev = NULL;
    w->next = q->head;
    if (q->head)
        q->head->prev = w;
    else
        q->tail = w;
    q->head = w;
    w->linked = true;
}

static inline void unlink_waiter(weft__waitq *q, weft__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

void weft__waitq_remove(weft__waitq *q, weft__waiter *w)
{
    if (w->linked)
        unlink_waiter(q, w);
}

weft__waiter *weft__waitq_claim_first_slow(weft__waitq *q, weft__parker *skip)
{
    weft__waiter *w = q->head;
    while (w) {
        weft__waiter *nx = w->next;
        if (w->p != skip) {
            unlink_waiter(q, w);
            if (weft__parker_claim(w->p))
                return w;
        }
        w = nx;
    }
    return NULL;
}

bool weft__waitq_wake_one(weft__waitq *q)
{
    weft__waiter *w = weft__waitq_claim_first(q, NULL);
    if (!w)
        return false;
    weft__parker_finish(w->p);
    return true;
}

unsigned weft__waitq_wake_all(weft__waitq *q)
{
    unsigned n = 0;
    weft__waiter *w;
    while ((w = weft__waitq_claim_first(q, NULL)) != NULL) {
        weft__parker_finish(w->p);
        n++;
    }
    return n;
}

int weft__waitq_wait_how(weft__spin *lock, weft__waitq *q, const weft__wait_how *how,
                         int *delivered)
{
    weft__parker p;
    weft__waiter w;
    memset(&w, 0, sizeof w);
    weft__parker_begin(&p, how->cancellable);
    w.p = &p;
    w.elem = how->elem;
    if (how->front)
        weft__waitq_push_front(q, &w);
    else
        weft__waitq_push(q, &w);
    weft__spin_unlock(lock);
    int r = weft__parker_park(&p, how->deadline, how->cancellable);
    if (r != 0) {
        /* Nobody claimed us (the claim decides), so nothing was delivered:
         * leave the queue if a waker has not already unlinked us. */
        weft__spin_lock(lock);
        weft__waitq_remove(q, &w);
        weft__spin_unlock(lock);
    } else if (delivered) {
        *delivered = p.result;
    }
    return r;
}

int weft__waitq_wait(weft__spin *lock, weft__waitq *q, int64_t deadline, bool cancellable)
{
    weft__wait_how how = {NULL, deadline, cancellable, false};
    return weft__waitq_wait_how(lock, q, &how, NULL);
}

static WEFT__TLS uint64_t thread_rng;

uint64_t weft__sync_rand(void)
{
    weft__worker *w = weft__self();
    if (w)
        return weft__rand(w);
    uint64_t x = thread_rng;
    if (!x)
        x = (uint64_t)weft__now() ^ (uint64_t)(uintptr_t)&thread_rng ^ 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    thread_rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}
