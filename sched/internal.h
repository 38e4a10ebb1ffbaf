/*
 * sched/internal.h - the scheduler's internal interface.
 *
 * Glossary
 *   task    a weft task: a control block (weft__task) plus, once it has run,
 *           a stack. An unstarted task has no stack; a child its parent runs
 *           inline (see structured/nursery.c) borrows the parent's stack.
 *   worker  an OS thread running the scheduler loop (sched/worker.c). Each
 *           has a bounded run queue (resumed tasks), a Chase-Lev spawn deque
 *           (new tasks), a runnext slot, an inbox for tasks that must run on
 *           it, a timer heap and an idle futex.
 *   rt      the running runtime (one per process at a time).
 *
 * Task states (t->state, written by the task's current owner)
 *   NEW      spawned, not yet started; sits in a spawn deque or, on
 *            overflow, a run queue or the inject queue (as a "spawn entry"),
 *            counted by its nursery. Its spawn entry is its only
 *            reference: whoever consumes the entry owns the task.
 *   RUNNING  on a worker; its stack belongs to that worker's thread.
 *   READY    switched out, runnable, in exactly one queue.
 *   PARKED   switched out, waiting; no queue holds it; exactly one waker
 *            (the winner of the wstate CAS) will make it READY.
 *   DONE     returned; its stack went back to a pool.
 *
 * The park/wake protocol (sched/wait.c), the one mechanism every wait uses:
 *   1. The task calls weft__wait_begin(): a new generation is written to
 *      t->wstate as (gen << 8 | W_WAITING). The returned token names this
 *      wait; a waker that holds an older token can never wake a later wait.
 *   2. The task publishes itself where a waker can find it (a waiter list,
 *      the timer heap, a blocking job) together with the token.
 *   3. weft__wait_park() checks cancellation (after step 1: Dekker with the
 *      canceller, both seq_cst), then switches to another context.
 *   4. Any waker (a set, a timer, a cancel) does CAS(wstate, token|WAITING ->
 *      token|reason). Exactly one wins. The winner then does
 *      fetch_or(t->handoff, H_WOKEN).
 *   5. On the scheduler side *after* the switch (never on the task's own
 *      stack), the worker does fetch_or(t->handoff, H_SWITCHED).
 *   Whichever of 4 and 5 comes second sees the other's bit and makes the task
 *   READY. So a wake that lands before the task has left its stack cannot
 *   run the task on two workers at once (the classic park/wake race).
 */
#ifndef WEFT_SCHED_INTERNAL_H
#define WEFT_SCHED_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "weft.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* WEFT__TSAN: this library itself is built with ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

/* WEFT__CHECKED: a sanitizer build of this library, which also checks
 * invariants that a release build takes on trust (a spawn entry consumed
 * twice: sched/worker.c's claim). */
#if defined(__SANITIZE_ADDRESS__) || defined(WEFT__TSAN)
#define WEFT__CHECKED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__CHECKED 1
#endif
#endif

#define WEFT__CACHELINE 64
#define WEFT__HIDDEN __attribute__((visibility("hidden")))
/* Every thread-local of the library: initial-exec, so an access is one
 * %fs-relative load even in the shared library (no __tls_get_addr call). */
#define WEFT__TLS __thread __attribute__((tls_model("initial-exec")))
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef struct weft__task weft__task;
typedef struct weft__worker weft__worker;
typedef struct weft__rt weft__rt;
typedef struct weft__scope weft__scope;
typedef struct weft__nursery weft__nursery;

/* ---- misuse and invariants --------------------------------------------- */

/* A broken runtime invariant: prints the message with task and worker, aborts. */
WEFT__HIDDEN void weft__panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* A user misuse: prints "weft: misuse: ..." naming the current task. */
WEFT__HIDDEN void weft__misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- injected delays, for tests of preemption races ------------------- */

/* WEFT_TEST_DELAY=point=microseconds[,point=microseconds...] makes the
 * named points sleep, standing in for the OS preempting a thread inside a
 * race window (tests only; read when a runtime starts). Unset, a point
 * costs one load and a predicted branch. Points: task_started (between the
 * list moves of weft_task_started), wake_idle (between claiming a parked
 * worker and unparking it), cancel_bump (between setting a scope's
 * cancelled flag and bumping cancel_gen). */
enum { WEFT__DELAY_TASK_STARTED, WEFT__DELAY_WAKE_IDLE, WEFT__DELAY_CANCEL_BUMP, WEFT__DELAY_N };
extern WEFT__HIDDEN unsigned weft__delay_us[WEFT__DELAY_N];
/* WEFT_TEST_FAIL_THREADS=1: the blocking pool's pthread_create fails with
 * EAGAIN (tests of that path; read when a runtime starts). */
extern WEFT__HIDDEN bool weft__test_fail_threads;
WEFT__HIDDEN void weft__test_delay_init(void);
WEFT__HIDDEN void weft__test_delay_slow(int point);
static inline void weft__test_delay(int point)
{
    if (WEFT__UNLIKELY(weft__delay_us[point] != 0))
        weft__test_delay_slow(point);
}

/* ---- happens-before for a user's ThreadSanitizer ------------------------ */

/* When the process runs under TSan but this library is not instrumented
 * (the installed Release library inside a user's -fsanitize=thread build),
 * TSan cannot see weft's atomics, so it would report races on data that
 * weft's own guarantees order (API.md, happens-before). weft then tells it
 * about each edge through TSan's annotation calls, found through weak
 * references: release at a spin lock's unlock and acquire at its lock (all
 * data handed over under weft's locks), release when a waker makes a
 * waiter runnable and acquire when the waiter resumes, release at spawn and
 * acquire at the child's start, release at a task's end and acquire where
 * its nursery's close returns, release/acquire at mutex unlock/lock. In an
 * instrumented build of weft itself they stay off: TSan sees the atomics.
 * Off, each costs a load and a predicted branch. */
extern WEFT__HIDDEN bool weft__tsan_hb;
WEFT__HIDDEN void weft__hb_worker_start(void);
WEFT__HIDDEN void weft__hb_release_slow(const void *addr);
WEFT__HIDDEN void weft__hb_acquire_slow(const void *addr);
static inline void weft__hb_release(const void *addr)
{
    if (WEFT__UNLIKELY(weft__tsan_hb))
        weft__hb_release_slow(addr);
}
static inline void weft__hb_acquire(const void *addr)
{
    if (WEFT__UNLIKELY(weft__tsan_hb))
        weft__hb_acquire_slow(addr);
}

/* ---- spin lock (owned by no one in particular; brief sections only) ---- */

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

typedef struct {
    atomic_uint v;
} weft__spin;
/* Contention accounting lives in the slow path only (util.c): it counts an
 * acquisition whose first exchange found the lock held (lock_contended, at
 * entry, before waiting) and the ticks it then waited (lock_wait), in the
 * calling worker's counters, or in weft__lock_foreign_* on a thread that
 * drives no worker. The fast path stays one exchange: hold times are not
 * measured (a clock read per acquisition would cost more than the lock). */
extern WEFT__HIDDEN _Atomic uint64_t weft__lock_foreign_contended, weft__lock_foreign_wait;
WEFT__HIDDEN void weft__spin_lock_slow(weft__spin *l);
static inline void weft__spin_lock(weft__spin *l)
{
    /* acquire: pairs with the release in weft__spin_unlock. */
    if (WEFT__UNLIKELY(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) != 0))
        weft__spin_lock_slow(l);
    weft__hb_acquire(l);
}
static inline void weft__spin_unlock(weft__spin *l)
{
    weft__hb_release(l);
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

/* ---- context switch (switch_*.S) --------------------------------------- */

typedef struct {
    void *sp;
} weft__ctx;

/* Saves the callee-saved registers and FP control words on the current stack,
 * stores the stack pointer in from->sp, and resumes to->sp. */
WEFT__HIDDEN void weft__ctx_switch(weft__ctx *from, weft__ctx *to);
/* Prepares ctx so that switching to it calls entry() on the stack whose
 * highest address is top. entry must never return. */
WEFT__HIDDEN void weft__ctx_init(weft__ctx *ctx, void *top, void (*entry)(void));
/* fn(arg) in a frame unwinders take for the bottom of the stack: a C++
 * exception escaping fn terminates (naming the task) instead of unwinding
 * into weft's caller. For task bodies not run from a task's own first frame
 * (inline children) and weft_blocking bodies. */
WEFT__HIDDEN int weft__call_fenced(weft_fn fn, void *arg);
/* fn(arg) on the stack whose highest address is top, returning on the
 * caller's stack; no context switch (an inline child's own stack). */
WEFT__HIDDEN void weft__call_on_stack(void (*fn)(void *), void *arg, void *top);

/* The C++ ABI's per-thread exception state (__cxa_get_globals: the stack
 * of caught exceptions and the uncaught count), kept per task and switched
 * with it, so that a task that parks inside a catch block, or in a
 * destructor during unwinding, gets its own back wherever it resumes. */
typedef struct {
    void *caught;
    unsigned int uncaught;
} weft__eh_state;

/* ---- stacks (stack.c) --------------------------------------------------- */

#define WEFT__STACK_CACHE_MAX 256 /* stacks a worker keeps warm (stack.c) */

typedef struct weft__stack {
    char *lo;         /* lowest usable address */
    size_t size;      /* usable bytes above lo */
    bool guarded;     /* a guard page (marker or PROT_NONE) sits below lo */
    bool chunked;     /* carved from a shared chunk (never unmapped alone) */
    unsigned vg_id;   /* Valgrind's stack id, 0 when not running under it */
    int64_t freed_at; /* when it went to the shared warm list (stack.c) */
    struct weft__stack *next;
} weft__stack;

/* The slow halves of weft__stack_get / weft__stack_put (below, after the
 * worker struct): refills, surplus, other sizes. */
WEFT__HIDDEN weft__stack *weft__stack_get_slow(weft__worker *w, size_t size);
WEFT__HIDDEN void weft__stack_put_slow(weft__worker *w, weft__stack *s);
WEFT__HIDDEN int weft__stack_system_init(weft__rt *rt);
WEFT__HIDDEN void weft__stack_system_fini(weft__rt *rt);
/* The panic of weft__stack_check (below, after the task's definition). */
WEFT__HIDDEN void weft__stack_overflow(weft__task *t) __attribute__((noreturn, cold));
/* Gives the pages of shared-pool stacks unused for about a second back to
 * the OS (the monitor calls it a few times a second). Returns how many. */
WEFT__HIDDEN unsigned weft__stack_trim(weft__rt *rt, int64_t now);

/* ---- scopes (the chain lives here; structured/ builds nurseries on it) -- */

enum {
    S_CANCELLED = 1u,    /* cancelled by a call (sticky) */
    S_SHIELDED = 2u,     /* outer scopes do not count inside this one */
    S_DEADLINE_HIT = 4u, /* its deadline fired and cancelled someone */
    S_NURSERY = 8u,      /* embedded in a weft__nursery */
    S_WATCHED = 16u,     /* the monitor watches its deadline (run.c) */
};
#define WEFT__SCOPE_MAGIC 0x5c09e5u

/* The private layout of weft_scope (and the scope inside every nursery).
 * Written by its owner; flags and deadline read by any task whose chain
 * passes through it, so they are atomics. */
struct weft__scope {
    /* Next scope outward; may belong to another task. Atomic: the tasks
     * below read it without a lock, and weft_task_started and misuse
     * recovery relink it (under the owner's lock) while they may. */
    _Atomic(weft__scope *) parent;
    weft__task *owner;        /* the task that entered it */
    _Atomic int64_t deadline; /* WEFT_FOREVER: none */
    atomic_uint flags;
    uint32_t magic;         /* WEFT__SCOPE_MAGIC while entered */
    weft__nursery *nursery; /* S_NURSERY: the nursery embedding it */
    uint32_t watch_slot;    /* deadline watch heap index + 1, 0: not in it
                               (structured/run.c, under the watch lock) */
};
_Static_assert(sizeof(weft__scope) <= sizeof(weft_scope), "weft_scope too small");
_Static_assert(_Alignof(weft__scope) <= _Alignof(weft_scope), "weft_scope misaligned");

/* ---- tasks -------------------------------------------------------------- */

enum { T_NEW = 0, T_RUNNING, T_READY, T_PARKED, T_DONE };

/* t->life bits, set only in checked builds (WEFT__CHECKED): a spawn entry
 * consumed twice is caught there (sched/worker.c's claim). */
enum {
    L_CLAIMED = 1u, /* a worker consumed the task's spawn entry */
};
/* In t->wstate: the task is on its nursery's running list (weft__task_list). */
#define WEFT__WS_LISTED 0x40u

/* t->handoff bits: step 4 and 5 of the park/wake protocol. */
enum { H_WOKEN = 1u, H_SWITCHED = 2u };

/* Wait reasons stored in the low byte of t->wstate. */
enum {
    W_IDLE = 0,    /* not waiting */
    W_WAITING = 1, /* parked or about to park; wakers may CAS */
    W_WOKEN = 2,   /* a waker delivered what the task waited for */
    W_TIMER = 3,   /* the wait's deadline (or a scope deadline) fired */
    W_CANCEL = 4,  /* a cancel reached the task */
};

/* Wait flags for weft__wait_park. */
enum {
    WAIT_CANCELLABLE = 1u, /* a cancellation point */
};

#define WEFT__NAME_MAX 32
#define WEFT__COOP_DEFAULT 128 /* the budget's refill (see weft__coop_spend) */
#define WEFT__INLINE_KEYS 4

struct weft__task {
    /* Read by other threads at any time, also while the block is being
     * recycled (type-stable memory): never cleared with memset. Blocks
     * sit side by side in slabs: aligned to a cache line (and so a whole
     * number of lines long), one block's head never shares a line with
     * its neighbour's tail, which another worker may be writing. */
    _Alignas(WEFT__CACHELINE) atomic_uint state;
    atomic_uint life;
    atomic_uint handoff;
    /* For weft_dump, written before every park that uses them, so they need
     * no clearing on reuse (and spawn's memset stays short): when the wait
     * began (weft__ticks(), wait.c), and for a parked select how many cases
     * have a channel and the second one (wait_obj holds the first). In the
     * padding before wstate and one word: the block grew by 16 bytes.
     * Relaxed: a snapshot. */
    atomic_uint wait_nchans;
    _Atomic uint64_t wstate; /* gen << 8, cancellable bit, reason (wait.c) */
    _Atomic uint64_t wait_since;
    _Atomic(const void *) wait_chan2;

    /* Switched-out state; owned by whoever holds the task (see states). */
    weft__ctx ctx;
    weft__stack *stack;     /* NULL: unstarted */
    weft__task *stack_host; /* inline child: the task that runs it (task.c) */
    char *stk_lo;           /* the stack this task runs on (own or host's) */
    size_t stk_size;
    void *asan_fake; /* ASan fake-stack handle across a switch */
    void *tsan_fiber;
    weft__eh_state eh; /* C++ exception state while switched out */

    weft_fn fn;
    void *arg;
    /* Immutable after spawn, so a closer may read them while a worker
     * starts the task: the requested stack size (0: default) and the
     * worker a pinned spawn belongs to. */
    size_t stack_req;
    weft__worker *pin_home;
    int result;
    /* What the task waits on, for weft_dump: set by the waiting code, read
     * by a dumping thread (atomics: a racy but well-defined snapshot). */
    _Atomic(const char *) wait_what;
    _Atomic(const void *) wait_obj;
    int64_t wait_deadline;      /* the wait's own deadline */
    weft__scope *wait_dl_scope; /* scope whose deadline armed the timer */

    /* Timer (timer.c): valid while armed, protected by the heap's lock. */
    struct {
        int64_t deadline;
        uint64_t token;
        int index;                     /* position in the heap, -1 when not queued */
        _Atomic(weft__worker *) owner; /* whose heap holds it; set by the task */
    } timer;

    /* Scheduling */
    /* Links for the intrusive entry lists (inject queue, pinned FIFO), one
     * per kind of entry (weft__entry_link). A task holds one entry at a
     * time now (a spawn entry until it starts, then resume entries); the
     * two links date from when a closer's inline run left its spawn entry
     * queued beside a resume entry. */
    uintptr_t qnext;         /* link of the resume entry */
    uintptr_t snext;         /* link of the spawn entry */
    weft__task *next;        /* inbox and misc lists */
    weft__worker *worker;    /* the worker it last ran on */
    weft__worker *pinned_to; /* non-NULL while pinned */
    int pin_count;
    int locks_held;  /* weft_mutex locks owned (misuse check at exit) */
    uint32_t budget; /* cooperative checkpoint budget */
    uint64_t id;

    /* Cancellation state (scope.c): the scope chain and its cached verdict. */
    weft__scope *scope_top;  /* innermost scope; children start at nursery's */
    weft__scope *scope_base; /* first scope not owned by this task */
    uint64_t cgen;           /* rt->cancel_gen the cache was computed at */
    bool c_cancelled;        /* cached: cancelled by a flag */
    int64_t c_deadline;      /* cached: earliest deadline up to the shield */
    weft__scope *c_dl_scope; /* which scope that deadline belongs to */
    weft__spin lock;         /* guards scope push/pop against cancel walks */
    uint32_t cs_nurseries;   /* nurseries in caller storage it has open */
    /* The scopes this task entered, innermost last (structured/scope.c):
     * kept apart from the chain so that misuse recovery never has to read
     * a scope that lived in a frame that has returned. */
    weft__scope *own_inline[8];
    weft__scope **own; /* NULL: own_inline */
    uint32_t own_n, own_cap;
    const char *entry_frame; /* frame that called fn: below it, frames returned */

    /* Structure (nursery.c) */
    weft__nursery *nursery;              /* the nursery this task belongs to */
    weft__task *sib_prev, *sib_next;     /* in its nursery's running list */
    weft__task *start_prev, *start_next; /* in its starter's starting list */
    weft__task *starter;                 /* weft_nursery_start caller waiting on us */
    uint64_t starter_token;
    int start_result;
    bool started_called;
    weft__task *starting_head; /* tasks this task is starting (under its lock) */
    void *arg_start_rec;       /* the starter's record while being started */
    const char *spawn_file;
    int spawn_line;

    /* Task locals */
    void *keys_inline[WEFT__INLINE_KEYS];
    void **keys_ext;
    uint32_t keys_ext_n;

    char name[WEFT__NAME_MAX];
};
/* A parked task costs its stack page plus this block (issue 6's budget:
 * 640 bytes, so 1M parked tasks stay within 4.75 KiB each). */
_Static_assert(sizeof(weft__task) <= 640, "the task control block outgrew its 640-byte budget");

/* Panics, naming the task, if its saved stack pointer sp lies below the
 * stack's limit. Called on the scheduler path at each switch-out. Compares
 * addresses only, never reads the stack (see stack.c). */
static inline void weft__stack_check(weft__task *t, const void *sp)
{
    const char *lo = t->stk_lo;
    if (WEFT__UNLIKELY(lo && (const char *)sp < lo + 64))
        weft__stack_overflow(t);
}

/* ---- the runtime and workers ------------------------------------------- */

#define WEFT__RUNQ_SIZE 256u /* power of two */

typedef struct {
    /* head: consumers CAS it (owner and thieves); tail: only the owner
     * writes it. Entries are tagged pointers: bit 0 = spawn entry. */
    _Alignas(WEFT__CACHELINE) atomic_uint head;
    _Alignas(WEFT__CACHELINE) atomic_uint tail;
    _Atomic(uintptr_t) buf[WEFT__RUNQ_SIZE];
} weft__runq;

#define WEFT__DEQUE_SIZE 1024u /* power of two */

typedef struct {
    /* Chase-Lev: the owner pushes and takes at the bottom, thieves steal at
     * the top (deque.c). Entries are tagged pointers (spawn entries). */
    _Alignas(WEFT__CACHELINE) _Atomic int64_t top;
    _Alignas(WEFT__CACHELINE) _Atomic int64_t bottom;
    _Atomic(uintptr_t) buf[WEFT__DEQUE_SIZE];
} weft__deque;

typedef struct {
    /* Producers push onto a Treiber stack; the single consumer (the owning
     * worker) takes the whole stack at once and reverses it (inbox.c). */
    _Alignas(WEFT__CACHELINE) _Atomic(weft__task *) top;
} weft__inbox;

typedef struct {
    uint64_t tasks_spawned, tasks_done, context_switches, steals, steal_attempts, worker_parks,
        worker_wakes, timers_fired, failures_dropped, stacks_returned, tasks_stuck,
        mon_timers_fired, mon_wakes;
    /* Waits for the runtime's internal locks (spin locks: util.c; the stack
     * pool's lock: stack.c): acquisitions that found the lock held, and the
     * time waited (ticks in a worker's block, ns once summed: rt.c); and how
     * often a worker took the stack pool's lock to refill its stack cache
     * or hand its surplus back. */
    uint64_t lock_contended, lock_wait, stack_pool_locks;
} weft__counters;

/* What belongs to an OS thread that drives a worker, not to the worker: a
 * worker's queues can move to another thread (blocking.c's hand-off), and
 * the thread it left must still find its own scheduler context. */
typedef struct {
    weft__ctx sched_ctx;
    void *sched_stack_lo; /* the thread stack, for ASan fiber switches */
    size_t sched_stack_size;
    void *sched_tsan_fiber;
    void *sched_asan_fake;
    weft__eh_state sched_eh; /* the thread's own C++ exception state */
    /* A task whose weft_blocking call outlived its worker's hand-off: it
     * switched to this thread's scheduler context, which requeues it. */
    weft__task *handed_task;
    /* worker.c's thread_prepare: done once per thread, not per worker it drives
     * (a hand-off moves workers between threads, up to thousands of times
     * a second under a blocking-heavy load). A fork child inherits all of
     * it with the forking thread: the mapping, the signal stack setting
     * and the slack alike. */
    bool prepared;
    int old_slack;  /* the thread's timer slack before, restored at release */
    void *altstack; /* the fault handler's signal stack */
} weft__thr;
extern WEFT__HIDDEN WEFT__TLS weft__thr weft__tls_thr;

/* weft__worker.bcall: an inline weft_blocking call in progress. The low two
 * bits are the state, the rest a sequence number bumped per call, so the
 * monitor can tell one long call from two short ones. */
enum { WEFT__BC_IDLE = 0, WEFT__BC_IN_CALL = 1, WEFT__BC_HANDED = 2 };

struct weft__worker {
    /* Owner-private (only the thread driving this worker touches these). */
    _Alignas(WEFT__CACHELINE) int id;
    weft__rt *rt;
    weft__task *current;
    weft__task *prev; /* the task that just switched out */
    int prev_action;  /* what to do with it after the switch */
    uint32_t tick;
    uint32_t fair_countdown;   /* pick_local's fairness turns (worker.c) */
    int64_t spawn_top_seen;    /* the spawn deque's top at the last look (-1: none) */
    int64_t spawn_bottom_seen; /* ... and its bottom */
    uint32_t spawn_top_since;  /* w->tick when the two were first seen so */
    uint32_t runnext_streak;
    uint64_t rng;
    uintptr_t pinned_head, pinned_tail; /* owner FIFO of tagged entries: pinned tasks */
    weft__stack *stack_cache;
    unsigned stack_cache_n;
    weft__task *tcb_cache;
    unsigned tcb_cache_n;
    uint64_t id_next, id_end; /* this worker's block of task ids (task.c) */
    pthread_t thread;
    void *trace; /* this worker's trace events (trace.c), NULL when not tracing */

    /* Counters: written by the owner with relaxed atomics, read by anyone. */
    _Alignas(WEFT__CACHELINE) struct {
        _Atomic uint64_t v[sizeof(weft__counters) / sizeof(uint64_t)];
    } ctr;

    /* Shared with other workers. */
    _Alignas(WEFT__CACHELINE) _Atomic(weft__task *) runnext;
    weft__runq runq;
    weft__deque spawnq;
    weft__inbox inbox;
    _Alignas(WEFT__CACHELINE) weft__spin timer_lock;
    weft__task **heap;
    int heap_n, heap_cap;
    _Atomic int64_t timer_next;                      /* earliest deadline, INT64_MAX if none */
    _Alignas(WEFT__CACHELINE) atomic_uint park_word; /* idle futex */
    /* Idle state (worker.c): IDLE_NONE while awake; the worker sets
     * IDLE_PARKED before it sleeps; a waker claims it with one CAS to
     * IDLE_WOKEN_SPIN (wake_idle: wake up as the spinner it sponsored) or
     * IDLE_WOKEN_PLAIN (an inbox hand-off), so the worker learns which wake
     * it got from the same word that told the waker it was parked. */
    atomic_uint idle;
    /* Steering (idle.c): the OS thread driving this worker, when it last
     * parked, and whether a waker narrowed its affinity. */
    atomic_int tid;
    _Atomic int64_t park_since;
    atomic_bool steered;
    atomic_bool running_task;  /* a task is on this worker now */
    _Atomic uint64_t bcall;    /* WEFT__BC_* | seq << 2 (blocking.c) */
    _Atomic uint64_t bcall_t0; /* weft__ticks() when the call began (the monitor's age check) */
    atomic_uint npinned;       /* tasks pinned here: no hand-off while > 0 */
    /* The task on this worker now, for the monitor's stuck-task report
     * (stuck.c): stored at every switch-in with release (a plain store on
     * x86), paired with the monitor's acquire; the monitor trusts it only
     * while the switch count stays unchanged around its reads. */
    _Atomic(weft__task *) running;
    /* io/: the worker's backend state (NULL: no I/O layer, the futex idle
     * park), and how many SQEs are queued or in flight on its ring
     * (written by whoever submits or reaps, read by the owner every tick). */
    void *io;
    atomic_uint io_active;
};

#define WEFT__CTR_INDEX(field) (offsetof(weft__counters, field) / sizeof(uint64_t))
#define WEFT__COUNT(w, field, n)                                                                   \
    atomic_store_explicit(&(w)->ctr.v[WEFT__CTR_INDEX(field)],                                     \
                          atomic_load_explicit(&(w)->ctr.v[WEFT__CTR_INDEX(field)],                \
                                               memory_order_relaxed) +                             \
                              (n),                                                                 \
                          memory_order_relaxed)

/* A run of inject-queue entries pushed together (inject.c). */
typedef struct {
    uintptr_t *arr;        /* an array segment: arr[off .. off + n) */
    uintptr_t first, last; /* a list segment (arr NULL) */
    unsigned n, off;
} weft__inject_seg;

struct weft__rt {
    unsigned nworkers;
    /* The CPUs the process may use when the runtime started; steer_on if
     * more than one (idle.c: a woken worker kept off its waker's CPU). */
    cpu_set_t cpus;
    bool steer_on;
    size_t stack_size;
    unsigned blocking_cap;
    bool no_signals;
    bool seeded; /* WEFT_SEED given: randomize scheduling choices */
    uint64_t seed;
    weft__worker *workers;

    /* Global inject queue: tasks woken from outside workers and overflow
     * (inject.c): a FIFO ring of segments, arrays or linked lists. */
    _Alignas(WEFT__CACHELINE) weft__spin inject_lock;
    unsigned inject_seg_head, inject_seg_len, inject_seg_cap;
    atomic_uint inject_n;
    weft__inject_seg *inject_seg; /* grows; inject_seg0 first (NULL until the first push) */
    weft__inject_seg inject_seg0[4];

    /* Idle workers: at most one spins; a push wakes one parked worker only
     * when none spins. */
    _Alignas(WEFT__CACHELINE) atomic_uint nspinning;
    atomic_uint nparked;
    atomic_bool shutdown;

    /* Bumped (seq_cst) on every cancel, deadline move or shield change;
     * tasks cache their cancel verdict against it (scope.c). */
    _Alignas(WEFT__CACHELINE) _Atomic uint64_t cancel_gen;

    _Atomic uint64_t next_task_id;
    atomic_int root_result;
    atomic_int nursery_result; /* first failure of a nursery closed for main */
    atomic_bool sig_cancelled;
    atomic_bool deadlocked;
    weft__task *root;
    weft__nursery *root_nursery;
    atomic_uint live_tasks;

    /* Stacks and task blocks shared pools (stack.c, task.c). */
    pthread_mutex_t pool_lock;
    weft__stack *stack_global; /* warm: pages still committed, newest first */
    unsigned stack_global_n;
    weft__stack *stack_cold; /* pages given back to the OS (weft__stack_trim) */
    unsigned stack_cold_n;
    _Atomic uint64_t stacks_returned;
    /* Kernel features for stacks, probed at start (stack.c). */
    int self_pidfd; /* for process_madvise on ourselves; -1 if unused */
    bool stk_guard_install, stk_pm_guard, stk_pm_populate, stk_pm_dontneed;
    weft__task *tcb_global;
    void **slabs;
    size_t nslabs, slabs_cap;
    void **chunks;
    size_t nchunks, chunks_cap;
    atomic_long guard_budget;

    /* Blocking pool (blocking.c). */
    void *blocking;

    /* Stuck tasks (stuck.c): the threshold (0: off), the monitor's
     * per-worker state, and what the monitor did for stuck workers. */
    int64_t stuck_ns;
    void *stuck;
    bool ignore_foreign; /* weft_config.ignore_foreign_threads (deadlock.c) */
    _Atomic uint64_t tasks_stuck, mon_timers_fired, mon_wakes;

    /* weft__ticks() and weft__now() when the runtime started: the tick
     * rate for weft__ticks_to_ns. */
    uint64_t ticks0;
    int64_t ns0;
};

extern WEFT__HIDDEN _Atomic(weft__rt *) weft__g_rt;
extern WEFT__HIDDEN WEFT__TLS weft__worker *weft__tls_worker;

static inline weft__worker *weft__self(void) { return weft__tls_worker; }
/* The same, after a call that may have parked (so resumed the caller on
 * another thread). A compiler may keep the thread pointer, and so a TLS
 * address from before the call, in a register across it (clang did: trap
 * 2). On x86-64 the slot is read by a volatile asm (the initial-exec
 * sequence weft__tls_worker's model gives: GOT offset, then %fs-relative
 * load), which the compiler can neither move nor merge with an earlier
 * read; elsewhere by a call it cannot see into. */
WEFT__HIDDEN weft__worker *weft__self_fresh_call(void);
static inline weft__worker *weft__self_fresh(void)
{
#if defined(__x86_64__)
    weft__worker *w;
    __asm__ volatile("movq weft__tls_worker@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0"
                     : "=r"(w)
                     :
                     : "memory");
    return w;
#else
    return weft__self_fresh_call();
#endif
}

WEFT__HIDDEN bool weft__task_cancelled_slow(weft__task *t);
/* The cancellation rule itself, for a chain starting at `top`: walk outward,
 * stop after the first shielded scope; true if a scope on the way was
 * cancelled by a call. *deadline gets the earliest deadline on the way (and
 * *which, if not NULL, its scope). Reads only atomics and links that cannot
 * change while the caller holds the chain's tasks (running one of them, or
 * holding its lock while it is parked). */
WEFT__HIDDEN bool weft__chain_eval(weft__scope *top, int64_t *deadline, weft__scope **which);
/* The whole verdict for such a chain now: a cancel, or a deadline passed. */
WEFT__HIDDEN bool weft__chain_cancelled(weft__scope *top, int64_t *deadline);

static inline bool weft__task_cancelled(weft__task *t)
{
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_relaxed);
    /* seq_cst: a cancellation point's half of the Dekker pair with
     * cancellers (wait.c). */
    if (WEFT__LIKELY(t->cgen == atomic_load_explicit(&rt->cancel_gen, memory_order_seq_cst) &&
                     !t->c_cancelled && t->c_deadline == WEFT_FOREVER))
        return false;
    return weft__task_cancelled_slow(t);
}
static inline weft__task *weft__current(void)
{
    weft__worker *w = weft__tls_worker;
    return w ? w->current : NULL;
}

/* A stack of `size` bytes: the worker's cache first (warm pages, LIFO). */
static inline weft__stack *weft__stack_get(weft__worker *w, size_t size)
{
    weft__stack *s = w->stack_cache;
    if (WEFT__LIKELY(s != NULL && size == w->rt->stack_size)) {
        w->stack_cache = s->next;
        w->stack_cache_n--;
    } else {
        s = weft__stack_get_slow(w, size);
    }
    /* A user's TSan sees each task as a fiber of its own: the stack's
     * previous task is done with its memory (paired with the release its
     * fiber made as it finished: weft__task_entry, task.c's inline_entry). */
    if (s)
        weft__hb_acquire(s);
    return s;
}
/* Back to the worker's cache (the slow half: surplus, other sizes). */
static inline void weft__stack_put(weft__worker *w, weft__stack *s)
{
    if (WEFT__LIKELY(s->chunked && w->stack_cache_n < WEFT__STACK_CACHE_MAX)) {
        s->next = w->stack_cache;
        w->stack_cache = s;
        w->stack_cache_n++;
        return;
    }
    weft__stack_put_slow(w, s);
}

/* Sanitizer and C++ runtime hooks present in this process (fiber.c, set
 * once at start): the inline-child path tests these instead of calling
 * through weak references. */
extern WEFT__HIDDEN bool weft__asan_fibers, weft__cxx_eh;

/* ---- task.c ------------------------------------------------------------- */

/* The cooperative budget (Tokio's coop). Every operation that could have
 * parked spends one unit on entry (a lock, a send or receive, a wait, an
 * I/O call); when the budget runs out the operation first yields, if
 * anything else could run here, so a loop over always-ready operations
 * cannot starve the tasks queued behind it on its worker. A park refills
 * the budget (the task gave way anyway), as do weft_yield and the coop
 * yield itself. Not spent by try_* calls (they never move a task), unlock,
 * set or release. WEFT_COOP_BUDGET (read at start) sets the refill; 0 turns
 * the budget off (a refill of 2^32 - 1). The check is a decrement and a
 * predicted branch on the task's own counter. */
extern WEFT__HIDDEN uint32_t weft__coop_refill;
WEFT__HIDDEN void weft__coop_yield(weft__task *t);
static inline void weft__coop_spend(weft__task *t)
{
    if (WEFT__UNLIKELY(--t->budget == 0))
        weft__coop_yield(t);
}

WEFT__HIDDEN weft__task *weft__task_alloc(weft__worker *w);
WEFT__HIDDEN void weft__task_release(weft__task *t);
WEFT__HIDDEN void weft__task_free_all(weft__rt *rt);
/* Runs an unstarted, claimed task to completion as part of the calling task
 * (no queue trip, no context switch), on a stack of its own of the size it
 * was promised, from the worker's warm cache. The child may park and
 * migrate meanwhile; the caller continues when it is done. */
WEFT__HIDDEN void weft__task_run_inline(weft__task *child);
/* The end of a task: results to its nursery, keys' destructors, release. */
WEFT__HIDDEN void weft__task_finish(weft__task *t, int result);
/* Remaining bytes of the current stack below the caller's frame. */
WEFT__HIDDEN size_t weft__stack_remaining(weft__task *t);

/* ---- worker.c ----------------------------------------------------------- */

enum { PREV_NONE = 0, PREV_YIELD, PREV_PARK, PREV_DONE };
enum { IDLE_NONE = 0, IDLE_PARKED, IDLE_WOKEN_SPIN, IDLE_WOKEN_PLAIN };

/* Switch the current task out: reason PREV_*. Returns when it runs again. */
WEFT__HIDDEN void weft__switch_out(weft__task *t, int reason);
/* Makes a switched-out (or unstarted) task runnable from the current thread:
 * runnext of the current worker, its pinned worker's inbox, or the inject
 * queue from a plain thread. */
WEFT__HIDDEN void weft__ready(weft__task *t, bool spawn_entry, bool lifo);
WEFT__HIDDEN void weft__wake_idle(weft__rt *rt);
WEFT__HIDDEN int weft__workers_start(weft__rt *rt);
/* Every thread weft creates blocks SIGPIPE (weft's own I/O must not kill
 * the process; the process-wide disposition stays as it is). */
WEFT__HIDDEN void weft__thread_block_sigpipe(void);
/* Drives w until the run ends (false) or until w was handed to another
 * thread while this one was inside a weft_blocking call (true). */
WEFT__HIDDEN bool weft__worker_loop(weft__worker *w);
/* weft_blocking's end when its worker was handed off meanwhile: the task
 * leaves this thread (requeued from its scheduler context) and returns
 * once some worker runs it again. */
WEFT__HIDDEN void weft__switch_out_handed(weft__task *t);
WEFT__HIDDEN void weft__workers_stop(weft__rt *rt);
WEFT__HIDDEN uint64_t weft__rand(weft__worker *w);
/* The monitor's look at the workers (every few ms while any is busy): a
 * worker stuck in one task with work queued behind it gets an idle worker
 * woken to steal that work, and a worker held by a long weft_blocking call
 * with work waiting is handed to another thread. last[] holds each
 * worker's switch count, then its call word, from the previous look.
 * Returns whether any worker is busy; *in_call: a call holds up work on
 * some worker (look again soon: the second look at the same call hands
 * its worker off). */
WEFT__HIDDEN bool weft__sysmon(weft__rt *rt, uint64_t *last, bool *in_call);
/* The monitor's stuck-task look (stuck.c): a task that has run longer than
 * rt->stuck_ns without switching out is reported on stderr once, and again
 * each time it has stayed stuck ten times longer. */
WEFT__HIDDEN void weft__stuck_check(weft__rt *rt, int64_t now);
WEFT__HIDDEN void weft__stuck_fini(weft__rt *rt);
/* Copies a task's name (WEFT__NAME_MAX bytes, NUL-terminated), id and spawn
 * site without its lock; the block may be reused meanwhile (type-stable),
 * so the copy is only good for printing, and only if the caller then sees
 * that the task still runs (stuck.c). */
WEFT__HIDDEN void weft__task_snapshot(weft__task *t, char *name, uint64_t *id, const char **file,
                                      int *line);

/* ---- runq.c / inject / inbox ------------------------------------------- */

WEFT__HIDDEN void weft__runq_init(weft__runq *q);
/* The hot operations are inline (a yield makes one push and one pop); the
 * proof of the queue is in runq.c. */
/* Owner only. Returns false when full (caller overflows). */
static inline bool weft__runq_push(weft__runq *q, uintptr_t e)
{
    /* acquire: pairs with consumers' release CAS on head (runq.c, point 4). */
    unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
    unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - h >= WEFT__RUNQ_SIZE)
        return false;
    atomic_store_explicit(&q->buf[t & (WEFT__RUNQ_SIZE - 1u)], e, memory_order_relaxed);
    /* release: publishes the slot to consumers (point 2). */
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return true;
}
/* Owner only, q full: moves half of q plus e to the inject queue. */
WEFT__HIDDEN void weft__runq_overflow(weft__rt *rt, weft__runq *q, uintptr_t e);
/* Owner only: pushes e, or overflows half of q plus e when q is full. */
static inline void weft__runq_push_or_overflow(weft__rt *rt, weft__runq *q, uintptr_t e)
{
    if (WEFT__UNLIKELY(!weft__runq_push(q, e)))
        weft__runq_overflow(rt, q, e);
}
/* Owner or thief: takes the entry at the head; 0 if empty. */
static inline uintptr_t weft__runq_pop(weft__runq *q)
{
    for (;;) {
        unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
        unsigned t = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (t == h)
            return 0;
        uintptr_t e = atomic_load_explicit(&q->buf[h & (WEFT__RUNQ_SIZE - 1u)],
                                           memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return e;
    }
}
/* Thief: moves up to half of victim's entries into dst (empty, owned by the
 * caller); returns one of them to run, 0 if none. */
WEFT__HIDDEN uintptr_t weft__runq_steal(weft__runq *victim, weft__runq *dst);
static inline unsigned weft__runq_len(const weft__runq *q)
{
    unsigned h = atomic_load_explicit(&((weft__runq *)q)->head, memory_order_acquire);
    unsigned t = atomic_load_explicit(&((weft__runq *)q)->tail, memory_order_acquire);
    return t - h;
}

WEFT__HIDDEN void weft__deque_init(weft__deque *d);
/* Owner only; false when full. */
WEFT__HIDDEN bool weft__deque_push(weft__deque *d, uintptr_t e);
/* Owner only: the newest entry, 0 if none. */
WEFT__HIDDEN uintptr_t weft__deque_take(weft__deque *d);
/* Anyone: the oldest entry, 0 if none. */
WEFT__HIDDEN uintptr_t weft__deque_steal(weft__deque *d);
/* Entries in the deque now (racy: a snapshot; inline, since the owner
 * checks it on every yield before trying a steal). */
static inline unsigned weft__deque_len(weft__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    return b > t ? (unsigned)(b - t) : 0;
}
/* Spawn: publish a new child on the current worker (spawn deque, or the
 * run queue when the deque is full), waking an idle worker if none spins. */
WEFT__HIDDEN void weft__ready_spawn(weft__task *t);
/* In close: takes back the newest spawn of this worker if it is an
 * unstarted child of n, claimed for the caller; NULL otherwise. */
WEFT__HIDDEN weft__task *weft__spawn_take_back(weft__nursery *n);

WEFT__HIDDEN void weft__inject_push(weft__rt *rt, uintptr_t first, uintptr_t last, unsigned n);
/* Pushes n entries from an array (an overflow: copied, not linked). */
WEFT__HIDDEN void weft__inject_push_batch(weft__rt *rt, const uintptr_t *batch, unsigned n);
WEFT__HIDDEN uintptr_t weft__inject_pop(weft__rt *rt, weft__runq *refill);
/* Frees the inject queue's segment ring (the entries are not touched). */
WEFT__HIDDEN void weft__inject_fini(weft__rt *rt);

WEFT__HIDDEN void weft__inbox_init(weft__inbox *q);
WEFT__HIDDEN void weft__inbox_push(weft__inbox *q, weft__task *t);
/* Consumer only: takes everything queued, oldest first, linked by ->next. */
WEFT__HIDDEN weft__task *weft__inbox_take_all(weft__inbox *q);
static inline bool weft__inbox_empty(weft__inbox *q)
{
    return atomic_load_explicit(&q->top, memory_order_relaxed) == NULL;
}

/* tagged queue entries */
static inline uintptr_t weft__entry(weft__task *t, bool spawn)
{
    return (uintptr_t)t | (spawn ? 1u : 0u);
}
static inline weft__task *weft__entry_task(uintptr_t e)
{
    return (weft__task *)(e & ~(uintptr_t)1);
}
static inline bool weft__entry_is_spawn(uintptr_t e) { return (e & 1u) != 0; }
/* Links a tagged entry in the inject list through the task's next field. */
static inline uintptr_t *weft__entry_link(uintptr_t e)
{
    weft__task *t = weft__entry_task(e);
    return weft__entry_is_spawn(e) ? &t->snext : &t->qnext;
}
static inline uintptr_t weft__entry_next(uintptr_t e) { return *weft__entry_link(e); }

/* ---- idle.c: the idle-park interface (io/ re-implements it on its ring) - */

WEFT__HIDDEN bool weft__idle_park(weft__worker *w, int64_t deadline);
WEFT__HIDDEN void weft__idle_unpark(weft__worker *w);
/* Steering, around the park and the claim of a parked worker (idle.c). */
WEFT__HIDDEN void weft__steer_init(weft__rt *rt);
WEFT__HIDDEN void weft__steer_note_park(weft__worker *w);
WEFT__HIDDEN void weft__steer_away(weft__rt *rt, weft__worker *v);
WEFT__HIDDEN void weft__steer_restore_slow(weft__worker *w);
static inline void weft__steer_restore(weft__worker *w)
{
    if (WEFT__UNLIKELY(atomic_load_explicit(&w->steered, memory_order_relaxed)))
        weft__steer_restore_slow(w);
}

/* ---- io/ hooks (implemented in io/io.c) --------------------------------
 * The only calls sched/ makes into the I/O layer; each costs a load and a
 * predicted branch while no I/O is in flight. */

/* Starts the backend (WEFT_IO_* value; AUTO: WEFT_IO, else io_uring, else
 * epoll) before the workers run; stops it after they stopped. */
WEFT__HIDDEN int weft__io_start(weft__rt *rt, int backend);
WEFT__HIDDEN void weft__io_stop(weft__rt *rt);
/* Every scheduling tick: submits queued SQEs now and then, reaps CQEs. */
WEFT__HIDDEN void weft__io_tick_slow(weft__worker *w);
static inline void weft__io_tick(weft__worker *w)
{
    if (WEFT__UNLIKELY(atomic_load_explicit(&w->io_active, memory_order_relaxed) != 0))
        weft__io_tick_slow(w);
}
/* Out of local work: submits everything queued and reaps what completed;
 * true if that made a task runnable here. */
WEFT__HIDDEN bool weft__io_flush(weft__worker *w);
/* The idle park on the worker's ring or epoll set (idle.c calls these when
 * w->io is set). */
WEFT__HIDDEN bool weft__io_idle_park(weft__worker *w, int64_t deadline);
WEFT__HIDDEN void weft__io_idle_unpark(weft__worker *w);
/* The monitor, each look: stuck is a worker stuck in one task (its ring is
 * served from the monitor thread), or NULL for the look itself. */
WEFT__HIDDEN void weft__io_sysmon(weft__rt *rt, weft__worker *stuck);
/* Any task parked in I/O (not a deadlock: input may arrive). */
WEFT__HIDDEN bool weft__io_busy(weft__rt *rt);
/* weft_stats_get: fills the io_* fields of out. */
WEFT__HIDDEN void weft__io_stats_fill(weft_stats *out);
/* weft_dump: what is a weft_* I/O call's wait name (its wait object is
 * then the fd, as an intptr_t). */
WEFT__HIDDEN bool weft__io_is_fd_wait(const char *what);

/* ---- wait.c: park/wake and per-task cancel state ------------------------ */

extern WEFT__HIDDEN WEFT__TLS bool weft__tls_never_wakes;
extern WEFT__HIDDEN WEFT__TLS const char *weft__tls_thread_wait_what;
extern WEFT__HIDDEN WEFT__TLS const void *weft__tls_thread_wait_obj;
WEFT__HIDDEN uint64_t weft__wait_begin(weft__task *t, unsigned flags);
/* Notes what the current task is about to wait on (shown by weft_dump). */
static inline void weft__wait_note(const char *what, const void *obj)
{
    weft__worker *w = weft__tls_worker;
    weft__task *t = w ? w->current : NULL;
    if (t) {
        atomic_store_explicit(&t->wait_what, what, memory_order_relaxed);
        atomic_store_explicit(&t->wait_obj, obj, memory_order_relaxed);
    } else {
        weft__tls_thread_wait_what = what; /* a plain thread (deadlock report) */
        weft__tls_thread_wait_obj = obj;
    }
}
/* Parks t (must be current) until a waker fires token, the deadline passes
 * (W_TIMER), or, with WAIT_CANCELLABLE, a cancel reaches it (W_CANCEL).
 * Returns the reason. */
WEFT__HIDDEN int weft__wait_park(weft__task *t, uint64_t token, int64_t deadline, unsigned flags);
/* The two halves of weft__wake, for wakers that must deliver data after
 * winning and before the task may run (channels): claim wins the wait (or
 * returns false), finish makes the task runnable. */
WEFT__HIDDEN bool weft__wake_claim(weft__task *t, uint64_t token, int reason);
WEFT__HIDDEN void weft__wake_finish(weft__task *t, int reason);
/* Fires token with a reason; true if this call won (and made t runnable). */
WEFT__HIDDEN bool weft__wake(weft__task *t, uint64_t token, int reason);
/* A canceller calls this with t->lock held: if t is parked in a
 * cancellable wait and now counts as cancelled, wakes it with W_CANCEL;
 * else re-aims its timer at the chain's current deadline. Returns true if
 * t has a finite deadline but no timer to carry it (the caller must watch
 * that deadline: structured/run.c). */
WEFT__HIDDEN bool weft__wait_poke(weft__task *t);
/* Evaluation of the cancellation rule for the current task (t must be
 * current). The common case is inline: the cached verdict is current (one
 * shared load), not cancelled, and no deadline. */
WEFT__HIDDEN bool weft__task_cancelled_slow(weft__task *t);
/* The same rule evaluated without touching t's cache: for other threads
 * (cancel walks, weft_blocking bodies) while t is parked. */
WEFT__HIDDEN bool weft__task_cancelled_fresh(weft__task *t, int64_t *deadline);
/* Invalidates the current task's cached verdict (its own scope stack
 * changed). */
static inline void weft__task_cancel_cache_reset(weft__task *t) { t->cgen = 0; }
/* The earliest deadline on the chain up to the shield (WEFT_FOREVER). */
WEFT__HIDDEN int64_t weft__task_deadline(weft__task *t, weft__scope **which);
WEFT__HIDDEN int weft__cancel_point(weft__task *t);

/* ---- timer.c ------------------------------------------------------------ */

WEFT__HIDDEN void weft__timer_arm(weft__worker *w, weft__task *t, int64_t deadline, uint64_t token);
/* Removes t's timer if armed. */
WEFT__HIDDEN void weft__timer_disarm(weft__task *t);
/* Moves t's armed timer for wait `token` to min(the wait's own deadline,
 * chain_deadline), either way. False if no timer is armed for that wait. */
WEFT__HIDDEN bool weft__timer_retarget(weft__task *t, uint64_t token, int64_t chain_deadline);
/* Fires every expired timer of w; returns how many it fired. */
WEFT__HIDDEN unsigned weft__timers_run(weft__worker *w, int64_t now);
WEFT__HIDDEN void weft__timers_fini(weft__worker *w);

/* ---- rt.c ---------------------------------------------------------------- */

WEFT__HIDDEN int weft__rt_create(weft__rt **out, unsigned nworkers, size_t stack_size,
                                 unsigned blocking_cap, uint64_t seed, bool seeded);
WEFT__HIDDEN void weft__rt_publish(weft__rt *rt);
WEFT__HIDDEN void weft__rt_destroy(weft__rt *rt);
/* Every task has finished: stop the workers. */
WEFT__HIDDEN void weft__rt_shutdown(weft__rt *rt);
WEFT__HIDDEN uint64_t weft__tasks_live(weft__rt *rt);

/* ---- time --------------------------------------------------------------- */

WEFT__HIDDEN int64_t weft__now(void);
/* For an idle park's timeout (the futex, epoll and io_uring ones): the time
 * left until deadline as seconds and nanoseconds; false once it passed. */
static inline bool weft__idle_time_left(int64_t deadline, int64_t *sec, int64_t *nsec)
{
    int64_t left = deadline - weft__now();
    if (left <= 0)
        return false;
    *sec = left / 1000000000;
    *nsec = left % 1000000000;
    return true;
}
static inline int64_t weft__deadline_add(int64_t now, int64_t ns)
{
    if (ns <= 0)
        return now;
    if (now > WEFT_FOREVER - ns)
        return WEFT_FOREVER;
    return now + ns;
}

/* A cheap monotonic tick count (the TSC, or the virtual counter on
 * aarch64) for stamps on the park path, where a clock read would cost more
 * than the rest of it. weft__ticks_to_ns converts a difference using the
 * rate measured since the runtime started (rt.c). */
static inline uint64_t weft__ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return (uint64_t)weft__now();
#endif
}
WEFT__HIDDEN int64_t weft__ticks_to_ns(weft__rt *rt, uint64_t dticks);

/* ---- blocking.c ---------------------------------------------------------- */

WEFT__HIDDEN int weft__blocking_init(weft__rt *rt);
WEFT__HIDDEN void weft__blocking_fini(weft__rt *rt);
/* Calls in progress (and how many threads weft started beyond the
 * workers, for the deadlock check's thread count). */
WEFT__HIDDEN bool weft__blocking_busy(weft__rt *rt, unsigned *threads);
/* The monitor: w has been inside one weft_blocking call since its last
 * look (seq as it saw it then) and has work waiting: give w's queues to
 * another thread. false if no thread could be had or the call ended. */
WEFT__HIDDEN bool weft__blocking_handoff(weft__rt *rt, weft__worker *w, uint64_t seen);
/* weft_blocking, for a call that begins with work waiting behind it while
 * the monitor naps (so at most once per nap): asks an idle spare to watch
 * the call (and to take the worker once it is HANDOFF_AFTER_NS old).
 * false: no spare is free to watch; the monitor's look covers it. */
WEFT__HIDDEN bool weft__blocking_watch(weft__rt *rt, weft__worker *w, uint64_t call);
/* worker.c: waits until the call `call` on w is HANDOFF_AFTER_NS old
 * (spinning) and takes w from it, as the monitor does (the same CAS on
 * w->bcall). true: the calling thread now drives w. false: the call ended,
 * the work went elsewhere, or someone else took w. */
WEFT__HIDDEN bool weft__handoff_take(weft__rt *rt, weft__worker *w, uint64_t call);
/* The one CAS that takes w from its call `call` (IN_CALL -> HANDED), for
 * the monitor's hand-off and a watching spare alike; it decides against the
 * caller's own CAS when fn returns. acq_rel: w's owner-private state,
 * written by its old thread before the call began (the release store of
 * IN_CALL), is the taker's. */
static inline bool weft__bcall_hand(weft__worker *w, uint64_t call)
{
    uint64_t handed = (call & ~(uint64_t)3) | WEFT__BC_HANDED;
    return atomic_compare_exchange_strong_explicit(&w->bcall, &call, handed, memory_order_acq_rel,
                                                   memory_order_relaxed);
}
/* A call that outlived its worker's hand-off has been requeued. */
WEFT__HIDDEN void weft__blocking_handed_done(weft__rt *rt);
/* A thread whose worker was handed off (a worker's own thread, or the one
 * that called weft_run): serve as a spare thread until the run ends. */
WEFT__HIDDEN void weft__spare_serve(weft__rt *rt);
/* The run is ending: spare threads leave; joins every thread weft started
 * for hand-offs. */
WEFT__HIDDEN void weft__spares_stop(weft__rt *rt);
WEFT__HIDDEN void weft__spares_join(weft__rt *rt);
/* The monitor sleeps long while the runtime is idle; a call that starts
 * then wakes it (structured/run.c). */
extern WEFT__HIDDEN atomic_bool weft__monitor_napping;
extern WEFT__HIDDEN void (*weft__monitor_poke)(void);
/* The monitor sleeps through its stuck-worker looks because no worker ran
 * anything since its last look (up to its 250 ms deadlock tick). The first
 * worker to come out of its park after that wakes it, so that a task that
 * then runs without parking is noticed within two looks (a few ms), as
 * while busy (sched/worker.c, find_runnable). */
extern WEFT__HIDDEN atomic_bool weft__monitor_idle;
/* Plain threads parked in a weft wait right now (sync/waitq.c). */
extern WEFT__HIDDEN atomic_int weft__threads_parked;
/* Foreign threads for the deadlock detector (structured/deadlock.c keeps
 * the table; sched and sync only note into it). A thread that called
 * weft_thread_never_wakes is not counted while parked in a weft wait
 * (it is already discounted). A plain thread parked in a weft wait notes
 * what it waits on, for the deadlock report. */
WEFT__HIDDEN void weft__thread_wait_note(bool parked);
/* Declared threads still alive (threads.c). */
WEFT__HIDDEN unsigned weft__threads_declared_alive(void);
/* The foreign threads weft knows of and what each waits on, for the
 * deadlock report. */
WEFT__HIDDEN void weft__threads_report(FILE *f, bool ignoring);
extern WEFT__HIDDEN WEFT__TLS weft__task *weft__tls_blocking_for;

/* ---- structured (called from sched) ------------------------------------ */

/* Implemented in structured/: the task-exit hook closes nurseries a task left
 * open and reports scopes left entered. sched calls it through this pointer
 * only, so sched does not depend on structured. */
extern WEFT__HIDDEN void (*weft__hook_task_exit)(weft__task *t);
/* Delivers a finished task's result to its nursery. */
extern WEFT__HIDDEN void (*weft__hook_task_done)(weft__task *t, int result);
/* A task starts (set up a task it is starting). */
extern WEFT__HIDDEN void (*weft__hook_task_started_running)(weft__task *t);
/* Lists the current task on its nursery's running list (structured). */
extern WEFT__HIDDEN void (*weft__hook_task_list)(weft__task *t);

/* A nursery lists a child only once the cancel walk (or weft_dump) may need
 * to find it: before its first wait (the walk pokes parked tasks), before
 * it opens a nursery (the walk reaches that nursery's children through it)
 * and before a weft_blocking call (for the dump). A task that only runs
 * and ends (most of a fork-join's) never takes its nursery's lock. Called
 * by the task itself; in a wait, before the wait's own cancel check, so a
 * cancel that walked the nursery before the listing is seen there. Callers may hold a sync or io
 * lock: n->lock comes after those (structured/internal.h). */
WEFT__HIDDEN void weft__task_list_slow(weft__task *t);
static inline bool weft__task_listed(weft__task *t)
{
    return (atomic_load_explicit(&t->wstate, memory_order_relaxed) & WEFT__WS_LISTED) != 0;
}
static inline void weft__task_list(weft__task *t)
{
    if (WEFT__UNLIKELY(!weft__task_listed(t)))
        weft__task_list_slow(t);
}
/* Marks the caller listed: only the task itself, while it is not waiting
 * (no waker writes wstate then; a stale one's CAS fails either way). */
static inline void weft__task_set_listed(weft__task *t)
{
    uint64_t ws = atomic_load_explicit(&t->wstate, memory_order_relaxed);
    atomic_store_explicit(&t->wstate, ws | WEFT__WS_LISTED, memory_order_relaxed);
}

/* ---- trace.c ------------------------------------------------------------ */

/* The scheduler trace (WEFT_TRACE). Off, each hook costs one relaxed load
 * and a predicted branch: callers test WEFT__TRACING() before calling. */
extern WEFT__HIDDEN atomic_bool weft__trace_on;
#define WEFT__TRACING() WEFT__UNLIKELY(atomic_load_explicit(&weft__trace_on, memory_order_relaxed))
/* Opens path and allocates the workers' event arrays (before any worker or
 * the monitor runs); path NULL or "": no trace. -errno on failure. */
WEFT__HIDDEN int weft__trace_start(weft__rt *rt, const char *path);
/* Writes the JSON and frees everything (after the workers and the monitor
 * stopped). */
WEFT__HIDDEN void weft__trace_finish(weft__rt *rt);
#define WEFT__STOP_INLINE 100 /* weft__trace_stop: the host runs a child inline */
WEFT__HIDDEN void weft__trace_run(weft__task *t);
WEFT__HIDDEN void weft__trace_stop(weft__task *t, int reason);
/* t stops (reason PREV_*), next (NULL: none) runs on the same worker. */
WEFT__HIDDEN void weft__trace_switch(weft__task *t, int reason, weft__task *next);
WEFT__HIDDEN void weft__trace_spawn(weft__task *parent, weft__task *child);
/* Before the woken task can run (its wake precedes its run in the trace). */
WEFT__HIDDEN void weft__trace_wake(weft__task *t, int reason);
WEFT__HIDDEN void weft__trace_steal(int victim, weft__task *t);
WEFT__HIDDEN void weft__trace_idle(bool begin);
/* Monitor actions for a stuck worker: kind 0 = timers fired (a = how
 * many), 1 = an idle worker woken to take its queue. Tests the flag itself. */
WEFT__HIDDEN void weft__trace_monitor(int kind, weft__worker *w, uint64_t a);
/* The monitor reported a stuck task (stuck.c). Tests the flag itself. */
WEFT__HIDDEN void weft__trace_stuck(weft__worker *w, uint64_t task_id, int64_t stuck_ns);

/* ---- fault.c ------------------------------------------------------------ */

WEFT__HIDDEN void weft__fault_install(void);
WEFT__HIDDEN void weft__fault_uninstall(void);
WEFT__HIDDEN void *weft__fault_thread_init(void);
/* The per-thread state of a thread that drives workers (worker.c): made on
 * its first weft__worker_loop, released by weft__thread_release when the
 * thread is done with the runtime (a worker or spare thread before it
 * exits; weft_run's caller before it returns). */
WEFT__HIDDEN void weft__thread_release(void);
WEFT__HIDDEN void weft__fault_thread_fini(void *mem);

/* ---- sanitizer / debugger hooks (fiber.c) ------------------------------ */

WEFT__HIDDEN void weft__fiber_before_slow(weft__worker *w, weft__task *from_task,
                                          weft__task *to_task, bool from_dying);
WEFT__HIDDEN void weft__fiber_after_slow(weft__worker *w, weft__task *now_task);
/* Any of the switch hooks present (ASan, TSan, the C++ runtime): set once
 * at start, so a plain C program's switch pays one predicted branch. */
extern WEFT__HIDDEN bool weft__fiber_hooks;
static inline void weft__fiber_before(weft__worker *w, weft__task *from_task, weft__task *to_task,
                                      bool from_dying)
{
    if (WEFT__UNLIKELY(weft__fiber_hooks))
        weft__fiber_before_slow(w, from_task, to_task, from_dying);
}
static inline void weft__fiber_after(weft__worker *w, weft__task *now_task)
{
    if (WEFT__UNLIKELY(weft__fiber_hooks))
        weft__fiber_after_slow(w, now_task);
}
/* An inline child starts with no C++ exception state of its own; the host
 * gets its own back when the child is done (maybe on another thread). */
WEFT__HIDDEN void weft__eh_inline_begin(weft__task *host);
WEFT__HIDDEN void weft__eh_inline_end(weft__task *host);
/* ASan's view of an inline child's stack: enter (on the host's stack,
 * before the call), entered (first thing on the child's stack), leave (last
 * thing there), left (back on the host's stack). */
WEFT__HIDDEN void weft__fiber_inline_enter(weft__task *host, weft__task *c);
WEFT__HIDDEN void weft__fiber_inline_entered(void);
/* weft_blocking's body on the thread's own stack (ASan's view: that stack
 * and its fake frames are the scheduler context's). */
WEFT__HIDDEN void weft__fiber_native_enter(weft__task *t);
WEFT__HIDDEN void weft__fiber_native_entered(void);
WEFT__HIDDEN void weft__fiber_native_leave(weft__task *t);
WEFT__HIDDEN void weft__fiber_native_left(weft__task *t);
WEFT__HIDDEN void weft__fiber_inline_leave(weft__task *host);
WEFT__HIDDEN void weft__fiber_inline_left(weft__task *host);
WEFT__HIDDEN void weft__fiber_system_init(void);
WEFT__HIDDEN void *weft__fiber_create(void);
WEFT__HIDDEN void weft__fiber_destroy(void *f);
WEFT__HIDDEN void weft__stack_register_debugger(weft__stack *s);
WEFT__HIDDEN void weft__stack_deregister_debugger(weft__stack *s);

#endif
