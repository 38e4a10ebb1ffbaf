/*
 * idle_cpu.c - what an idle runtime costs: the CPU time the whole process
 * uses while its only task sleeps (the workers parked, the monitor
 * looking now and then), as a percentage of one CPU.
 *
 *   bench/idle_cpu [WORKERS]     default 2 workers; 3 s measured after 0.5 s
 *
 * Prints "BENCH idle_cpu <percent> %". The promise (issue 8): the monitor's
 * cost while the runtime is idle stays at or below 1% of one CPU.
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double pct;

static int idle_root(void *arg)
{
    (void)arg;
    int rc = weft_sleep(500 * 1000 * 1000LL); /* settle: the monitor slows down */
    if (rc)
        return rc;
    double c0 = cpu_s();
    int64_t t0 = weft_now();
    if ((rc = weft_sleep(3000 * 1000 * 1000LL)) != 0)
        return rc;
    double wall = (double)(weft_now() - t0) / 1e9;
    pct = 100.0 * (cpu_s() - c0) / wall;
    return 0;
}

int main(int argc, char **argv)
{
    weft_config cfg = {0};
    cfg.workers = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    int rc = weft_run(&cfg, idle_root, NULL);
    if (rc) {
        fprintf(stderr, "idle_cpu: weft_run failed: %d\n", rc);
        return 1;
    }
    printf("BENCH idle_cpu %.3f %%\n", pct);
    return 0;
}
