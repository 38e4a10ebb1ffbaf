/*
 * sem.c - weft_sem: release hands the permit straight to the first waiter
 * that can still take it (a cancelled waiter cannot: its claim fails), and
 * only when none can does the count grow. So a waiter that returns
 * -ECANCELED took no permit and no release is lost.
 */
#include "internal.h"

typedef struct {
    weft__spin lock;
    atomic_uint count;
    weft__waitq q;
} sem;
_Static_assert(sizeof(sem) <= sizeof(weft_sem), "weft_sem too small");
_Static_assert(_Alignof(sem) <= _Alignof(weft_sem), "weft_sem misaligned");

static sem *priv(weft_sem *s) { return (sem *)(void *)s; }

void weft_sem_init(weft_sem *s, unsigned count)
{
    memset(s, 0, sizeof *s);
    atomic_store_explicit(&priv(s)->count, count, memory_order_relaxed);
}

void weft_sem_destroy(weft_sem *s)
{
    if (priv(s)->q.head)
        weft__misuse("weft_sem_destroy with waiters still parked on it");
}

int weft_sem_tryacquire(weft_sem *s)
{
    sem *v = priv(s);
    unsigned c = atomic_load_explicit(&v->count, memory_order_relaxed);
    while (c > 0)
        /* acquire: pairs with the release that added the permit. */
        if (atomic_compare_exchange_weak_explicit(&v->count, &c, c - 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
            weft__hb_acquire(v);
            return 0;
        }
    return -EAGAIN;
}

int weft_sem_acquire(weft_sem *s)
{
    sem *v = priv(s);
    weft__task *t = weft__current();
    if (t) {
        weft__coop_spend(t);
        if (weft__task_cancelled(t))
            return -ECANCELED;
    }
    if (weft_sem_tryacquire(s) == 0)
        return 0;
    weft__spin_lock(&v->lock);
    if (weft_sem_tryacquire(s) == 0) {
        weft__spin_unlock(&v->lock);
        return 0;
    }
    /* 0: a release handed us its permit. */
    weft__wait_note("semaphore", s);
    return weft__waitq_wait(&v->lock, &v->q, WEFT_FOREVER, true);
}

void weft_sem_release(weft_sem *s)
{
    sem *v = priv(s);
    weft__hb_release(v);
    weft__spin_lock(&v->lock);
    weft__waiter *w = weft__waitq_claim_first(&v->q, NULL);
    if (!w)
        atomic_fetch_add_explicit(&v->count, 1, memory_order_release);
    weft__spin_unlock(&v->lock);
    if (w)
        weft__parker_finish(w->p);
}
