/*
 * bench/run_cache.h - for the plain C benchmark programs: RSS, percentiles,
 * and figures measured once per bench/run and shared between the rows that
 * show them.
 *
 * bench/run takes the first BENCH line of a command, so a program that
 * measures several figures at once (parked_rss: time, RSS, faults; latency:
 * p50, p99) is run once per row. The first run of a bench/run measures and
 * writes its figures next to the executable, tagged with WEFT_BENCH_RUN_ID
 * and the sample count; a later run with --cached reuses them if the file
 * has this run's id and count and is newer than the executable. Run on its
 * own (no run id), a program always measures.
 */
#ifndef WEFT_BENCH_RUN_CACHE_H
#define WEFT_BENCH_RUN_CACHE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The resident set in bytes; exits naming `who` if it cannot be read. */
static inline long bench_rss_bytes(const char *who)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        fprintf(stderr, "%s: cannot read /proc/self/statm\n", who);
        exit(1);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* qsort's comparison for int64_t samples, ascending. */
static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank over n sorted samples in ns, in us: the smallest sample with
 * at least p% of them at or below it. */
static inline double bench_pct_us(const int64_t *s, long n, double p)
{
    long rank = (long)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)s[rank - 1] / 1e3;
}

/* WEFT_BENCH_RUN_ID if it is one the cache file can carry, else NULL. */
static inline const char *bench_run_id(void)
{
    const char *id = getenv("WEFT_BENCH_RUN_ID");
    if (!id || !*id || strlen(id) > 255 || strpbrk(id, " \t\n"))
        return NULL;
    return id;
}

/* out = <the executable's directory>/<file>; "" if unknown. */
static inline void bench_cache_path(char *out, size_t size, struct stat *exe, const char *file)
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
    int w = snprintf(out, size, "%s/%s", buf, file);
    if (w < 0 || (size_t)w >= size)
        out[0] = '\0';
}

/* 0 and v[0..k) if path holds this run's k figures for n samples. */
static inline int bench_cache_read(const char *path, const struct stat *exe, const char *run_id,
                                   long n, double *v, int k)
{
    struct stat st;
    if (stat(path, &st) != 0 || st.st_mtim.tv_sec < exe->st_mtim.tv_sec ||
        (st.st_mtim.tv_sec == exe->st_mtim.tv_sec && st.st_mtim.tv_nsec < exe->st_mtim.tv_nsec))
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char id[256];
    long got_n = -1;
    int ok = fscanf(f, "run=%255s n=%ld", id, &got_n) == 2;
    for (int i = 0; ok && i < k; i++)
        ok = fscanf(f, "%lf", &v[i]) == 1;
    fclose(f);
    return ok && strcmp(id, run_id) == 0 && got_n == n ? 0 : -1;
}

/* Writes the k figures atomically (a temporary file renamed into place). */
static inline void bench_cache_write(const char *path, const char *run_id, long n, const double *v,
                                     int k)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "run=%s n=%ld", run_id, n);
    for (int i = 0; i < k; i++)
        fprintf(f, " %.6f", v[i]);
    fprintf(f, "\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

#endif
