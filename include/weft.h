/*
 * weft.h - the public interface of the weft runtime.
 *
 * weft runs goroutine-like tasks on a pool of OS threads (M:N, work
 * stealing), parks tasks (not threads) when they wait, and groups tasks in
 * nurseries so that no child outlives the scope that spawned it.
 *
 * Conventions (see README.md for the long form):
 *  - Every call that can fail returns a negative errno value (-ENOMEM,
 *    -ECANCELED, ...) and 0 or a non-negative count on success. Nothing is
 *    reported through errno.
 *  - Time is int64_t nanoseconds on CLOCK_MONOTONIC; WEFT_FOREVER means no
 *    deadline. A deadline in the past is still a cancellation point.
 *  - "May park": the calling task may be suspended and may resume on another
 *    OS thread ("may migrate"): errno and __thread variables may then belong
 *    to another thread. Use task locals (weft_key) or weft_pin().
 *  - "Context": where a call may be made: a task, a plain thread, or both.
 *
 * This header is self-contained and compiles as C11 and as C++17.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
#define WEFT_ALIGNAS(n) alignas(n)
extern "C" {
#else
#define WEFT_ALIGNAS(n) _Alignas(n)
#endif

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* No deadline. Deadline arithmetic saturates here. */
#define WEFT_FOREVER INT64_MAX

/* ------------------------------------------------------------------------ */
/* Runtime                                                                  */
/* ------------------------------------------------------------------------ */

/* A task body: 0 = success, < 0 = -errno. A positive result is misuse: it is
 * reported on stderr and treated as -EINVAL. */
typedef int (*weft_fn)(void *arg);

typedef enum { WEFT_IO_AUTO = 0, WEFT_IO_URING, WEFT_IO_EPOLL } weft_io_backend;

typedef struct weft_config {
    unsigned workers;          /* 0: WEFT_WORKERS if set, else (also for
                                  WEFT_WORKERS=0) one per CPU this process may
                                  use (affinity mask, cgroup cpu.max quota) */
    size_t stack_size;         /* 0: 64 KiB or WEFT_STACK_SIZE; rounded up to
                                  pages; 16 KiB .. 1 GiB */
    unsigned io_entries;       /* 0: default submission queue size per worker */
    weft_io_backend io;        /* AUTO: io_uring, else epoll (or WEFT_IO) */
    unsigned blocking_threads; /* 0: 64: threads weft_blocking hand-offs may
                                  add; at most workers + blocking_threads
                                  threads are inside calls at once */
    bool no_signals;           /* true: leave SIGINT/SIGTERM/SIGQUIT alone */
    /* Added in 0.1 from what was reserved_ (the struct's size is unchanged;
     * zero means what it meant before): */
    bool ignore_foreign_threads; /* true: deadlock detection does not wait for
                                    threads weft did not create (see
                                    weft_thread_never_wakes) */
    const char *trace_path;      /* NULL: WEFT_TRACE if set, else no trace.
                                    A Chrome/Perfetto trace-event JSON file
                                    written when weft_run returns (copied at
                                    start; "" = none) */
    uint64_t reserved_[7];       /* must be zero */
} weft_config;

/* Runs main_fn(arg) as the root task inside a root nursery on a pool of
 * worker threads and returns when it and every task it transitively spawned
 * have finished.
 * May park: no (it blocks the calling thread). Context: a plain thread.
 * Returns, in this order of precedence: -EINTR if SIGINT/SIGTERM cancelled
 * the run; main_fn's non-zero result; the first failure of a nursery closed
 * on main's behalf; 0. Before starting: -EBUSY if a runtime is running in
 * this process, -EINVAL for a bad config (a message on stderr names the
 * field), -ENOMEM, -EAGAIN (threads). cfg NULL means all defaults.
 * Raises the soft RLIMIT_NOFILE to the hard limit, as Go does.
 * Stuck tasks: a task that runs longer than WEFT_STUCK_MS milliseconds
 * (default 100; 0: off) without parking or yielding, not counting time in
 * weft_blocking, is reported once on stderr with its name, id, spawn site
 * and worker (again only if it stays stuck ten times longer); see
 * weft_stats.tasks_stuck. The time counted is its worker thread's CPU time,
 * so a stall of the whole process (a loaded machine) does not count. A
 * WEFT_STUCK_MS that does not parse is -EINVAL. */
WEFT_API int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg);

/* Cancels the running runtime's root scope, as SIGINT would, except that
 * weft_run then returns the root task's result rather than -EINTR.
 * May park: no. Context: any thread, also a signal handler. No-op when no
 * runtime runs. */
WEFT_API void weft_run_cancel(void);

/* The scheduling seed of this run (WEFT_SEED, or one chosen at start).
 * Context: both. 0 when no runtime has run. */
WEFT_API uint64_t weft_seed(void);

/* Lets other tasks run, then continues. Cancellation point.
 * May park: yes. Context: task (outside a task: sched_yield, returns 0).
 * Returns 0 or -ECANCELED. */
WEFT_API int weft_yield(void);

/* Returns -ECANCELED if the task is cancelled; yields only when the task's
 * cooperative budget is spent. Cheap: call it in long loops.
 * The cooperative budget (as Tokio's coop): every operation that could have
 * parked but did not (a lock, a channel send or receive, a select, an event,
 * semaphore or waitgroup wait, an I/O call) spends one unit; when it is
 * spent, the next such operation first yields (before taking anything, so
 * never with a just-acquired lock), if another task could run on the
 * worker. A park refills it. Never spent: the try_* calls (which never move
 * a task), unlock, set, release. WEFT_COOP_BUDGET sets the refill (default
 * 128; 0 turns the budget off; a value that does not parse is -EINVAL from
 * weft_run). So a loop over always-ready work cannot starve the tasks
 * queued behind it. Mutex lock stays no cancellation point.
 * May park: yes. Context: task (outside a task: returns 0). */
WEFT_API int weft_checkpoint(void);

/* Parks for ns nanoseconds (<= 0: still a cancellation point and a yield).
 * May park: yes. Context: task (outside: nanosleep). Returns 0, -ECANCELED. */
WEFT_API int weft_sleep(int64_t ns);

/* Parks until the CLOCK_MONOTONIC deadline. Never returns 0 early.
 * May park: yes. Context: task (outside: clock_nanosleep). Returns 0,
 * -ECANCELED. */
WEFT_API int weft_sleep_until(int64_t deadline);

/* CLOCK_MONOTONIC in nanoseconds. Context: both. */
WEFT_API int64_t weft_now(void);

/* errno of the thread the caller runs on now. Use it instead of `errno` in
 * any function that calls something that may park before it reads errno.
 * Why: glibc declares __errno_location() const, so the compiler computes
 * &errno once per function (even at -O1) and reuses it across calls; after
 * a park the task may run on another thread, and `errno` then reads the
 * *previous* thread's value. This call is opaque to the compiler, so it is
 * evaluated where it is written. Also safe: reading errno in a separate
 * non-inlined function that makes the libc call itself and parks nowhere,
 * or weft_pin() around the code. Context: both. */
WEFT_API int weft_errno(void);

/* True when called from a weft task. */
WEFT_API bool weft_in_task(void);

/* The calling task's id, unique for the life of the process; 0 outside. */
WEFT_API uint64_t weft_task_id(void);

/* The calling task's worker, 0..workers-1; -1 outside a task. The value may
 * be stale after any call that may park, unless the task is pinned. */
WEFT_API int weft_worker_id(void);

/* Names the calling task (copied, truncated to 31 bytes); shown in dumps and
 * traces. NULL clears it. No-op outside a task. */
WEFT_API void weft_task_set_name(const char *name);

/* The calling task's name ("" if unnamed); NULL outside a task. The pointer
 * is valid until the task renames itself or returns. */
WEFT_API const char *weft_task_name(void);

/* Runs fn(arg), a call that may block its thread, and returns its result.
 * fn runs on an OS thread's own large stack (never the task's), as on a
 * plain thread: weft_in_task() is false inside, and weft_cancelled()
 * reports the calling task's state so a long fn can stop early. It runs on
 * the calling worker's own thread, so a short call costs about a function
 * call; if it lasts (from 20 us on; within about a millisecond) while
 * other work waits on that worker, the worker's queues and timers move to
 * another thread (at most weft_config.blocking_threads such threads, so at
 * most workers + blocking_threads calls run at once, and the other tasks
 * wait for a thread to come back), like Go's syscall hand-off. A pinned
 * task's worker is never handed off: tasks pinned there wait for the call.
 * Called with the task already cancelled: fn never runs and the call
 * returns -ECANCELED; once fn started, the call always waits for it.
 * Outside a task fn runs inline.
 * May park: yes (the task may resume on another thread). Context: both.
 * Returns fn's result or -ECANCELED (-EINVAL: fn NULL). */
WEFT_API int weft_blocking(weft_fn fn, void *arg);

/* Deadlock detection in a process with threads weft did not create. By
 * default a deadlock is reported only when every such thread is parked in
 * a weft wait or gone: an idle foreign thread (a logger, a metrics
 * exporter) could still wake a task. weft_thread_never_wakes declares that
 * the calling thread will never wake a task (it makes no weft call that
 * could end a task's wait: no set, release, signal, send, receive, unlock,
 * close, cancel), so the detector stops waiting for it; label (copied, up
 * to 31 bytes; NULL: the thread's name) names it in the deadlock report,
 * which lists the foreign threads weft knows of (declared ones, and plain
 * threads parked in a weft wait) and what each waits on. The declaration
 * lasts until weft_thread_may_wake or the thread's exit. For all foreign
 * threads at once, set weft_config.ignore_foreign_threads (or
 * WEFT_IGNORE_FOREIGN_THREADS=1 with the field false).
 * May park: no. Context: a plain thread (not a task, not a weft_blocking
 * body). Returns 0, -EPERM from a task or a blocking body, -ENOSPC when 256
 * threads are declared already. */
WEFT_API int weft_thread_never_wakes(const char *label);
/* Withdraws the calling thread's weft_thread_never_wakes. No-op if it made
 * none. Context: a plain thread. */
WEFT_API void weft_thread_may_wake(void);

/* Keeps the calling task on its current worker: never stolen, never moved
 * when woken. Nests (a counter). Context: task (no-op outside). */
WEFT_API void weft_pin(void);
WEFT_API void weft_unpin(void);

/* Task-local storage. A key's destructor runs on a non-NULL value when its
 * task returns. */
typedef struct weft_key {
    uint32_t id_;
} weft_key;

/* 0, -EINVAL (key NULL) or -EAGAIN (too many keys). Context: both. */
WEFT_API int weft_key_create(weft_key *key, void (*dtor)(void *));
/* NULL outside tasks or unset. */
WEFT_API void *weft_task_get(weft_key key);
/* 0, -EPERM outside tasks, -EINVAL for a key never created, -ENOMEM. */
WEFT_API int weft_task_set(weft_key key, void *value);

/* ------------------------------------------------------------------------ */
/* Structured concurrency                                                   */
/* ------------------------------------------------------------------------ */

/* Every task belongs to a nursery; a nursery's children never outlive it:
 * weft_nursery_close returns only when every child has finished.
 * weft_nursery_open allocates one from the runtime's pool; a nursery may
 * also live in caller storage (weft_nursery_init below): 192 bytes,
 * 16-aligned in C and C++. Its contents are private. */
typedef struct weft_nursery {
    WEFT_ALIGNAS(16) unsigned char private_[192];
} weft_nursery;

/* Opens a nursery and pushes its cancel scope on the calling task.
 * May park: no. Context: task. Returns 0, -ENOMEM (*out = NULL) or -EPERM
 * outside a task; never fails because the task is cancelled. */
WEFT_API int weft_nursery_open(weft_nursery **out);

/* Opens a nursery in caller storage n (a local variable, usually), as
 * weft_nursery_open does, without allocating: fork-join code that opens a
 * nursery per call saves the pool round trip and touches only its own
 * stack. Close it with weft_nursery_fini (or weft_nursery_close: either
 * call closes either kind) before n's storage goes away; after that n may
 * be initialised again. A frame that returns with n still open is a fatal
 * misuse: n's children would outlive their nursery, so the runtime aborts
 * with a message naming it (when the storage is on the task's stack, where
 * it can tell) instead of letting them write to a dead frame.
 * May park: no. Context: task. Returns 0, -EINVAL (n NULL) or -EPERM
 * outside a task; never fails for want of memory or because the task is
 * cancelled. */
WEFT_API int weft_nursery_init(weft_nursery *n);

/* Closes a nursery from weft_nursery_init: exactly weft_nursery_close
 * (parks until every child has finished, pops its scope, same results),
 * except that n's storage is the caller's again when it returns. */
WEFT_API int weft_nursery_fini(weft_nursery *n);

/* Spawns fn(arg) as a child of n. A spawn that returned 0 always runs fn
 * (which may start already cancelled). Any task holding n may spawn into it
 * until close returns, also while close waits.
 * May park: no. Context: task. Returns 0, -ENOMEM, -ECANCELED (a child of n
 * would start cancelled), -EINVAL (n or fn NULL), -EPERM from a plain thread. */
WEFT_API int weft_spawn(weft_nursery *n, weft_fn fn, void *arg);

typedef struct weft_spawn_attr {
    size_t stack_size;     /* 0: the runtime's default; 16 KiB .. 1 GiB */
    const char *name;      /* NULL: unnamed; copied */
    bool pinned;           /* start pinned to the spawning task's worker */
    uint64_t reserved_[4]; /* must be zero */
} weft_spawn_attr;

/* weft_spawn with attributes (attr NULL: defaults). -EINVAL for a bad attr. */
WEFT_API int weft_spawn_ex(weft_nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr);

/* weft_spawn that records the spawn site (shown in dumps). The macro below
 * routes weft_spawn calls through it; (weft_spawn)(...) calls the function. */
WEFT_API int weft_spawn_at(weft_nursery *n, weft_fn fn, void *arg, const char *file, int line);
#define weft_spawn(n, fn, arg) weft_spawn_at((n), (fn), (arg), __FILE__, __LINE__)

/* weft_spawn_ex with an explicit spawn site: for wrappers (weft.hpp, a
 * server's connection helper) that pass their caller's file and line, so a
 * dump shows where the wrapper was called, with the task's name from attr.
 * file must stay valid for the life of the task (a string literal); NULL:
 * no site. Returns as weft_spawn_ex. */
WEFT_API int weft_spawn_ex_at(weft_nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr,
                              const char *file, int line);

/* Trio's nursery.start: spawns fn and parks until it calls
 * weft_task_started() (returns 0) or finishes first (returns its result, or
 * -ECHILD if it returned 0 without starting). Until then the child runs under
 * the caller's scopes and its result goes only to this call.
 * May park: yes. Context: task. Returns 0, the child's error, -ECHILD,
 * -ECANCELED (caller cancelled and the child never started), -ENOMEM. */
WEFT_API int weft_nursery_start(weft_nursery *n, weft_fn fn, void *arg);

/* Called by a child being started: releases weft_nursery_start and moves
 * the child under its nursery. Misuse (not being started) is reported. */
WEFT_API void weft_task_started(void);

/* Cancels n's scope: every child and the opener's code between open and
 * close see -ECANCELED at their cancellation points.
 * May park: no. Context: any task or thread that knows n is still open. */
WEFT_API void weft_nursery_cancel(weft_nursery *n);

/* Sets n's deadline (WEFT_FOREVER: none). A deadline that already passed
 * stays passed (cancellation is sticky). May park: no. Context: as cancel. */
WEFT_API void weft_nursery_set_deadline(weft_nursery *n, int64_t deadline);

/* Parks until every child of n has finished (not a cancellation point: it
 * always waits), pops n's scope and frees n (back to the pool; one from weft_nursery_init
 * is its caller's storage again).
 * May park: yes. Context: the task that opened n.
 * Returns the first child failure; else -ECANCELED if the task is cancelled
 * by a scope outside n; else -ETIMEDOUT if n's deadline fired; else 0. */
WEFT_API int weft_nursery_close(weft_nursery *n);

/* A cancel scope. Caller-allocated, 64 bytes, 16-aligned in C and C++. */
typedef struct weft_scope {
    WEFT_ALIGNAS(16) unsigned char private_[64];
} weft_scope;

/* Pushes s on the calling task's scope stack with a deadline (WEFT_FOREVER:
 * none). May park: no. Context: task. */
WEFT_API void weft_scope_enter(weft_scope *s, int64_t deadline);
/* Cancels s. Context: any task or thread that knows s is still entered. */
WEFT_API void weft_scope_cancel(weft_scope *s);
/* Moves s's deadline; a deadline that already passed stays passed. */
WEFT_API void weft_scope_set_deadline(weft_scope *s, int64_t deadline);
/* Shields the tasks inside s from cancels of scopes outside it (s's own
 * deadline and cancel still count). Only the task that entered s. */
WEFT_API void weft_scope_shield(weft_scope *s, bool on);
/* Pops s; true if s itself was cancelled (its deadline or a call). */
WEFT_API bool weft_scope_exit(weft_scope *s);
/* Would a cancellation point fail now? Inside a weft_blocking body: the
 * waiting task's state. False on other plain threads. */
WEFT_API bool weft_cancelled(void);

/* ------------------------------------------------------------------------ */
/* Synchronization                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Caller-allocated objects with fixed private storage, like pthreads: a
 * static initializer (plain {0}-style, valid in C11 and C++17) or _init, and
 * _destroy. They belong to no runtime instance: usable across weft_run calls
 * and while none runs. Every call also works from a plain OS thread outside
 * any task (it then blocks that thread), so foreign threads, C callbacks and
 * weft_blocking bodies can talk to tasks. Waits park the task.
 *
 * A waiter chosen by a signal, release, send or set returns success even if
 * its task was cancelled meanwhile; a waiter that returns -ECANCELED consumed
 * no signal and no permit, so no wakeup is lost.
 */

/* A mutex owned by the task (or thread) that locked it; the owner may park
 * and migrate while holding it. A brief spin, then the task parks. A waiter
 * that has waited over 1 ms switches the mutex to hand-off mode (Go's
 * starvation guard), so no waiter is bypassed forever. */
typedef struct weft_mutex {
    WEFT_ALIGNAS(8) unsigned char private_[40];
} weft_mutex;
/* clang-format off */
#define WEFT_MUTEX_INIT {{0}}
/* clang-format on */

WEFT_API void weft_mutex_init(weft_mutex *m);
/* Misuse (reported) when locked or waited on. */
WEFT_API void weft_mutex_destroy(weft_mutex *m);
/* 0, or -EDEADLK (reported as misuse) if the caller already holds m: the
 * mutex is not recursive, and a re-lock would wait forever. Not a
 * cancellation point. May park: yes. Context: both. */
WEFT_API int weft_mutex_lock(weft_mutex *m);
/* 0 or -EBUSY (also when the caller holds it). Never parks. */
WEFT_API int weft_mutex_trylock(weft_mutex *m);
/* Unlock by a non-owner is misuse: reported, and ignored. */
WEFT_API void weft_mutex_unlock(weft_mutex *m);

/* A condition variable. */
typedef struct weft_cond {
    WEFT_ALIGNAS(8) unsigned char private_[24];
} weft_cond;
/* clang-format off */
#define WEFT_COND_INIT {{0}}
/* clang-format on */

WEFT_API void weft_cond_init(weft_cond *c);
WEFT_API void weft_cond_destroy(weft_cond *c);
/* Releases m, parks until signalled, re-acquires m. Cancellation point;
 * holds the mutex again on every return; may wake spuriously.
 * Returns 0 or -ECANCELED. Context: both. */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m);
/* As weft_cond_wait; -ETIMEDOUT at the deadline. */
WEFT_API int weft_cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline);
WEFT_API void weft_cond_signal(weft_cond *c);
WEFT_API void weft_cond_broadcast(weft_cond *c);

/* A counting semaphore. */
typedef struct weft_sem {
    WEFT_ALIGNAS(8) unsigned char private_[32];
} weft_sem;
/* clang-format off */
#define WEFT_SEM_INIT {{0}} /* a semaphore with count 0; weft_sem_init for others */
/* clang-format on */

WEFT_API void weft_sem_init(weft_sem *s, unsigned count);
WEFT_API void weft_sem_destroy(weft_sem *s);
/* Takes a permit, parking until one is released. Cancellation point:
 * -ECANCELED took no permit. Returns 0 or -ECANCELED. Context: both. */
WEFT_API int weft_sem_acquire(weft_sem *s);
/* 0 or -EAGAIN. Never parks. */
WEFT_API int weft_sem_tryacquire(weft_sem *s);
/* Hands the permit to the first waiter, or adds it to the count. */
WEFT_API void weft_sem_release(weft_sem *s);

/* A wait group (Go's sync.WaitGroup). */
typedef struct weft_waitgroup {
    WEFT_ALIGNAS(8) unsigned char private_[32];
} weft_waitgroup;
/* clang-format off */
#define WEFT_WAITGROUP_INIT {{0}}
/* clang-format on */

WEFT_API void weft_waitgroup_init(weft_waitgroup *w);
WEFT_API void weft_waitgroup_destroy(weft_waitgroup *w);
/* Adds delta (may be negative) to the counter; at zero every waiter wakes.
 * A negative counter is misuse: reported, and the counter is set to 0. */
WEFT_API void weft_waitgroup_add(weft_waitgroup *w, int delta);
WEFT_API void weft_waitgroup_done(weft_waitgroup *w);
/* Parks until the counter is zero. Cancellation point. 0 or -ECANCELED. */
WEFT_API int weft_waitgroup_wait(weft_waitgroup *w);

/* A one-shot event: set once, wakes every waiter; later waits return at
 * once. */
typedef struct weft_event {
    WEFT_ALIGNAS(8) unsigned char private_[32];
} weft_event;
/* clang-format off */
#define WEFT_EVENT_INIT {{0}}
/* clang-format on */

WEFT_API void weft_event_init(weft_event *e);
WEFT_API void weft_event_destroy(weft_event *e);
/* Sets e and wakes all waiters. May park: no. Context: both. */
WEFT_API void weft_event_set(weft_event *e);
/* Parks until e is set. Cancellation point. May park: yes. Context: both.
 * Returns 0 or -ECANCELED. */
WEFT_API int weft_event_wait(weft_event *e);
/* weft_event_wait with a deadline: -ETIMEDOUT when it passes. */
WEFT_API int weft_event_wait_until(weft_event *e, int64_t deadline);
WEFT_API bool weft_event_is_set(const weft_event *e);

/* ---- channels ---------------------------------------------------------- */

/* A typed-by-size channel with Go's semantics: unbuffered (capacity 0,
 * a rendezvous) or buffered; close wakes everyone; buffered items stay
 * receivable after close; a send on a closed channel returns -EPIPE. */
typedef struct weft_chan weft_chan;

/* 0, -EINVAL (out NULL, or elem_size * capacity overflows), -ENOMEM.
 * elem_size 0 is allowed (pure signalling). Context: both. */
WEFT_API int weft_chan_open(weft_chan **out, size_t elem_size, size_t capacity);
/* Copies *elem in. Cancellation point: -ECANCELED delivered nothing.
 * Returns 0, -EPIPE (closed), -ECANCELED. May park. Context: both. */
WEFT_API int weft_chan_send(weft_chan *c, const void *elem);
/* Copies an element out to *elem (may be NULL to drop it). Cancellation
 * point: -ECANCELED consumed nothing. Returns 0, -EPIPE (closed and
 * drained), -ECANCELED. May park. Context: both. */
WEFT_API int weft_chan_recv(weft_chan *c, void *elem);
/* -EAGAIN if it would park; -EPIPE if closed. Never parks. */
WEFT_API int weft_chan_try_send(weft_chan *c, const void *elem);
/* -EAGAIN if it would park; -EPIPE if closed and drained. Never parks. */
WEFT_API int weft_chan_try_recv(weft_chan *c, void *elem);
/* Idempotent; wakes every waiter; buffered items stay receivable. */
WEFT_API void weft_chan_close(weft_chan *c);
/* Only when no task or thread can still use it. Misuse that weft can see (a
 * task or thread still parked on it) is reported on stderr by name; the
 * channel is then closed instead (the parked calls return -EPIPE) and its
 * memory is leaked rather than freed under them. */
WEFT_API void weft_chan_free(weft_chan *c);
/* Items buffered now, and the capacity. Snapshots. */
WEFT_API size_t weft_chan_len(weft_chan *c);
WEFT_API size_t weft_chan_cap(weft_chan *c);

typedef enum { WEFT_SEND = 1, WEFT_RECV = 2 } weft_case_op;
typedef struct weft_case {
    weft_chan *chan; /* NULL disables the case */
    weft_case_op op;
    void *elem; /* source for SEND, destination for RECV (may be NULL) */
    int result; /* set for the chosen case: 0, or -EPIPE (SEND: closed;
                   RECV: closed and drained) */
} weft_case;

/* Parks until one case can proceed, performs exactly that one, and returns
 * its index; -ETIMEDOUT at the deadline; -ECANCELED (no case performed);
 * -EINVAL for n > INT_MAX or a bad op. Among ready cases the choice is
 * uniformly random. A select never pairs its own SEND with its own RECV;
 * two parked selects with opposite cases on one unbuffered channel do
 * meet. All cases NULL (or n == 0): parks until the deadline or a cancel.
 * May park. Context: both. */
WEFT_API int weft_select(weft_case *cases, size_t n, int64_t deadline);
/* As weft_select without parking: -EAGAIN if no case is ready now. */
WEFT_API int weft_select_try(weft_case *cases, size_t n);

/* ------------------------------------------------------------------------ */
/* Observability                                                            */
/* ------------------------------------------------------------------------ */

typedef struct weft_stats {
    uint64_t tasks_spawned, tasks_live, context_switches, steals, steal_attempts, worker_parks,
        worker_wakes, io_submitted, io_completed, timers_fired, failures_dropped;
    uint64_t stacks_returned; /* idle pooled stacks whose pages went back to the OS */
    /* What the monitor did for stuck workers (a task running without
     * parking): stuck-task reports made (WEFT_STUCK_MS), timers it fired for
     * a worker that could not, and idle workers it woke to take a stuck
     * worker's queued tasks. */
    uint64_t tasks_stuck, monitor_timers_fired, monitor_wakes;
    /* io_submitted and io_completed count the I/O calls made in tasks and
     * those that returned (their difference: calls in flight); io_syscalls
     * the syscalls the I/O layer made for them (weft_io_stats.syscalls).
     * Added in 0.1 from what was reserved_ (the struct's size is unchanged): */
    uint64_t io_syscalls;
    /* Waits for the runtime's internal locks (the spin locks guarding
     * nurseries, tasks, timers and queues, and the shared stack pool's
     * lock where a worker takes it for stacks):
     * lock_contended counts the acquisitions that found the lock held and
     * had to wait, lock_wait_ns the time they waited (summed over threads,
     * so it can exceed wall time). Only waits are counted: the time a lock
     * is held is not, as that would need a clock read on every
     * acquisition, contended or not. stack_pool_locks counts the times a
     * worker took the shared stack pool's lock to refill its own stack
     * cache or hand its surplus back (the rest of its stack traffic stays
     * per worker). Added in 0.1 from what was reserved_ (the struct's size
     * is unchanged): */
    uint64_t lock_contended, lock_wait_ns, stack_pool_locks;
    uint64_t reserved_[8];
} weft_stats;

/* Counters summed over workers (of the running runtime, or of the last one).
 * Cheap; any thread. Every count but tasks_live only grows while a runtime
 * runs. */
WEFT_API void weft_stats_get(weft_stats *out);

/* The I/O layer's counters by op: index weft_io_stats.submitted and
 * .completed with these. Each kind counts the calls named. */
typedef enum {
    WEFT_IO_OP_READ = 0,  /* weft_read, weft_readv (and weft_sendfile's reads) */
    WEFT_IO_OP_WRITE,     /* weft_write, weft_writev (and weft_sendfile's writes) */
    WEFT_IO_OP_RECV,      /* weft_recv, weft_recvmsg */
    WEFT_IO_OP_SEND,      /* weft_send, weft_sendmsg */
    WEFT_IO_OP_ACCEPT,    /* weft_accept */
    WEFT_IO_OP_CONNECT,   /* weft_connect */
    WEFT_IO_OP_POLL,      /* weft_poll */
    WEFT_IO_OP_OTHER,     /* weft_open, weft_fsync */
    WEFT_IO_OP_CLOSE,     /* weft_close, weft_shutdown (added after OTHER) */
    WEFT_IO_OP_KINDS = 16 /* the arrays' size: room for kinds added later */
} weft_io_op_kind;

/* What the I/O layer did, summed over workers (of the running runtime, or of
 * the last one). Only calls made in tasks count (outside a task a call is
 * the plain syscall). A call is submitted once however often it waits or
 * retries, and completed when its result is back (a call that finishes
 * without waiting, e.g. a send with room in the socket buffer, counts as
 * both at once). The syscall counts are what a benchmark divides by its
 * round trips; which ones move depends on the backend
 * (weft_io_backend_name). Fields are only ever added at the end. */
typedef struct weft_io_stats {
    size_t size;                          /* set by the caller to sizeof(weft_io_stats) */
    uint64_t submitted[WEFT_IO_OP_KINDS]; /* calls made, by weft_io_op_kind */
    uint64_t completed[WEFT_IO_OP_KINDS]; /* calls that returned */
    uint64_t syscalls;                    /* the sum of the syscall counts below */
    uint64_t uring_enters;                /* io_uring_enter: batched submits, CQ overflow
                                             flushes, and the idle sleeps below */
    uint64_t uring_sleeps;                /* of those, an idle worker asleep in its ring */
    uint64_t uring_registers;             /* io_uring_register: synchronous cancels
                                             (weft_close with ops in flight on the fd,
                                             one per ring when a run ends) */
    uint64_t epoll_waits;                 /* epoll_wait / epoll_pwait2: harvests and sleeps */
    uint64_t epoll_sleeps;                /* of those, an idle worker asleep in its set */
    uint64_t direct_syscalls;             /* the call's own syscall made by the worker: on
                                             epoll every try (and connect's poll and
                                             getsockopt); on io_uring a send tried before
                                             it parks, weft_poll's first check; on both,
                                             weft_close's and weft_shutdown's own */
    uint64_t other_syscalls;              /* epoll: epoll_ctl and fcntl registering or
                                             dropping an fd, reads of a wake eventfd */
    uint64_t wake_syscalls;               /* waking an idle worker, from any thread: an
                                             IORING_OP_MSG_RING sent with io_uring_register
                                             (io_uring, Linux 6.13+), else an eventfd write */
    uint64_t uring_cancels;               /* IORING_OP_ASYNC_CANCEL for an op whose wait
                                             a cancel or deadline ended */
    /* Added later (a caller built against an older weft.h passes the
     * smaller size and never sees it): */
    uint64_t syscalls_by_op[WEFT_IO_OP_KINDS]; /* direct_syscalls by the kind of the call
                                                  that made them (they sum to it); the
                                                  batched ring enters and epoll waits serve
                                                  every call at once and count only above */
} weft_io_stats;

/* Fills out->size bytes of *out: the fields this library knows, zeros past
 * them (a caller built against a newer weft.h); size itself is left as the
 * caller set it. Returns 0, or -EINVAL for out NULL or a size smaller than
 * the size field. Cheap; any thread. */
WEFT_API int weft_io_stats_get(weft_io_stats *out);

/* Writes the task tree to fd: workers, nurseries, tasks with their names,
 * states, what each waits on and where it was spawned. Tasks that have not
 * yet waited, opened a nursery or called weft_blocking are counted on
 * their nursery's line, not listed (a spawn costs no lock). A snapshot taken
 * under the tree's locks. May park: no (it writes to fd synchronously).
 * Context: any thread. SIGQUIT prints it to stderr without stopping. */
WEFT_API void weft_dump(int fd);

/* ---- I/O (io/) -----------------------------------------------------------
 * Each call submits to the current worker's io_uring (or, on the epoll
 * backend, waits for readiness and runs a non-blocking syscall), parks the
 * task, and returns what the kernel gave: a count, an fd, or -errno. Every
 * call but weft_close is a cancellation point: a cancelled call that
 * transferred data or produced an fd returns that result (the next
 * cancellation point reports the cancel); otherwise it returns -ECANCELED
 * and nothing happened. A buffer is never touched after the call returned.
 * The offset argument (-1: the current file position) is ignored for
 * non-seekable fds. On the epoll backend weft sets O_NONBLOCK on the fds it
 * waits on (visible to plain syscalls on the same open file), runs
 * regular-file I/O on the blocking pool, and expects fds it waited on to be
 * closed with weft_close. Outside a task (a plain thread, or before
 * weft_run) each call is the plain blocking syscall. SIGPIPE: send and
 * sendmsg pass MSG_NOSIGNAL, and every thread weft creates blocks SIGPIPE,
 * so EPIPE is returned instead of a signal.
 * May park: yes (weft_io_backend_name: no). Context: both. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t n, int64_t offset);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t n, int64_t offset);
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t n, int flags);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t n, int flags);
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);
/* flags as accept4 (SOCK_NONBLOCK, SOCK_CLOEXEC). Returns the new fd. */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);
/* After a cancelled connect the socket's state is unspecified: close it. */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t len);
WEFT_API int weft_open(const char *path, int flags, mode_t mode);
/* NOT a cancellation point: always closes fd. weft ops in flight on fd in
 * other tasks are cancelled and return -EBADF; may park until those cancels
 * have landed. */
WEFT_API int weft_close(int fd);
WEFT_API int weft_shutdown(int fd, int how);
WEFT_API int weft_fsync(int fd);
/* Like sendfile(2): *offset (NULL: in_fd's file position) advances by the
 * count returned. */
WEFT_API ssize_t weft_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count);
/* Waits until fd is ready for one of events (POLLIN, POLLOUT, ...) or the
 * deadline passes. Returns the ready mask, -ETIMEDOUT, -ECANCELED. */
WEFT_API int weft_poll(int fd, short events, int64_t deadline);
/* "io_uring" or "epoll"; NULL outside a run. */
WEFT_API const char *weft_io_backend_name(void);

/* A listening TCP socket (SO_REUSEADDR) bound to host:port; host NULL = any
 * address; port "0" = any free port. Returns the fd or -errno (-EINVAL for
 * a name that does not resolve). */
WEFT_API int weft_tcp_listen(const char *host, const char *port, int backlog);
/* A connected TCP socket. A name that is not a numeric address is resolved
 * off the workers (getaddrinfo on a short-lived thread of its own, while
 * the task parks); cancellation and deadlines cover it too: the call then
 * returns at once and the lookup's result is dropped when it ends. */
WEFT_API int weft_tcp_connect(const char *host, const char *port);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
