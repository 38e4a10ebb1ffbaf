/*
 * waitq.c - the waiter queue on sched's park/wake (see sync/internal.h).
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void weft__waitq_push(weft__waitq *q, weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
}

void weft__waitq_remove(weft__waitq *q, weft__waiter *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

static bool fire(weft__waiter *w)
{
    if (w->task)
        return weft__wake(w->task, w->token, W_WOKEN);
    /* release: the waker's writes happen-before the thread's return. The
     * waiter may return (and its frame die) as soon as it sees 1; a futex
     * wake on a dead address is harmless. */
    atomic_uint *addr = &w->futex;
    atomic_store_explicit(addr, 1, memory_order_release);
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return true;
}

bool weft__waitq_wake_one(weft__waitq *q)
{
    while (q->head) {
        weft__waiter *w = q->head;
        weft__waitq_remove(q, w);
        if (fire(w))
            return true;
    }
    return false;
}

unsigned weft__waitq_wake_all(weft__waitq *q)
{
    unsigned n = 0;
    while (q->head) {
        weft__waiter *w = q->head;
        weft__waitq_remove(q, w);
        n += fire(w);
    }
    return n;
}

static int thread_wait(weft__spin *lock, weft__waitq *q, weft__waiter *w, int64_t deadline)
{
    while (atomic_load_explicit(&w->futex, memory_order_acquire) == 0) {
        struct timespec ts, *tsp = NULL;
        if (deadline != WEFT_FOREVER) {
            int64_t left = deadline - weft__now();
            if (left <= 0) {
                weft__spin_lock(lock);
                bool mine = w->linked;
                weft__waitq_remove(q, w);
                weft__spin_unlock(lock);
                if (mine)
                    return -ETIMEDOUT;
                /* A waker popped us concurrently: its wake is ours. */
                deadline = WEFT_FOREVER;
                continue;
            }
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        syscall(SYS_futex, (unsigned *)&w->futex, FUTEX_WAIT_PRIVATE, 0, tsp, NULL, 0);
    }
    return 0;
}

int weft__waitq_wait(weft__spin *lock, weft__waitq *q, int64_t deadline)
{
    weft__waiter w;
    memset(&w, 0, sizeof w);
    weft__task *t = weft__current();
    if (!t) {
        weft__waitq_push(q, &w);
        weft__spin_unlock(lock);
        return thread_wait(lock, q, &w, deadline);
    }
    w.task = t;
    w.token = weft__wait_begin(t, WAIT_CANCELLABLE);
    weft__waitq_push(q, &w);
    weft__spin_unlock(lock);
    int r = weft__wait_park(t, w.token, deadline, WAIT_CANCELLABLE);
    if (r == W_WOKEN)
        return 0;
    weft__spin_lock(lock);
    weft__waitq_remove(q, &w);
    weft__spin_unlock(lock);
    return r == W_TIMER ? -ETIMEDOUT : -ECANCELED;
}
