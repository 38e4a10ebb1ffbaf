/* errno after a park (weft.h, weft_errno). A task that may have migrated
 * reads the errno of the libc call it just made on its current thread:
 * weft_errno() is right in every iteration. Each iteration the task parks
 * on a semaphore that a plain OS thread releases: a task woken from outside
 * goes to the shared inject queue and resumes on whichever of the 3 workers
 * takes it, so it changes threads often. The same loop reading plain
 * `errno` is compiled beside it and its wrong reads are counted and
 * printed, not asserted (they depend on the compiler hoisting &errno and
 * on migrations actually happening): it shows the trap the call avoids.
 * Conservation: every iteration of every task is checked once.
 * LABELS: unit
 */
#include "test.h"

#include <fcntl.h>
#include <pthread.h>

#define TASKS 4

static long iters;
static atomic_long checked, plain_wrong, migrated;
static weft_sem sem[TASKS];
static atomic_int next_slot, done_tasks;

/* The plain thread: releases every task's semaphore, round after round. */
static void *releaser(void *arg)
{
    (void)arg;
    while (atomic_load(&done_tasks) < TASKS) {
        for (int k = 0; k < TASKS; k++)
            weft_sem_release(&sem[k]);
        usleep(20);
    }
    return NULL;
}

static int park_once(int slot) { return weft_sem_acquire(&sem[slot]); }

/* The two failing calls alternate, so a stale errno from another thread
 * is likely to differ from the expected one. */
static int fail_call(long i)
{
    if (i & 1)
        return access("/nonexistent-weft-dir/x", F_OK); /* ENOENT */
    return open("/dev/null/x", O_RDONLY | O_CLOEXEC);   /* ENOTDIR */
}

static int with_accessor(void *arg)
{
    (void)arg;
    int slot = atomic_fetch_add(&next_slot, 1);
    for (long i = 0; i < iters; i++) {
        int before = weft_worker_id();
        errno = 0;
        CHECK_OK(park_once(slot));
        if (weft_worker_id() != before)
            atomic_fetch_add(&migrated, 1);
        int e = 0;
        if (fail_call(i) < 0)
            e = weft_errno();
        CHECK_EQ(e, (i & 1) ? ENOENT : ENOTDIR);
        atomic_fetch_add(&checked, 1);
    }
    atomic_fetch_add(&done_tasks, 1);
    return 0;
}

static int with_plain_errno(void *arg)
{
    (void)arg;
    int slot = atomic_fetch_add(&next_slot, 1);
    long wrong = 0;
    for (long i = 0; i < iters; i++) {
        errno = 0; /* the usual idiom; the compiler keeps &errno from here */
        CHECK_OK(park_once(slot));
        int e = 0;
        if (fail_call(i) < 0)
            e = errno; /* the trap: &errno may belong to the previous thread */
        wrong += e != ((i & 1) ? ENOENT : ENOTDIR);
        atomic_fetch_add(&checked, 1);
    }
    atomic_fetch_add(&plain_wrong, wrong);
    atomic_fetch_add(&done_tasks, 1);
    return 0;
}

static int root(void *arg)
{
    weft_fn fn = (weft_fn)arg;
    atomic_store(&next_slot, 0);
    atomic_store(&done_tasks, 0);
    for (int k = 0; k < TASKS; k++)
        weft_sem_init(&sem[k], 0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, releaser, NULL));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < TASKS; i++)
        CHECK_OK(weft_spawn(n, fn, NULL));
    int rc = weft_nursery_close(n);
    CHECK_OK(pthread_join(th, NULL));
    return rc;
}

int main(void)
{
    test_watchdog(50);
    iters = test_scale(5000);
    CHECK_OK(test_run(3, root, (void *)with_accessor));
    CHECK_EQ(atomic_load(&checked), TASKS * iters);
    long moves = atomic_load(&migrated);
    atomic_store(&checked, 0);
    /* Not under sanitizers: a stale &errno is another thread's errno, and
     * TSan rightly reports the read as a data race. */
    if (!test_sanitized()) {
        CHECK_OK(test_run(3, root, (void *)with_plain_errno));
        CHECK_EQ(atomic_load(&checked), TASKS * iters);
    }
    printf("sched_errno: weft_errno right in all %ld reads (%ld after a migration); plain errno "
           "wrong in %ld of %ld\n",
           TASKS * iters, moves, atomic_load(&plain_wrong), TASKS * iters);
    /* Outside a task it is plain errno. */
    errno = EDOM;
    CHECK_EQ(weft_errno(), EDOM);
    return 0;
}
