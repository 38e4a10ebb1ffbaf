/*
 * event.c - weft_event: a one-shot flag that wakes every waiter.
 */
#include "internal.h"

typedef struct {
    weft__spin lock;
    atomic_uint set;
    weft__waitq q;
} event;
_Static_assert(sizeof(event) <= sizeof(weft_event), "weft_event too small");
_Static_assert(_Alignof(event) <= _Alignof(weft_event), "weft_event misaligned");

static event *priv(const weft_event *e) { return (event *)(void *)e; }

void weft_event_init(weft_event *e) { memset(e, 0, sizeof *e); }

void weft_event_destroy(weft_event *e)
{
    event *v = priv(e);
    if (v->q.head)
        weft__misuse("weft_event_destroy with waiters still parked on it");
}

void weft_event_set(weft_event *e)
{
    event *v = priv(e);
    weft__hb_release(v);
    weft__spin_lock(&v->lock);
    /* release: what the setter did happens-before a wait that returns 0. */
    if (!atomic_exchange_explicit(&v->set, 1, memory_order_release))
        weft__waitq_wake_all(&v->q);
    weft__spin_unlock(&v->lock);
}

bool weft_event_is_set(const weft_event *e)
{
    if (!atomic_load_explicit(&priv(e)->set, memory_order_acquire))
        return false;
    weft__hb_acquire(priv(e));
    return true;
}

int weft_event_wait_until(weft_event *e, int64_t deadline)
{
    event *v = priv(e);
    weft__task *t = weft__current();
    if (t) {
        weft__coop_spend(t);
        if (weft__task_cancelled(t))
            return -ECANCELED;
    }
    if (atomic_load_explicit(&v->set, memory_order_acquire)) {
        weft__hb_acquire(v);
        return 0;
    }
    weft__spin_lock(&v->lock);
    if (atomic_load_explicit(&v->set, memory_order_acquire)) {
        weft__spin_unlock(&v->lock);
        weft__hb_acquire(v);
        return 0;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft__now()) {
        weft__spin_unlock(&v->lock);
        return -ETIMEDOUT;
    }
    weft__wait_note("event", e);
    return weft__waitq_wait(&v->lock, &v->q, deadline, true);
}

int weft_event_wait(weft_event *e) { return weft_event_wait_until(e, WEFT_FOREVER); }
