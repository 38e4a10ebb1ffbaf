/*
 * sync/internal.h - the waiter queue every sync object is built on.
 *
 * A waiter lives on the waiting side's stack. A task waiter parks through
 * sched's park/wake primitive (its token decides who wins between a waker
 * and a cancel or deadline); a plain-thread waiter sleeps on a futex word
 * in the waiter. The queue itself is protected by the owning object's lock.
 *
 * Rule that keeps wakeups from being lost: a waker removes a waiter from the
 * queue (under the lock) before firing it; if the fire loses (the task was
 * cancelled or timed out meanwhile) the waker moves on to the next waiter.
 * A waiter that returns -ECANCELED/-ETIMEDOUT unlinks itself if it is still
 * linked, so it consumed nothing.
 */
#ifndef WEFT_SYNC_INTERNAL_H
#define WEFT_SYNC_INTERNAL_H

#include "../sched/internal.h"

typedef struct weft__waiter {
    struct weft__waiter *next, *prev;
    weft__task *task;   /* NULL: a plain thread */
    uint64_t token;
    atomic_uint futex;  /* thread waiters: 1 once woken */
    bool linked;
} weft__waiter;

typedef struct {
    weft__waiter *head, *tail;
} weft__waitq;

WEFT__HIDDEN void weft__waitq_push(weft__waitq *q, weft__waiter *w);
WEFT__HIDDEN void weft__waitq_remove(weft__waitq *q, weft__waiter *w);
/* Pops waiters until one accepts the wake; false if none did. Lock held. */
WEFT__HIDDEN bool weft__waitq_wake_one(weft__waitq *q);
/* Wakes every waiter. Lock held. Returns how many accepted. */
WEFT__HIDDEN unsigned weft__waitq_wake_all(weft__waitq *q);
/* Enqueues the caller, releases `lock`, parks until woken (0), the deadline
 * (-ETIMEDOUT) or a cancel (-ECANCELED; tasks only). Called with `lock`
 * held; returns with it released. */
WEFT__HIDDEN int weft__waitq_wait(weft__spin *lock, weft__waitq *q, int64_t deadline);

#endif
