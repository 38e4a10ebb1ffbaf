/*
 * dirwalk.c - a parallel directory hasher (issue 8's weft_blocking row).
 *
 *   bench/dirwalk weft [DIR]   a task per directory and per file, 2 workers;
 *                              every directory listing and file read goes
 *                              through weft_blocking, the hashing runs on
 *                              the workers
 *   bench/dirwalk seq [DIR]    the same walk as a plain sequential loop
 *
 * DIR defaults to /usr/include. Both hash every regular file's contents
 * (FNV-1a, 64 bits) and add the hashes up, so the order does not matter:
 * the weft run checks its sum and file count against a sequential pass
 * made first (which also puts the tree in the page cache), and aborts on a
 * mismatch. The weft walks all run in one weft_run (its start-up is not
 * timed), each from the spawn of its root task to the close of its
 * nursery. Prints the median of 5 timed walks:
 *
 *   BENCH dirwalk_<mode> <ms> ms
 */
#define _GNU_SOURCE /* asprintf */
#include <weft.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPS 5

typedef struct {
    uint64_t sum, files;
} totals;

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* ---- the sequential walk ------------------------------------------------- */

static void seq_walk(const char *dir, totals *t)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    static unsigned char buf[1 << 16];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) {
            seq_walk(path, t);
        } else if (e->d_type == DT_REG) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            uint64_t h = 1469598103934665603ULL;
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0)
                h = fnv(buf, (size_t)r, h);
            close(fd);
            t->sum += h;
            t->files++;
        }
    }
    closedir(d);
}

/* ---- the weft walk ------------------------------------------------------- */

typedef struct {
    atomic_uint_least64_t sum, files;
} shared_totals;

typedef struct node {
    char *path;
    shared_totals *tot;
    /* A listing: names and whether each is a directory. */
    char **names;
    unsigned char *is_dir;
    size_t n;
} node;

static int list_dir(void *arg)
{
    node *nd = arg;
    DIR *d = opendir(nd->path);
    if (!d)
        return 0;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_REG)
            continue;
        if (nd->n == cap) {
            cap = cap ? cap * 2 : 32;
            nd->names = realloc(nd->names, cap * sizeof *nd->names);
            nd->is_dir = realloc(nd->is_dir, cap);
            if (!nd->names || !nd->is_dir)
                abort();
        }
        nd->names[nd->n] = strdup(e->d_name);
        nd->is_dir[nd->n++] = e->d_type == DT_DIR;
    }
    closedir(d);
    return 0;
}

/* A file is read as the sequential loop reads it: in 64 KiB chunks, each
 * hashed before the next is read, so both walks touch the same amount of
 * memory. One weft_blocking call per chunk: the first opens the file, and
 * the one that reaches the end closes it (a file of up to 64 KiB is one
 * call). */
#define CHUNK (1 << 16)

typedef struct {
    const char *path;
    int fd;
    bool eof;
    size_t len;
    unsigned char *buf;
} file_read;

static int read_chunk(void *arg)
{
    file_read *f = arg;
    if (f->fd < 0 && (f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    f->len = 0;
    ssize_t r = 1;
    while (f->len < CHUNK && (r = read(f->fd, f->buf + f->len, CHUNK - f->len)) > 0)
        f->len += (size_t)r;
    if (r <= 0) { /* the end, or an error: either way the last chunk */
        f->eof = true;
        close(f->fd);
    }
    return 0;
}

static int file_task(void *arg)
{
    node *nd = arg;
    file_read f = {nd->path, -1, false, 0, malloc(CHUNK)};
    if (!f.buf)
        abort();
    uint64_t h = 1469598103934665603ULL;
    bool opened = false;
    while (!f.eof && weft_blocking(read_chunk, &f) == 0) {
        opened = true;
        h = fnv(f.buf, f.len, h);
    }
    if (!f.eof && f.fd >= 0)
        close(f.fd); /* cancelled between chunks */
    if (opened) {
        atomic_fetch_add_explicit(&nd->tot->sum, h, memory_order_relaxed);
        atomic_fetch_add_explicit(&nd->tot->files, 1, memory_order_relaxed);
    }
    free(f.buf);
    free(nd->path);
    free(nd);
    return 0;
}

static int dir_task(void *arg)
{
    node *nd = arg;
    int rc = weft_blocking(list_dir, nd);
    weft_nursery *n;
    if (rc == 0 && weft_nursery_open(&n) == 0) {
        for (size_t i = 0; i < nd->n; i++) {
            node *c = calloc(1, sizeof *c);
            if (!c || asprintf(&c->path, "%s/%s", nd->path, nd->names[i]) < 0)
                abort();
            c->tot = nd->tot;
            if (weft_spawn(n, nd->is_dir[i] ? dir_task : file_task, c) != 0)
                abort();
        }
        if (weft_nursery_close(n) != 0)
            abort();
    }
    for (size_t i = 0; i < nd->n; i++)
        free(nd->names[i]);
    free(nd->names);
    free(nd->is_dir);
    free(nd->path);
    free(nd);
    return rc;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The weft side: one runtime for all the timed walks, as a program that
 * walks a tree would have (its start-up is not a walk's cost, as the
 * sequential loop's process start-up is not). Each walk is a dir_task of
 * its own, in a nursery of the root task, timed from spawn to close. */
typedef struct {
    const char *dir;
    totals ref;
    int64_t t[REPS];
} weft_walks;

static int walks_task(void *arg)
{
    weft_walks *ws = arg;
    for (int r = 0; r < REPS; r++) {
        shared_totals tot = {0, 0};
        node *root = calloc(1, sizeof *root);
        if (!root || !(root->path = strdup(ws->dir)))
            abort();
        root->tot = &tot;
        int64_t t0 = now_ns();
        weft_nursery *n;
        int rc = weft_nursery_open(&n);
        if (rc == 0) {
            rc = weft_spawn(n, dir_task, root);
            int rc2 = weft_nursery_close(n);
            rc = rc ? rc : rc2;
        }
        ws->t[r] = now_ns() - t0;
        if (rc != 0 || tot.sum != ws->ref.sum || tot.files != ws->ref.files) {
            fprintf(stderr, "dirwalk: weft walk gave %llu files (rc %d), expected %llu\n",
                    (unsigned long long)tot.files, rc, (unsigned long long)ws->ref.files);
            return -EIO;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "weft") && strcmp(argv[1], "seq"))) {
        fprintf(stderr, "usage: %s weft|seq [DIR]\n", argv[0]);
        return 2;
    }
    bool use_weft = !strcmp(argv[1], "weft");
    const char *dir = argc > 2 ? argv[2] : "/usr/include";
    totals ref = {0, 0};
    seq_walk(dir, &ref); /* the reference, and the page cache warmed */
    if (ref.files == 0) {
        fprintf(stderr, "dirwalk: no files under %s\n", dir);
        return 1;
    }
    weft_walks ws = {dir, ref, {0}};
    int64_t *t = ws.t;
    if (use_weft) {
        weft_config cfg = {0};
        cfg.workers = 2;
        if (weft_run(&cfg, walks_task, &ws) != 0)
            return 1;
    } else {
        for (int r = 0; r < REPS; r++) {
            int64_t t0 = now_ns();
            totals tot = {0, 0};
            seq_walk(dir, &tot);
            if (tot.sum != ref.sum || tot.files != ref.files)
                return 1;
            t[r] = now_ns() - t0;
        }
    }
    qsort(t, REPS, sizeof t[0], cmp_i64);
    fprintf(stderr, "dirwalk %s: %llu files under %s; min %.1f ms, max %.1f ms\n", argv[1],
            (unsigned long long)ref.files, dir, t[0] / 1e6, t[REPS - 1] / 1e6);
    printf("BENCH dirwalk_%s %.1f ms\n", argv[1], t[REPS / 2] / 1e6);
    return 0;
}
