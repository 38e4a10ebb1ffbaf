/*
 * tests/test.h - the little test harness: asserts that print both sides and
 * abort (never compiled out), a size scale for sanitizer builds, and a
 * watchdog so that no test can hang.
 */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <weft.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#ifdef __cplusplus
#include <atomic> /* C++17 has no <stdatomic.h> */
#else
#include <stdatomic.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A failure prints the scheduling seed: WEFT_SEED=<it> replays the
 * scheduler's random choices (exactly, with one worker). */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s (WEFT_SEED=%llu)\n", __FILE__, __LINE__,      \
                    #cond, (unsigned long long)weft_seed());                                       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld) (WEFT_SEED=%llu)\n",  \
                    __FILE__, __LINE__, #a, #b, va_, vb_, (unsigned long long)weft_seed());        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr) CHECK_EQ((expr), 0)

/* Sizes scale down under sanitizers: WEFT_TEST_SCALE=0.1 runs a tenth. */
static inline long test_scale(long n)
{
    const char *s = getenv("WEFT_TEST_SCALE");
    double f = s ? atof(s) : 1.0;
    if (f <= 0)
        f = 1.0;
    long r = (long)((double)n * f);
    return r < 1 ? 1 : r;
}

static inline bool test_sanitized(void)
{
#if defined(WEFT_SANITIZER_BUILD)
    return true;
#else
    return false;
#endif
}

/* How much slower than a Release build this run may be, for wall-clock
 * bounds (below) and the watchdog: 4 in sanitizer builds, else 1;
 * WEFT_TEST_SLOWDOWN=n in the environment overrides it (e.g. to run a test
 * under valgrind; ctest's TIMEOUTs, x4 in sanitizer builds, do not see it). */
static inline int64_t test_slowdown(void)
{
    const char *s = getenv("WEFT_TEST_SLOWDOWN");
    long f = s ? atol(s) : 0;
    if (f >= 1)
        return f;
    return test_sanitized() ? 4 : 1;
}

static void test_watchdog_fire(int sig)
{
    (void)sig;
    static const char msg[] = "test: watchdog expired (test hung)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}

/* Aborts the test if it runs longer than `seconds` (Release; stretched by
 * test_slowdown(), as is the test's ctest TIMEOUT, which it stays below). */
static inline void test_watchdog(unsigned seconds)
{
    signal(SIGALRM, test_watchdog_fire);
    alarm((unsigned)(seconds * test_slowdown()));
}

static inline int64_t test_ms(int64_t ms) { return ms * 1000000; }

/* Wall-clock bounds. A test asserts correctness and liveness, never speed,
 * and never an order that depends on speed: a bound on elapsed time only
 * says "this happened at all", so it must hold on a loaded machine in a
 * sanitizer build (10-50x slower than an idle Release run). Bounds are
 * written as generous Release values (seconds, not milliseconds) and
 * stretched by test_slowdown(). A test that needs "X has happened" waits
 * for X (an event, a counter, CHECK_SOON), never for a sleep it hopes is
 * long enough; a stress loop whose rounds slow down under load is bounded
 * by a time budget as well as a count. */

/* A liveness bound of `seconds` on a loaded Release machine, stretched. */
static inline int64_t test_bound_ns(int64_t seconds)
{
    return seconds * 1000000000 * test_slowdown();
}

/* The liveness bound within which a cancel, a wake or a deadline must have
 * reached a parked task, and "forever" for a sleeper that must be
 * cancelled (far beyond PROMPT_NS, so that a lost cancel cannot pass). */
#define PROMPT_NS test_bound_ns(5)
#define LONG_NS (4 * PROMPT_NS)

/* Polls (every millisecond: a task parks, a plain thread sleeps) until cond
 * holds; fails if it does not within PROMPT_NS. */
#define CHECK_SOON(cond)                                                                           \
    do {                                                                                           \
        int64_t soon_dl_ = weft_now() + PROMPT_NS;                                                 \
        while (!(cond)) {                                                                          \
            if (weft_now() > soon_dl_) {                                                           \
                fprintf(stderr,                                                                    \
                        "%s:%d: CHECK_SOON failed: %s still false after %.0f s "                   \
                        "(WEFT_SEED=%llu)\n",                                                      \
                        __FILE__, __LINE__, #cond, PROMPT_NS / 1e9,                                \
                        (unsigned long long)weft_seed());                                          \
                abort();                                                                           \
            }                                                                                      \
            (void)weft_sleep(test_ms(1));                                                          \
        }                                                                                          \
    } while (0)

/* TEST_CASE=name (environment) runs only the cases whose name contains it. */
static inline bool test_case_selected(const char *name)
{
    const char *only = getenv("TEST_CASE");
    if (only && !strstr(name, only))
        return false;
    fprintf(stderr, "-- %s\n", name);
    return true;
}

/* A case that is a task body, run in its own runtime; workers 0 lets
 * WEFT_WORKERS (or one per CPU) pick. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        if (test_case_selected(#fn))                                                               \
            CHECK_OK(test_run(0, fn, NULL));                                                       \
    } while (0)

/* A case that is a plain function. */
#define CASE(fn)                                                                                   \
    do {                                                                                           \
        if (test_case_selected(#fn))                                                               \
            fn();                                                                                  \
    } while (0)

/* Runs fn under a fresh runtime with `workers` workers; returns its result. */
/* Runs fn as the root task of a runtime with `workers` workers in a forked
 * child, its stderr captured; env ("NAME=VALUE", or NULL) is set in the
 * child first. The child exits 0 if the run returned 0, else 3, unless it
 * dies first. Returns the child's stderr (a static buffer); *status gets
 * waitpid's status. */
static inline int test_run(unsigned workers, weft_fn fn, void *arg);
static inline char *test_run_in_child(unsigned workers, weft_fn fn, const char *env, int *status)
{
    int p[2];
    CHECK_OK(pipe(p));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        if (env)
            putenv((char *)env);
        _exit(test_run(workers, fn, NULL) == 0 ? 0 : 3);
    }
    close(p[1]);
    static char buf[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(p[0]);
    CHECK_EQ(waitpid(pid, status, 0), pid);
    return buf;
}

/* fd's whole contents from its start (at most 64 KiB), NUL-terminated, in
 * a static buffer: what a dump wrote to a temporary file. */
static inline char *test_read_all(int fd)
{
    static char buf[65536];
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

/* The process's resident set in bytes (/proc/self/statm). */
static inline long test_rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    CHECK_EQ(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static inline int test_run(unsigned workers, weft_fn fn, void *arg)
{
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    return weft_run(&cfg, fn, arg);
}

#endif
