/*
 * io/internal.h - the I/O layer's internal interface.
 *
 * Two backends sit behind the weft_* calls of ops.c:
 *   ring.c   a per-worker io_uring ring. A task takes an SQE of its current
 *            worker's ring, sets its wait record (weft__io_op) as user_data
 *            and parks. The worker submits what is queued every few
 *            scheduling ticks and whenever it runs out of work, peeks the
 *            CQ every tick while anything is in flight, and sleeps in the
 *            ring (io_uring_enter with a timeout) when idle. Each ring has a
 *            spin lock: the owner, a canceller on another worker and the
 *            monitor (for a stuck worker) all submit to and reap from it,
 *            so none of SINGLE_ISSUER, DEFER_TASKRUN or a registered
 *            ring fd is used (they tie submission or completion delivery
 *            to one thread; measured not to pay: io/README.md).
 *   epoll.c  readiness: one edge-triggered epoll set for every fd weft
 *            waits on, a per-fd record with readiness sequence numbers and
 *            a waiter list, and a per-worker epoll set (its wake eventfd
 *            plus the shared set) to sleep in.
 *
 * The op record and its completion word. op->word holds the token of the
 * wait its task is parked in, or OP_DONE once the result is in op->res.
 * The completer writes res, then exchanges the word to OP_DONE and wakes
 * the token it got back (reading nothing of op after the exchange: the task
 * may return and drop its stack frame as soon as it sees OP_DONE). A task
 * that has to wait again (after a cancel took its first wait) CASes its new
 * token into the word; if that CAS finds OP_DONE the result is already
 * there. So exactly one of the two sees the other, and the buffer is never
 * touched after the call returns.
 */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include "sched/internal.h"

#include <liburing.h>
#include <sys/epoll.h>

#define WEFT__OP_DONE 1u /* never a token: tokens have the low 8 bits 0x80 */

enum { IO_NONE = 0, IO_URING, IO_EPOLL };

typedef struct weft__io_op weft__io_op;
struct weft__io_op {
    weft__task *t;
    int kind;              /* weft_io_op_kind (the counters; weft__ring_wait sets it) */
    _Atomic uint64_t word; /* token of the current wait, or WEFT__OP_DONE */
    int32_t res;
    void *ring; /* io_uring: the ring it was submitted to (ring.c) */
    /* epoll: the readiness it waits for, its place in the fd's waiter list
     * (under the fd's lock), and whether weft_close woke it. */
    uint32_t events;
    bool linked, badf;
    weft__io_op *prev, *next;
};

/* One record per fd number, in a two-level table that grows on demand. */
typedef struct {
    weft__spin lock;
    _Atomic uint8_t kind;  /* FD_UNKNOWN, FD_POLL (registered), FD_FILE */
    _Atomic uint32_t rseq; /* epoll: readable edges seen */
    _Atomic uint32_t wseq; /* epoll: writable edges seen */
    atomic_uint inflight;  /* io_uring: ops in flight on this fd */
    weft__io_op *waiters;  /* epoll: parked tasks (under lock) */
    /* epoll, the drained-read shortcut (ops.c, ep_run): rdrain is the rseq
     * read before a read that came back short, i.e. found nothing more to
     * read (TCP only: tcp says whether the fd is a TCP stream socket, asked
     * once); while rseq still equals it, a read parks without trying the
     * syscall first. hup: a hangup, an error or urgent data was harvested
     * (the read could end early without an edge to come): no shortcut.
     * Reset when the fd is registered; harvest and close move rdrain off
     * rseq when they bump it. */
    _Atomic uint32_t rdrain;
    _Atomic uint8_t tcp; /* FD_TCP_UNKNOWN, FD_TCP_YES, FD_TCP_NO */
    _Atomic uint8_t hup;
} weft__fdent;
enum { FD_UNKNOWN = 0, FD_POLL, FD_FILE };
enum { FD_TCP_UNKNOWN = 0, FD_TCP_YES, FD_TCP_NO };

/* Worker id's wake eventfd (kept for the life of the process: io.c). */
WEFT__HIDDEN int weft__io_wake_efd(unsigned id);

/* The fd's record; NULL for a negative or out-of-range fd or no memory. */
WEFT__HIDDEN weft__fdent *weft__fdent_get(int fd);

typedef struct {
    atomic_int backend; /* IO_URING or IO_EPOLL while a runtime runs, else IO_NONE */
    weft__rt *rt;
    atomic_uint waiters; /* tasks parked in I/O, all workers (deadlock check) */
} weft__io_global;
extern WEFT__HIDDEN weft__io_global weft__io_g;
static inline int weft__io_backend(void)
{
    /* Written only while no worker runs (weft_run's start and end). */
    return atomic_load_explicit(&weft__io_g.backend, memory_order_acquire);
}

/* ---- counters (weft_io_stats) -------------------------------------------
 * One block per worker index, kept for the life of the process (like the
 * wake eventfds: a late unparker may still count its wake), zeroed at
 * every weft_run's start. Each word has one kind of writer, so no count is
 * lost without an atomic read-modify-write on the hot path:
 *   own    the thread driving the worker (its tasks' calls, its idle park);
 *   ring   whoever holds the worker's ring lock (ring.c: submit, reap,
 *          cancel, the closer's sync cancel);
 *   any    any thread (atomic add; the unparker counting its wake).
 * Threads with no worker (the monitor, a plain thread's weft_close) count
 * in a shared block with atomic adds: rare paths. Readers sum the blocks
 * (relaxed loads: a snapshot). */
typedef struct {
    /* own */
    _Atomic uint64_t sub[WEFT_IO_OP_KINDS], done[WEFT_IO_OP_KINDS];
    _Atomic uint64_t direct, other, epoll_waits, epoll_sleeps, uring_sleeps;
    _Atomic uint64_t direct_op[WEFT_IO_OP_KINDS]; /* direct, by the call's kind */
    /* ring */
    _Atomic uint64_t ring_done[WEFT_IO_OP_KINDS];
    _Atomic uint64_t enters, registers, cancels;
    /* any: a line of its own (written by other threads) */
    _Alignas(WEFT__CACHELINE) _Atomic uint64_t wakes;
    /* Not counters, but they need the block's lifetime (ring.c, the
     * MSG_RING wake): the fd of this worker's ring while a run has one
     * (else -1), and how many unparkers are between reading it and their
     * send; seq_cst on both sides, so the ring is closed only after the
     * last send that could still reach its fd. */
    atomic_int wake_ring_fd;
    atomic_uint wake_senders;
} weft__io_ctr;

/* The block of worker id (NULL past the last run's workers), and the
 * shared one for threads without a worker. Inline: every I/O call counts
 * through it (io.c grows the table only while no worker runs). */
extern WEFT__HIDDEN weft__io_ctr **weft__io_ctrs;
extern WEFT__HIDDEN unsigned weft__io_ctrs_n;
static inline weft__io_ctr *weft__io_ctr_of(unsigned id)
{
    return id < weft__io_ctrs_n ? weft__io_ctrs[id] : NULL;
}
extern WEFT__HIDDEN weft__io_ctr weft__io_ctr_foreign;

/* own / ring words: a plain increment, made atomic only so readers may
 * load it (one writer at a time, see above). */
#define WEFT__IO_COUNT(word, n)                                                                    \
    atomic_store_explicit(&(word), atomic_load_explicit(&(word), memory_order_relaxed) + (n),      \
                          memory_order_relaxed)
/* any words, and every word of the foreign block. */
#define WEFT__IO_COUNT_ANY(word, n) atomic_fetch_add_explicit(&(word), (n), memory_order_relaxed)

/* The calling thread's block: its worker's, or NULL (no worker: count in
 * weft__io_ctr_foreign with WEFT__IO_COUNT_ANY). */
static inline weft__io_ctr *weft__io_ctr_self(void)
{
    weft__worker *w = weft__self();
    return w ? weft__io_ctr_of((unsigned)w->id) : NULL;
}

/* Counts n in the word field of the calling thread's block (own words). */
#define WEFT__IO_COUNT_SELF(field, n)                                                              \
    do {                                                                                           \
        weft__io_ctr *c_ = weft__io_ctr_self();                                                    \
        if (c_)                                                                                    \
            WEFT__IO_COUNT(c_->field, n);                                                          \
        else                                                                                       \
            WEFT__IO_COUNT_ANY(weft__io_ctr_foreign.field, n);                                     \
    } while (0)

/* ---- ring.c ------------------------------------------------------------- */

WEFT__HIDDEN int weft__ring_start(weft__rt *rt);
WEFT__HIDDEN void weft__ring_stop(weft__rt *rt);
/* Takes an SQE of the current worker's ring with the ring's lock held; the
 * caller preps it and hands it to weft__ring_wait, which unlocks. */
WEFT__HIDDEN struct io_uring_sqe *weft__ring_sqe(weft__worker *w);
/* Submits the prepared sqe with op as user_data, parks until its CQE (or
 * deadline / cancel: then cancels it in the kernel and still waits for the
 * CQE). Returns the CQE's result, or -ECANCELED / -ETIMEDOUT when the op
 * was cancelled without a result. */
WEFT__HIDDEN int weft__ring_wait(weft__worker *w, struct io_uring_sqe *sqe, weft__io_op *op,
                                 int kind, int fd, int64_t deadline);
WEFT__HIDDEN void weft__ring_close_fd(int fd);
WEFT__HIDDEN void weft__ring_tick(weft__worker *w, bool force);
WEFT__HIDDEN bool weft__ring_flush(weft__worker *w);
WEFT__HIDDEN bool weft__ring_idle_park(weft__worker *w, int64_t deadline);
WEFT__HIDDEN void weft__ring_idle_unpark(weft__worker *w);
WEFT__HIDDEN void weft__ring_stuck(weft__worker *w);

/* ---- epoll.c ------------------------------------------------------------ */

WEFT__HIDDEN int weft__ep_start(weft__rt *rt);
WEFT__HIDDEN void weft__ep_stop(weft__rt *rt);
/* Registers fd (O_NONBLOCK, edge-triggered) on first use. Returns FD_POLL,
 * FD_FILE (not pollable: regular files go to the blocking pool), or -errno. */
WEFT__HIDDEN int weft__ep_prepare(int fd, weft__fdent *fe);
/* Parks until fd may be ready for events (EPOLLIN / EPOLLOUT) since seq
 * (rseq << 32 | wseq, read before the syscall that said EAGAIN)
 * was read, or deadline. Returns 0 (retry the syscall), -EBADF (closed by
 * weft_close), -ECANCELED, -ETIMEDOUT. */
WEFT__HIDDEN int weft__ep_wait(weft__fdent *fe, uint32_t events, uint64_t seq, int64_t deadline);
WEFT__HIDDEN void weft__ep_close_fd(int fd, weft__fdent *fe);
WEFT__HIDDEN bool weft__ep_flush(weft__worker *w);
WEFT__HIDDEN bool weft__ep_idle_park(weft__worker *w, int64_t deadline);
WEFT__HIDDEN void weft__ep_idle_unpark(weft__worker *w);
WEFT__HIDDEN void weft__ep_sysmon(weft__rt *rt);

/* ---- net.c ------------------------------------------------------------- */

/* Waits until no resolver thread is still waking a task (weft__io_stop). */
WEFT__HIDDEN void weft__net_quiesce(void);

#endif
