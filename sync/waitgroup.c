/*
 * waitgroup.c - weft_waitgroup (Go's sync.WaitGroup).
 */
#include "internal.h"

typedef struct {
    weft__spin lock;
    _Atomic int64_t count;
    weft__waitq q;
} wg;
_Static_assert(sizeof(wg) <= sizeof(weft_waitgroup), "weft_waitgroup too small");
_Static_assert(_Alignof(wg) <= _Alignof(weft_waitgroup), "weft_waitgroup misaligned");

static wg *priv(weft_waitgroup *w) { return (wg *)(void *)w; }

void weft_waitgroup_init(weft_waitgroup *w) { memset(w, 0, sizeof *w); }

void weft_waitgroup_destroy(weft_waitgroup *w)
{
    if (priv(w)->q.head)
        weft__misuse("weft_waitgroup_destroy with waiters still parked on it");
}

void weft_waitgroup_add(weft_waitgroup *w, int delta)
{
    wg *v = priv(w);
    /* acq_rel: every done happens-before the wait it ends. */
    weft__hb_release(v);
    int64_t now = atomic_fetch_add_explicit(&v->count, delta, memory_order_acq_rel) + delta;
    if (now < 0) {
        weft__misuse("weft_waitgroup counter went negative (%lld); reset to 0", (long long)now);
        atomic_store_explicit(&v->count, 0, memory_order_release);
        now = 0;
    }
    if (now == 0) {
        weft__spin_lock(&v->lock);
        weft__waitq_wake_all(&v->q);
        weft__spin_unlock(&v->lock);
    }
}

void weft_waitgroup_done(weft_waitgroup *w) { weft_waitgroup_add(w, -1); }

int weft_waitgroup_wait(weft_waitgroup *w)
{
    wg *v = priv(w);
    weft__task *t = weft__current();
    if (t) {
        weft__coop_spend(t);
        if (weft__task_cancelled(t))
            return -ECANCELED;
    }
    if (atomic_load_explicit(&v->count, memory_order_acquire) == 0) {
        weft__hb_acquire(v);
        return 0;
    }
    weft__spin_lock(&v->lock);
    if (atomic_load_explicit(&v->count, memory_order_acquire) == 0) {
        weft__spin_unlock(&v->lock);
        weft__hb_acquire(v);
        return 0;
    }
    weft__wait_note("waitgroup", w);
    return weft__waitq_wait(&v->lock, &v->q, WEFT_FOREVER, true);
}
