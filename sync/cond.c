/*
 * cond.c - weft_cond: the waiter is queued before the mutex is released, so
 * a signal sent after the unlock always finds it. A waiter that is
 * cancelled or times out leaves the queue unclaimed: the signal goes to the
 * next waiter.
 */
#include "internal.h"

typedef struct {
    weft__spin lock;
    weft__waitq q;
} cond;
_Static_assert(sizeof(cond) <= sizeof(weft_cond), "weft_cond too small");
_Static_assert(_Alignof(cond) <= _Alignof(weft_cond), "weft_cond misaligned");

static cond *priv(weft_cond *c) { return (cond *)(void *)c; }

void weft_cond_init(weft_cond *c) { memset(c, 0, sizeof *c); }

void weft_cond_destroy(weft_cond *c)
{
    if (priv(c)->q.head)
        weft__misuse("weft_cond_destroy with waiters still parked on it");
}

int weft_cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    cond *v = priv(c);
    weft__task *t = weft__current();
    if (t && weft__task_cancelled(t))
        return -ECANCELED;
    weft__parker p;
    weft__waiter w;
    memset(&w, 0, sizeof w);
    weft__wait_note("cond", c);
    weft__parker_begin(&p, true);
    w.p = &p;
    weft__spin_lock(&v->lock);
    weft__waitq_push(&v->q, &w);
    weft__spin_unlock(&v->lock);
    weft_mutex_unlock(m);
    int r = weft__parker_park(&p, deadline, true);
    if (r != 0) {
        weft__spin_lock(&v->lock);
        weft__waitq_remove(&v->q, &w);
        weft__spin_unlock(&v->lock);
    }
    weft_mutex_lock(m);
    return r;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m) { return weft_cond_wait_until(c, m, WEFT_FOREVER); }

void weft_cond_signal(weft_cond *c)
{
    cond *v = priv(c);
    weft__spin_lock(&v->lock);
    weft__waiter *w = weft__waitq_claim_first(&v->q, NULL);
    weft__spin_unlock(&v->lock);
    if (w)
        weft__parker_finish(w->p);
}

void weft_cond_broadcast(weft_cond *c)
{
    cond *v = priv(c);
    weft__spin_lock(&v->lock);
    weft__waitq_wake_all(&v->q);
    weft__spin_unlock(&v->lock);
}
