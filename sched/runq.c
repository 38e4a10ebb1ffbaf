/*
 * runq.c - the per-worker bounded run queue (the Go/Tokio shape).
 *
 * A ring of WEFT__RUNQ_SIZE tagged task pointers with two free-running
 * 32-bit indices: `tail`, written only by the owning worker, and `head`,
 * advanced by CAS by the owner (pop) and by thieves (steal half).
 *
 * Proof sketch.
 * (1) Only the owner writes slots, and only slot tail % SIZE, and only when
 *     tail - head < SIZE for a head it loaded with acquire. head never moves
 *     backward, so that slot is not between the current head and tail: no
 *     consumer can legitimately be reading it.
 * (2) A consumer loads head (acquire) and tail (acquire: pairs with the
 *     owner's release store of tail, so the slots below tail are visible),
 *     reads the slots [h, h+n), then CASes head from h to h+n. If the CAS
 *     succeeds, head was h throughout, so by (1) the owner did not write any
 *     of those slots meanwhile (writing slot (h+i) % SIZE needs tail - head
 *     < SIZE with tail >= h + SIZE, i.e. head > h). The values read are
 *     exactly the entries published, and the CAS gives each to one consumer.
 *     If the CAS fails the values are discarded, so racing reads of slots are
 *     harmless; they are relaxed atomics to make that well-defined.
 * (3) Steal half moves n = ceil(len/2) entries with that single CAS. The
 *     thief writes them into its own, empty queue at its own tail and then
 *     publishes that tail with release: the same owner-only rule as (1).
 * (4) The CAS on head is release so a consumer that later observes the new
 *     head (the owner computing free space) also observes the reads done.
 * Overflow (push on a full ring) moves half of the ring plus the new entry
 * to the global inject queue, again claiming them with one CAS on head.
 *
 * This is the queue of Go's runtime (runqput / runqget / runqgrab) in
 * C11 atomics; the one-item proof of Chase-Lev does not apply to it.
 */
#include "internal.h"

#define MASK (WEFT__RUNQ_SIZE - 1u)

void weft__runq_init(weft__runq *q)
{
    atomic_store_explicit(&q->head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->tail, 0, memory_order_relaxed);
}

/* weft__runq_push, weft__runq_pop and weft__runq_len are inline in
 * internal.h: the owner's push and the pop described above. */

/* Owner: moves half of a full queue plus e to the inject queue. False if
 * the queue is no longer full (a thief made room): push again. */
static bool push_slow(weft__rt *rt, weft__runq *q, uintptr_t e, unsigned h, unsigned t)
{
    unsigned n = (t - h) / 2;
    if (n != WEFT__RUNQ_SIZE / 2)
        return false;
    uintptr_t batch[WEFT__RUNQ_SIZE / 2 + 1];
    for (unsigned i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&q->buf[(h + i) & MASK], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    batch[n] = e;
    weft__inject_push_batch(rt, batch, n + 1);
    return true;
}

void weft__runq_overflow(weft__rt *rt, weft__runq *q, uintptr_t e)
{
    for (;;) {
        unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
        unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (push_slow(rt, q, e, h, t))
            return;
        if (weft__runq_push(q, e)) /* a thief made room */
            return;
    }
}

uintptr_t weft__runq_steal(weft__runq *victim, weft__runq *dst)
{
    unsigned dt = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    for (;;) {
        unsigned h = atomic_load_explicit(&victim->head, memory_order_acquire);
        unsigned t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        unsigned n = t - h;
        n = n - n / 2;
        if (n == 0)
            return 0;
        if (n > WEFT__RUNQ_SIZE / 2)
            continue; /* read h and t at different times: inconsistent, retry */
        for (unsigned i = 0; i < n; i++) {
            uintptr_t e = atomic_load_explicit(&victim->buf[(h + i) & MASK], memory_order_relaxed);
            atomic_store_explicit(&dst->buf[(dt + i) & MASK], e, memory_order_relaxed);
        }
        if (!atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n, memory_order_release,
                                                   memory_order_relaxed))
            continue;
        /* Keep the last one to run now; publish the rest (point 3). */
        n--;
        uintptr_t e = atomic_load_explicit(&dst->buf[(dt + n) & MASK], memory_order_relaxed);
        if (n)
            atomic_store_explicit(&dst->tail, dt + n, memory_order_release);
        return e;
    }
}
