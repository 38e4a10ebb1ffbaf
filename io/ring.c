/*
 * ring.c - the io_uring backend: one ring per worker.
 *
 * Submission. A task takes an SQE of its current worker's ring under the
 * ring's lock, preps it with its op record as user_data and parks. The SQE
 * is not submitted at once: the worker submits what is queued every
 * SUBMIT_EVERY scheduling ticks and whenever it runs out of work (before
 * it spins or sleeps), so one io_uring_enter carries a batch. A canceller
 * or closer submits at once (it cannot wait for another worker's tick).
 *
 * Completion. While anything is queued or in flight (w->io_active), every
 * tick peeks the CQ (two loads, no syscall) and reaps what is there. An
 * idle worker sleeps in io_uring_enter(GETEVENTS) with its next timer
 * deadline as the timeout. weft__idle_unpark from any thread (a worker, a
 * weft_blocking body, a plain thread, a signal handler's monitor) wakes it
 * with one syscall that needs no ring of the caller's: an
 * IORING_OP_MSG_RING sent with io_uring_register (Linux 6.13+, probed at
 * start) posts a CQE straight into the sleeper's ring; without it, a write
 * to the worker's eventfd, on which a READ is always armed in the ring (it
 * stays armed under MSG_RING too: the fallback when the kernel cannot post
 * the CQE). io/README.md, "Waking a sleeping ring", has the measurements.
 * The monitor serves a worker stuck in one task: it submits and reaps that
 * worker's ring, and the tasks it wakes go to the inject queue.
 *
 * Locking. The owner, cancellers on other workers and the monitor all use
 * a ring, so each ring has a spin lock around liburing's SQ and CQ
 * bookkeeping (never held across a sleep), and the ring is set up without
 * SINGLE_ISSUER, DEFER_TASKRUN or a registered ring fd: those tie
 * submission or completion delivery to one thread, and a stuck thread
 * would then strand its completions (DESIGN.md). COOP_TASKRUN is on (see
 * ring_init: it only drops the IPI, a sleeping submitter is still woken).
 *
 * Cancellation (the buffer-lifetime rule). A task whose wait ends by a
 * cancel or a deadline submits IORING_OP_ASYNC_CANCEL for its op to the
 * ring the op sits on, then waits again, not cancellable, until the op's
 * own CQE arrives (io/internal.h: the completion word). Only then does the
 * call return, with the op's result if it completed anyway (data moved, an
 * fd accepted) or -ECANCELED. weft_close cancels every op on the fd with
 * the synchronous cancel register call on every ring; those ops complete
 * with -ECANCELED while their tasks still wait, which they report as
 * -EBADF.
 */
#include "io/internal.h"

#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef IORING_REGISTER_SEND_MSG_RING
#define IORING_REGISTER_SEND_MSG_RING 31 /* Linux 6.13; liburing 2.3's headers lack it */
#endif

#define RING_ENTRIES 256
#define CQ_ENTRIES 16384 /* completions pile up while a worker is busy */
#define SUBMIT_EVERY 8   /* ticks between batched submits (power of two) */
#define EFD_TAG 1u       /* user_data of the wake eventfd's READ */
#define CANCEL_TAG 0u    /* user_data of cancel requests (their CQE is ignored) */
#define WAKE_TAG 2u      /* user_data of the CQE an unparker's MSG_RING posts */

/* The unparker's fast path: IORING_REGISTER_SEND_MSG_RING (probed at start;
 * WEFT_TEST_NO_MSG_RING=1 turns it off). Written only while no worker runs. */
static atomic_bool msg_ring_ok;

typedef struct {
    struct io_uring ring;
    weft__spin lock;
    weft__worker *w;
    weft__io_ctr *ctr; /* w's counters (internal.h: own and ring words) */
    int efd;
    uint64_t efd_buf;
    bool efd_armed;          /* the READ on efd sits in the ring (under lock) */
    atomic_uint unsubmitted; /* SQEs queued since the last submit */
} ring_w;

static ring_w *ring_of(weft__worker *w) { return (ring_w *)w->io; }

static bool test_fail(int *err)
{
    /* WEFT_TEST_URING_FAIL=EPERM|ENOSYS: io_uring setup fails as under a
     * seccomp profile or kernel.io_uring_disabled (tests of the fallback). */
    const char *e = getenv("WEFT_TEST_URING_FAIL");
    if (!e || !*e)
        return false;
    *err = strcmp(e, "ENOSYS") == 0 ? -ENOSYS : -EPERM;
    return true;
}

static int ring_init(ring_w *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* COOP_TASKRUN: completion work is queued to the submitting thread
     * without an IPI. A sleeping submitter is still woken for it
     * (__set_notify_signal wakes TASK_INTERRUPTIBLE sleepers: the owner in
     * its ring, the monitor in ppoll, a canceller asleep in its own ring),
     * and a running one runs it at its next syscall or interrupt return
     * (a worker spinning in a task: at the next timer tick; io_stuck).
     * Measured: about 1.85x the echo throughput (bench/RESULTS.md). A
     * kernel without it gets the ring without it. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
    }
    if (rc < 0)
        return rc;
    /* Probed, not assumed: a sleep with a timeout that needs no SQE, CQEs
     * kept on overflow, and offset -1 meaning the file position. */
    unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS;
    if ((p.features & need) != need) {
        io_uring_queue_exit(&r->ring);
        return -ENOSYS;
    }
    r->efd = weft__io_wake_efd((unsigned)r->w->id);
    r->ctr = weft__io_ctr_of((unsigned)r->w->id);
    return 0;
}

static void ring_fini(ring_w *r)
{
    /* The eventfd READ may still sit in the ring: cancel it and wait, so
     * the kernel never writes efd_buf after the free below. */
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.flags = IORING_ASYNC_CANCEL_ANY;
    reg.timeout.tv_sec = 1;
    io_uring_register_sync_cancel(&r->ring, &reg);
    WEFT__IO_COUNT(r->ctr->registers, 1); /* no worker runs any more */
    io_uring_queue_exit(&r->ring);
}

static bool getenv_set(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

/* Posts a WAKE_TAG CQE into the ring behind ring_fd from any thread, with
 * no ring of its own (Linux 6.13+). Returns 0 or -errno. */
static int send_msg_ring(int ring_fd)
{
    struct io_uring_sqe sqe;
    memset(&sqe, 0, sizeof sqe);
    sqe.opcode = IORING_OP_MSG_RING;
    sqe.fd = ring_fd;
    sqe.off = WAKE_TAG; /* the posted CQE's user_data (addr 0: IORING_MSG_DATA) */
    long rc = syscall(__NR_io_uring_register, -1, IORING_REGISTER_SEND_MSG_RING, &sqe, 1);
    return rc < 0 ? -errno : 0;
}

int weft__ring_start(weft__rt *rt)
{
    int err;
    if (test_fail(&err))
        return err;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring_w *r = aligned_alloc(WEFT__CACHELINE, (sizeof *r + WEFT__CACHELINE - 1) /
                                                       WEFT__CACHELINE * WEFT__CACHELINE);
        if (!r) {
            err = -ENOMEM;
            goto err_unwind;
        }
        memset(r, 0, sizeof *r);
        r->w = &rt->workers[i];
        err = ring_init(r);
        if (err) {
            free(r);
            goto err_unwind;
        }
        rt->workers[i].io = r;
    }
    bool ok = !getenv_set("WEFT_TEST_NO_MSG_RING") &&
              send_msg_ring(ring_of(&rt->workers[0])->ring.ring_fd) == 0;
    atomic_store_explicit(&msg_ring_ok, ok, memory_order_relaxed);
    if (ok)
        for (unsigned i = 0; i < rt->nworkers; i++)
            atomic_store(&ring_of(&rt->workers[i])->ctr->wake_ring_fd,
                         ring_of(&rt->workers[i])->ring.ring_fd);
    return 0;
err_unwind:
    weft__ring_stop(rt);
    return err;
}

void weft__ring_stop(weft__rt *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring_w *r = ring_of(&rt->workers[i]);
        if (!r)
            continue;
        /* No MSG_RING may reach the fd once it is closed (it could be
         * reused by another ring, even the application's): withdraw it,
         * then wait out the unparkers that read it before (seq_cst, paired
         * with unpark's). They are one syscall from done. */
        atomic_store(&r->ctr->wake_ring_fd, -1);
        while (atomic_load(&r->ctr->wake_senders) != 0)
            sched_yield();
        ring_fini(r);
        free(r);
        rt->workers[i].io = NULL;
        atomic_store_explicit(&rt->workers[i].io_active, 0, memory_order_relaxed);
    }
}

/* ---- submit and reap (lock held) --------------------------------------- */

static struct io_uring_sqe *sqe_locked(ring_w *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (WEFT__UNLIKELY(!sqe)) {
        io_uring_submit(&r->ring);
        WEFT__IO_COUNT(r->ctr->enters, 1);
        atomic_store_explicit(&r->unsubmitted, 0, memory_order_relaxed);
        sqe = io_uring_get_sqe(&r->ring);
    }
    return sqe;
}

static void submit_locked(ring_w *r)
{
    if (atomic_load_explicit(&r->unsubmitted, memory_order_relaxed) == 0)
        return;
    atomic_store_explicit(&r->unsubmitted, 0, memory_order_relaxed);
    io_uring_submit(&r->ring);
    WEFT__IO_COUNT(r->ctr->enters, 1);
}

/* CQEs waiting, or some kept in the kernel's overflow list. Lock-free: the
 * tail is the kernel's (acquire), the head is written under the lock with
 * a release store (io_uring_cq_advance). */
static bool cq_pending(ring_w *r)
{
    return __atomic_load_n(r->ring.cq.ktail, __ATOMIC_ACQUIRE) !=
               __atomic_load_n(r->ring.cq.khead, __ATOMIC_RELAXED) ||
           (__atomic_load_n(r->ring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW);
}

/* Takes every CQE; finished ops go on *done (woken after the unlock).
 * Returns how many CQEs it took. */
static unsigned reap_locked(ring_w *r, weft__io_op **done)
{
    if (__atomic_load_n(r->ring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW) {
        io_uring_get_events(&r->ring); /* flush the overflow list into the CQ */
        WEFT__IO_COUNT(r->ctr->enters, 1);
    }
    unsigned head, n = 0, ops = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        n++;
        uint64_t ud = cqe->user_data;
        if (ud == EFD_TAG) {
            r->efd_armed = false;
            continue;
        }
        if (ud == WAKE_TAG)
            continue; /* an unparker's MSG_RING: the wake itself is all */
        ops++;
        if (ud == CANCEL_TAG)
            continue;
        weft__io_op *op = (weft__io_op *)(uintptr_t)ud;
        WEFT__IO_COUNT(r->ctr->ring_done[op->kind], 1);
        op->res = cqe->res;
        op->next = *done;
        *done = op;
    }
    if (n)
        io_uring_cq_advance(&r->ring, n);
    if (ops)
        atomic_fetch_sub_explicit(&r->w->io_active, ops, memory_order_relaxed);
    return n;
}

/* Delivers results: the exchange publishes res (release) and tells the
 * task it may return; nothing of op is read after it. */
static void wake_done(weft__io_op *op)
{
    while (op) {
        weft__io_op *nx = op->next;
        weft__task *t = op->t;
        uint64_t tok = atomic_exchange_explicit(&op->word, WEFT__OP_DONE, memory_order_acq_rel);
        weft__wake(t, tok, W_WOKEN);
        op = nx;
    }
}

/* Submits what is queued (when due) and reaps; from the owner's tick
 * (force: it is out of work) or the monitor. Returns CQEs reaped. */
static unsigned serve(ring_w *r, bool submit)
{
    bool sub = submit && atomic_load_explicit(&r->unsubmitted, memory_order_relaxed) != 0;
    if (!sub && !cq_pending(r))
        return 0;
    weft__io_op *done = NULL;
    weft__spin_lock(&r->lock);
    if (sub)
        submit_locked(r);
    unsigned n = reap_locked(r, &done);
    weft__spin_unlock(&r->lock);
    wake_done(done);
    return n;
}

void weft__ring_tick(weft__worker *w, bool force)
{
    (void)serve(ring_of(w), force || (w->tick & (SUBMIT_EVERY - 1)) == 0);
}

bool weft__ring_flush(weft__worker *w)
{
    if (atomic_load_explicit(&w->io_active, memory_order_relaxed) == 0)
        return false;
    return serve(ring_of(w), true) != 0;
}

void weft__ring_stuck(weft__worker *w)
{
    ring_w *r = ring_of(w);
    if (r && atomic_load_explicit(&w->io_active, memory_order_relaxed) != 0)
        (void)serve(r, true);
}

/* ---- the task side ------------------------------------------------------ */

struct io_uring_sqe *weft__ring_sqe(weft__worker *w)
{
    ring_w *r = ring_of(w);
    weft__spin_lock(&r->lock);
    struct io_uring_sqe *sqe = sqe_locked(r);
    if (!sqe)
        weft__spin_unlock(&r->lock);
    return sqe;
}

/* Asks the kernel to cancel op on its ring, at once. */
static void cancel_op(weft__io_op *op)
{
    ring_w *r = op->ring;
    bool queued = false;
    weft__spin_lock(&r->lock);
    if (atomic_load_explicit(&op->word, memory_order_acquire) != WEFT__OP_DONE) {
        struct io_uring_sqe *sqe = sqe_locked(r);
        if (sqe) {
            io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
            io_uring_sqe_set_data64(sqe, CANCEL_TAG);
            WEFT__IO_COUNT(r->ctr->cancels, 1);
            atomic_fetch_add_explicit(&r->w->io_active, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&r->unsubmitted, 1, memory_order_relaxed);
            queued = true;
        } else {
            WEFT__IO_COUNT(r->ctr->registers, 1); /* the sync cancel below */
        }
        /* The op itself must be in the kernel before its cancel. */
        submit_locked(r);
    } else {
        queued = true; /* nothing left to cancel */
    }
    weft__spin_unlock(&r->lock);
    if (!queued) {
        /* The SQ is full even after a submit: cancel synchronously. */
        struct io_uring_sync_cancel_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.addr = (uint64_t)(uintptr_t)op;
        reg.fd = -1;
        reg.timeout.tv_sec = -1;
        reg.timeout.tv_nsec = -1;
        io_uring_register_sync_cancel(&r->ring, &reg);
    }
}

/* Waits, not cancellable, until op's CQE has been delivered. */
static void wait_done(weft__task *t, weft__io_op *op)
{
    uint64_t cur = atomic_load_explicit(&op->word, memory_order_acquire);
    while (cur != WEFT__OP_DONE) {
        uint64_t tok = weft__wait_begin(t, 0);
        /* acq_rel: pairs with the completer's exchange (internal.h). */
        if (!atomic_compare_exchange_strong_explicit(&op->word, &cur, tok, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            /* Completed meanwhile; nobody knows tok: retire the wait. */
            if (!weft__wake_claim(t, tok, W_WOKEN))
                weft__wait_park(t, tok, WEFT_FOREVER, 0);
            return;
        }
        weft__wait_park(t, tok, WEFT_FOREVER, 0);
        cur = atomic_load_explicit(&op->word, memory_order_acquire);
    }
}

int weft__ring_wait(weft__worker *w, struct io_uring_sqe *sqe, weft__io_op *op, int kind, int fd,
                    int64_t deadline)
{
    ring_w *r = ring_of(w);
    weft__task *t = w->current;
    weft__fdent *fe = fd >= 0 ? weft__fdent_get(fd) : NULL;
    op->t = t;
    op->kind = kind;
    op->res = 0;
    op->ring = r;
    uint64_t tok = weft__wait_begin(t, WAIT_CANCELLABLE);
    /* Published to the reaper by the lock: submit and reap take it. */
    atomic_store_explicit(&op->word, tok, memory_order_relaxed);
    io_uring_sqe_set_data(sqe, op);
    WEFT__IO_COUNT(r->ctr->sub[op->kind], 1); /* own: w is this thread's */
    atomic_fetch_add_explicit(&w->io_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->unsubmitted, 1, memory_order_relaxed);
    if (fe)
        atomic_fetch_add_explicit(&fe->inflight, 1, memory_order_relaxed);
    weft__spin_unlock(&r->lock);
    int reason = weft__wait_park(t, tok, deadline, WAIT_CANCELLABLE);
    if (reason != W_WOKEN) {
        cancel_op(op);
        wait_done(t, op);
    }
    if (fe)
        atomic_fetch_sub_explicit(&fe->inflight, 1, memory_order_relaxed);
    int res = op->res;
    if (reason == W_WOKEN)
        return res == -ECANCELED ? -EBADF : res; /* only weft_close cancels it */
    if (res >= 0)
        return res; /* completed anyway: the result stands */
    return reason == W_TIMER ? -ETIMEDOUT : -ECANCELED;
}

void weft__ring_close_fd(int fd)
{
    weft__rt *rt = weft__io_g.rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring_w *r = ring_of(&rt->workers[i]);
        if (!r)
            continue;
        /* An op on fd may still sit in the SQ: into the kernel first. */
        weft__spin_lock(&r->lock);
        submit_locked(r);
        WEFT__IO_COUNT(r->ctr->registers, 1); /* the sync cancel below */
        weft__spin_unlock(&r->lock);
        struct io_uring_sync_cancel_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.fd = fd;
        reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
        reg.timeout.tv_sec = 0;
        reg.timeout.tv_nsec = 100 * 1000 * 1000;
        io_uring_register_sync_cancel(&r->ring, &reg);
    }
}

/* ---- idle park ---------------------------------------------------------- */

static void arm_efd_locked(ring_w *r)
{
    if (r->efd_armed)
        return;
    struct io_uring_sqe *sqe = sqe_locked(r);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, r->efd, &r->efd_buf, sizeof r->efd_buf, 0);
    io_uring_sqe_set_data64(sqe, EFD_TAG);
    atomic_fetch_add_explicit(&r->unsubmitted, 1, memory_order_relaxed);
    r->efd_armed = true;
}

bool weft__ring_idle_park(weft__worker *w, int64_t deadline)
{
    ring_w *r = ring_of(w);
    for (;;) {
        if (atomic_load_explicit(&w->park_word, memory_order_acquire))
            break;
        weft__io_op *done = NULL;
        weft__spin_lock(&r->lock);
        arm_efd_locked(r);
        submit_locked(r);
        unsigned n = reap_locked(r, &done);
        weft__spin_unlock(&r->lock);
        if (done) {
            wake_done(done);
            break; /* tasks to run */
        }
        if (n)
            continue; /* the eventfd fired (re-armed above) or a cancel's CQE */
        /* The READ on efd is armed: an unpark from here on completes it. */
        if (atomic_load_explicit(&w->park_word, memory_order_acquire))
            break;
        struct __kernel_timespec ts;
        struct io_uring_getevents_arg arg;
        memset(&arg, 0, sizeof arg);
        arg.sigmask_sz = _NSIG / 8;
        if (deadline != WEFT_FOREVER) {
            int64_t sec, nsec;
            if (!weft__idle_time_left(deadline, &sec, &nsec))
                break;
            ts.tv_sec = sec;
            ts.tv_nsec = nsec;
            arg.ts = (uint64_t)(uintptr_t)&ts;
        }
        WEFT__IO_COUNT(r->ctr->uring_sleeps, 1);
        int rc = io_uring_enter2(r->ring.ring_fd, 0, 1,
                                 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (sigset_t *)&arg,
                                 sizeof arg);
        if (rc == -ETIME || (rc < 0 && errno == ETIME))
            break;
    }
    /* acquire: pairs with the release exchange in unpark. */
    return atomic_exchange_explicit(&w->park_word, 0, memory_order_acquire) != 0;
}

void weft__ring_idle_unpark(weft__worker *w)
{
    /* Everything read before the exchange: after it the run may end and
     * free w's ring; the eventfd itself is never closed (io.c). */
    int efd = weft__io_wake_efd((unsigned)w->id);
    weft__io_ctr *c = weft__io_ctr_of((unsigned)w->id);
    if (atomic_exchange_explicit(&w->park_word, 1, memory_order_release) != 0)
        return;
    WEFT__IO_COUNT_ANY(c->wakes, 1);
    if (atomic_load_explicit(&msg_ring_ok, memory_order_relaxed)) {
        /* A CQE posted straight into the sleeper's ring: measured faster
         * than the eventfd for both sides (io/README.md, "Waking a
         * sleeping ring"). The ring fd is read inside the senders count,
         * so ring_stop cannot close it under the send (the block outlives
         * every run: io.c). */
        atomic_fetch_add(&c->wake_senders, 1);
        int fd = atomic_load(&c->wake_ring_fd);
        int rc = fd >= 0 ? send_msg_ring(fd) : -EBADF;
        atomic_fetch_sub_explicit(&c->wake_senders, 1, memory_order_release);
        if (rc == 0)
            return;
        /* The run ended (a harmless write below), or the kernel could not
         * post the CQE: the READ armed on the eventfd still catches it. */
    }
    uint64_t one = 1;
    ssize_t n = write(efd, &one, sizeof one);
    (void)n;
}
