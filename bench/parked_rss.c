/*
 * parked_rss.c - resident memory per parked task: park N tasks (1M, or 100k
 * with WEFT_BENCH_QUICK) on one event, read RSS from /proc/self/statm once
 * they are all parked, subtract the RSS before, divide by N. Prints
 * "BENCH parked_rss <bytes> bytes/task" for bench/run.
 */
#include <weft.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long parked;
static weft_event go = WEFT_EVENT_INIT;
static long n_tasks;
static long rss_before, rss_parked;

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

static int waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
    return weft_event_wait(&go);
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    rss_before = rss_bytes();
    for (long i = 0; i < n_tasks; i++)
        if ((rc = (weft_spawn)(n, waiter, NULL)) != 0)
            break;
    /* Let every task run up to its wait. */
    while (atomic_load(&parked) < n_tasks && rc == 0)
        weft_sleep(1000000);
    weft_sleep(20000000);
    rss_parked = rss_bytes();
    weft_event_set(&go);
    int rc2 = weft_nursery_close(n);
    return rc ? rc : rc2;
}

int main(void)
{
    n_tasks = getenv("WEFT_BENCH_QUICK") ? 100000 : 1000000;
    weft_config cfg = {0};
    cfg.workers = 2;
    int rc = weft_run(&cfg, root, NULL);
    if (rc) {
        fprintf(stderr, "parked_rss: weft_run failed: %d\n", rc);
        return 1;
    }
    double per = (double)(rss_parked - rss_before) / (double)n_tasks;
    fprintf(stderr, "parked_rss: %ld tasks parked, RSS %ld -> %ld bytes\n", n_tasks, rss_before,
            rss_parked);
    printf("BENCH parked_rss %.0f bytes/task\n", per);
    return 0;
}
