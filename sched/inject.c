/*
 * inject.c - the global inject queue: tasks made runnable by threads that
 * are not workers, and the overflow of full local queues.
 *
 * A FIFO list of tagged entries (weft__entry_link) under one spin
 * lock. It is off the hot path: workers look at it every 61st scheduling
 * tick (fairness), when their local queue is empty, and push to it only on
 * overflow. inject_n lets them skip the lock when it is empty.
 */
#include "internal.h"

void weft__inject_push(weft__rt *rt, uintptr_t first, uintptr_t last, unsigned n)
{
    *weft__entry_link(last) = 0;
    weft__spin_lock(&rt->inject_lock);
    if (rt->inject_tail)
        *weft__entry_link(rt->inject_tail) = first;
    else
        rt->inject_head = first;
    rt->inject_tail = last;
    atomic_fetch_add_explicit(&rt->inject_n, n, memory_order_release);
    weft__spin_unlock(&rt->inject_lock);
}

/* Takes a fair share of the inject queue: one entry to run now, and up to
 * half a run queue more moved into `refill` (the caller's own queue). */
uintptr_t weft__inject_pop(weft__rt *rt, weft__runq *refill)
{
    if (atomic_load_explicit(&rt->inject_n, memory_order_acquire) == 0)
        return 0;
    weft__spin_lock(&rt->inject_lock);
    unsigned avail = atomic_load_explicit(&rt->inject_n, memory_order_relaxed);
    if (avail == 0) {
        weft__spin_unlock(&rt->inject_lock);
        return 0;
    }
    unsigned n = avail / rt->nworkers + 1;
    if (n > avail)
        n = avail;
    if (refill) {
        unsigned room = WEFT__RUNQ_SIZE - weft__runq_len(refill);
        if (n > room / 2 + 1)
            n = room / 2 + 1;
    } else {
        n = 1;
    }
    uintptr_t first = rt->inject_head;
    uintptr_t e = first;
    for (unsigned i = 1; i < n; i++)
        e = weft__entry_next(e);
    rt->inject_head = weft__entry_next(e);
    if (!rt->inject_head)
        rt->inject_tail = 0;
    atomic_fetch_sub_explicit(&rt->inject_n, n, memory_order_relaxed);
    weft__spin_unlock(&rt->inject_lock);
    uintptr_t run = first;
    uintptr_t p = weft__entry_next(first);
    for (unsigned i = 1; i < n; i++) {
        uintptr_t nx = weft__entry_next(p);
        if (!weft__runq_push(refill, p))
            weft__panic("inject: refill overflowed a queue it measured");
        p = nx;
    }
    return run;
}
