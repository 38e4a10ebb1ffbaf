/*
 * select_fair.c - select fairness and a quit's delay next to always-ready
 * producers (issue 8: "With one worker and three always-ready producers,
 * weft_select shares stay within 0.25-0.42 each, and a quit sent by a
 * sleeping task arrives within 2 ms of being sent").
 *
 *   bench/select_fair [--cached] WORKERS [delay_p50|delay_max|share_min|share_max]
 *
 * TRIALS trials in one runtime of WORKERS workers. In each, three producer
 * tasks loop weft_chan_send on their own unbuffered channel (always ready:
 * each parks only until the consumer takes its value), a consumer loops on
 * weft_select over the three channels plus an unbuffered quit channel, and
 * a quit task weft_sleep_until(start + TRIAL_MS), stamps weft_now() and
 * sends on quit. The consumer stamps weft_now() when its select returns the
 * quit case, then closes the three channels (the producers' sends return
 * -EPIPE and they end) and the trial's nursery closes.
 *
 * Figures:
 *   select_quit_delay_p50_<W>w / _max_<W>w  (us): the quit's delay, from
 *       the stamp just before the quit task's send to the consumer's stamp
 *       after its select, p50 (nearest rank) and max over the trials.
 *   select_share_min_<W>w / _max_<W>w  (share): each producer's share of
 *       the consumer's receives before the quit, in each trial; the
 *       smallest and the largest over all producers and trials (fair: 1/3).
 * Printed as four BENCH lines, the selected one (default delay_max) first:
 * bench/run takes the first BENCH line, so four rows of bench/benchmarks.tsv
 * show the figures of one measurement. stderr also shows each trial, how
 * late the quit task woke (its sleep's deadline to its stamp: timer
 * lateness, not part of the delay), the deadline-to-arrival time, the
 * receives per second and the process's involuntary context switches.
 *
 * TRIALS = 20 (5 with WEFT_BENCH_QUICK=1), TRIAL_MS = 50: about 1.1 s.
 * A watchdog thread ends the process with status 1 after 120 s.
 *
 * --cached: as bench/latency --cached: the figures are written to
 * select_fair-<W>w.cache next to the executable, tagged with
 * WEFT_BENCH_RUN_ID and TRIALS, and the other rows of the same bench run
 * read them instead of measuring again.
 *
 * The Go peer (bench/peers/go/selectfair.go: -bench select_quit_delay_p50
 * etc.) runs the same workload with goroutines, unbuffered channels, a
 * select and time.Sleep.
 */
#define _GNU_SOURCE
#include <weft.h>

#include "run_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MS 1000000LL
#define NPROD 3
#define TRIAL_NS (50 * MS)
#define WATCHDOG_S 120
#define MIN_RECEIVES 1000 /* fewer in a trial: its shares are reported as thin */

enum fig { F_DELAY_P50, F_DELAY_MAX, F_SHARE_MIN, F_SHARE_MAX, F_N };
static const char *const fig_arg[F_N] = {"delay_p50", "delay_max", "share_min", "share_max"};
static const char *const fig_name[F_N] = {"select_quit_delay_p50", "select_quit_delay_max",
                                          "select_share_min", "select_share_max"};
static const char *const fig_unit[F_N] = {"us", "us", "share", "share"};

typedef struct trial {
    weft_chan *ch[NPROD], *quit;
    int idx[NPROD];
    long got[NPROD];
    long total;
    int64_t start, deadline, sent_at, got_at;
} trial;

static long n_trials;
static trial *trials;
static unsigned workers;

static trial *cur;

static int producer(void *arg)
{
    int i = *(int *)arg;
    weft_chan *c = cur->ch[i];
    long v = 0;
    int rc;
    while ((rc = weft_chan_send(c, &v)) == 0)
        v++;
    return rc == -EPIPE ? 0 : rc; /* the consumer closed it: done */
}

static int quitter(void *arg)
{
    trial *t = arg;
    int rc = weft_sleep_until(t->deadline);
    if (rc)
        return rc;
    long q = 1;
    t->sent_at = weft_now();
    return weft_chan_send(t->quit, &q);
}

static int consumer(void *arg)
{
    trial *t = arg;
    long v, q = 0;
    weft_case cs[NPROD + 1];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < NPROD; i++) {
        cs[i].chan = t->ch[i];
        cs[i].op = WEFT_RECV;
        cs[i].elem = &v;
    }
    cs[NPROD].chan = t->quit;
    cs[NPROD].op = WEFT_RECV;
    cs[NPROD].elem = &q;
    int rc = 0;
    for (;;) {
        int r = weft_select(cs, NPROD + 1, WEFT_FOREVER);
        if (r < 0 || cs[r].result != 0) {
            rc = r < 0 ? r : cs[r].result;
            break;
        }
        if (r == NPROD) {
            t->got_at = weft_now();
            break;
        }
        t->got[r]++;
        t->total++;
    }
    for (int i = 0; i < NPROD; i++)
        weft_chan_close(t->ch[i]);
    return rc;
}

static int run_trial(trial *t)
{
    int rc = 0;
    for (int i = 0; i < NPROD && rc == 0; i++) {
        t->idx[i] = i;
        rc = weft_chan_open(&t->ch[i], sizeof(long), 0);
    }
    if (rc || (rc = weft_chan_open(&t->quit, sizeof(long), 0)) != 0)
        return rc;
    cur = t;
    weft_nursery *n;
    if ((rc = weft_nursery_open(&n)) != 0)
        return rc;
    t->start = weft_now();
    t->deadline = t->start + TRIAL_NS;
    rc = (weft_spawn)(n, consumer, t);
    for (int i = 0; i < NPROD && rc == 0; i++)
        rc = (weft_spawn)(n, producer, &t->idx[i]);
    if (rc == 0)
        rc = (weft_spawn)(n, quitter, t);
    if (rc) {
        weft_nursery_cancel(n);
        for (int i = 0; i < NPROD; i++)
            weft_chan_close(t->ch[i]);
        weft_chan_close(t->quit);
    }
    int rc2 = weft_nursery_close(n);
    for (int i = 0; i < NPROD; i++)
        weft_chan_free(t->ch[i]);
    weft_chan_free(t->quit);
    return rc ? rc : rc2;
}

static int root(void *arg)
{
    (void)arg;
    for (long k = 0; k < n_trials; k++) {
        int rc = run_trial(&trials[k]);
        if (rc) {
            fprintf(stderr, "select_fair: trial %ld failed: %d (%s)\n", k, rc, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static long ivcsw(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_nivcsw;
}

static void *watchdog(void *arg)
{
    (void)arg;
    sleep(WATCHDOG_S);
    fprintf(stderr, "select_fair: still running after %d s, giving up\n", WATCHDOG_S);
    _exit(1);
}

static int usage(void)
{
    fprintf(stderr, "usage: select_fair [--cached] WORKERS "
                    "[delay_p50|delay_max|share_min|share_max]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int cached = 0;
    enum fig want = F_DELAY_MAX;
    long w = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        int matched = 0;
        for (int f = 0; f < F_N; f++)
            if (strcmp(argv[i], fig_arg[f]) == 0)
                want = (enum fig)f, matched = 1;
        if (matched)
            continue;
        if (strcmp(argv[i], "--cached") == 0)
            cached = 1;
        else if (w == 0 && (w = strtol(argv[i], &end, 10)) > 0 && *end == '\0' && w <= 1024)
            workers = (unsigned)w;
        else
            return usage();
    }
    if (workers == 0)
        return usage();
    const char *quick = getenv("WEFT_BENCH_QUICK");
    n_trials = quick && strcmp(quick, "1") == 0 ? 5 : 20;

    const char *run_id = bench_run_id();
    char path[4096], file[64];
    struct stat exe;
    snprintf(file, sizeof file, "select_fair-%uw.cache", workers);
    bench_cache_path(path, sizeof path, &exe, file);

    double v[F_N];
    if (cached && run_id && path[0] &&
        bench_cache_read(path, &exe, run_id, n_trials, v, F_N) == 0) {
        fprintf(stderr, "select_fair: figures of this bench run (%s) from %s\n", run_id, path);
    } else {
        pthread_t wd;
        if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
            pthread_detach(wd);
        trials = calloc((size_t)n_trials, sizeof *trials);
        int64_t *delay = calloc((size_t)n_trials, sizeof *delay);
        int64_t *late = calloc((size_t)n_trials, sizeof *late);
        int64_t *arrival = calloc((size_t)n_trials, sizeof *arrival);
        if (!trials || !delay || !late || !arrival) {
            fprintf(stderr, "select_fair: out of memory\n");
            return 1;
        }
        weft_config cfg = {0};
        cfg.workers = workers;
        long iv0 = ivcsw();
        int64_t t0 = weft_now();
        int rc = weft_run(&cfg, root, NULL);
        int64_t t1 = weft_now();
        if (rc) {
            fprintf(stderr, "select_fair: weft_run failed: %d (%s)\n", rc, strerror(-rc));
            return 1;
        }
        weft_stats st;
        weft_stats_get(&st);
        fprintf(stderr,
                "select_fair: runtime: %llu timers fired, of which %llu by the monitor (for a "
                "worker that could not); %llu monitor wakes; %llu worker parks; %llu steals\n",
                (unsigned long long)st.timers_fired, (unsigned long long)st.monitor_timers_fired,
                (unsigned long long)st.monitor_wakes, (unsigned long long)st.worker_parks,
                (unsigned long long)st.steals);
        double smin = 1, smax = 0, all_got[NPROD] = {0};
        long all_total = 0, thin = 0;
        for (long k = 0; k < n_trials; k++) {
            trial *t = &trials[k];
            delay[k] = t->got_at - t->sent_at;
            late[k] = t->sent_at - t->deadline;
            arrival[k] = t->got_at - t->deadline;
            fprintf(stderr, "select_fair: trial %2ld: %7ld receives, shares", k, t->total);
            for (int i = 0; i < NPROD; i++) {
                double s = t->total ? (double)t->got[i] / (double)t->total : 0;
                smin = s < smin ? s : smin;
                smax = s > smax ? s : smax;
                all_got[i] += (double)t->got[i];
                fprintf(stderr, " %.4f", s);
            }
            all_total += t->total;
            thin += t->total < MIN_RECEIVES;
            fprintf(stderr, "; quit task woke %.1f us late, quit received %.1f us after its send\n",
                    (double)late[k] / 1e3, (double)delay[k] / 1e3);
        }
        qsort(delay, (size_t)n_trials, sizeof *delay, bench_cmp_i64);
        qsort(late, (size_t)n_trials, sizeof *late, bench_cmp_i64);
        qsort(arrival, (size_t)n_trials, sizeof *arrival, bench_cmp_i64);
        fprintf(stderr,
                "select_fair: %u worker(s), %ld trials of %lld ms: quit delay (send -> received, "
                "us) min %.1f p50 %.1f max %.1f; quit task's wake-up lateness p50 %.1f max %.1f; "
                "sleep deadline -> received p50 %.1f max %.1f; shares min %.4f max %.4f (all "
                "trials together: %.4f %.4f %.4f); %.0f receives/s; %ld trial(s) with fewer than "
                "%d receives; the process was preempted by the OS %ld times; %.1f s in all\n",
                workers, n_trials, TRIAL_NS / MS, (double)delay[0] / 1e3,
                bench_pct_us(delay, n_trials, 50), (double)delay[n_trials - 1] / 1e3,
                bench_pct_us(late, n_trials, 50), (double)late[n_trials - 1] / 1e3,
                bench_pct_us(arrival, n_trials, 50), (double)arrival[n_trials - 1] / 1e3, smin,
                smax, all_total ? all_got[0] / (double)all_total : 0,
                all_total ? all_got[1] / (double)all_total : 0,
                all_total ? all_got[2] / (double)all_total : 0,
                (double)all_total / ((double)(t1 - t0) / 1e9), thin, MIN_RECEIVES, ivcsw() - iv0,
                (double)(t1 - t0) / 1e9);
        v[F_DELAY_P50] = bench_pct_us(delay, n_trials, 50);
        v[F_DELAY_MAX] = (double)delay[n_trials - 1] / 1e3;
        v[F_SHARE_MIN] = smin;
        v[F_SHARE_MAX] = smax;
        if (run_id && path[0])
            bench_cache_write(path, run_id, n_trials, v, F_N);
    }

    printf("BENCH %s_%uw %.*f %s\n", fig_name[want], workers, want >= F_SHARE_MIN ? 4 : 1, v[want],
           fig_unit[want]);
    for (int f = 0; f < F_N; f++)
        if (f != (int)want)
            printf("BENCH %s_%uw %.*f %s\n", fig_name[f], workers, f >= F_SHARE_MIN ? 4 : 1, v[f],
                   fig_unit[f]);
    return 0;
}
