/*
 * fileread.c - 4 KiB random reads from a file in the page cache: weft's
 * weft_read (on io_uring: a read SQE on the worker's ring, the task parked
 * until its completion) against a plain pread loop on threads.
 *
 *   bench/fileread weft [--tasks T] [--workers W] [--secs S]
 *       T tasks (default 64) on W workers (default 2), each looping
 *       weft_read(fd, buf, 4096, offset); the backend is weft's default
 *       (io_uring) or WEFT_IO's (the epoll backend runs regular-file reads
 *       on its blocking pool)
 *   bench/fileread threads [--threads N] [--secs S]
 *       N plain pthreads (default 2: as many as weft's workers), each
 *       looping pread(fd, buf, 4096, offset)
 *
 * Both read the same 64 MiB file, created in $TMPDIR (else /tmp), unlinked
 * as soon as it is open (so it is gone however the program ends), written
 * with pseudo-random bytes, synced, and read once through before the clock
 * starts so that every page is cached. The offsets are a fixed table of
 * 65,536 random 4 KiB-aligned offsets (the same seed on both sides); reader
 * i starts at entry i * 65536 / readers and walks the table cyclically.
 * After a 0.2 s warm-up, reads completed during S seconds (default 2; 0.5
 * with WEFT_BENCH_QUICK=1) are counted. Prints
 *
 *   BENCH fileread_4k_<mode> <reads/s> reads/s
 *
 * and, on stderr, the process CPU time per read, the spread of the reads
 * over the readers (min / median / max: do all 64 tasks progress?) and,
 * for weft, the backend, context switches per read, worker parks and
 * stuck-task reports (weft_stats of the run).
 * Every read must return 4096 bytes, else the program fails. Takes about
 * S + 1 s (the file's creation included).
 */
#define _GNU_SOURCE 1
#include <weft.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE (64L << 20)
#define BLOCK 4096
#define NOFFS 65536
#define WARMUP_NS 200000000LL

static int fd = -1;
static int64_t offs[NOFFS];
static int64_t t_start, t_end; /* CLOCK_MONOTONIC ns: counted window */
static int nreaders;
static _Atomic long total_reads, all_reads; /* counted; warm-up included */
static _Atomic int failed;
static long *per_reader; /* counted reads of each reader */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int make_file(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/weft-fileread-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "fileread: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    unlink(path);
    uint64_t x = 0x9e3779b97f4a7c15u, *chunk = malloc(1 << 20);
    if (!chunk)
        return -1;
    for (long done = 0; done < FILE_SIZE; done += 1 << 20) {
        for (size_t i = 0; i < (1 << 20) / sizeof *chunk; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            chunk[i] = x;
        }
        if (pwrite(fd, chunk, 1 << 20, done) != 1 << 20) {
            fprintf(stderr, "fileread: cannot write the file: %s\n", strerror(errno));
            free(chunk);
            return -1;
        }
    }
    /* no writeback during the measurement; then warm the page cache */
    fdatasync(fd);
    for (long done = 0; done < FILE_SIZE; done += 1 << 20)
        if (pread(fd, chunk, 1 << 20, done) != 1 << 20) {
            fprintf(stderr, "fileread: cannot read the file back\n");
            free(chunk);
            return -1;
        }
    free(chunk);
    x = 12345;
    for (int i = 0; i < NOFFS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        offs[i] = (int64_t)(x % (FILE_SIZE / BLOCK)) * BLOCK;
    }
    return 0;
}

/* ---- weft: a task per reader ------------------------------------------------------ */

static int weft_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    char *buf = aligned_alloc(BLOCK, BLOCK);
    long k = (long)i * NOFFS / nreaders, n = 0, all = 0;
    for (int64_t t = now_ns(); t < t_end; t = now_ns()) {
        ssize_t r = weft_read(fd, buf, BLOCK, offs[k++ % NOFFS]);
        if (r != BLOCK) {
            fprintf(stderr, "fileread: weft_read returned %zd\n", r);
            atomic_store(&failed, 1);
            break;
        }
        if (t >= t_start)
            n++;
        all++;
    }
    free(buf);
    per_reader[i] = n;
    atomic_fetch_add(&total_reads, n);
    atomic_fetch_add(&all_reads, all);
    return 0;
}

static int weft_root(void *arg)
{
    (void)arg;
    fprintf(stderr, "fileread: weft backend %s, %d tasks\n", weft_io_backend_name(), nreaders);
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    t_start = now_ns() + WARMUP_NS;
    t_end += t_start;
    for (int i = 0; i < nreaders && rc == 0; i++)
        rc = weft_spawn(n, weft_reader, (void *)(intptr_t)i);
    int rc2 = weft_nursery_close(n);
    return rc ? rc : rc2;
}

/* ---- threads: pread ------------------------------------------------------------- */

static void *thread_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    char *buf = aligned_alloc(BLOCK, BLOCK);
    long k = (long)i * NOFFS / nreaders, n = 0, all = 0;
    for (int64_t t = now_ns(); t < t_end; t = now_ns()) {
        ssize_t r = pread(fd, buf, BLOCK, offs[k++ % NOFFS]);
        if (r != BLOCK) {
            fprintf(stderr, "fileread: pread returned %zd\n", r);
            atomic_store(&failed, 1);
            break;
        }
        if (t >= t_start)
            n++;
        all++;
    }
    free(buf);
    per_reader[i] = n;
    atomic_fetch_add(&total_reads, n);
    atomic_fetch_add(&all_reads, all);
    return NULL;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int usage(void)
{
    fprintf(stderr, "usage: fileread weft [--tasks T] [--workers W] [--secs S]\n"
                    "       fileread threads [--threads N] [--secs S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "weft") && strcmp(argv[1], "threads")))
        return usage();
    bool weft = strcmp(argv[1], "weft") == 0;
    const char *q = getenv("WEFT_BENCH_QUICK");
    double secs = q && strcmp(q, "1") == 0 ? 0.5 : 2;
    int tasks = 64, workers = 2, threads = 2;
    if ((argc - 2) % 2)
        return usage();
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tasks") && weft)
            tasks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers") && weft)
            workers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads") && !weft)
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--secs"))
            secs = atof(argv[i + 1]);
        else
            return usage();
    }
    if (tasks < 1 || workers < 1 || threads < 1 || tasks > 100000 || threads > 1024 || secs <= 0 ||
        secs > 60)
        return usage();
    if (make_file() != 0)
        return 1;

    per_reader = calloc((size_t)(weft ? tasks : threads), sizeof *per_reader);
    double cpu0 = cpu_s();
    if (weft) {
        nreaders = tasks;
        t_end = (int64_t)(secs * 1e9); /* made absolute by weft_root */
        weft_config cfg = {0};
        cfg.workers = (unsigned)workers;
        int rc = weft_run(&cfg, weft_root, NULL);
        if (rc != 0) {
            fprintf(stderr, "fileread: weft_run failed: %d (%s)\n", rc, strerror(-rc));
            return 1;
        }
        weft_stats st; /* of the run just ended, warm-up included */
        weft_stats_get(&st);
        double all = (double)atomic_load(&all_reads);
        /* (weft_stats.io_submitted / io_completed are not counted by io/ yet) */
        fprintf(stderr,
                "fileread weft: %.3f context switches per read; %llu worker parks, %llu stuck "
                "reports\n",
                all ? (double)st.context_switches / all : 0, (unsigned long long)st.worker_parks,
                (unsigned long long)st.tasks_stuck);
    } else {
        nreaders = threads;
        t_start = now_ns() + WARMUP_NS;
        t_end = t_start + (int64_t)(secs * 1e9);
        pthread_t *th = calloc((size_t)threads, sizeof *th);
        for (int i = 0; i < threads; i++)
            if (pthread_create(&th[i], NULL, thread_reader, (void *)(intptr_t)i) != 0) {
                fprintf(stderr, "fileread: pthread_create failed\n");
                return 1;
            }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        free(th);
    }
    double cpu = cpu_s() - cpu0;
    close(fd);
    if (atomic_load(&failed))
        return 1;
    long n = atomic_load(&total_reads);
    double rate = (double)n / secs;
    fprintf(stderr,
            "fileread %s: %d %s, %ld reads in %.2f s: %.0f reads/s; process CPU %.2f us/read "
            "(over the warm-up's reads too)\n",
            argv[1], nreaders, weft ? "tasks" : "threads", n, secs, rate,
            all_reads ? cpu * 1e6 / (double)atomic_load(&all_reads) : 0);
    qsort(per_reader, (size_t)nreaders, sizeof *per_reader, cmp_long);
    fprintf(stderr, "fileread %s: reads per %s: min %ld, median %ld, max %ld\n", argv[1],
            weft ? "task" : "thread", per_reader[0], per_reader[nreaders / 2],
            per_reader[nreaders - 1]);
    printf("BENCH fileread_4k_%s %.0f reads/s\n", argv[1], rate);
    return 0;
}
