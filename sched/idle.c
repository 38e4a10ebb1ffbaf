/*
 * idle.c - the idle-park interface: park(deadline) / unpark(worker).
 *
 * In the core an idle worker sleeps on a futex word of its own. io/ will
 * re-implement these two calls on its ring (io_uring_enter with a timeout
 * plus an eventfd), since one thread cannot sleep in both. Everything above
 * this file goes through the two calls only.
 *
 * Protocol: unpark sets park_word to 1 and wakes the futex if it was 0;
 * park sleeps while the word is 0 and consumes it on the way out,
 * returning whether it consumed a wake (false: deadline). A wake
 * that arrives before the sleep is therefore never lost.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long futex(atomic_uint *addr, int op, unsigned val, const struct timespec *ts)
{
    return syscall(SYS_futex, (unsigned *)addr, op, val, ts, NULL, 0);
}

bool weft__idle_park(weft__worker *w, int64_t deadline)
{
    if (w->io)
        return weft__io_idle_park(w, deadline);
    while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0) {
        struct timespec ts, *tsp = NULL;
        if (deadline != WEFT_FOREVER) {
            int64_t left = deadline - weft__now();
            if (left <= 0)
                break;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        long r = futex(&w->park_word, FUTEX_WAIT_PRIVATE, 0, tsp);
        if (r != 0 && errno == ETIMEDOUT)
            break;
    }
    /* acquire: pairs with the release exchange in unpark, so whatever the
     * unparker published (a task in our inbox) is visible. */
    return atomic_exchange_explicit(&w->park_word, 0, memory_order_acquire) != 0;
}

void weft__idle_unpark(weft__worker *w)
{
    if (w->io) {
        weft__io_idle_unpark(w);
        return;
    }
    if (atomic_exchange_explicit(&w->park_word, 1, memory_order_release) == 0)
        futex(&w->park_word, FUTEX_WAKE_PRIVATE, 1, NULL);
}
