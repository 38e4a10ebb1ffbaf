/*
 * inject.c - the global inject queue: tasks made runnable by threads that
 * are not workers, and the overflow of full local queues.
 *
 * A FIFO ring of segments under one spin lock. A segment is either
 *  - an array: an overflow (half a run queue plus one entry, pushed at
 *    once) copied into a buffer of its own, or
 *  - a list of tagged entries linked through weft__entry_link: single
 *    wake-ups, joined into the last list segment while it is small, and
 *    an overflow whose buffer could not be allocated.
 * A pop copies from arrays and takes list segments whole, so it never
 * walks the entries' task blocks under the lock: those were written by
 * the pushing worker, and on another worker each link would be a cache
 * miss, one after another, with every other worker waiting on the lock.
 * List segments are walked after the unlock; only a list segment larger
 * than the caller's queue can hold is split, by taking its first entry.
 * The ring grows with the backlog (a fan-out that spawns faster than the
 * other workers run its tasks overflows every 129 spawns); only when it
 * cannot does a push join the last segment, as a list.
 *
 * It is off the hot path: workers look at it every 61st scheduling tick
 * (fairness), when their local queue is empty, and push to it only on
 * overflow. inject_n lets them skip the lock when it is empty.
 */
#include "internal.h"

#define SEG_SMALL (WEFT__RUNQ_SIZE / 2 + 1) /* an overflow's size */
#define SEGS_MIN 64u                        /* the first ring from malloc */
#define POP_SEGS 16                         /* segments one pop takes at most */

static weft__inject_seg *seg_at(weft__rt *rt, unsigned i)
{
    /* cap is a power of two */
    return &rt->inject_seg[(rt->inject_seg_head + i) & (rt->inject_seg_cap - 1)];
}

/* Grows the ring (under the lock; once per doubling of the backlog: a
 * fan-out of a million spawns gets there in 13 steps). The first ring is
 * the rt's own four segments, so a push always finds one to join. False:
 * no memory. */
static bool seg_grow(weft__rt *rt)
{
    if (rt->inject_seg_cap == 0) {
        rt->inject_seg = rt->inject_seg0;
        rt->inject_seg_cap = sizeof rt->inject_seg0 / sizeof rt->inject_seg0[0];
        rt->inject_seg_head = 0;
        return true;
    }
    unsigned cap = rt->inject_seg_cap < SEGS_MIN ? SEGS_MIN : rt->inject_seg_cap * 2;
    weft__inject_seg *v = malloc(cap * sizeof *v);
    if (!v)
        return false;
    for (unsigned i = 0; i < rt->inject_seg_len; i++)
        v[i] = *seg_at(rt, i);
    if (rt->inject_seg != rt->inject_seg0)
        free(rt->inject_seg);
    rt->inject_seg = v;
    rt->inject_seg_cap = cap;
    rt->inject_seg_head = 0;
    return true;
}

void weft__inject_fini(weft__rt *rt)
{
    for (unsigned i = 0; i < rt->inject_seg_len; i++)
        free(seg_at(rt, i)->arr);
    if (rt->inject_seg != rt->inject_seg0)
        free(rt->inject_seg);
    rt->inject_seg = NULL;
    rt->inject_seg_cap = rt->inject_seg_len = rt->inject_seg_head = 0;
}

/* Under the lock: a new last segment, or NULL if the ring is full and
 * cannot grow. */
static weft__inject_seg *seg_new(weft__rt *rt)
{
    if (rt->inject_seg_len == rt->inject_seg_cap && !seg_grow(rt))
        return NULL;
    weft__inject_seg *s = seg_at(rt, rt->inject_seg_len++);
    memset(s, 0, sizeof *s);
    return s;
}

/* Under the lock, out of memory only: makes an array segment a list. */
static void seg_to_list(weft__inject_seg *s)
{
    uintptr_t *a = s->arr + s->off;
    for (unsigned i = 0; i + 1 < s->n; i++)
        *weft__entry_link(a[i]) = a[i + 1];
    *weft__entry_link(a[s->n - 1]) = 0;
    s->first = a[0];
    s->last = a[s->n - 1];
    free(s->arr);
    s->arr = NULL;
    s->off = 0;
}

void weft__inject_push(weft__rt *rt, uintptr_t first, uintptr_t last, unsigned n)
{
    *weft__entry_link(last) = 0;
    weft__spin_lock(&rt->inject_lock);
    unsigned len = rt->inject_seg_len;
    weft__inject_seg *s = len ? seg_at(rt, len - 1) : NULL;
    if (!s || s->arr || s->n + n > SEG_SMALL) {
        weft__inject_seg *fresh = seg_new(rt);
        if (fresh)
            s = fresh;
        else if (s->arr) /* full: join the last segment whatever it is */
            seg_to_list(s);
    }
    if (s->n == 0)
        s->first = first;
    else
        *weft__entry_link(s->last) = first;
    s->last = last;
    s->n += n;
    atomic_fetch_add_explicit(&rt->inject_n, n, memory_order_release);
    weft__spin_unlock(&rt->inject_lock);
}

void weft__inject_push_batch(weft__rt *rt, const uintptr_t *batch, unsigned n)
{
    uintptr_t *arr = malloc(n * sizeof *arr);
    if (arr) {
        memcpy(arr, batch, n * sizeof *arr);
        weft__spin_lock(&rt->inject_lock);
        weft__inject_seg *s = seg_new(rt);
        if (s) {
            s->arr = arr;
            s->n = n;
            atomic_fetch_add_explicit(&rt->inject_n, n, memory_order_release);
            weft__spin_unlock(&rt->inject_lock);
            return;
        }
        weft__spin_unlock(&rt->inject_lock);
        free(arr);
    }
    /* Out of memory: as a list, which needs none. */
    for (unsigned i = 0; i + 1 < n; i++)
        *weft__entry_link(batch[i]) = batch[i + 1];
    weft__inject_push(rt, batch[0], batch[n - 1], n);
}

/* Takes a fair share of the inject queue: one entry to run now, and up to
 * half a run queue more moved into `refill` (the caller's own queue); a
 * whole first segment that fits in `refill` is taken even if larger. */
uintptr_t weft__inject_pop(weft__rt *rt, weft__runq *refill)
{
    if (atomic_load_explicit(&rt->inject_n, memory_order_acquire) == 0)
        return 0;
    weft__inject_seg lists[POP_SEGS]; /* small: this may run on a task's stack */
    uintptr_t *done[POP_SEGS];
    unsigned nl = 0, nd = 0, n = 0;
    uintptr_t run = 0;
    weft__spin_lock(&rt->inject_lock);
    unsigned avail = atomic_load_explicit(&rt->inject_n, memory_order_relaxed);
    /* want: entries to take, the one run now included; fit: the most that
     * `refill` can hold, plus that one. */
    unsigned want = 1, fit = 1;
    if (refill && avail) {
        unsigned room = WEFT__RUNQ_SIZE - weft__runq_len(refill);
        want = avail / rt->nworkers + 1;
        if (want > room / 2 + 1)
            want = room / 2 + 1;
        fit = room + 1;
    }
    while (n < want && rt->inject_seg_len && nl < POP_SEGS && nd < POP_SEGS) {
        weft__inject_seg *s = seg_at(rt, 0);
        unsigned k = s->n;
        if (n + k > want && !(n == 0 && k <= fit)) {
            if (n > 0)
                break;
            /* Larger than the caller can hold: its first entry (the caller
             * overflowed here and takes its turn at the inject queue;
             * filling its queue up again would send them back). */
            k = 1;
        }
        if (s->arr) {
            const uintptr_t *a = s->arr + s->off;
            for (unsigned i = 0; i < k; i++) {
                if (!run)
                    run = a[i];
                else if (!weft__runq_push(refill, a[i]))
                    weft__panic("inject: refill overflowed a queue it measured");
            }
            s->off += k;
        } else if (k == s->n) {
            lists[nl++] = *s; /* walked after the unlock */
            if (!run)
                run = s->first;
        } else { /* k == 1 */
            lists[nl++] = (weft__inject_seg){.first = s->first, .last = s->first, .n = 1};
            if (!run)
                run = s->first;
            s->first = weft__entry_next(s->first);
        }
        n += k;
        s->n -= k;
        if (s->n == 0) {
            if (s->arr)
                done[nd++] = s->arr;
            rt->inject_seg_head = (rt->inject_seg_head + 1) & (rt->inject_seg_cap - 1);
            rt->inject_seg_len--;
        }
    }
    atomic_fetch_sub_explicit(&rt->inject_n, n, memory_order_relaxed);
    weft__spin_unlock(&rt->inject_lock);
    for (unsigned i = 0; i < nd; i++)
        free(done[i]);
    /* The list entries are ours now: walk them by count. */
    for (unsigned k = 0; k < nl; k++) {
        uintptr_t p = lists[k].first;
        for (unsigned i = 0; i < lists[k].n; i++) {
            uintptr_t nx = i + 1 < lists[k].n ? weft__entry_next(p) : 0;
            if (p != run && !weft__runq_push(refill, p))
                weft__panic("inject: refill overflowed a queue it measured");
            p = nx;
        }
    }
    return run;
}
