/*
 * epoll.c - the epoll backend: readiness, with the same semantics.
 *
 * Every fd a task waits on is registered once, edge-triggered for in and
 * out, in one shared epoll set, and made O_NONBLOCK (documented in
 * weft.h: plain syscalls on the same open file see it). Its record
 * (weft__fdent) counts the edges seen per direction (rseq, wseq) and lists
 * the tasks parked on it.
 *
 * A call: read the sequence numbers, try the non-blocking syscall, and on
 * EAGAIN park on the record unless an edge arrived since the read (checked
 * under the record's lock, where the harvester bumps the counters and
 * takes the waiters): no edge is lost between the syscall and the park.
 * A plain read on a TCP socket whose last read came back short, with no
 * edge since, skips the syscall and parks at once (ops.c, ep_run).
 * Cancellation is trivially clean here: a woken task only retries the
 * syscall, so a cancelled call moved no data.
 *
 * Harvest: a worker out of work polls the shared set without blocking, at
 * most once per flush_gap (growing while the polls find nothing); an idle
 * worker sleeps in its own epoll set, which holds its wake eventfd and the
 * shared set, and harvests when the shared set wakes it; the monitor
 * harvests when nobody has for a while (all workers busy). Regular files
 * are not pollable (EPOLL_CTL_ADD fails with EPERM): their I/O runs through
 * weft_blocking (ops.c).
 */
#include "io/internal.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TAG_EFD (~(uint64_t)0)
#define TAG_SHARED (~(uint64_t)1)
#define HARVEST_MAX 128
#define MONITOR_HARVEST_NS (2 * 1000 * 1000)
/* A worker out of work (spinning) harvests at most once per flush_gap,
 * which doubles from FLUSH_GAP_MIN_NS after every empty harvest of that
 * path, up to FLUSH_GAP_MAX_NS, and drops back to the minimum as soon as a
 * harvest anywhere finds events (an idle worker sleeps in the set anyway). */
#define FLUSH_GAP_MIN_NS (5 * 1000)
#define FLUSH_GAP_MAX_NS (20 * 1000)

typedef struct {
    int epfd; /* this worker's: its eventfd and the shared set */
    int efd;
} ep_w;

static int g_epfd = -1;
static _Atomic int64_t last_harvest, flush_gap = FLUSH_GAP_MIN_NS;

int weft__ep_start(weft__rt *rt)
{
    int err;
    atomic_store_explicit(&flush_gap, FLUSH_GAP_MIN_NS, memory_order_relaxed);
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0)
        return -errno;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ep_w *e = calloc(1, sizeof *e);
        if (!e) {
            err = -ENOMEM;
            goto err_unwind;
        }
        e->epfd = epoll_create1(EPOLL_CLOEXEC);
        e->efd = weft__io_wake_efd(rt->workers[i].id);
        struct epoll_event a = {.events = EPOLLIN, .data.u64 = TAG_EFD};
        struct epoll_event b = {.events = EPOLLIN, .data.u64 = TAG_SHARED};
        if (e->epfd < 0 || e->efd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->efd, &a) ||
            epoll_ctl(e->epfd, EPOLL_CTL_ADD, g_epfd, &b)) {
            err = -errno;
            if (e->epfd >= 0)
                close(e->epfd);
            free(e);
            goto err_unwind;
        }
        rt->workers[i].io = e;
    }
    return 0;
err_unwind:
    weft__ep_stop(rt);
    return err;
}

void weft__ep_stop(weft__rt *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ep_w *e = rt->workers[i].io;
        if (!e)
            continue;
        close(e->epfd);
        free(e);
        rt->workers[i].io = NULL;
    }
    if (g_epfd >= 0)
        close(g_epfd);
    g_epfd = -1;
}

int weft__ep_prepare(int fd, weft__fdent *fe)
{
    int kind = atomic_load_explicit(&fe->kind, memory_order_acquire);
    if (WEFT__LIKELY(kind != FD_UNKNOWN))
        return kind;
    int rc;
    weft__spin_lock(&fe->lock);
    kind = fe->kind;
    if (kind == FD_UNKNOWN) {
        int fl = fcntl(fd, F_GETFL);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)fd};
        WEFT__IO_COUNT_SELF(other, 1); /* F_GETFL */
        if (fl < 0) {
            rc = -errno;
            goto out_unlock;
        }
        WEFT__IO_COUNT_SELF(other, 1); /* EPOLL_CTL_ADD */
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) == 0 || errno == EEXIST) {
            if (!(fl & O_NONBLOCK)) {
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
                WEFT__IO_COUNT_SELF(other, 1);
            }
            /* A new registration (the number may have been another fd's):
             * nothing known yet about draining it. */
            atomic_store_explicit(&fe->tcp, FD_TCP_UNKNOWN, memory_order_relaxed);
            atomic_store_explicit(&fe->hup, 0, memory_order_relaxed);
            atomic_store_explicit(&fe->rdrain,
                                  atomic_load_explicit(&fe->rseq, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
            kind = FD_POLL;
        } else if (errno == EPERM) {
            kind = FD_FILE;
        } else {
            rc = -errno;
            goto out_unlock;
        }
        atomic_store_explicit(&fe->kind, (uint8_t)kind, memory_order_release);
    }
    rc = kind;
out_unlock:
    weft__spin_unlock(&fe->lock);
    return rc;
}

static void unlink_locked(weft__fdent *fe, weft__io_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        fe->waiters = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->linked = false;
}

static bool seq_moved(weft__fdent *fe, uint32_t events, uint64_t seq)
{
    if ((events & EPOLLIN) &&
        atomic_load_explicit(&fe->rseq, memory_order_relaxed) != (uint32_t)(seq >> 32))
        return true;
    if ((events & EPOLLOUT) &&
        atomic_load_explicit(&fe->wseq, memory_order_relaxed) != (uint32_t)seq)
        return true;
    return false;
}

int weft__ep_wait(weft__fdent *fe, uint32_t events, uint64_t seq, int64_t deadline)
{
    weft__task *t = weft__current();
    weft__io_op op;
    memset(&op, 0, sizeof op);
    op.t = t;
    op.events = events;
    uint64_t tok = weft__wait_begin(t, WAIT_CANCELLABLE);
    atomic_store_explicit(&op.word, tok, memory_order_relaxed);
    weft__spin_lock(&fe->lock);
    if (seq_moved(fe, events, seq)) {
        weft__spin_unlock(&fe->lock);
        /* An edge came: retire the wait (or take the cancel that won it). */
        if (!weft__wake_claim(t, tok, W_WOKEN))
            weft__wait_park(t, tok, WEFT_FOREVER, 0);
        return 0;
    }
    op.next = fe->waiters;
    if (op.next)
        op.next->prev = &op;
    fe->waiters = &op;
    op.linked = true;
    weft__spin_unlock(&fe->lock);
    atomic_fetch_add_explicit(&weft__io_g.waiters, 1, memory_order_relaxed);
    int reason = weft__wait_park(t, tok, deadline, WAIT_CANCELLABLE);
    atomic_fetch_sub_explicit(&weft__io_g.waiters, 1, memory_order_relaxed);
    if (reason != W_WOKEN) {
        weft__spin_lock(&fe->lock);
        if (op.linked)
            unlink_locked(fe, &op);
        weft__spin_unlock(&fe->lock);
        return reason == W_TIMER ? -ETIMEDOUT : -ECANCELED;
    }
    return op.badf ? -EBADF : 0;
}

/* Wakes the waiters of fe that want one of events (lock held). The wake
 * happens under the lock: a waiter unlinking itself after a cancel holds
 * it too, so op is alive while we read it. */
static unsigned wake_locked(weft__fdent *fe, uint32_t events, bool badf)
{
    unsigned n = 0;
    weft__io_op *op = fe->waiters;
    while (op) {
        weft__io_op *nx = op->next;
        if (op->events & events) {
            unlink_locked(fe, op);
            op->badf = badf;
            uint64_t tok = atomic_load_explicit(&op->word, memory_order_relaxed);
            if (weft__wake(op->t, tok, W_WOKEN))
                n++;
        }
        op = nx;
    }
    return n;
}

/* Polls the shared set; returns the tasks it woke, and in *nev (if not
 * NULL) the events it found. */
static unsigned harvest(int *nev)
{
    struct epoll_event ev[HARVEST_MAX];
    int n = epoll_wait(g_epfd, ev, HARVEST_MAX, 0);
    WEFT__IO_COUNT_SELF(epoll_waits, 1); /* a worker, or the monitor (foreign) */
    atomic_store_explicit(&last_harvest, weft__now(), memory_order_relaxed);
    if (nev)
        *nev = n;
    if (n > 0 && atomic_load_explicit(&flush_gap, memory_order_relaxed) != FLUSH_GAP_MIN_NS)
        atomic_store_explicit(&flush_gap, FLUSH_GAP_MIN_NS, memory_order_relaxed);
    unsigned woken = 0;
    for (int i = 0; i < n; i++) {
        weft__fdent *fe = weft__fdent_get((int)ev[i].data.u64);
        if (!fe)
            continue;
        uint32_t e = ev[i].events, want = 0;
        weft__spin_lock(&fe->lock);
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) {
            /* hup before the bump, release: a reader that sees the new
             * rseq sees hup too (the drained-read shortcut, ops.c). Not
             * for EPOLLHUP alone: TCP reports it for a socket not yet
             * connected, as every weft_connect socket is when it is
             * registered; each way a TCP read can end (FIN, RST, a
             * shutdown) also reports EPOLLRDHUP or EPOLLERR. */
            if (e & (EPOLLRDHUP | EPOLLERR | EPOLLPRI))
                atomic_store_explicit(&fe->hup, 1, memory_order_relaxed);
            uint32_t old = atomic_fetch_add_explicit(&fe->rseq, 1, memory_order_release);
            atomic_store_explicit(&fe->rdrain, old, memory_order_relaxed);
            want |= EPOLLIN;
        }
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            atomic_fetch_add_explicit(&fe->wseq, 1, memory_order_relaxed);
            want |= EPOLLOUT;
        }
        woken += wake_locked(fe, want, false);
        weft__spin_unlock(&fe->lock);
    }
    return woken;
}

void weft__ep_close_fd(int fd, weft__fdent *fe)
{
    weft__spin_lock(&fe->lock);
    if (fe->kind == FD_POLL) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, fd, NULL);
        WEFT__IO_COUNT_SELF(other, 1);
    }
    atomic_store_explicit(&fe->kind, FD_UNKNOWN, memory_order_release);
    atomic_store_explicit(&fe->hup, 1, memory_order_relaxed);
    uint32_t old = atomic_fetch_add_explicit(&fe->rseq, 1, memory_order_release);
    atomic_store_explicit(&fe->rdrain, old, memory_order_relaxed);
    atomic_fetch_add_explicit(&fe->wseq, 1, memory_order_relaxed);
    wake_locked(fe, EPOLLIN | EPOLLOUT, true);
    weft__spin_unlock(&fe->lock);
}

bool weft__ep_flush(weft__worker *w)
{
    (void)w;
    if (atomic_load_explicit(&weft__io_g.waiters, memory_order_relaxed) == 0)
        return false;
    /* A spinning worker comes here every steal round: one epoll_wait per
     * flush_gap is plenty (an idle worker sleeps in the set anyway), and
     * while they keep finding nothing the gap grows: with one connection
     * a spinning worker made 4 to 5 epoll_waits per round trip, 3 to 4 of
     * them empty, at 5 us. */
    int64_t gap = atomic_load_explicit(&flush_gap, memory_order_relaxed);
    if (weft__now() - atomic_load_explicit(&last_harvest, memory_order_relaxed) < gap)
        return false;
    int nev;
    unsigned woken = harvest(&nev);
    if (nev <= 0 && gap < FLUSH_GAP_MAX_NS)
        atomic_store_explicit(&flush_gap, gap * 2 < FLUSH_GAP_MAX_NS ? gap * 2 : FLUSH_GAP_MAX_NS,
                              memory_order_relaxed);
    return woken != 0;
}

void weft__ep_sysmon(weft__rt *rt)
{
    (void)rt;
    if (atomic_load_explicit(&weft__io_g.waiters, memory_order_relaxed) == 0)
        return;
    if (weft__now() - atomic_load_explicit(&last_harvest, memory_order_relaxed) >=
        MONITOR_HARVEST_NS)
        harvest(NULL);
}

bool weft__ep_idle_park(weft__worker *w, int64_t deadline)
{
    ep_w *e = w->io;
    weft__io_ctr *c = weft__io_ctr_of((unsigned)w->id); /* own words */
    /* No harvest before the sleep: the shared set sits level-triggered in
     * the worker's own set, so the sleep returns at once if it holds
     * events, and the worker has usually just polled it (spinning): that
     * harvest came back empty 19 times in 20. */
    while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0) {
        struct timespec ts, *tsp = NULL;
        if (deadline != WEFT_FOREVER) {
            int64_t sec, nsec;
            if (!weft__idle_time_left(deadline, &sec, &nsec))
                break;
            ts.tv_sec = sec;
            ts.tv_nsec = nsec;
            tsp = &ts;
        }
        struct epoll_event ev[2];
        WEFT__IO_COUNT(c->epoll_sleeps, 1);
        int n = epoll_pwait2(e->epfd, ev, 2, tsp, NULL);
        bool woke = false;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == TAG_EFD) {
                uint64_t v;
                ssize_t r = read(e->efd, &v, sizeof v);
                (void)r;
                WEFT__IO_COUNT(c->other, 1);
            } else if (harvest(NULL)) {
                woke = true;
            }
        }
        if (woke)
            break;
    }
    /* acquire: pairs with the release exchange in unpark. */
    return atomic_exchange_explicit(&w->park_word, 0, memory_order_acquire) != 0;
}

void weft__ep_idle_unpark(weft__worker *w)
{
    /* As in ring.c: read before the exchange, the eventfd is never closed. */
    int efd = weft__io_wake_efd((unsigned)w->id);
    weft__io_ctr *c = weft__io_ctr_of((unsigned)w->id);
    if (atomic_exchange_explicit(&w->park_word, 1, memory_order_release) == 0) {
        uint64_t one = 1;
        ssize_t n = write(efd, &one, sizeof one);
        (void)n;
        WEFT__IO_COUNT_ANY(c->wakes, 1);
    }
}
