/*
 * io.c - the I/O layer's glue: backend choice, the fd table, and the hooks
 * sched/ calls (sched/internal.h, "io/ hooks").
 *
 * Backend choice at weft_run: WEFT_IO_EPOLL (or WEFT_IO=epoll) takes epoll;
 * otherwise io_uring is set up, and if that fails for any reason (EPERM
 * from a seccomp profile or kernel.io_uring_disabled, ENOSYS, a kernel
 * without the features ring.c needs) weft falls back to epoll. The test
 * knob WEFT_TEST_URING_FAIL=EPERM|ENOSYS makes the setup fail.
 */
#include "io/internal.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define FD_CHUNK 1024

weft__io_global weft__io_g;

static _Atomic(weft__fdent *) *fd_dir;
static size_t fd_dir_n;
static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
static sigset_t old_mask;

/* The workers' wake eventfds, by worker index, kept for the life of the
 * process. An unparker on a plain thread (an event set, a weft_blocking body, a
 * resolver) may still be between claiming a parked worker and its write()
 * when the run ends: closing the eventfd then could make that write land
 * in an fd number reused meanwhile. A kept eventfd is always safe to write. */
static int *wake_efds;
static unsigned wake_efds_n;

int weft__io_wake_efd(unsigned id) { return id < wake_efds_n ? wake_efds[id] : -1; }

/* The counter blocks (internal.h), by worker index, grown with the wake
 * eventfds (only while no worker runs) and kept as long; ctrs_run is the
 * last run's worker count. */
weft__io_ctr **weft__io_ctrs;
unsigned weft__io_ctrs_n;
static unsigned ctrs_run;
weft__io_ctr weft__io_ctr_foreign;

/* Zeroes the counters, with atomic stores: a late unparker of the last run
 * may still count its wake (and be in its MSG_RING section: wake_senders
 * is left alone, the ring fd is -1 since that run stopped). */
static void ctr_zero(weft__io_ctr *c)
{
#define Z(f) atomic_store_explicit(&c->f, 0, memory_order_relaxed)
    for (unsigned k = 0; k < WEFT_IO_OP_KINDS; k++) {
        Z(sub[k]);
        Z(done[k]);
        Z(ring_done[k]);
        Z(direct_op[k]);
    }
    Z(direct);
    Z(other);
    Z(epoll_waits);
    Z(epoll_sleeps);
    Z(uring_sleeps);
    Z(enters);
    Z(registers);
    Z(cancels);
    Z(wakes);
#undef Z
}

/* Grows the blocks to n and zeroes the first n and the foreign one (fd_mu
 * held; no worker runs). */
static int ctrs_init(unsigned n)
{
    if (n > weft__io_ctrs_n) {
        weft__io_ctr **v = realloc(weft__io_ctrs, n * sizeof *v);
        if (!v)
            return -ENOMEM;
        weft__io_ctrs = v;
        while (weft__io_ctrs_n < n) {
            size_t sz = (sizeof(weft__io_ctr) + WEFT__CACHELINE - 1) / WEFT__CACHELINE *
                        WEFT__CACHELINE;
            weft__io_ctr *c = aligned_alloc(WEFT__CACHELINE, sz);
            if (!c)
                return -ENOMEM;
            memset(c, 0, sizeof *c);
            atomic_store_explicit(&c->wake_ring_fd, -1, memory_order_relaxed);
            weft__io_ctrs[weft__io_ctrs_n++] = c;
        }
    }
    for (unsigned i = 0; i < n; i++)
        ctr_zero(weft__io_ctrs[i]);
    ctr_zero(&weft__io_ctr_foreign);
    ctrs_run = n;
    return 0;
}

static int wake_efds_init(unsigned n)
{
    pthread_mutex_lock(&fd_mu);
    int rc = 0;
    if (n > wake_efds_n) {
        int *v = realloc(wake_efds, n * sizeof *v);
        if (!v) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        wake_efds = v;
        while (wake_efds_n < n) {
            int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (fd < 0) {
                rc = -errno;
                goto out_unlock;
            }
            wake_efds[wake_efds_n++] = fd;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t v; /* drop wakes left over from the previous run */
        ssize_t r = read(wake_efds[i], &v, sizeof v);
        (void)r;
    }
    if (rc == 0)
        rc = ctrs_init(n);
out_unlock:
    pthread_mutex_unlock(&fd_mu);
    return rc;
}

weft__fdent *weft__fdent_get(int fd)
{
    if (fd < 0 || (size_t)fd / FD_CHUNK >= fd_dir_n)
        return NULL;
    /* acquire: pairs with the release that published the chunk. */
    weft__fdent *c = atomic_load_explicit(&fd_dir[fd / FD_CHUNK], memory_order_acquire);
    if (WEFT__UNLIKELY(!c)) {
        pthread_mutex_lock(&fd_mu);
        c = atomic_load_explicit(&fd_dir[fd / FD_CHUNK], memory_order_relaxed);
        if (!c) {
            c = calloc(FD_CHUNK, sizeof *c);
            atomic_store_explicit(&fd_dir[fd / FD_CHUNK], c, memory_order_release);
        }
        pthread_mutex_unlock(&fd_mu);
        if (!c)
            return NULL;
    }
    return &c[fd % FD_CHUNK];
}

static int fd_table_init(void)
{
    struct rlimit rl;
    size_t max = 1u << 20;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < max)
        max = rl.rlim_max;
    fd_dir_n = (max + FD_CHUNK - 1) / FD_CHUNK;
    fd_dir = calloc(fd_dir_n, sizeof *fd_dir);
    return fd_dir ? 0 : -ENOMEM;
}

static void fd_table_fini(void)
{
    for (size_t i = 0; fd_dir && i < fd_dir_n; i++)
        free(atomic_load_explicit(&fd_dir[i], memory_order_relaxed));
    free(fd_dir);
    fd_dir = NULL;
    fd_dir_n = 0;
}

int weft__io_start(weft__rt *rt, int backend)
{
    int rc = wake_efds_init(rt->nworkers);
    if (rc)
        return rc;
    rc = fd_table_init();
    if (rc)
        return rc;
    weft__io_g.rt = rt;
    atomic_store_explicit(&weft__io_g.waiters, 0, memory_order_relaxed);
    rc = -1;
    if (backend != WEFT_IO_EPOLL && (rc = weft__ring_start(rt)) == 0)
        atomic_store_explicit(&weft__io_g.backend, IO_URING, memory_order_release);
    if (rc != 0) {
        rc = weft__ep_start(rt);
        if (rc) {
            fd_table_fini();
            return rc;
        }
        atomic_store_explicit(&weft__io_g.backend, IO_EPOLL, memory_order_release);
    }
    /* weft_run's caller is worker 0: like every thread weft creates, it
     * blocks SIGPIPE while it runs tasks (a write to a closed pipe returns
     * EPIPE; send and sendmsg pass MSG_NOSIGNAL anyway). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_mask);
    return 0;
}

void weft__io_stop(weft__rt *rt)
{
    if (weft__io_backend() == IO_NONE)
        return;
    weft__net_quiesce();
    if (weft__io_backend() == IO_URING)
        weft__ring_stop(rt);
    else
        weft__ep_stop(rt);
    atomic_store_explicit(&weft__io_g.backend, IO_NONE, memory_order_relaxed);
    fd_table_fini();
    /* A SIGPIPE raised at this thread while it was blocked must not kill
     * the process once the old mask is back: take it first. */
    if (!sigismember(&old_mask, SIGPIPE)) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}

void weft__io_tick_slow(weft__worker *w)
{
    if (w->io)
        weft__ring_tick(w, false);
}

bool weft__io_flush(weft__worker *w)
{
    if (weft__io_backend() == IO_URING)
        return weft__ring_flush(w);
    return weft__ep_flush(w);
}

bool weft__io_idle_park(weft__worker *w, int64_t deadline)
{
    if (weft__io_backend() == IO_URING)
        return weft__ring_idle_park(w, deadline);
    return weft__ep_idle_park(w, deadline);
}

void weft__io_idle_unpark(weft__worker *w)
{
    if (weft__io_backend() == IO_URING)
        weft__ring_idle_unpark(w);
    else
        weft__ep_idle_unpark(w);
}

void weft__io_sysmon(weft__rt *rt, weft__worker *stuck)
{
    if (weft__io_backend() == IO_URING) {
        if (stuck)
            weft__ring_stuck(stuck);
    } else if (weft__io_backend() == IO_EPOLL && !stuck) {
        weft__ep_sysmon(rt);
    }
}

bool weft__io_busy(weft__rt *rt)
{
    if (atomic_load_explicit(&weft__io_g.waiters, memory_order_relaxed))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (atomic_load_explicit(&rt->workers[i].io_active, memory_order_relaxed))
            return true;
    return false;
}

const char *weft_io_backend_name(void)
{
    switch (weft__io_backend()) {
    case IO_URING:
        return "io_uring";
    case IO_EPOLL:
        return "epoll";
    default:
        return NULL;
    }
}

/* ---- counters ----------------------------------------------------------- */

static void ctr_sum(weft_io_stats *o)
{
    pthread_mutex_lock(&fd_mu);
    for (unsigned i = 0; i <= ctrs_run; i++) {
        weft__io_ctr *c = i < ctrs_run ? weft__io_ctrs[i] : &weft__io_ctr_foreign;
#define LD(f) atomic_load_explicit(&c->f, memory_order_relaxed)
        for (unsigned k = 0; k < WEFT_IO_OP_KINDS; k++) {
            o->submitted[k] += LD(sub[k]);
            o->completed[k] += LD(done[k]) + LD(ring_done[k]);
        }
        o->uring_enters += LD(enters) + LD(uring_sleeps);
        o->uring_sleeps += LD(uring_sleeps);
        o->uring_registers += LD(registers);
        o->epoll_waits += LD(epoll_waits) + LD(epoll_sleeps);
        o->epoll_sleeps += LD(epoll_sleeps);
        o->direct_syscalls += LD(direct);
        for (unsigned k = 0; k < WEFT_IO_OP_KINDS; k++)
            o->syscalls_by_op[k] += LD(direct_op[k]);
        o->other_syscalls += LD(other);
        o->wake_syscalls += LD(wakes);
        o->uring_cancels += LD(cancels);
#undef LD
    }
    pthread_mutex_unlock(&fd_mu);
    o->syscalls = o->uring_enters + o->uring_registers + o->epoll_waits + o->direct_syscalls +
                  o->other_syscalls + o->wake_syscalls;
}

int weft_io_stats_get(weft_io_stats *out)
{
    if (!out || out->size < sizeof out->size)
        return -EINVAL;
    size_t size = out->size;
    weft_io_stats s;
    memset(&s, 0, sizeof s);
    ctr_sum(&s);
    s.size = size;
    size_t n = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, n);
    if (size > n)
        memset((char *)out + n, 0, size - n);
    return 0;
}

void weft__io_stats_fill(weft_stats *out)
{
    weft_io_stats s;
    memset(&s, 0, sizeof s);
    ctr_sum(&s);
    out->io_submitted = out->io_completed = 0;
    for (unsigned k = 0; k < WEFT_IO_OP_KINDS; k++) {
        out->io_submitted += s.submitted[k];
        out->io_completed += s.completed[k];
    }
    out->io_syscalls = s.syscalls;
}
