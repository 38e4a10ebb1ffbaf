/* Stuck tasks: a task that runs past WEFT_STUCK_MS without parking is
 * reported on stderr with its name, id, spawn site and worker, and counted
 * in weft_stats; a task that parks often is not, nor one waiting in
 * weft_blocking.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

static atomic_int hog_done;

static int hog(void *arg)
{
    (void)arg;
    weft_task_set_name("hog");
    /* Spin without parking until the monitor has reported us (a liveness
     * bound, not a speed claim). */
    int64_t give_up = weft_now() + test_bound_ns(20);
    weft_stats st;
    do {
        weft_stats_get(&st);
    } while (st.tasks_stuck == 0 && weft_now() < give_up);
    atomic_store(&hog_done, 1);
    return st.tasks_stuck > 0 ? 0 : -ETIMEDOUT;
}

static int sleeper(void *arg)
{
    (void)arg;
    weft_task_set_name("sleeper");
    while (!atomic_load(&hog_done))
        CHECK_OK(weft_sleep(test_ms(1)));
    return 0;
}

static int slow_job(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_done))
        usleep(1000);
    return 0;
}

static int blocker(void *arg)
{
    (void)arg;
    weft_task_set_name("blockjob");
    return weft_blocking(slow_job, NULL);
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleeper, NULL));
    CHECK_OK(weft_spawn(n, blocker, NULL));
    CHECK_OK(weft_spawn(n, hog, NULL));
    CHECK_OK(weft_nursery_close(n));
    weft_stats st;
    weft_stats_get(&st);
    CHECK(st.tasks_stuck >= 1);
    return 0;
}

static int quiet_root(void *arg)
{
    (void)arg;
    /* Parks every millisecond for a while: never reported. */
    int64_t until = weft_now() + test_ms(300);
    while (weft_now() < until)
        CHECK_OK(weft_sleep(test_ms(1)));
    weft_stats st;
    weft_stats_get(&st);
    CHECK_EQ(st.tasks_stuck, 0);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    int status;
    char *out = test_run_in_child(2, root, "WEFT_STUCK_MS=50", &status);
    fprintf(stderr, "%s", out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *r = strstr(out, "weft: stuck: task ");
    CHECK(r != NULL);
    CHECK(strstr(r, "\"hog\" has run ") != NULL);
    CHECK(strstr(r, " on worker ") != NULL);
    CHECK(strstr(r, "[spawned at ") != NULL && strstr(r, "sched_stuck.c:") != NULL);
    CHECK(strstr(out, "\"sleeper\"") == NULL);
    CHECK(strstr(out, "\"blockjob\"") == NULL);

    out = test_run_in_child(2, quiet_root, "WEFT_STUCK_MS=50", &status);
    fprintf(stderr, "%s", out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(out, "weft: stuck") == NULL);

    /* A bad value is a clear error, not a crash. */
    setenv("WEFT_STUCK_MS", "soon", 1);
    CHECK_EQ(test_run(1, quiet_root, NULL), -EINVAL);
    unsetenv("WEFT_STUCK_MS");
    return 0;
}
