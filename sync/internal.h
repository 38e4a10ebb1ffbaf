/*
 * sync/internal.h - the waiter queue every sync object is built on.
 *
 * A parker is one waiting party: a task (parked through sched's park/wake
 * primitive, its token deciding who wins between wakers, cancels and
 * deadlines) or a plain thread (sleeping on a futex word). A waiter is a
 * parker's entry in one queue; a select has one waiter per case, all
 * pointing at the same parker. Both live on the waiting side's stack; the
 * queue is protected by the owning object's lock.
 *
 * Waking is two-phase: claim (one CAS: the winner owns the parker and may
 * write results into it) then finish (make it runnable). Between the two
 * the waiting party cannot run, so a channel can copy data into a claimed
 * receiver's buffer before releasing it.
 *
 * The rule that keeps wakeups from being lost: a waker unlinks a waiter
 * (under the lock) before claiming it; if the claim fails (cancelled, timed
 * out, or a select already completed elsewhere) it moves on to the next. A
 * waiter that returns -ECANCELED/-ETIMEDOUT unlinks itself if still linked,
 * so it consumed nothing.
 */
#ifndef WEFT_SYNC_INTERNAL_H
#define WEFT_SYNC_INTERNAL_H

#include "../sched/internal.h"

typedef struct weft__parker {
    weft__task *task; /* NULL: a plain thread */
    uint64_t token;
    atomic_uint tstate; /* threads: 0 waiting, 1 claimed, 2 gave up */
    atomic_uint futex;  /* threads: 1 once finished */
    int chosen;         /* select: the case a waker completed */
    int result;         /* what the waker delivered (0, -EPIPE, ...) */
} weft__parker;

typedef struct weft__waiter {
    struct weft__waiter *next, *prev;
    weft__parker *p;
    void *elem; /* channels: source (send) or destination (recv) */
    int index;  /* select: the case this waiter stands for */
    bool linked;
} weft__waiter;

typedef struct {
    weft__waiter *head, *tail;
} weft__waitq;

/* Prepares p for the calling task or thread. */
WEFT__HIDDEN void weft__parker_begin(weft__parker *p, bool cancellable);
/* Wins p (true) or finds it already won, cancelled or timed out (false). */
WEFT__HIDDEN bool weft__parker_claim(weft__parker *p);
/* Lets a claimed p run again. May be called after dropping locks. */
WEFT__HIDDEN void weft__parker_finish(weft__parker *p);
/* Parks until finished (0), the deadline (-ETIMEDOUT) or, if cancellable
 * and a task, a cancel (-ECANCELED). */
WEFT__HIDDEN int weft__parker_park(weft__parker *p, int64_t deadline, bool cancellable);

WEFT__HIDDEN void weft__waitq_push(weft__waitq *q, weft__waiter *w);
WEFT__HIDDEN void weft__waitq_push_front(weft__waitq *q, weft__waiter *w);
WEFT__HIDDEN void weft__waitq_remove(weft__waitq *q, weft__waiter *w);
/* Unlinks waiters from the front until one is claimed (returned) or the
 * queue is empty (NULL). Waiters whose parker is `skip` stay queued (a
 * select never meets itself). Lock held. */
WEFT__HIDDEN weft__waiter *weft__waitq_claim_first_slow(weft__waitq *q, weft__parker *skip);
static inline weft__waiter *weft__waitq_claim_first(weft__waitq *q, weft__parker *skip)
{
    /* An empty queue (a receive with no sender parked, every other time in
     * a ping-pong) costs no call. */
    return q->head ? weft__waitq_claim_first_slow(q, skip) : NULL;
}
/* Claims and finishes the first claimable waiter; false if none. */
WEFT__HIDDEN bool weft__waitq_wake_one(weft__waitq *q);
/* Claims and finishes every waiter; returns how many accepted. */
WEFT__HIDDEN unsigned weft__waitq_wake_all(weft__waitq *q);
/* How a waitq_wait waits. */
typedef struct {
    void *elem;       /* channels: the data pointer a waker uses */
    int64_t deadline; /* WEFT_FOREVER: none */
    bool cancellable; /* a cancellation point (tasks) */
    bool front;       /* queue at the front (a mutex waiter that already waited) */
} weft__wait_how;

/* Enqueues the caller, releases `lock`, parks. Called with `lock` held;
 * returns with it released: 0 (then *delivered, if not NULL, is what the
 * waker left in the parker's result), -ETIMEDOUT, or -ECANCELED. */
WEFT__HIDDEN int weft__waitq_wait_how(weft__spin *lock, weft__waitq *q, const weft__wait_how *how,
                                      int *delivered);
/* The common case: no data, no front. */
WEFT__HIDDEN int weft__waitq_wait(weft__spin *lock, weft__waitq *q, int64_t deadline,
                                  bool cancellable);

/* A random number for fair choices (select): the worker's generator in a
 * task (seeded by WEFT_SEED), a per-thread one elsewhere. */
WEFT__HIDDEN uint64_t weft__sync_rand(void);
/* A mutex's owner for the dump: a task id, a thread id | 1 << 63, or 0. */
WEFT__HIDDEN uint64_t weft__mutex_owner(const void *m);

#endif
