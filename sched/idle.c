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
            int64_t sec, nsec;
            if (!weft__idle_time_left(deadline, &sec, &nsec))
                break;
            ts.tv_sec = sec;
            ts.tv_nsec = nsec;
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

/*
 * Steering: a worker woken from a long park is kept off its waker's CPU.
 *
 * The kernel may queue a woken thread on its waker's CPU, or on the CPU it
 * last ran on, although another CPU is idle: on a VM that reports no cache
 * topology (this one: 2 vCPUs, no /sys/.../cache) every CPU is its own
 * cache domain and the wake placement does not look for the idle one, and
 * some wake paths (io_uring's MSG_RING) pull the wakee to the waker's CPU.
 * The woken worker then waits behind its waker for the rest of the waker's
 * time slice: a fan-out after an idle period got its second worker 1.5-3.4
 * ms late (p50), against ~80-120 us for a plain thread woken onto an idle
 * CPU. So the claimer of a worker that has been parked for STEER_PARK_NS
 * or more narrows that worker's affinity to the runtime's CPUs minus its
 * own before the wake, and the worker puts its affinity back first thing
 * after it wakes. Only after long parks: a busy server's workers park and
 * wake thousands of times a second, and the two syscalls per wake cost its
 * echo throughput ~12%; a short park also leaves the CPUs warm. Costs a
 * clock read per park and per claim otherwise. A claim that races with the
 * worker's own timeout can leave it narrowed while it runs: it is restored
 * at its next wake at the latest.
 */
#define STEER_PARK_NS (1000 * 1000)

void weft__steer_init(weft__rt *rt)
{
    CPU_ZERO(&rt->cpus);
    /* WEFT_STEER=0 turns it off (to measure it, or where a process must
     * not touch its threads' affinity). */
    const char *env = getenv("WEFT_STEER");
    rt->steer_on = !(env && strcmp(env, "0") == 0) &&
                   sched_getaffinity(0, sizeof rt->cpus, &rt->cpus) == 0 &&
                   CPU_COUNT(&rt->cpus) > 1 && rt->nworkers > 1;
}

void weft__steer_note_park(weft__worker *w)
{
    if (w->rt->steer_on)
        atomic_store_explicit(&w->park_since, weft__now(), memory_order_relaxed);
}

void weft__steer_away(weft__rt *rt, weft__worker *v)
{
    if (!rt->steer_on ||
        weft__now() - atomic_load_explicit(&v->park_since, memory_order_relaxed) < STEER_PARK_NS)
        return;
    int me = sched_getcpu();
    pid_t tid = atomic_load_explicit(&v->tid, memory_order_relaxed);
    if (me < 0 || tid <= 0 || !CPU_ISSET(me, &rt->cpus))
        return;
    cpu_set_t set = rt->cpus;
    CPU_CLR(me, &set);
    if (sched_setaffinity(tid, sizeof set, &set) == 0)
        atomic_store_explicit(&v->steered, true, memory_order_relaxed);
}

void weft__steer_restore_slow(weft__worker *w)
{
    atomic_store_explicit(&w->steered, false, memory_order_relaxed);
    sched_setaffinity(0, sizeof w->rt->cpus, &w->rt->cpus);
}
