/*
 * util.c - panics, misuse reports, the spin lock's slow path, the clock.
 */
#include "internal.h"

/* Concurrency Kit's exponential backoff (it touches no shared memory, so
 * ThreadSanitizer misses nothing by not seeing it). The ceiling is where
 * the spin lock stops spinning and gives the CPU away. */
#define CK_BACKOFF_CEILING 4096
#include <ck_backoff.h>

#include <sched.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

static void describe_self(char *buf, size_t n)
{
    weft__worker *w = weft__self();
    weft__task *t = w ? w->current : NULL;
    if (t)
        snprintf(buf, n, "task %llu \"%s\" on worker %d", (unsigned long long)t->id, t->name,
                 w->id);
    else if (w)
        snprintf(buf, n, "worker %d (scheduler)", w->id);
    else
        snprintf(buf, n, "a plain thread");
}

static void vreport(const char *kind, const char *fmt, va_list ap)
{
    char who[96], msg[512], line[700];
    describe_self(who, sizeof who);
    vsnprintf(msg, sizeof msg, fmt, ap);
    int len = snprintf(line, sizeof line, "weft: %s: %s (in %s)\n", kind, msg, who);
    if (len > (int)sizeof line - 1)
        len = (int)sizeof line - 1;
    /* One write so concurrent reports do not interleave mid-line. */
    ssize_t r = write(2, line, (size_t)len);
    (void)r;
}

void weft__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("panic", fmt, ap);
    va_end(ap);
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_relaxed);
    if (rt) { /* chosen or given: WEFT_SEED=<it> replays the choices */
        char line[80];
        int len = snprintf(line, sizeof line, "weft: WEFT_SEED=%llu\n",
                           (unsigned long long)rt->seed);
        ssize_t r = write(2, line, (size_t)len);
        (void)r;
    }
    abort();
}

void weft__misuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("misuse", fmt, ap);
    va_end(ap);
}

_Atomic uint64_t weft__lock_foreign_contended, weft__lock_foreign_wait;

void weft__spin_lock_slow(weft__spin *l)
{
    /* Contention accounting (weft_stats.lock_contended, lock_wait_ns): only
     * here, where the lock was found held and the caller waits anyway. The
     * count comes first, before the wait, so that a holder can see that a
     * waiter arrived (tests/wb_lockstat.c). A worker's own counters take it
     * (the thread driving a worker is its only writer: weft__tls_worker is
     * NULL on any other thread, blocking calls included); a thread driving
     * no worker adds to the shared pair, which rt.c folds in. */
    weft__worker *w = weft__tls_worker;
    if (w)
        WEFT__COUNT(w, lock_contended, 1);
    else
        atomic_fetch_add_explicit(&weft__lock_foreign_contended, 1, memory_order_relaxed);
    uint64_t t0 = weft__ticks();
    ck_backoff_t backoff = 16;
    for (;;) {
        /* Wait for a release, polling the lock word less and less often:
         * every poll pulls the line away from the holder, whose release
         * then misses (a cross-core round trip costs 0.1-0.9 us on the VMs
         * measured). Only once the backoff reaches its ceiling (the holder
         * was probably preempted: more threads than cores) give the CPU
         * away instead of burning the time slice. */
        while (atomic_load_explicit(&l->v, memory_order_relaxed) != 0) {
            if (backoff < CK_BACKOFF_CEILING) {
                weft__cpu_relax();
                ck_backoff_eb(&backoff);
            } else {
                sched_yield();
            }
        }
        /* acquire: pairs with the release in weft__spin_unlock. */
        if (atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)
            break;
    }
    uint64_t dt = weft__ticks() - t0;
    if (w)
        WEFT__COUNT(w, lock_wait, dt);
    else
        atomic_fetch_add_explicit(&weft__lock_foreign_wait, dt, memory_order_relaxed);
}

unsigned weft__delay_us[WEFT__DELAY_N];
bool weft__test_fail_threads;

void weft__test_delay_init(void)
{
    static const char *const names[WEFT__DELAY_N] = {"task_started", "wake_idle", "cancel_bump"};
    memset(weft__delay_us, 0, sizeof weft__delay_us);
    const char *f = getenv("WEFT_TEST_FAIL_THREADS");
    weft__test_fail_threads = f && *f == '1';
    const char *e = getenv("WEFT_TEST_DELAY");
    while (e && *e) {
        for (int i = 0; i < WEFT__DELAY_N; i++) {
            size_t len = strlen(names[i]);
            if (strncmp(e, names[i], len) == 0 && e[len] == '=')
                weft__delay_us[i] = (unsigned)strtoul(e + len + 1, NULL, 10);
        }
        e = strchr(e, ',');
        if (e)
            e++;
    }
}

void weft__test_delay_slow(int point) { usleep(weft__delay_us[point]); }

int64_t weft__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_now(void) { return weft__now(); }

/* Never inlined, and the empty volatile asm keeps link-time optimisation
 * from taking it for a pure function: &errno is computed here, on the
 * thread that runs this call (see weft.h). */
__attribute__((noinline)) int weft_errno(void)
{
    __asm__ __volatile__("" ::: "memory");
    return errno;
}
