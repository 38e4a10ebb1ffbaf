/*
 * deadlock.c - "all tasks are asleep": detection by the monitor thread.
 *
 * Every DEADLOCK_TICK the monitor takes a snapshot: every worker parked
 * with nothing queued and no timer armed, no blocking-pool job queued or
 * running, some task alive, and every thread of the process that weft did
 * not create parked in a weft wait (counted in sync/waitq.c; the thread
 * count comes from /proc/self/task, and io_uring's kernel workers count as
 * weft's). The snapshot must hold twice in a row with no context switch in
 * between (a progress counter) before it counts. Then weft prints the
 * diagnosis, cancels the root scope so tasks unwind through their
 * cancellation points, and weft_run returns -EDEADLK. If the tasks are still
 * stuck after that (waits that are not cancellation points, shields), it
 * prints the diagnosis again and aborts.
 *
 * Foreign threads. An idle thread weft did not create could still wake a
 * task, so by default it keeps the detector quiet. A thread that declared
 * it never will (weft_thread_never_wakes, sched/threads.c) is not waited
 * for, nor is any with weft_config.ignore_foreign_threads; the report then
 * lists the foreign threads weft knows of and what each waits on.
 */
#include "internal.h"

#include <dirent.h>
#include <unistd.h>

extern void *__tsan_get_current_fiber(void) __attribute__((weak));

static unsigned count_foreign_threads(unsigned weft_threads)
{
    /* ThreadSanitizer runs one background thread of its own. */
    if (__tsan_get_current_fiber)
        weft_threads++;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return ~0u; /* cannot tell: assume someone may still act */
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(name, sizeof name, f))
                name[0] = 0;
            fclose(f);
        }
        if (strncmp(name, "iou-", 4) == 0)
            continue; /* io_uring's kernel workers */
        n++;
    }
    closedir(d);
    return n > weft_threads ? n - weft_threads : 0;
}

static uint64_t progress(weft__rt *rt)
{
    uint64_t p = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        p += atomic_load_explicit(&rt->workers[i].ctr.v[WEFT__CTR_INDEX(context_switches)],
                                  memory_order_relaxed);
    return p;
}

/* One look; true if everything that could make progress is asleep. */
static bool all_asleep(weft__rt *rt)
{
    if (atomic_load_explicit(&rt->shutdown, memory_order_acquire))
        return false;
    if (atomic_load_explicit(&rt->nparked, memory_order_acquire) != rt->nworkers)
        return false;
    if (atomic_load_explicit(&rt->inject_n, memory_order_acquire))
        return false;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        if (atomic_load_explicit(&w->timer_next, memory_order_acquire) != WEFT_FOREVER ||
            weft__runq_len(&w->runq) || weft__deque_len(&w->spawnq) ||
            atomic_load_explicit(&w->runnext, memory_order_acquire) ||
            !weft__inbox_empty(&w->inbox))
            return false;
    }
    unsigned pool_threads;
    if (weft__blocking_busy(rt, &pool_threads))
        return false;
    if (weft__io_busy(rt))
        return false; /* a task waits on I/O: input may still arrive */
    if (rt->ignore_foreign)
        return true; /* weft_config.ignore_foreign_threads */
    /* weft's threads: the workers (worker 0 is weft_run's caller) and the
     * monitor; pool threads are idle here. Threads that declared they never
     * wake weft (weft_thread_never_wakes) do not count either. */
    unsigned foreign = count_foreign_threads(rt->nworkers + 1 + pool_threads);
    unsigned declared = weft__threads_declared_alive();
    foreign = foreign > declared ? foreign - declared : 0;
    return foreign <= (unsigned)atomic_load_explicit(&weft__threads_parked, memory_order_relaxed);
}

int weft__deadlock_check(weft__rt *rt, weft__deadlock_state *st)
{
    bool asleep = all_asleep(rt);
    uint64_t p = progress(rt);
    if (!asleep || p != st->last_progress) {
        st->last_progress = p;
        st->strikes = 0;
        return 0;
    }
    if (++st->strikes < 2)
        return 0;
    st->strikes = 0;
    if (!st->reported) {
        st->reported = true;
        fprintf(stderr,
                "weft: deadlock: all tasks are asleep (%llu live); cancelling the root "
                "scope so they unwind\n",
                (unsigned long long)weft__tasks_live(rt));
        weft__dump_rt(rt, 2);
        weft__threads_report(stderr, rt->ignore_foreign);
        return 1;
    }
    fprintf(stderr, "weft: deadlock: all tasks are still asleep after the cancel (waits that "
                    "are not cancellation points, or shielded scopes); aborting\n");
    weft__dump_rt(rt, 2);
    return 2;
}
