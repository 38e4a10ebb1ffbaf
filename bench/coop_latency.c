/*
 * coop_latency.c - what the cooperative budget buys: the lateness of a task
 * that ticks every 1 ms on one worker next to a loop that never parks.
 *
 *   bench/coop_latency mutex|chan [p50|p99]
 *
 * One worker. A hog task loops for HOG_MS over always-ready operations:
 * uncontended weft_mutex_lock/unlock (mutex), or a send and a receive on its
 * own buffered channel (chan). A ticker task, started first, calls
 * weft_sleep_until(now + 1 ms) until the hog is done, recording lateness =
 * wake time - deadline. With the budget (the default), every
 * WEFT_COOP_BUDGET-th operation yields and the ticker's timer fires; with
 * WEFT_COOP_BUDGET=0 (no budget) the ticker runs only when the hog ends, so
 * its one sample is about HOG_MS late. A channel producer/consumer pair
 * would park by itself and show nothing, hence a loop on its own objects.
 *
 * BENCH coop_tick_<p>_<mode> (us), the selected percentile first (default
 * p99), then the other, then the hog's cost per operation (ns/op), so that
 * a budget can be chosen by both figures. Nearest-rank percentiles.
 * HOG_MS = 1000 (250 with WEFT_BENCH_QUICK=1).
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES 100000

static int64_t hog_ns;
static int mode_chan;
static atomic_int hog_done;
static int64_t *samples;
static long n_samples;
static long hog_ops;

static int ticker(void *arg)
{
    (void)arg;
    weft_task_started();
    while (!atomic_load_explicit(&hog_done, memory_order_relaxed)) {
        int64_t dl = weft_now() + 1000000;
        if (weft_sleep_until(dl))
            return -1;
        if (n_samples < MAX_SAMPLES)
            samples[n_samples++] = weft_now() - dl;
    }
    return 0;
}

static int hog(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_chan *c = NULL;
    if (mode_chan && weft_chan_open(&c, sizeof(long), 16))
        return -ENOMEM;
    int64_t end = weft_now() + hog_ns;
    long ops = 0;
    for (;;) {
        for (int k = 0; k < 1024; k++) {
            if (mode_chan) {
                long v = ops, r;
                if (weft_chan_send(c, &v) || weft_chan_recv(c, &r) || r != v)
                    return -EIO;
            } else {
                weft_mutex_lock(&m);
                weft_mutex_unlock(&m);
            }
            ops++;
        }
        if (weft_now() >= end)
            break;
    }
    hog_ops = ops;
    atomic_store(&hog_done, 1);
    if (c)
        weft_chan_free(c);
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -ENOMEM;
    /* The ticker is on its first sleep before the hog starts. */
    int rc = weft_nursery_start(n, ticker, NULL);
    if (rc == 0)
        rc = weft_spawn(n, hog, NULL);
    int rc2 = weft_nursery_close(n);
    return rc ? rc : rc2;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (n_samples == 0)
        return 0;
    long i = (long)(p * (double)n_samples + 0.999999) - 1;
    if (i < 0)
        i = 0;
    if (i >= n_samples)
        i = n_samples - 1;
    return (double)samples[i] / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "mutex") != 0 && strcmp(argv[1], "chan") != 0)) {
        fprintf(stderr, "usage: %s mutex|chan [p50|p99]\n", argv[0]);
        return 2;
    }
    mode_chan = strcmp(argv[1], "chan") == 0;
    bool p50_first = argc > 2 && strcmp(argv[2], "p50") == 0;
    const char *quick = getenv("WEFT_BENCH_QUICK");
    hog_ns = (quick && *quick == '1' ? 250 : 1000) * 1000000LL;
    samples = calloc(MAX_SAMPLES, sizeof *samples);
    if (!samples)
        return 1;
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    int rc = weft_run(&cfg, root, NULL);
    if (rc) {
        fprintf(stderr, "coop_latency: weft_run: %d\n", rc);
        return 1;
    }
    qsort(samples, (size_t)n_samples, sizeof *samples, cmp64);
    const char *budget = getenv("WEFT_COOP_BUDGET");
    fprintf(stderr,
            "coop_latency %s: WEFT_COOP_BUDGET=%s, %ld ticks, min %.1f p50 %.1f p90 %.1f p99 "
            "%.1f max %.1f us; hog %ld ops, %.1f ns/op\n",
            argv[1], budget ? budget : "(default)", n_samples, pct(0), pct(0.5), pct(0.9),
            pct(0.99), pct(1.0), hog_ops, (double)hog_ns / (double)(hog_ops ? hog_ops : 1));
    const char *m = argv[1];
    if (p50_first)
        printf("BENCH coop_tick_p50_%s %.1f us\nBENCH coop_tick_p99_%s %.1f us\n", m, pct(0.5), m,
               pct(0.99));
    else
        printf("BENCH coop_tick_p99_%s %.1f us\nBENCH coop_tick_p50_%s %.1f us\n", m, pct(0.99), m,
               pct(0.5));
    printf("BENCH coop_hog_%s %.1f ns/op\n", m, (double)hog_ns / (double)(hog_ops ? hog_ops : 1));
    free(samples);
    return 0;
}
