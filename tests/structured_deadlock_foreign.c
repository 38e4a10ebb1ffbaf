/* Deadlock detection in a process with foreign threads: an idle logger
 * thread keeps the detector quiet by default (it could still wake a task),
 * but once it declares weft_thread_never_wakes, or with
 * WEFT_IGNORE_FOREIGN_THREADS=1 (weft_config.ignore_foreign_threads), a
 * deadlock is reported and weft_run returns -EDEADLK; the report names the
 * foreign threads weft knows of and what they wait on.
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>

static weft_event never = WEFT_EVENT_INIT;
static weft_event thread_never = WEFT_EVENT_INIT;
static int logger_pipe[2];
static atomic_int declare;
static atomic_int logger_ready, waiter_ready;

/* An idle foreign thread, as a logger is: blocked in read(). */
static void *logger(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "logger");
    if (atomic_load(&declare))
        CHECK_OK(weft_thread_never_wakes("the logger"));
    atomic_store(&logger_ready, 1);
    char c;
    for (;;)
        if (read(logger_pipe[0], &c, 1) <= 0)
            pause();
    return NULL;
}

/* A foreign thread parked in a weft wait (counted as asleep already). */
static void *weft_waiter(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "evwaiter");
    atomic_store(&waiter_ready, 1);
    weft_event_wait(&thread_never);
    return NULL;
}

static int stuck_root(void *arg)
{
    (void)arg;
    CHECK_OK(pipe(logger_pipe));
    pthread_t th, tw;
    CHECK_OK(pthread_create(&th, NULL, logger, NULL));
    CHECK_OK(pthread_create(&tw, NULL, weft_waiter, NULL));
    CHECK_SOON(atomic_load(&logger_ready) && atomic_load(&waiter_ready));
    /* Nobody will ever set it: a deadlock, unless the logger might. */
    int rc = weft_event_wait(&never);
    CHECK_EQ(rc, -ECANCELED);
    return rc;
}

/* A bounded stand-in for "not reported": the run is cancelled from a
 * plain thread after a while (longer than the detector needs). */
static void *canceller(void *arg)
{
    (void)arg;
    usleep((useconds_t)(3000000 * test_slowdown()));
    weft_run_cancel();
    return NULL;
}

static int quiet_root(void *arg)
{
    pthread_t c;
    CHECK_OK(pthread_create(&c, NULL, canceller, NULL));
    pthread_detach(c);
    return stuck_root(arg);
}

static bool counting_ok(void)
{
#if defined(__SANITIZE_THREAD__)
    return false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    return false;
#else
    return true;
#endif
#else
    return true;
#endif
}

static int from_task(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_thread_never_wakes("x"), -EPERM);
    return 0;
}

int main(void)
{
    test_watchdog(100);
    int status;

    char *out;
    /* The logger declared: reported, named with what it waits on. Under
     * TSan the process runs threads of the sanitizer's own (more of them
     * after a fork) that the detector's count cannot tell apart, so the
     * cases that rest on counting threads run in the other builds. */
    if (counting_ok() && test_case_selected("declared")) {
        atomic_store(&declare, 1);
        out = test_run_in_child(2, stuck_root, NULL, &status);
        fprintf(stderr, "%s", out);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3); /* -EDEADLK */
        CHECK(strstr(out, "weft: deadlock: all tasks are asleep") != NULL);
        CHECK(strstr(out, "\"the logger\": declared never to wake weft") != NULL);
        CHECK(strstr(out, "\"evwaiter\": parked in a weft wait: event") != NULL);
    }

    /* Nothing declared, but foreign threads ignored: reported too. */
    if (test_case_selected("ignored")) {
        atomic_store(&declare, 0);
        out = test_run_in_child(2, stuck_root, "WEFT_IGNORE_FOREIGN_THREADS=1", &status);
        fprintf(stderr, "%s", out);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
        CHECK(strstr(out, "weft: deadlock: all tasks are asleep") != NULL);
        CHECK(strstr(out, "\"evwaiter\": parked in a weft wait: event") != NULL);
    }

    /* Neither: the idle logger could still act, so no report (the run is
     * cancelled from outside instead, and returns its cancel). */
    if (test_case_selected("neither")) {
        atomic_store(&declare, 0);
        out = test_run_in_child(2, quiet_root, NULL, &status);
        fprintf(stderr, "%s", out);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
        CHECK(strstr(out, "weft: deadlock") == NULL);
    }

    /* Misuse is an error, not a crash; a bad variable is -EINVAL. */
    CHECK_OK(test_run(1, from_task, NULL));
    weft_thread_may_wake(); /* never declared: a no-op */
    setenv("WEFT_IGNORE_FOREIGN_THREADS", "yes", 1);
    CHECK_EQ(test_run(1, stuck_root, NULL), -EINVAL);
    unsetenv("WEFT_IGNORE_FOREIGN_THREADS");
    return 0;
}
