/* Migration stress: tasks park and resume thousands of times across all
 * workers; task-local values and task ids must follow the task, never the
 * thread. Conservation: every increment a task made is counted once.
 * TIMEOUT: 120
 * LABELS: stress
 */
#include "test.h"

#include <pthread.h>

static weft_key key;
static atomic_long migrations, total_iters;
static weft_sem outside;
static atomic_bool stop_releaser;

/* A plain thread that keeps releasing permits until the run is over. */
static void *releaser(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_releaser)) {
        for (int k = 0; k < 64; k++)
            weft_sem_release(&outside);
        usleep(50);
    }
    return NULL;
}

typedef struct {
    long iters;
    long done;
} job;

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static int mover(void *arg)
{
    job *j = arg;
    uint64_t id = weft_task_id();
    uint64_t *mine = malloc(sizeof *mine);
    CHECK(mine != NULL);
    *mine = id;
    CHECK_OK(weft_task_set(key, mine));
    int last = weft_worker_id();
    long moved = 0;
    for (long i = 0; i < j->iters; i++) {
        switch (i % 4) {
        case 0:
            CHECK_OK(weft_yield());
            break;
        case 1:
            CHECK_OK(weft_sleep(0));
            break;
        case 2:
            CHECK_OK(weft_sleep(1000));
            break;
        default:
            /* Woken by a plain thread: resumes through the inject queue on
             * whichever worker takes it first. A weft_blocking call on the
             * way (it runs on the worker's own thread). */
            CHECK_EQ(weft_blocking(noop, &i), 0);
            CHECK_OK(weft_sem_acquire(&outside));
            break;
        }
        uint64_t *v = weft_task_get(key);
        CHECK(v == mine);
        CHECK_EQ(*v, id);
        CHECK_EQ(weft_task_id(), id);
        int now = weft_worker_id();
        if (now != last)
            moved++;
        last = now;
        j->done++;
    }
    atomic_fetch_add(&migrations, moved);
    atomic_fetch_add(&total_iters, j->done);
    return 0;
}

static void free_val(void *p) { free(p); }

static int root(void *arg)
{
    long tasks = (long)(intptr_t)arg;
    long iters = test_scale(3000);
    job *jobs = calloc((size_t)tasks, sizeof *jobs);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (long i = 0; i < tasks; i++) {
        jobs[i].iters = iters;
        CHECK_OK(weft_spawn(n, mover, &jobs[i]));
    }
    CHECK_OK(weft_nursery_close(n));
    long sum = 0;
    for (long i = 0; i < tasks; i++) {
        CHECK_EQ(jobs[i].done, iters);
        sum += jobs[i].done;
    }
    CHECK_EQ(atomic_load(&total_iters), sum);
    free(jobs);
    return 0;
}

int main(void)
{
    test_watchdog(110);
    CHECK_OK(weft_key_create(&key, free_val));
    for (unsigned w = 2; w <= 4; w += 2) {
        atomic_store(&migrations, 0);
        atomic_store(&total_iters, 0);
        weft_sem_init(&outside, 0);
        atomic_store(&stop_releaser, false);
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, releaser, NULL));
        CHECK_OK(test_run(w, root, (void *)(intptr_t)64));
        atomic_store(&stop_releaser, true);
        CHECK_OK(pthread_join(th, NULL));
        printf("sched_migrate: %u workers, %ld migrations\n", w, atomic_load(&migrations));
        fflush(stdout);
        /* With two or more workers, tasks must really move around, or the
         * checks above tested nothing. How often they move depends on how
         * the OS runs the worker threads (about 800 with a CPU hog beside
         * the suite, 10,000+ without), so only some moving is required. */
        CHECK(atomic_load(&migrations) >= 1);
    }
    printf("sched_migrate: ok\n");
    return 0;
}
