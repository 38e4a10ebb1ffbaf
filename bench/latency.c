/*
 * latency.c - the runtime's latency promises, each measured under load, so
 * that an optimisation cannot quietly break one of them.
 *
 *   bench/latency [--cached] timer|spawn|ramp|handoff|stuck WORKERS [p50|p99]
 *
 * timer  Timer lateness next to a chatty pair. Two tasks ping-pong an int
 *        over two unbuffered channels without pause; a third task calls
 *        weft_sleep(1 ms) N times (after 20 unrecorded ones), recording
 *        lateness = wake time - (time before the call + 1 ms). The promise:
 *        a busy worker still fires a timer within 1 ms (p99).
 *        BENCH timer_late_p50_<W>w / timer_late_p99_<W>w, us.
 * spawn  Start delay of a new task under the same load: with the pair
 *        running, a spawner task spawns a child N times (after 20
 *        unrecorded ones), sleeping 1 ms (weft_sleep) between spawns; the
 *        delay is from just before the weft_spawn call until the child's
 *        first instruction (weft_now() there).
 *        BENCH spawn_delay_p50_<W>w / spawn_delay_p99_<W>w, us.
 * ramp   Parallelism ramp-up (WORKERS >= 2): the runtime starts and its root
 *        task sleeps 1 s (every worker idle and parked), then runs TRIALS
 *        trials, each after a further 100 ms of idleness: the root task
 *        (pinned while it spawns) spawns 1000 tasks of ~20 us of CPU work
 *        each (a busy loop on weft_now()) and closes the nursery. The figure
 *        is the time from just before the first spawn until the first child
 *        starts on a worker other than the spawner's (weft_worker_id()).
 *        A trial in which no child ever runs elsewhere counts as its whole
 *        duration (first spawn to close) and is reported on stderr.
 *        BENCH ramp_up_p50_<W>w / ramp_up_p99_<W>w, us.
 *        For reading the figure, stderr also shows the OS's share: in each
 *        idle period a plain thread blocked in FUTEX_WAIT (as an idle worker
 *        is) is woken twice from the root task, which then either sleeps on
 *        ("idle waker") or busy-waits up to 20 ms ("busy waker", as the
 *        spawner's worker stays busy in a fan-out); the delay until that
 *        thread runs is the floor of any runtime's ramp-up at that moment.
 *
 * handoff Work queued behind a long weft_blocking call: N times (after 20
 *        unrecorded ones, 2 ms apart), a task spawns a child onto its worker
 *        and calls weft_blocking with a body that polls (20 us sleeps, at
 *        most 100 ms) until that child has run. The delay is from the call
 *        (stamped just before weft_blocking, as the Go peer stamps before
 *        its syscall loop) to the child's first instruction:
 *        on 1 worker, the time a spare watching the call (or the monitor)
 *        takes to hand the worker's queue to another thread; on 2, an idle
 *        worker's steal. The promise: within
 *        1 ms (p99). N = 300 (50 quick).
 *        BENCH handoff_delay_p50_<W>w / handoff_delay_p99_<W>w, us.
 * stuck  Work queued behind a task that never parks, after an idle period
 *        (WORKERS >= 2): 50 times, every worker idle for 100 ms (the
 *        root task and a waiter parked), then the root task sends to the
 *        waiter (after 1 ms of busy-waiting, so that the worker its own
 *        wake-up woke has parked again), which goes to its worker's runnext
 *        slot (no idle worker is woken for that), and spins without parking until the waiter has
 *        run (at most 1 s). Only the monitor can move the waiter: it finds
 *        the worker stuck and wakes another, which steals it. The figure is
 *        from the send to the waiter's first instruction. The promise: a
 *        stuck worker is noticed within a few ms, also after idleness.
 *        BENCH stuck_idle_p50_<W>w / stuck_idle_p99_<W>w, us.
 *
 * N = 1000 (200 with WEFT_BENCH_QUICK=1); TRIALS = 100 (10 quick), so that
 * p99 is the second slowest trial, not the slowest; stuck: 50 (10 quick).
 * Idleness means the same to the runtime after 100 ms as after 1 s: the
 * workers park within about 100 us and the monitor starts its long sleep
 * once a look finds nothing run since the one before (2-4 ms); the first
 * ramp trial follows 1 s.
 * Percentiles are nearest-rank: p99 of 1000 samples is the 990th smallest,
 * p99 of 100 trials the 99th, of 50 the largest. The full distribution (min, p50, p90, p99,
 * max, mean), the pair's round trips per second during the measurement (to
 * show the load really ran) and the process's involuntary context switches
 * (how often the OS took a CPU away) go to stderr.
 *
 * Run time: timer and spawn N x 1 ms plus the lateness: ~1.1 s on an idle
 * machine, 2-4 s on a loaded one (0.3 s quick); ramp 1 s + TRIALS x (100 ms
 * + the fan-out: 10 ms idle, up to ~90 ms loaded), 12-17 s (3.5 s quick).
 * A measurement stops taking samples after 30 s (a runtime so slow reports
 * what it has), and a watchdog thread ends the process with status 1 after
 * 120 s, so the program always stops by itself.
 *
 * Prints both percentiles as BENCH lines, the selected one (default p99)
 * first: bench/run takes the first BENCH line, so two rows of
 * bench/benchmarks.tsv show the two figures of one measurement.
 *
 * --cached: as bench/parked_rss --cached. Every measurement writes its
 * figures to latency-<mode>-<W>w.cache next to the executable, tagged with
 * WEFT_BENCH_RUN_ID (bench/run exports a new one per run) and N; with
 * --cached, such a file newer than the executable with this run's id and N is
 * read instead of measuring again.
 *
 * The Go peer (bench/peers/go/latency.go: -bench timer_late_p50 etc.) does
 * the timer and spawn measurements with goroutines; ramp has no Go peer.
 */
#define _GNU_SOURCE
#include <weft.h>

#include "run_cache.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL
#define US 1000LL
#define WARMUP 20
#define SLEEP_NS (1 * MS)             /* timer: each sleep; spawn: between spawns */
#define BUDGET_NS (30 * 1000 * MS)    /* stop sampling after this long */
#define WATCHDOG_S 120                /* end the process after this long */
#define LOAD_START_NS (5 * 1000 * MS) /* the pair must have started by then */
#define RAMP_TASKS 1000
#define RAMP_WORK_NS (20 * US)
#define RAMP_FIRST_IDLE_NS (1000 * MS)
#define RAMP_IDLE_NS (100 * MS)
#define STUCK_SETTLE_NS (1 * MS)

enum mode { M_TIMER, M_SPAWN, M_RAMP, M_HANDOFF, M_STUCK };
static const char *const mode_name[] = {"timer", "spawn", "ramp", "handoff", "stuck"};
static const char *const bench_name[] = {"timer_late", "spawn_delay", "ramp_up", "handoff_delay",
                                         "stuck_idle"};

typedef struct figures {
    long n;
    double p50_us, p99_us;
} figures;

static enum mode mode;
static unsigned workers;
static long n_samples;   /* wanted */
static long n_taken;     /* taken */
static int64_t *samples; /* ns */
static figures measured;

/* ---- the chatty pair ------------------------------------------------------ */

static weft_chan *ping, *pong;
static atomic_int stop_load;
static atomic_long roundtrips; /* published by the pinger every round trip */

static int ponger(void *arg)
{
    (void)arg;
    long v;
    int rc;
    while ((rc = weft_chan_recv(ping, &v)) == 0) {
        v++;
        if ((rc = weft_chan_send(pong, &v)) != 0)
            return rc;
    }
    return rc == -EPIPE ? 0 : rc; /* the pinger closed ping: done */
}

static int pinger(void *arg)
{
    (void)arg;
    long v = 0, i = 0;
    int rc = 0;
    while (!atomic_load_explicit(&stop_load, memory_order_relaxed)) {
        if ((rc = weft_chan_send(ping, &v)) != 0 || (rc = weft_chan_recv(pong, &v)) != 0)
            break;
        atomic_store_explicit(&roundtrips, ++i, memory_order_relaxed);
    }
    weft_chan_close(ping);
    if (rc == 0 && v != i) {
        fprintf(stderr, "latency: ping-pong count %ld after %ld round trips\n", v, i);
        rc = -EPROTO;
    }
    return rc;
}

/* Parks (1 ms at a time) until the pair has made some round trips. */
static int wait_for_load(void)
{
    int64_t t0 = weft_now();
    while (atomic_load_explicit(&roundtrips, memory_order_relaxed) < 1000) {
        if (weft_now() - t0 > LOAD_START_NS) {
            fprintf(stderr, "latency: the ping-pong pair did not start\n");
            return -ETIMEDOUT;
        }
        int rc = weft_sleep(SLEEP_NS);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- timer ---------------------------------------------------------------- */

static int64_t load_t0, load_t1;
static long load_r0, load_r1;
static long ivcsw0, ivcsw1; /* involuntary context switches of the process */

static long ivcsw(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_nivcsw;
}

static void load_mark_start(void)
{
    load_t0 = weft_now();
    load_r0 = atomic_load_explicit(&roundtrips, memory_order_relaxed);
    ivcsw0 = ivcsw();
}

static void load_mark_end(void)
{
    load_t1 = weft_now();
    load_r1 = atomic_load_explicit(&roundtrips, memory_order_relaxed);
    ivcsw1 = ivcsw();
}

static int timer_task(void *arg)
{
    (void)arg;
    int rc = wait_for_load();
    for (int i = 0; rc == 0 && i < WARMUP; i++)
        rc = weft_sleep(SLEEP_NS);
    load_mark_start();
    for (long i = 0; rc == 0 && i < n_samples; i++) {
        int64_t t0 = weft_now();
        if ((rc = weft_sleep(SLEEP_NS)) != 0)
            break;
        int64_t t1 = weft_now();
        samples[n_taken++] = t1 - (t0 + SLEEP_NS);
        if (t1 - load_t0 > BUDGET_NS)
            break;
    }
    load_mark_end();
    atomic_store(&stop_load, 1);
    return rc;
}

/* ---- spawn ---------------------------------------------------------------- */

static int64_t *spawn_t0, *child_t1; /* per spawn, WARMUP + n_samples */

static int child(void *arg)
{
    *(int64_t *)arg = weft_now();
    return 0;
}

static int spawner_task(void *arg)
{
    (void)arg;
    weft_nursery *n;
    int rc = wait_for_load();
    if (rc == 0)
        rc = weft_nursery_open(&n);
    if (rc) {
        atomic_store(&stop_load, 1);
        return rc;
    }
    long total = WARMUP + n_samples, spawned = 0;
    for (long i = 0; i < total; i++) {
        if (i == WARMUP)
            load_mark_start();
        spawn_t0[i] = weft_now();
        if ((rc = (weft_spawn)(n, child, &child_t1[i])) != 0)
            break;
        spawned++;
        if ((rc = weft_sleep(SLEEP_NS)) != 0)
            break;
        if (i >= WARMUP && weft_now() - load_t0 > BUDGET_NS)
            break;
    }
    int rc2 = weft_nursery_close(n); /* every child has stored its start */
    load_mark_end();
    atomic_store(&stop_load, 1);
    for (long i = WARMUP; i < spawned; i++)
        samples[n_taken++] = child_t1[i] - spawn_t0[i];
    return rc ? rc : rc2;
}

/* ---- ramp ----------------------------------------------------------------- */

static int spawner_worker;
static _Atomic int64_t first_other; /* first start on another worker, 0: none */
static atomic_long ran_elsewhere;

static int ramp_child(void *arg)
{
    (void)arg;
    int64_t t = weft_now();
    if (weft_worker_id() != spawner_worker) {
        int64_t none = 0;
        atomic_compare_exchange_strong(&first_other, &none, t);
        atomic_fetch_add_explicit(&ran_elsewhere, 1, memory_order_relaxed);
    }
    while (weft_now() - t < RAMP_WORK_NS) {
    }
    return 0;
}

/*
 * The OS's share, for reading the figure: a plain thread blocked in
 * FUTEX_WAIT (as an idle weft worker is), woken by FUTEX_WAKE from the root
 * task twice in each idle period, records when it runs: once with the waker
 * going back to sleep at once ("idle waker"), once with the waker busy-
 * waiting on its CPU until the thread ran ("busy waker", as the spawner's
 * worker stays busy in a fan-out). Their delays are the floor of any
 * runtime's ramp-up on this machine at this moment; stderr only.
 */
static atomic_uint probe_word;
static _Atomic int64_t probe_t1;
static atomic_int probe_quit;
static int64_t *probe_idle, *probe_busy;
static long probe_idle_n, probe_busy_n;

static long futex(atomic_uint *addr, int op, unsigned val)
{
    return syscall(SYS_futex, (unsigned *)addr, op, val, NULL, NULL, 0);
}

static void *probe_thread(void *arg)
{
    (void)arg;
    for (;;) {
        while (atomic_load(&probe_word) == 0)
            futex(&probe_word, FUTEX_WAIT_PRIVATE, 0);
        atomic_store(&probe_t1, weft_now());
        atomic_store(&probe_word, 0);
        if (atomic_load(&probe_quit))
            return NULL;
    }
}

/* Wakes the probe thread; probe_collect reads its delay. */
static int64_t probe_t0;
static void probe_kick(void)
{
    atomic_store(&probe_t1, 0);
    probe_t0 = weft_now();
    atomic_store(&probe_word, 1);
    futex(&probe_word, FUTEX_WAKE_PRIVATE, 1);
}

static void probe_collect(int64_t *out, long *n)
{
    int64_t t1 = atomic_load(&probe_t1);
    if (t1 && out)
        out[(*n)++] = t1 - probe_t0;
}

/* One idle period of RAMP_IDLE_NS with the two probes in it; a probe thread
 * that has not run by the end of its part of the period is counted as lost. */
static long probe_lost;
static int idle_with_probes(void)
{
    int64_t start = weft_now();
    int rc = weft_sleep(RAMP_IDLE_NS / 3);
    if (rc || !probe_idle)
        return rc ? rc : weft_sleep_until(start + RAMP_IDLE_NS);
    probe_kick();
    if ((rc = weft_sleep(RAMP_IDLE_NS / 3)) != 0)
        return rc;
    long had = probe_idle_n;
    probe_collect(probe_idle, &probe_idle_n);
    probe_lost += probe_idle_n == had;
    if (probe_idle_n == had)
        return weft_sleep_until(start + RAMP_IDLE_NS);
    probe_kick();
    while (atomic_load(&probe_t1) == 0 && weft_now() - probe_t0 < 20 * MS) {
    }
    rc = weft_sleep_until(start + RAMP_IDLE_NS);
    had = probe_busy_n;
    probe_collect(probe_busy, &probe_busy_n);
    probe_lost += probe_busy_n == had;
    return rc;
}

static int ramp_root(void *arg)
{
    (void)arg;
    int rc = 0;
    long never = 0, elsewhere_sum = 0, iv0 = ivcsw();
    int64_t ramp_t0 = weft_now();
    double trial_ms_sum = 0;
    for (long k = 0; k < n_samples; k++) {
        if ((rc = k == 0 ? weft_sleep(RAMP_FIRST_IDLE_NS) : idle_with_probes()) != 0)
            break;
        weft_nursery *n;
        if ((rc = weft_nursery_open(&n)) != 0)
            break;
        atomic_store(&first_other, 0);
        atomic_store(&ran_elsewhere, 0);
        weft_pin();
        spawner_worker = weft_worker_id();
        int64_t t0 = weft_now();
        for (int i = 0; i < RAMP_TASKS && rc == 0; i++)
            rc = (weft_spawn)(n, ramp_child, NULL);
        weft_unpin();
        int rc2 = weft_nursery_close(n);
        int64_t t1 = weft_now();
        if (rc || (rc = rc2) != 0)
            break;
        int64_t first = atomic_load(&first_other);
        if (first == 0) {
            never++;
            first = t1;
        }
        samples[n_taken++] = first - t0;
        elsewhere_sum += atomic_load(&ran_elsewhere);
        trial_ms_sum += (double)(t1 - t0) / 1e6;
        if (t1 - ramp_t0 > BUDGET_NS)
            break;
    }
    if (n_taken)
        fprintf(stderr,
                "latency: ramp: %ld trials; per trial %.1f ms from the first spawn to the join, "
                "%.0f of %d tasks ran on another worker (mean); %ld trials never used another "
                "worker; the process was preempted by the OS %ld times\n",
                n_taken, trial_ms_sum / (double)n_taken, (double)elsewhere_sum / (double)n_taken,
                RAMP_TASKS, never, ivcsw() - iv0);
    if (probe_idle_n && probe_busy_n) {
        qsort(probe_idle, (size_t)probe_idle_n, sizeof *probe_idle, bench_cmp_i64);
        qsort(probe_busy, (size_t)probe_busy_n, sizeof *probe_busy, bench_cmp_i64);
        fprintf(stderr,
                "latency: for reference, the OS: a plain thread blocked ~70 ms in FUTEX_WAIT "
                "runs after FUTEX_WAKE in (us, probes between the trials) p50 %.1f p99 %.1f "
                "max %.1f (idle waker, %ld probes); p50 %.1f p99 %.1f max %.1f (busy waker, "
                "%ld probes); %ld probes lost (not run within ~65 ms)\n",
                bench_pct_us(probe_idle, probe_idle_n, 50),
                bench_pct_us(probe_idle, probe_idle_n, 99),
                (double)probe_idle[probe_idle_n - 1] / 1e3, probe_idle_n,
                bench_pct_us(probe_busy, probe_busy_n, 50),
                bench_pct_us(probe_busy, probe_busy_n, 99),
                (double)probe_busy[probe_busy_n - 1] / 1e3, probe_busy_n, probe_lost);
    }
    return rc;
}

/* The probe thread lives outside the runtime: started before weft_run, ended
 * after it. */
static pthread_t probe_th;
static int probe_started;

static void probe_start(void)
{
    probe_idle = calloc((size_t)n_samples, sizeof *probe_idle);
    probe_busy = calloc((size_t)n_samples, sizeof *probe_busy);
    if (probe_idle && probe_busy && pthread_create(&probe_th, NULL, probe_thread, NULL) == 0) {
        probe_started = 1;
    } else {
        free(probe_idle);
        free(probe_busy);
        probe_idle = probe_busy = NULL;
    }
}

static void probe_stop(void)
{
    if (!probe_started)
        return;
    atomic_store(&probe_quit, 1);
    atomic_store(&probe_word, 1);
    futex(&probe_word, FUTEX_WAKE_PRIVATE, 1);
    pthread_join(probe_th, NULL);
}

/* ---- handoff: work queued behind a long weft_blocking call ------------------ */

static _Atomic int64_t call_t0, probe_task_t1;
static atomic_int probe_task_ran;

static int probe_task(void *arg)
{
    (void)arg;
    atomic_store(&probe_task_t1, weft_now());
    atomic_store(&probe_task_ran, 1);
    return 0;
}

/* A call that lasts until the task queued behind it has run (polling with
 * short sleeps, as a blocking syscall loop would; at most 100 ms). */
static int held_call(void *arg)
{
    (void)arg;
    int64_t give_up = weft_now() + 100 * MS;
    while (!atomic_load(&probe_task_ran) && weft_now() < give_up) {
        struct timespec ts = {0, 20 * US};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int handoff_root(void *arg)
{
    (void)arg;
    int64_t start = weft_now();
    for (long i = 0; i < WARMUP + n_samples && weft_now() - start < BUDGET_NS; i++) {
        weft_nursery *n;
        int rc = weft_nursery_open(&n);
        if (rc)
            return rc;
        atomic_store(&probe_task_ran, 0);
        /* Queued on this worker, then the call holds the worker's thread. */
        rc = (weft_spawn)(n, probe_task, NULL);
        /* From the call (as the Go peer stamps before its syscall loop):
         * what weft_blocking does before the body runs counts. */
        atomic_store(&call_t0, weft_now());
        if (rc == 0)
            rc = weft_blocking(held_call, NULL);
        int rc2 = weft_nursery_close(n);
        if (rc || rc2)
            return rc ? rc : rc2;
        int64_t d = atomic_load(&probe_task_t1) - atomic_load(&call_t0);
        if (i >= WARMUP)
            samples[n_taken++] = d > 0 ? d : 0; /* ran before the call began */
        if ((rc = weft_sleep(2 * MS)) != 0)
            return rc;
    }
    return 0;
}

/* ---- stuck ---------------------------------------------------------------- */

static weft_chan *stuck_ch;
static atomic_llong stuck_t1; /* the waiter's first instruction after its wake */

static int stuck_waiter(void *arg)
{
    (void)arg;
    long v;
    while (weft_chan_recv(stuck_ch, &v) == 0)
        atomic_store(&stuck_t1, weft_now());
    return 0;
}

static int stuck_root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    int rc = weft_chan_open(&stuck_ch, sizeof(long), 0);
    if (rc || (rc = weft_nursery_open(&n)) != 0)
        return rc;
    rc = (weft_spawn)(n, stuck_waiter, NULL);
    int64_t start = weft_now();
    for (long i = 0; rc == 0 && i < n_samples && weft_now() - start < BUDGET_NS; i++) {
        /* Idle: the waiter parked in its recv, this task in its sleep. */
        if ((rc = weft_sleep(RAMP_IDLE_NS)) != 0)
            break;
        atomic_store(&stuck_t1, 0);
        /* The timer's wake-up woke an idle worker too (the woken root went
         * to the run queue): let it spin out and park again. */
        int64_t settle = weft_now() + STUCK_SETTLE_NS;
        while (weft_now() < settle)
            ;
        long v = i;
        int64_t t0 = weft_now();
        /* The waiter is parked: the send hands it the value and makes it
         * runnable on this worker (its runnext slot). */
        if ((rc = weft_chan_send(stuck_ch, &v)) != 0)
            break;
        while (atomic_load(&stuck_t1) == 0 && weft_now() - t0 < 1000 * MS)
            ; /* never parks: only the monitor can move the waiter */
        int64_t t1 = atomic_load(&stuck_t1);
        samples[n_taken++] = t1 ? t1 - t0 : weft_now() - t0;
        if (!t1)
            fprintf(stderr, "latency: stuck: trial %ld: the waiter did not run within 1 s\n", i);
    }
    weft_chan_close(stuck_ch);
    int rc2 = weft_nursery_close(n);
    weft_chan_free(stuck_ch);
    return rc ? rc : rc2;
}

/* ---- the run -------------------------------------------------------------- */

static int root(void *arg)
{
    (void)arg;
    if (mode == M_RAMP)
        return ramp_root(NULL);
    if (mode == M_HANDOFF)
        return handoff_root(NULL);
    if (mode == M_STUCK)
        return stuck_root(NULL);
    weft_nursery *n;
    int rc = weft_chan_open(&ping, sizeof(long), 0);
    if (rc || (rc = weft_chan_open(&pong, sizeof(long), 0)) != 0)
        return rc;
    if ((rc = weft_nursery_open(&n)) != 0)
        return rc;
    if ((rc = (weft_spawn)(n, pinger, NULL)) == 0 && (rc = (weft_spawn)(n, ponger, NULL)) == 0)
        rc = (weft_spawn)(n, mode == M_TIMER ? timer_task : spawner_task, NULL);
    if (rc) {
        atomic_store(&stop_load, 1);
        weft_chan_close(ping);
    }
    int rc2 = weft_nursery_close(n);
    weft_chan_free(ping);
    weft_chan_free(pong);
    if (rc == 0 && load_t1 > load_t0)
        fprintf(stderr,
                "latency: the pair made %.0f round trips/s during the measurement; the "
                "process was preempted by the OS %ld times (involuntary context switches)\n",
                (double)(load_r1 - load_r0) / ((double)(load_t1 - load_t0) / 1e9), ivcsw1 - ivcsw0);
    return rc ? rc : rc2;
}

static void *watchdog(void *arg)
{
    (void)arg;
    sleep(WATCHDOG_S);
    fprintf(stderr, "latency: still running after %d s, giving up\n", WATCHDOG_S);
    _exit(1);
}

static int usage(void)
{
    fprintf(stderr, "usage: latency [--cached] timer|spawn|ramp|handoff|stuck WORKERS [p50|p99]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int cached = 0, want_p99 = 1, have_mode = 0;
    long w = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--cached") == 0)
            cached = 1;
        else if (strcmp(argv[i], "p50") == 0)
            want_p99 = 0;
        else if (strcmp(argv[i], "p99") == 0)
            want_p99 = 1;
        else if (!have_mode && strcmp(argv[i], "timer") == 0)
            mode = M_TIMER, have_mode = 1;
        else if (!have_mode && strcmp(argv[i], "spawn") == 0)
            mode = M_SPAWN, have_mode = 1;
        else if (!have_mode && strcmp(argv[i], "ramp") == 0)
            mode = M_RAMP, have_mode = 1;
        else if (!have_mode && strcmp(argv[i], "handoff") == 0)
            mode = M_HANDOFF, have_mode = 1;
        else if (!have_mode && strcmp(argv[i], "stuck") == 0)
            mode = M_STUCK, have_mode = 1;
        else if (w == 0 && (w = strtol(argv[i], &end, 10)) > 0 && *end == '\0' && w <= 1024)
            workers = (unsigned)w;
        else
            return usage();
    }
    if (!have_mode || workers == 0 || ((mode == M_RAMP || mode == M_STUCK) && workers < 2))
        return usage();
    const char *quick = getenv("WEFT_BENCH_QUICK");
    int is_quick = quick && strcmp(quick, "1") == 0;
    n_samples = mode == M_RAMP      ? (is_quick ? 10 : 100)
                : mode == M_STUCK   ? (is_quick ? 10 : 50)
                : mode == M_HANDOFF ? (is_quick ? 50 : 300)
                                    : (is_quick ? 200 : 1000);

    const char *run_id = bench_run_id();
    char path[4096], file[64];
    struct stat exe;
    snprintf(file, sizeof file, "latency-%s-%uw.cache", mode_name[mode], workers);
    bench_cache_path(path, sizeof path, &exe, file);

    figures fig;
    double v[2];
    if (cached && run_id && path[0] && bench_cache_read(path, &exe, run_id, n_samples, v, 2) == 0) {
        fig = (figures){n_samples, v[0], v[1]};
        fprintf(stderr, "latency: figures of this bench run (%s) from %s\n", run_id, path);
    } else {
        pthread_t wd;
        if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
            pthread_detach(wd);
        samples = calloc((size_t)n_samples, sizeof *samples);
        spawn_t0 = calloc((size_t)(WARMUP + n_samples), sizeof *spawn_t0);
        child_t1 = calloc((size_t)(WARMUP + n_samples), sizeof *child_t1);
        if (!samples || !spawn_t0 || !child_t1) {
            fprintf(stderr, "latency: out of memory\n");
            return 1;
        }
        weft_config cfg = {0};
        cfg.workers = workers;
        int64_t t0 = weft_now();
        if (mode == M_RAMP)
            probe_start();
        int rc = weft_run(&cfg, root, NULL);
        probe_stop();
        if (rc) {
            fprintf(stderr, "latency: weft_run failed: %d (%s)\n", rc, strerror(-rc));
            return 1;
        }
        if (n_taken == 0) {
            fprintf(stderr, "latency: no samples\n");
            return 1;
        }
        if (n_taken < n_samples)
            fprintf(stderr, "latency: only %ld of %ld samples within %lld s\n", n_taken, n_samples,
                    BUDGET_NS / (1000 * MS));
        qsort(samples, (size_t)n_taken, sizeof *samples, bench_cmp_i64);
        double mean = 0;
        for (long i = 0; i < n_taken; i++)
            mean += (double)samples[i];
        mean /= (double)n_taken * 1e3;
        fprintf(stderr,
                "latency: %s, %u workers, %ld samples (us): min %.1f p50 %.1f p90 %.1f p99 %.1f "
                "max %.1f mean %.1f; %.1f s in all\n",
                bench_name[mode], workers, n_taken, (double)samples[0] / 1e3,
                bench_pct_us(samples, n_taken, 50), bench_pct_us(samples, n_taken, 90),
                bench_pct_us(samples, n_taken, 99), (double)samples[n_taken - 1] / 1e3, mean,
                (double)(weft_now() - t0) / 1e9);
        measured.n = n_samples;
        measured.p50_us = bench_pct_us(samples, n_taken, 50);
        measured.p99_us = bench_pct_us(samples, n_taken, 99);
        fig = measured;
        /* A short measurement is reported but not handed to the next row. */
        if (run_id && path[0] && n_taken == n_samples)
            bench_cache_write(path, run_id, fig.n, (double[]){fig.p50_us, fig.p99_us}, 2);
    }

    for (int k = 0; k < 2; k++) {
        int p99 = k == 0 ? want_p99 : !want_p99;
        printf("BENCH %s_p%s_%uw %.1f us\n", bench_name[mode], p99 ? "99" : "50", workers,
               p99 ? fig.p99_us : fig.p50_us);
    }
    return 0;
}
