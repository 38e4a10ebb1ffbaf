/*
 * burst_rss.c - is a burst's memory given back? With 2 workers, park 200,000
 * tasks at once (each on one weft_event), then set the event and close the
 * nursery, and follow the resident set (/proc/self/statm) while the runtime
 * sits idle: before the burst, at its peak (all parked), right after the
 * join, then every 100 ms for 3 s after the join. Prints
 *
 *   BENCH burst_rss_2s <MiB> MiB     RSS above the pre-burst figure 2 s after the join
 *   BENCH burst_peak <MiB> MiB       RSS above the pre-burst figure with all parked
 *
 * and every sample on stderr. The Go peer (bench/peers/go, parked.go: -bench
 * burst_rss) does the same with goroutines and Go's default scavenging.
 * One burst per process, no warm-up; the same N with WEFT_BENCH_QUICK=1
 * (the target depends on it). Takes about 3 s plus the burst.
 */
#include <weft.h>

#include "run_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BURST_TASKS 200000
#define SAMPLE_NS (100 * 1000000LL) /* sampling period after the join */
#define SAMPLES 30                  /* 3 s */
#define REPORT_SAMPLE 20            /* the figure reported: 2 s after the join */
#define PARK_TIMEOUT_NS (120 * 1000000000LL)

static weft_event release = WEFT_EVENT_INIT;
static weft_waitgroup parked = WEFT_WAITGROUP_INIT;
static long rss_pre, rss_peak, rss_join, rss_after[SAMPLES + 1];
static double park_ms, join_ms;

static double mib(long bytes) { return (double)bytes / (1024.0 * 1024.0); }

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
    weft_waitgroup_add(&parked, BURST_TASKS);
    rss_pre = bench_rss_bytes("burst_rss");
    int64_t t0 = weft_now();
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    for (long i = 0; i < BURST_TASKS && rc == 0; i++)
        rc = (weft_spawn)(n, waiter, NULL);
    if (rc == 0) {
        weft_scope s; /* bounds the wait: a stuck runtime fails, not hangs */
        weft_scope_enter(&s, t0 + PARK_TIMEOUT_NS);
        rc = weft_waitgroup_wait(&parked);
        weft_scope_exit(&s);
    }
    if (rc)
        fprintf(stderr, "burst_rss: the burst did not park: %d\n", rc);
    int64_t t1 = weft_now();
    weft_sleep(20000000); /* the last task counted itself just before parking */
    rss_peak = bench_rss_bytes("burst_rss");

    int64_t t2 = weft_now();
    weft_event_set(&release);
    int rc2 = weft_nursery_close(n);
    int64_t tj = weft_now();
    rss_join = bench_rss_bytes("burst_rss");
    park_ms = (double)(t1 - t0) / 1e6;
    join_ms = (double)(tj - t2) / 1e6;
    if (rc || rc2)
        return rc ? rc : rc2;

    for (int k = 1; k <= SAMPLES; k++) {
        if ((rc = weft_sleep_until(tj + k * SAMPLE_NS)) != 0)
            return rc;
        rss_after[k] = bench_rss_bytes("burst_rss");
    }
    return 0;
}

int main(void)
{
    weft_config cfg = {0};
    cfg.workers = 2;
    int rc = weft_run(&cfg, root, NULL);
    if (rc) {
        fprintf(stderr, "burst_rss: weft_run failed: %d (%s)\n", rc, strerror(-rc));
        return 1;
    }
    fprintf(stderr,
            "burst_rss: %d tasks parked in %.1f ms, released and joined in %.1f ms; RSS before "
            "%.1f MiB, peak +%.1f MiB, at the join +%.1f MiB\n",
            BURST_TASKS, park_ms, join_ms, mib(rss_pre), mib(rss_peak - rss_pre),
            mib(rss_join - rss_pre));
    fprintf(stderr, "burst_rss: MiB above pre-burst every 100 ms after the join:");
    for (int k = 1; k <= SAMPLES; k++)
        fprintf(stderr, " %.1f", mib(rss_after[k] - rss_pre));
    fprintf(stderr, "\n");
    printf("BENCH burst_rss_2s %.1f MiB\n", mib(rss_after[REPORT_SAMPLE] - rss_pre));
    printf("BENCH burst_peak %.1f MiB\n", mib(rss_peak - rss_pre));
    return 0;
}
