/*
 * deque.c - the per-worker spawn deque (Chase-Lev), for fork-join.
 *
 * Spawned children go here rather than into the FIFO run queue. The owner
 * pushes at the bottom; a parent waiting in weft_nursery_close takes its
 * own latest child back from the bottom (LIFO) and runs it inline, so the
 * common fork-join case leaves no entry behind and needs no stack per
 * child. Thieves, and the owner's scheduling loop (fairness: the oldest
 * spawn runs first there), take single entries from the top, where the
 * oldest and in fork-join the largest pieces of work sit.
 *
 * This is the algorithm of Lê, Pop, Cohen and Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), whose proof
 * covers exactly these three operations on a fixed-size array. Where the
 * paper uses fences around relaxed accesses, this uses release/seq_cst
 * operations on top and bottom themselves (equal strength, and visible to
 * ThreadSanitizer, which does not model fences):
 *  - push:  slot store (relaxed), then bottom store with release: a thief
 *           that reads the new bottom (acquire) sees the slot and the task.
 *  - take:  bottom = b - 1 (seq_cst), then read top (seq_cst): the Dekker
 *           pair with steal's top-then-bottom reads; when one entry is
 *           left, owner and thief race with a CAS on top, one wins.
 *  - steal: top (seq_cst), bottom (seq_cst), read the slot, CAS top.
 * A full deque reports failure; the caller overflows to the run queue.
 */
#include "internal.h"

#define DMASK (WEFT__DEQUE_SIZE - 1)

void weft__deque_init(weft__deque *d)
{
    atomic_store_explicit(&d->top, 0, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, 0, memory_order_relaxed);
}

bool weft__deque_push(weft__deque *d, uintptr_t e)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    if (b - t >= (int64_t)WEFT__DEQUE_SIZE)
        return false;
    atomic_store_explicit(&d->buf[b & DMASK], e, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return true;
}

uintptr_t weft__deque_take(weft__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return 0;
    }
    uintptr_t e = atomic_load_explicit(&d->buf[b & DMASK], memory_order_relaxed);
    if (t == b) {
        /* The last entry: race a thief for it. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            e = 0;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return e;
}

uintptr_t weft__deque_steal(weft__deque *d)
{
    for (;;) {
        int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
        int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
        if (t >= b)
            return 0;
        uintptr_t e = atomic_load_explicit(&d->buf[t & DMASK], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                    memory_order_relaxed))
            return e;
        /* Lost to another thief or the owner: look again. */
    }
}
