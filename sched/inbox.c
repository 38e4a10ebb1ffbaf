/*
 * inbox.c - a worker's MPSC inbox for tasks that must run on that worker
 * (pinned tasks woken elsewhere, hand-offs).
 *
 * Producers push onto a Treiber stack with a release CAS; the single
 * consumer takes the whole stack with an acquire exchange and reverses it,
 * so tasks come out oldest first. Taking everything at once means the
 * consumer never pops a node another producer is about to link to, so
 * there is no ABA problem.
 */
#include "internal.h"

void weft__inbox_init(weft__inbox *q)
{
    atomic_store_explicit(&q->top, NULL, memory_order_relaxed);
}

void weft__inbox_push(weft__inbox *q, weft__task *t)
{
    weft__task *top = atomic_load_explicit(&q->top, memory_order_relaxed);
    do {
        t->next = top;
        /* release: publishes t->next and everything the waker did to t. */
    } while (!atomic_compare_exchange_weak_explicit(&q->top, &top, t, memory_order_release,
                                                    memory_order_relaxed));
}

weft__task *weft__inbox_take_all(weft__inbox *q)
{
    /* acquire: pairs with the producers' release CAS. */
    weft__task *t = atomic_exchange_explicit(&q->top, NULL, memory_order_acquire);
    weft__task *rev = NULL;
    while (t) {
        weft__task *nx = t->next;
        t->next = rev;
        rev = t;
        t = nx;
    }
    return rev;
}
