/*
 * parked_rss.c - what a parked task costs. With 2 workers, spawn N tasks
 * (1,000,000, or 100,000 with WEFT_BENCH_QUICK=1) that each park on one
 * weft_event, wait until all of them are parked, and measure over that phase
 * (from just before the first spawn until every task is parked):
 *
 *   time    wall time, ms                      BENCH parked_spawn <ms> ms
 *   rss     /proc/self/statm resident delta/N  BENCH parked_rss <b> bytes/task
 *   faults  getrusage ru_minflt delta/N        BENCH parked_faults <f> faults/task
 *
 * then set the event and close the nursery. The Go peer (bench/peers/go,
 * parked.go) measures the same three figures the same way with goroutines
 * blocked on a channel. Measured once per process, with no warm-up: the first
 * run is the one that faults.
 *
 *   bench/parked_rss [--cached] [time|rss|faults]      (default: rss)
 *
 * Prints one BENCH line per figure, the selected one first (bench/run takes
 * the first BENCH line of a command, so three rows of bench/benchmarks.tsv
 * can show the three figures).
 *
 * --cached: one measurement serves the three rows of one bench/run. Every
 * measurement writes its figures to parked_rss.cache next to the executable,
 * tagged with WEFT_BENCH_RUN_ID (bench/run exports a new one per run) and N.
 * With --cached, a cache file that is newer than the executable and carries
 * this process's WEFT_BENCH_RUN_ID and N is read instead of measuring again.
 * Without WEFT_BENCH_RUN_ID the program always measures.
 */
#include <weft.h>

#include "run_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Give up (and fail) if the tasks are not all parked after this long. */
#define PARK_TIMEOUT_NS (240 * 1000000000LL)

typedef struct figures {
    long n;
    double time_ms;
    double rss_per_task;    /* bytes */
    double faults_per_task; /* minor faults */
} figures;

static weft_event release = WEFT_EVENT_INIT;
static weft_waitgroup parked = WEFT_WAITGROUP_INIT;
static long n_tasks;
static figures measured;

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static int waiter(void *arg)
{
    (void)arg;
    weft_waitgroup_done(&parked);
    return weft_event_wait(&release);
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    weft_waitgroup_add(&parked, (int)n_tasks);

    long rss0 = bench_rss_bytes("parked_rss"), flt0 = minor_faults();
    int64_t t0 = weft_now();
    long spawned = 0;
    for (; spawned < n_tasks; spawned++)
        if ((rc = (weft_spawn)(n, waiter, NULL)) != 0)
            break;
    if (rc == 0) {
        weft_scope s; /* bounds the wait: a stuck runtime fails, not hangs */
        weft_scope_enter(&s, t0 + PARK_TIMEOUT_NS);
        rc = weft_waitgroup_wait(&parked);
        weft_scope_exit(&s);
        if (rc)
            fprintf(stderr, "parked_rss: tasks not all parked after %lld s\n",
                    PARK_TIMEOUT_NS / 1000000000LL);
    } else {
        fprintf(stderr, "parked_rss: spawn %ld failed: %d\n", spawned, rc);
    }
    int64_t t1 = weft_now();
    /* The last task counted itself just before parking: let it get there. */
    weft_sleep(20000000);
    long rss1 = bench_rss_bytes("parked_rss"), flt1 = minor_faults();

    measured.n = n_tasks;
    measured.time_ms = (double)(t1 - t0) / 1e6;
    measured.rss_per_task = (double)(rss1 - rss0) / (double)n_tasks;
    measured.faults_per_task = (double)(flt1 - flt0) / (double)n_tasks;
    fprintf(stderr,
            "parked_rss: %ld tasks parked in %.1f ms (%.0f ns/task); RSS %ld -> %ld bytes; "
            "minor faults %ld -> %ld\n",
            n_tasks, measured.time_ms, (double)(t1 - t0) / (double)n_tasks, rss0, rss1, flt0, flt1);

    weft_event_set(&release);
    int rc2 = weft_nursery_close(n);
    return rc ? rc : rc2;
}

int main(int argc, char **argv)
{
    int cached = 0, which = 1; /* 0 time, 1 rss, 2 faults */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cached") == 0)
            cached = 1;
        else if (strcmp(argv[i], "time") == 0)
            which = 0;
        else if (strcmp(argv[i], "rss") == 0)
            which = 1;
        else if (strcmp(argv[i], "faults") == 0)
            which = 2;
        else {
            fprintf(stderr, "usage: parked_rss [--cached] [time|rss|faults]\n");
            return 2;
        }
    }
    const char *quick = getenv("WEFT_BENCH_QUICK");
    n_tasks = quick && strcmp(quick, "1") == 0 ? 100000 : 1000000;

    const char *run_id = bench_run_id();
    char path[4096];
    struct stat exe;
    bench_cache_path(path, sizeof path, &exe, "parked_rss.cache");

    figures fig;
    double v[3];
    if (cached && run_id && path[0] && bench_cache_read(path, &exe, run_id, n_tasks, v, 3) == 0) {
        fig = (figures){n_tasks, v[0], v[1], v[2]};
        fprintf(stderr, "parked_rss: figures of this bench run (%s) from %s\n", run_id, path);
    } else {
        weft_config cfg = {0};
        cfg.workers = 2;
        int rc = weft_run(&cfg, root, NULL);
        if (rc) {
            fprintf(stderr, "parked_rss: weft_run failed: %d (%s)\n", rc, strerror(-rc));
            return 1;
        }
        fig = measured;
        if (run_id && path[0])
            bench_cache_write(path, run_id, fig.n,
                              (double[]){fig.time_ms, fig.rss_per_task, fig.faults_per_task}, 3);
    }

    for (int k = 0; k < 3; k++) {
        switch ((which + k) % 3) {
        case 0:
            printf("BENCH parked_spawn %.1f ms\n", fig.time_ms);
            break;
        case 1:
            printf("BENCH parked_rss %.0f bytes/task\n", fig.rss_per_task);
            break;
        default:
            printf("BENCH parked_faults %.3f faults/task\n", fig.faults_per_task);
            break;
        }
    }
    return 0;
}
