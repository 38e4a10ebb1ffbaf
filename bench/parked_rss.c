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

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        fprintf(stderr, "parked_rss: cannot read /proc/self/statm\n");
        exit(1);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

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

    long rss0 = rss_bytes(), flt0 = minor_faults();
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
    long rss1 = rss_bytes(), flt1 = minor_faults();

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

/* The cache file next to the executable; "" if the executable is unknown. */
static void cache_path(char *out, size_t size, struct stat *exe)
{
    char buf[4096];
    ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
    out[0] = '\0';
    if (len <= 0 || stat("/proc/self/exe", exe) != 0)
        return;
    buf[len] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return;
    *slash = '\0';
    int w = snprintf(out, size, "%s/parked_rss.cache", buf);
    if (w < 0 || (size_t)w >= size)
        out[0] = '\0';
}

static int cache_read(const char *path, const struct stat *exe, const char *run_id, figures *out)
{
    struct stat st;
    if (stat(path, &st) != 0 || st.st_mtim.tv_sec < exe->st_mtim.tv_sec ||
        (st.st_mtim.tv_sec == exe->st_mtim.tv_sec && st.st_mtim.tv_nsec < exe->st_mtim.tv_nsec))
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char id[256];
    figures fig;
    int ok = fscanf(f, "run=%255s n=%ld time_ms=%lf rss=%lf faults=%lf", id, &fig.n, &fig.time_ms,
                    &fig.rss_per_task, &fig.faults_per_task) == 5;
    fclose(f);
    if (!ok || strcmp(id, run_id) != 0 || fig.n != n_tasks)
        return -1;
    *out = fig;
    return 0;
}

static void cache_write(const char *path, const char *run_id, const figures *fig)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "run=%s n=%ld time_ms=%.6f rss=%.6f faults=%.6f\n", run_id, fig->n, fig->time_ms,
            fig->rss_per_task, fig->faults_per_task);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
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

    const char *run_id = getenv("WEFT_BENCH_RUN_ID");
    if (run_id && (!*run_id || strlen(run_id) > 255 || strpbrk(run_id, " \t\n")))
        run_id = NULL; /* not something the cache file can carry */
    char path[4096];
    struct stat exe;
    cache_path(path, sizeof path, &exe);

    figures fig;
    if (cached && run_id && path[0] && cache_read(path, &exe, run_id, &fig) == 0) {
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
            cache_write(path, run_id, &fig);
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
