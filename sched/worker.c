/*
 * worker.c - the worker loop, task switching, readying and idle workers.
 *
 * A worker runs tasks from, in order: its runnext slot (a task it just woke:
 * message-passing pairs stay on one worker; a bound keeps a ping-ponging
 * pair from starving the rest), its pinned FIFO, its run queue (resumed
 * tasks), its spawn deque (new tasks, oldest first), and every 61st tick the
 * global inject queue first (fairness). Out of local work it fires expired
 * timers, takes from the inject queue, and - if no other worker is spinning -
 * becomes the one spinner and steals half of a random victim's run queue or
 * the oldest entry of its deque (and, after 3 us, its runnext). Still
 * nothing: it parks behind the idle interface.
 *
 * Switching. A task that yields, parks or finishes picks its successor from
 * the local sources itself and switches to it directly (one switch, not two);
 * only when there is none does it switch to the worker's scheduler context.
 * Whatever context runs next first calls after_switch(), which finishes the
 * hand-off of the task that just left (requeue it, commit its park, or free
 * its stack). That is the "after the switch, on the scheduler side" of the
 * park/wake protocol: the old stack is no longer in use when a waker may see
 * the task as switched out.
 *
 * Idle workers (no lost wakeup, at most one spinner):
 *   worker: parked = true; fence; recheck all queues; sleep.
 *   pusher: publish the task;  fence; if nobody spins and someone is parked,
 *           become the spinner's sponsor (nspinning 0 -> 1) and unpark one.
 * The two fences make it a Dekker pair: either the worker's recheck sees the
 * task or the pusher sees the parked flag. Wakes into runnext never unpark
 * anyone: the woken task runs on the waker's worker right after it.
 */
#include "internal.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

WEFT__TLS weft__worker *weft__tls_worker;
WEFT__TLS weft__thr weft__tls_thr;
_Atomic(weft__rt *) weft__g_rt;

#define RUNNEXT_STREAK_MAX 16
#define FAIR_EVERY 61         /* the inject queue's turn */
#define SPAWN_LOOK 64         /* ticks between looks at the unstarted spawns (power of two) */
#define SPAWN_WAIT_TICKS 256u /* ... and their turn once the deque stood still this long */
#define TIMER_EVERY 8
/* A weft_blocking call this old with work waiting behind it loses its
 * worker at the monitor's next look (Go's sysmon: 20 us at least). */
#define HANDOFF_AFTER_NS (20 * 1000)
#define SPIN_ROUNDS 64
#define RUNNEXT_STEAL_DELAY_NS 3000

extern void *weft__fiber_current(void);

/* A sequentially consistent fence. TSan does not model fences, so its build
 * uses an RMW on one shared word, which orders the same way. */
#ifdef WEFT__TSAN
static atomic_uint fence_word;
#endif
static inline void fence_sc(void)
{
#ifdef WEFT__TSAN
    atomic_fetch_add_explicit(&fence_word, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

uint64_t weft__rand(weft__worker *w)
{
    /* xorshift64*: seeded from WEFT_SEED and the worker id. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- making tasks runnable --------------------------------------------- */

static void pinned_push(weft__worker *w, uintptr_t e)
{
    *weft__entry_link(e) = 0;
    if (w->pinned_tail)
        *weft__entry_link(w->pinned_tail) = e;
    else
        w->pinned_head = e;
    w->pinned_tail = e;
}

static uintptr_t pinned_pop(weft__worker *w)
{
    uintptr_t e = w->pinned_head;
    if (!e)
        return 0;
    uintptr_t nx = weft__entry_next(e);
    w->pinned_head = nx;
    if (!nx)
        w->pinned_tail = 0;
    return e;
}

static void wake_idle_after_fence(weft__rt *rt);

void weft__wake_idle(weft__rt *rt)
{
    fence_sc(); /* pairs with the fence in park_worker (Dekker) */
    wake_idle_after_fence(rt);
}

static void wake_idle_after_fence(weft__rt *rt)
{
    if (atomic_load_explicit(&rt->nspinning, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->nparked, memory_order_relaxed) == 0)
        return;
    unsigned zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&rt->nspinning, &zero, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return; /* someone spins: it will find the work */
    weft__worker *self = weft__self();
    unsigned start = self ? (unsigned)weft__rand(self) : 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *v = &rt->workers[(start + i) % rt->nworkers];
        unsigned parked = IDLE_PARKED;
        /* The claim itself tells v it wakes up as the spinner we sponsored
         * above: nothing is stored after it that v could miss. */
        if (atomic_load_explicit(&v->idle, memory_order_relaxed) == IDLE_PARKED &&
            atomic_compare_exchange_strong_explicit(&v->idle, &parked, IDLE_WOKEN_SPIN,
                                                    memory_order_seq_cst, memory_order_relaxed)) {
            atomic_fetch_sub_explicit(&rt->nparked, 1, memory_order_relaxed);
            weft__test_delay(WEFT__DELAY_WAKE_IDLE);
            weft__steer_away(rt, v);
            weft__idle_unpark(v);
            return;
        }
    }
    atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
}

static void unpark_if_parked(weft__rt *rt, weft__worker *v)
{
    fence_sc();
    unsigned parked = IDLE_PARKED;
    if (atomic_load_explicit(&v->idle, memory_order_relaxed) == IDLE_PARKED &&
        atomic_compare_exchange_strong_explicit(&v->idle, &parked, IDLE_WOKEN_PLAIN,
                                                memory_order_seq_cst, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&rt->nparked, 1, memory_order_relaxed);
        /* It does not come up as a spinner: it has its own inbox to run. */
        weft__steer_away(rt, v);
        weft__idle_unpark(v);
    }
}

void weft__ready(weft__task *t, bool spawn_entry, bool lifo)
{
    weft__worker *w = weft__self();
    weft__rt *rt = w ? w->rt : atomic_load_explicit(&weft__g_rt, memory_order_acquire);
    uintptr_t e = weft__entry(t, spawn_entry);
    if (!spawn_entry)
        atomic_store_explicit(&t->state, T_READY, memory_order_relaxed);
    /* A spawn entry reads pin_home, fixed before the task was published:
     * by now the task may already be running (a thief took it, or its
     * closer took it back and runs it inline), and
     * pinned_to is its own to change. */
    weft__worker *pin = spawn_entry ? t->pin_home : t->pinned_to;
    if (pin) {
        if (pin == w && w->current != NULL) {
            pinned_push(w, e);
        } else {
            /* Only resumes cross workers this way; a pinned spawn is always
             * made by a task running on the pinned worker. */
            weft__inbox_push(&pin->inbox, t);
            unpark_if_parked(rt, pin);
        }
        return;
    }
    if (!w) {
        weft__inject_push(rt, e, e, 1);
        weft__wake_idle(rt);
        return;
    }
    if (lifo && !(rt->seeded && (weft__rand(w) & 1))) {
        /* Only this worker's thread puts a task in its runnext; thieves
         * only take one out (steal_runnext's CAS from non-NULL). So an
         * empty slot stays empty until we store: a plain release store
         * publishes t (the common case: a message-passing pair, whose
         * slot the last pick emptied), with no locked instruction. A full
         * one may be emptied by a thief meanwhile: exchange. */
        weft__task *old = atomic_load_explicit(&w->runnext, memory_order_relaxed);
        if (!old) {
            atomic_store_explicit(&w->runnext, t, memory_order_release);
            return;
        }
        old = atomic_exchange_explicit(&w->runnext, t, memory_order_acq_rel);
        if (!old)
            return;
        e = weft__entry(old, false);
    }
    weft__runq_push_or_overflow(rt, &w->runq, e);
    weft__wake_idle(rt);
}

void weft__ready_spawn(weft__task *t)
{
    weft__worker *w = weft__self();
    if (t->pin_home || !w) { /* pin_home: see weft__ready */
        weft__ready(t, true, false);
        return;
    }
    uintptr_t e = weft__entry(t, true);
    /* The fence of the Dekker pair with a parking worker (wake_idle) is
     * only needed for a spawn into an empty deque. A parking worker that
     * looks at a deque with older entries in it sees them and stays up; the
     * race the fence closes (our entry still in the store buffer while we
     * read nparked, the parker's look missing it) can then only miss this
     * entry when a thief emptied the deque meanwhile, and a missed wake
     * costs parallelism, never progress: the entry is in our own deque, so
     * this worker runs it (or the monitor, seeing work queued behind a busy
     * worker, wakes one). The fence drains the store buffer, which holds
     * the spawn's fresh control block: about 15-25 ns a spawn here, 10-15%
     * of a fine-grained fork-join's cost per task. */
    bool was_empty = weft__deque_len(&w->spawnq) == 0;
    if (!weft__deque_push(&w->spawnq, e))
        weft__runq_push_or_overflow(w->rt, &w->runq, e);
    if (was_empty)
        weft__wake_idle(w->rt);
    else
        wake_idle_after_fence(w->rt);
}

/* ---- picking the next task --------------------------------------------- */

static void drain_inbox(weft__worker *w)
{
    weft__task *t = weft__inbox_take_all(&w->inbox);
    while (t) {
        weft__task *nx = t->next;
        pinned_push(w, weft__entry(t, false));
        t = nx;
    }
}

/* The task of a queue entry, taken by the worker that consumed the entry.
 * A task has one spawn entry (weft__ready_spawn) and the queues hand each
 * entry out once (the deque's and run queue's CAS on their head), so the
 * consumer owns the task: no claim to win. Checked builds verify it. */
static inline weft__task *claim(uintptr_t e)
{
    weft__task *t = weft__entry_task(e);
#ifdef WEFT__CHECKED
    if (weft__entry_is_spawn(e) &&
        (atomic_fetch_or_explicit(&t->life, L_CLAIMED, memory_order_relaxed) & L_CLAIMED))
        weft__panic("task %llu \"%s\": its spawn entry was consumed twice",
                    (unsigned long long)t->id, t->name);
#endif
    return t;
}

static uintptr_t take_runnext(weft__worker *w)
{
    weft__task *t = atomic_load_explicit(&w->runnext, memory_order_relaxed);
    if (!t) {
        w->runnext_streak = 0;
        return 0;
    }
    bool rotate = ++w->runnext_streak > RUNNEXT_STREAK_MAX ||
                  (w->rt->seeded && (weft__rand(w) & 3) == 0);
    if (rotate && (weft__runq_len(&w->runq) > 0 || weft__deque_len(&w->spawnq) > 0)) {
        /* Fairness bound: a ping-ponging pair must not starve the queue,
         * nor unstarted spawns: with nothing else queued, the oldest spawn
         * goes first (the pair's task waits in the run queue). */
        w->runnext_streak = 0;
        t = atomic_exchange_explicit(&w->runnext, NULL, memory_order_acq_rel);
        if (t)
            weft__runq_push_or_overflow(w->rt, &w->runq, weft__entry(t, false));
        if (weft__runq_len(&w->runq) <= 1)
            return weft__deque_steal(&w->spawnq);
        return 0;
    }
    t = atomic_exchange_explicit(&w->runnext, NULL, memory_order_acq_rel);
    return t ? weft__entry(t, false) : 0;
}

/* Timers on every scheduling decision, as Go's schedule() does: a worker
 * that never runs out of local work (a ping-pong pair handing off through
 * runnext) must still fire its timers on time. Costs a load while no timer
 * is armed here; with one armed, a clock read every TIMER_EVERY ticks (a
 * tick is well under a microsecond of scheduling; the promise is 1 ms). */
static inline void timers_tick(weft__worker *w)
{
    if (WEFT__LIKELY(atomic_load_explicit(&w->timer_next, memory_order_relaxed) == WEFT_FOREVER) ||
        (w->tick & (TIMER_EVERY - 1)) != 0)
        return;
    int64_t now = weft__now();
    if (atomic_load_explicit(&w->timer_next, memory_order_relaxed) <= now)
        weft__timers_run(w, now);
}

/* A turn for unstarted spawns that nobody touches (pick_local): the
 * newest one, if the spawn deque has not changed at either end for
 * SPAWN_WAIT_TICKS ticks, else 0. Starved spawns are those nobody works
 * on while resumed tasks (a chatty pair, a stream of I/O completions) keep
 * the worker busy: 64 file readers' completions kept the run queue full,
 * and with a turn only every 4,096 ticks some readers had not started
 * after a second. Fork-join is left alone: its owner pushes and takes back
 * at the bottom all the time, and the turn starts the newest spawn, which
 * its parent's close would run next anyway; starting the oldest instead
 * (a subtree near the root) made skynet on 1 worker 2-5x slower, even
 * with this both-ends condition. */
static uintptr_t spawn_turn(weft__worker *w)
{
    int64_t top = atomic_load_explicit(&w->spawnq.top, memory_order_relaxed);
    int64_t bottom = atomic_load_explicit(&w->spawnq.bottom, memory_order_relaxed);
    if (bottom <= top) {
        w->spawn_top_seen = -1;
        return 0;
    }
    if (top != w->spawn_top_seen || bottom != w->spawn_bottom_seen) {
        w->spawn_top_seen = top;
        w->spawn_bottom_seen = bottom;
        w->spawn_top_since = w->tick;
        return 0;
    }
    if (w->tick - w->spawn_top_since < SPAWN_WAIT_TICKS)
        return 0;
    w->spawn_top_seen = -1; /* the next one waits its own turn */
    return weft__deque_take(&w->spawnq);
}

static weft__task *pick_local(weft__worker *w)
{
    weft__rt *rt = w->rt;
    for (;;) {
        uintptr_t e = 0;
        w->tick++;
        timers_tick(w);
        weft__io_tick(w);
        /* The inject queue goes first every FAIR_EVERY ticks (a countdown:
         * no division per pick). Every SPAWN_LOOK ticks, unstarted spawns
         * that nobody has touched for SPAWN_WAIT_TICKS get a turn before
         * resumed tasks (spawn_turn). Bound: with nothing else working on
         * this worker's spawns, the n-th newest starts within about
         * n x (SPAWN_WAIT_TICKS + SPAWN_LOOK) ticks; thieves and idle
         * picks take the oldest first meanwhile. Behind a chatty pair a
         * spawn gets its turn much sooner: the runnext rotation in
         * take_runnext hands it one every RUNNEXT_STREAK_MAX picks. */
        unsigned fair = w->fair_countdown;
        w->fair_countdown = fair ? fair - 1 : FAIR_EVERY - 1;
        if (WEFT__UNLIKELY(fair == 0)) {
            e = weft__inject_pop(rt, &w->runq);
        } else if (WEFT__UNLIKELY((w->tick & (SPAWN_LOOK - 1)) == 0)) {
            e = spawn_turn(w);
        }
        if (!weft__inbox_empty(&w->inbox))
            drain_inbox(w);
        if (!e)
            e = take_runnext(w);
        if (!e && w->pinned_head && (w->tick & 1))
            e = pinned_pop(w);
        /* A yield lets every runnable task go first, unstarted spawns too:
         * the oldest spawn runs before the run queue, so tasks that keep
         * yielding cannot hold new ones off forever. (Only for yields:
         * starting old spawns before resumed tasks in general breaks
         * fork-join's depth-first order; skynet took 4x as long.) */
        if (!e && w->prev && w->prev_action == PREV_YIELD && weft__deque_len(&w->spawnq) > 0)
            e = weft__deque_steal(&w->spawnq);
        if (!e)
            e = weft__runq_pop(&w->runq);
        if (!e)
            e = pinned_pop(w);
        if (!e)
            e = weft__deque_steal(&w->spawnq); /* the oldest spawn first */
        if (!e && w->io && weft__io_flush(w))
            continue; /* I/O completions made tasks runnable here */
        if (!e)
            return NULL;
        return claim(e);
    }
}

weft__task *weft__spawn_take_back(weft__nursery *n)
{
    weft__worker *w = weft__self();
    uintptr_t e = weft__deque_take(&w->spawnq);
    if (!e)
        return NULL;
    /* t->nursery is immutable after spawn, and t cannot be freed while its
     * entry is in our deque. */
    if (weft__entry_task(e)->nursery != n) {
        weft__deque_push(&w->spawnq, e); /* room: we just took one */
        return NULL;
    }
    return claim(e);
}

extern void weft__task_entry(void);

/* Gives a freshly claimed task a stack and a context. */
static void prepare(weft__worker *w, weft__task *t)
{
    if (t->stack || t->stack_host)
        return;
    size_t sz = t->stack_req ? t->stack_req : w->rt->stack_size;
    weft__stack *s = weft__stack_get(w, sz);
    if (!s)
        weft__panic("out of memory for the stack of task %llu \"%s\" (%zu bytes); a spawn "
                    "that returned 0 must run",
                    (unsigned long long)t->id, t->name, sz);
    t->stack = s;
    t->stk_lo = s->lo;
    t->stk_size = s->size;
    t->tsan_fiber = weft__fiber_create();
    t->asan_fake = NULL;
    weft__ctx_init(&t->ctx, s->lo + s->size, weft__task_entry);
    if (weft__hook_task_started_running)
        weft__hook_task_started_running(t);
}

/* ---- after a switch ----------------------------------------------------- */

static void after_switch(weft__worker *w)
{
    weft__task *p = w->prev;
    if (!p)
        return;
    w->prev = NULL;
    int a = w->prev_action;
    WEFT__COUNT(w, context_switches, 1);
    switch (a) {
    case PREV_YIELD:
        weft__stack_check(p, p->ctx.sp);
        atomic_store_explicit(&p->state, T_READY, memory_order_relaxed);
        if (p->pinned_to)
            pinned_push(w, weft__entry(p, false));
        else
            weft__runq_push_or_overflow(w->rt, &w->runq, weft__entry(p, false));
        break;
    case PREV_PARK: {
        weft__stack_check(p, p->ctx.sp);
        atomic_store_explicit(&p->state, T_PARKED, memory_order_relaxed);
        /* Step 5 of the protocol; acq_rel pairs with the waker's fetch_or. */
        unsigned prev = atomic_fetch_or_explicit(&p->handoff, H_SWITCHED, memory_order_acq_rel);
        if (prev & H_WOKEN)
            weft__ready(p, false, true);
        break;
    }
    case PREV_DONE:
        /* TSan: the finished fiber's release (weft__fiber_before_slow). */
        weft__hb_acquire(p);
        if (p->stack) {
            weft__hb_acquire(p->stack);
            weft__stack_put(w, p->stack);
            p->stack = NULL;
        }
        weft__fiber_destroy(p->tsan_fiber);
        p->tsan_fiber = NULL;
        weft__task_release(p);
        break;
    default:
        break;
    }
}

/* This thread's worker was handed to another thread while a task here was
 * inside weft_blocking; that task has switched to this scheduler context
 * and is requeued from here, as from a plain thread (its context is saved
 * now). This thread owns no worker any more. */
static void requeue_handed(void)
{
    weft__thr *thr = &weft__tls_thr;
    weft__task *t = thr->handed_task;
    thr->handed_task = NULL;
    weft__fiber_after(NULL, NULL);
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_acquire);
    weft__ready(t, false, false);
    weft__blocking_handed_done(rt);
}

/* Runs from the scheduler context. false: this thread no longer drives w. */
static bool run_task(weft__worker *w, weft__task *t)
{
    prepare(w, t);
    w->current = t;
    t->worker = w;
    atomic_store_explicit(&w->running, t, memory_order_release);
    if (WEFT__TRACING())
        weft__trace_run(t);
    atomic_store_explicit(&t->state, T_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&w->running_task, true, memory_order_relaxed);
    weft__fiber_before(w, NULL, t, false);
    weft__ctx_switch(&weft__tls_thr.sched_ctx, &t->ctx);
    if (WEFT__UNLIKELY(weft__tls_thr.handed_task != NULL)) {
        requeue_handed();
        return false;
    }
    weft__fiber_after(w, NULL);
    atomic_store_explicit(&w->running_task, false, memory_order_relaxed);
    after_switch(w);
    return true;
}

/* The thread's worker, read afresh after a switch that may have resumed us
 * on another thread (trap 2): a compiler may keep the thread pointer, and so
 * a TLS address computed before the switch, in a register across the call
 * (clang's sanitizer builds did: TSan saw this task read the previous
 * thread's weft__tls_worker). A call it cannot see into computes it again.
 * x86-64 reads the slot with an asm instead (weft__self_fresh). */
__attribute__((noinline)) weft__worker *weft__self_fresh_call(void)
{
    weft__worker *w = weft__tls_worker;
    __asm__ volatile("" : "+r"(w));
    return w;
}

void weft__switch_out(weft__task *t, int reason)
{
    weft__worker *w = weft__self();
    w->prev = t;
    w->prev_action = reason;
    weft__task *next = pick_local(w);
    /* One check for both events of the switch (the stop, the next run). */
    if (WEFT__TRACING())
        weft__trace_switch(t, reason, next);
    if (next) {
        prepare(w, next);
        w->current = next;
        next->worker = w;
        atomic_store_explicit(&w->running, next, memory_order_release);
        atomic_store_explicit(&next->state, T_RUNNING, memory_order_relaxed);
        weft__fiber_before(w, t, next, reason == PREV_DONE);
        weft__ctx_switch(&t->ctx, &next->ctx);
    } else {
        w->current = NULL;
        weft__fiber_before(w, t, NULL, reason == PREV_DONE);
        weft__ctx_switch(&t->ctx, &weft__tls_thr.sched_ctx);
    }
    /* Running again, maybe on another worker: re-read the thread's worker
     * (through a call: see weft__self_fresh). */
    w = weft__self_fresh();
    weft__fiber_after(w, t);
    after_switch(w);
}

void weft__switch_out_handed(weft__task *t)
{
    /* No worker here: this thread's worker went to another thread while t
     * was in its call, and t is still marked running on it. */
    weft__tls_thr.handed_task = t;
    weft__fiber_before(NULL, t, NULL, false);
    weft__ctx_switch(&t->ctx, &weft__tls_thr.sched_ctx);
    weft__worker *w = weft__self_fresh();
    weft__fiber_after(w, t);
    after_switch(w);
}

/* The first code of every task that runs on its own stack. */
void weft__task_entry(void)
{
    weft__worker *w = weft__self();
    weft__task *t = w->current;
    weft__fiber_after(w, t);
    after_switch(w);
    weft__hb_acquire(t); /* paired with the spawn's release */
    t->entry_frame = __builtin_frame_address(0);
    int r = t->fn(t->arg);
    weft__task_finish(t, r);
    /* For TSan, this fiber's use of the stack happens-before the next
     * task's: released as the fiber's last act (weft__fiber_before_slow). */
    weft__switch_out(t, PREV_DONE);
    weft__panic("a finished task was resumed");
}

/* ---- finding work when the local sources are empty --------------------- */

static weft__task *steal_runnext(weft__worker *w, weft__worker *v)
{
    weft__task *t = atomic_load_explicit(&v->runnext, memory_order_acquire);
    if (!t || !atomic_load_explicit(&v->running_task, memory_order_relaxed))
        return NULL;
    /* A task in runnext is about to run on v (a message-passing partner);
     * leave it there for a moment, as Go does, before taking it. */
    int64_t until = weft__now() + RUNNEXT_STEAL_DELAY_NS;
    while (weft__now() < until) {
        if (atomic_load_explicit(&v->runnext, memory_order_relaxed) != t)
            return NULL;
        weft__cpu_relax();
    }
    /* No pinned check: ready() never puts a pinned task in runnext, and t
     * may be running elsewhere by now (reading it would race). */
    if (atomic_compare_exchange_strong_explicit(&v->runnext, &t, NULL, memory_order_acq_rel,
                                                memory_order_relaxed))
        return t;
    (void)w;
    return NULL;
}

static weft__task *steal(weft__worker *w, bool with_runnext)
{
    weft__rt *rt = w->rt;
    unsigned n = rt->nworkers;
    if (n < 2)
        return NULL;
    unsigned start = (unsigned)weft__rand(w);
    for (unsigned i = 0; i < n; i++) {
        weft__worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        WEFT__COUNT(w, steal_attempts, 1);
        uintptr_t e = weft__runq_steal(&v->runq, &w->runq);
        if (!e)
            e = weft__deque_steal(&v->spawnq);
        if (!e && with_runnext) {
            weft__task *t = steal_runnext(w, v);
            e = t ? weft__entry(t, false) : 0;
        }
        if (!e)
            continue;
        WEFT__COUNT(w, steals, 1);
        weft__task *t = claim(e);
        if (WEFT__TRACING())
            weft__trace_steal(v->id, t);
        return t;
    }
    return NULL;
}

static bool work_visible(weft__worker *w, int64_t now)
{
    weft__rt *rt = w->rt;
    if (atomic_load_explicit(&rt->inject_n, memory_order_relaxed) ||
        !weft__inbox_empty(&w->inbox) || weft__runq_len(&w->runq) || weft__deque_len(&w->spawnq) ||
        atomic_load_explicit(&w->runnext, memory_order_relaxed) || w->pinned_head)
        return true;
    if (atomic_load_explicit(&w->timer_next, memory_order_relaxed) <= now)
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__runq_len(&rt->workers[i].runq) || weft__deque_len(&rt->workers[i].spawnq))
            return true;
    return false;
}

static void stop_spinning(weft__worker *w, bool *spinning)
{
    if (!*spinning)
        return;
    *spinning = false;
    if (atomic_fetch_sub_explicit(&w->rt->nspinning, 1, memory_order_seq_cst) == 1) {
        /* We were the last spinner and found work: there may be more, so
         * let another idle worker look (Go's resetspinning). */
        weft__rt *rt = w->rt;
        if (atomic_load_explicit(&rt->inject_n, memory_order_relaxed) ||
            weft__runq_len(&w->runq) > 1 || weft__deque_len(&w->spawnq) > 0)
            weft__wake_idle(rt);
    }
}

/* Out of a park (a wake, a timer, an I/O completion): if the monitor sleeps
 * long because the runtime was idle, wake it, so that it looks at the
 * workers every few ms again from now on (weft__monitor_idle). Once per
 * idle period: the first worker out takes the flag. The park costs
 * microseconds; a relaxed load on its way out costs nothing beside it. */
static void monitor_idle_end(void)
{
    if (WEFT__UNLIKELY(atomic_load_explicit(&weft__monitor_idle, memory_order_relaxed)) &&
        atomic_exchange(&weft__monitor_idle, false) && weft__monitor_poke)
        weft__monitor_poke();
}

/* Leaves the parked state by ourselves; false if a waker claimed it first
 * (then w->idle says which wake it was). */
static bool unpark_self(weft__worker *w)
{
    unsigned parked = IDLE_PARKED;
    if (!atomic_compare_exchange_strong_explicit(&w->idle, &parked, IDLE_NONE, memory_order_seq_cst,
                                                 memory_order_acquire))
        return false;
    atomic_fetch_sub_explicit(&w->rt->nparked, 1, memory_order_relaxed);
    return true;
}

static weft__task *find_runnable(weft__worker *w, bool *spinning)
{
    weft__rt *rt = w->rt;
    for (;;) {
        if (atomic_load_explicit(&rt->shutdown, memory_order_acquire))
            return NULL;
        weft__task *t = pick_local(w);
        if (t) {
            stop_spinning(w, spinning);
            return t;
        }
        int64_t now = weft__now();
        if (atomic_load_explicit(&w->timer_next, memory_order_relaxed) <= now) {
            weft__timers_run(w, now);
            continue;
        }
        uintptr_t e = weft__inject_pop(rt, &w->runq);
        if (e) {
            stop_spinning(w, spinning);
            return claim(e);
        }
        if (!*spinning) {
            unsigned zero = 0;
            if (atomic_compare_exchange_strong_explicit(&rt->nspinning, &zero, 1,
                                                        memory_order_seq_cst, memory_order_relaxed))
                *spinning = true;
        }
        if (*spinning) {
            for (int r = 0; r < SPIN_ROUNDS; r++) {
                t = steal(w, r == SPIN_ROUNDS - 1);
                if (!t && (t = pick_local(w)) == NULL) {
                    if (atomic_load_explicit(&rt->inject_n, memory_order_relaxed) ||
                        atomic_load_explicit(&w->timer_next, memory_order_relaxed) <= weft__now())
                        break;
                    for (int k = 0; k < 32; k++)
                        weft__cpu_relax();
                    continue;
                }
                stop_spinning(w, spinning);
                return t;
            }
            if (atomic_load_explicit(&rt->inject_n, memory_order_relaxed) ||
                atomic_load_explicit(&w->timer_next, memory_order_relaxed) <= weft__now())
                continue;
        }
        /* Park: announce, drop spinning, recheck (the Dekker pair). */
        stop_spinning(w, spinning);
        atomic_store_explicit(&w->idle, IDLE_PARKED, memory_order_seq_cst);
        atomic_fetch_add_explicit(&rt->nparked, 1, memory_order_seq_cst);
        fence_sc();
        if (work_visible(w, weft__now()) ||
            atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
            if (unpark_self(w))
                continue;
            /* Someone claimed our wake right now: take it below. */
        } else {
            WEFT__COUNT(w, worker_parks, 1);
            if (WEFT__TRACING())
                weft__trace_idle(true);
            weft__steer_note_park(w);
            weft__idle_park(w, atomic_load_explicit(&w->timer_next, memory_order_relaxed));
            weft__steer_restore(w);
            monitor_idle_end();
            if (WEFT__TRACING())
                weft__trace_idle(false);
            if (unpark_self(w))
                continue; /* a timer, a retarget's nudge, or spurious */
        }
        /* A waker claimed us (its idle_unpark may still be on its way: it
         * only makes a later park return early, which loops). wake_idle
         * also made us the spinner it sponsored; an inbox hand-off did not. */
        WEFT__COUNT(w, worker_wakes, 1);
        if (atomic_exchange_explicit(&w->idle, IDLE_NONE, memory_order_acquire) == IDLE_WOKEN_SPIN)
            *spinning = true;
        weft__steer_restore(w); /* in case the claim came after the park */
    }
}

/* Work on w that a long weft_blocking call there would hold up. */
static bool handoff_wanted(weft__rt *rt, weft__worker *w, int64_t now)
{
    if (atomic_load_explicit(&w->npinned, memory_order_relaxed))
        return false; /* pinned tasks wait for their thread (API.md) */
    if (weft__runq_len(&w->runq) || weft__deque_len(&w->spawnq) ||
        atomic_load_explicit(&w->runnext, memory_order_relaxed) || !weft__inbox_empty(&w->inbox))
        return true;
    int64_t next = atomic_load_explicit(&w->timer_next, memory_order_relaxed);
    if (next != WEFT_FOREVER && next <= now + 1000000)
        return true;
    /* Work from outside that no awake worker takes. */
    return atomic_load_explicit(&rt->inject_n, memory_order_relaxed) != 0 &&
           atomic_load_explicit(&rt->nspinning, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&rt->nparked, memory_order_relaxed) == 0;
}

/* Spins until the call `call` on w is HANDOFF_AFTER_NS old (true), or it
 * ended or was taken meanwhile (false). The monitor's look and a watching
 * spare wait out a young call the same way. */
static bool call_aged(weft__rt *rt, weft__worker *w, uint64_t call)
{
    for (;;) {
        if (atomic_load_explicit(&w->bcall, memory_order_acquire) != call)
            return false;
        int64_t age = (int64_t)(weft__ticks() -
                                atomic_load_explicit(&w->bcall_t0, memory_order_relaxed));
        if (age < 0 || weft__ticks_to_ns(rt, (uint64_t)age) >= HANDOFF_AFTER_NS)
            return true;
        weft__cpu_relax();
    }
}

bool weft__handoff_take(weft__rt *rt, weft__worker *w, uint64_t call)
{
    if (!call_aged(rt, w, call))
        return false;
    if (!handoff_wanted(rt, w, weft__now()))
        return false; /* an idle worker took the work meanwhile */
    return weft__bcall_hand(w, call);
}

bool weft__sysmon(weft__rt *rt, uint64_t *last, bool *in_call)
{
    bool busy = false;
    uint64_t *last_bc = last + rt->nworkers;
    int64_t now = weft__now();
    *in_call = false;
    weft__io_sysmon(rt, NULL);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        /* A weft_blocking call that has lasted HANDOFF_AFTER_NS, or the
         * same call as at the last look (its sequence number): hand the
         * worker to another thread if work waits. The age lets a look
         * that a call's poke brought about hand off at once, instead of
         * one more sleep and wake-up of the monitor (each wake-up costs
         * 50 us to milliseconds on a busy VM). bcall_t0 may already be a
         * later call's: then the hand-off's CAS on bc fails, harmlessly. */
        uint64_t bc = atomic_load_explicit(&w->bcall, memory_order_acquire);
        if ((bc & 3) == WEFT__BC_IN_CALL && handoff_wanted(rt, w, now)) {
            *in_call = true;
            /* A young call: wait out the rest of HANDOFF_AFTER_NS here
             * rather than in one more sleep, whose wake-up costs this VM
             * 50 us to milliseconds. Most calls end first (the wait ends
             * with them); at most HANDOFF_AFTER_NS per look. */
            if (bc == last_bc[i] || call_aged(rt, w, bc))
                weft__blocking_handoff(rt, w, bc);
        }
        last_bc[i] = bc;
        uint64_t sw = atomic_load_explicit(&w->ctr.v[WEFT__CTR_INDEX(context_switches)],
                                           memory_order_relaxed);
        bool running = atomic_load_explicit(&w->running_task, memory_order_relaxed);
        /* Busy: running a task now, or ran one since the last look. A look
         * that lands between two tasks must not put the monitor to sleep
         * for its long tick. */
        busy |= running || sw != last[i];
        if (running && sw == last[i]) {
            /* Same task since the last look. Its worker fires no timers:
             * fire the overdue ones here (the woken go to the inject
             * queue). Work queued behind it can only move if another
             * worker steals it: wake one. */
            int64_t next = atomic_load_explicit(&w->timer_next, memory_order_relaxed);
            /* Only where another worker can run what it wakes (it goes to
             * the inject queue): with one worker nobody could, and firing
             * some of the worker's timers here while the worker fires the
             * rest into its own run queue would run them out of deadline
             * order. The worker fires its own at its next scheduling tick. */
            if (rt->nworkers > 1 && next != WEFT_FOREVER && next <= weft__now()) {
                unsigned fired = weft__timers_run(w, weft__now());
                atomic_fetch_add_explicit(&rt->mon_timers_fired, fired, memory_order_relaxed);
                weft__trace_monitor(0, w, fired);
            }
            /* Its ring's completions must not wait for it either. */
            weft__io_sysmon(rt, w);
            if (weft__runq_len(&w->runq) || weft__deque_len(&w->spawnq) ||
                atomic_load_explicit(&w->runnext, memory_order_relaxed)) {
                atomic_fetch_add_explicit(&rt->mon_wakes, 1, memory_order_relaxed);
                weft__trace_monitor(1, w, 0);
                weft__wake_idle(rt);
            }
        }
        last[i] = sw;
    }
    return busy;
}

/* Once per OS thread, however many workers it drives over its life. */
static void thread_prepare(void)
{
    weft__thr *thr = &weft__tls_thr;
    if (thr->prepared)
        return;
    thr->prepared = true;
    /* A parked worker sleeps with its next timer as the futex timeout; the
     * default 50 us timer slack would make every timer fired by an idle
     * worker that much late. 1 ns: wake on time (restored by
     * weft__thread_release, for the thread that called weft_run). */
    thr->old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            thr->sched_stack_lo = addr;
            thr->sched_stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
    thr->altstack = weft__fault_thread_init();
}

void weft__thread_release(void)
{
    weft__thr *thr = &weft__tls_thr;
    if (!thr->prepared)
        return;
    thr->prepared = false;
    weft__fault_thread_fini(thr->altstack);
    thr->altstack = NULL;
    if (thr->old_slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)thr->old_slack, 0, 0, 0);
}

bool weft__worker_loop(weft__worker *w)
{
    weft__tls_worker = w;
    atomic_store_explicit(&w->tid, (int)gettid(), memory_order_relaxed);
    thread_prepare();
    /* TSan: what this thread wrote to its own stack so far (TSan's own
     * stack initialisation at thread start, the frames of weft_run's
     * caller) happens-before a weft_blocking call that a task, maybe one
     * made on another thread, runs there (acquired in weft_blocking). */
    weft__hb_release(&weft__tls_thr);
    weft__tls_thr.sched_tsan_fiber = weft__fiber_current();
    weft__hb_worker_start();
    bool spinning = false, handed = false;
    for (;;) {
        weft__task *t = find_runnable(w, &spinning);
        if (!t)
            break;
        if (!run_task(w, t)) {
            handed = true; /* w is another thread's now: touch nothing of it */
            break;
        }
    }
    if (!handed)
        stop_spinning(w, &spinning);
    /* TSan: every finished task's fiber happens-before the teardown that
     * follows the join of this thread (weft__fiber_before_slow). */
    weft__hb_acquire(w->rt);
    weft__tls_worker = NULL;
    return handed;
}

void weft__thread_block_sigpipe(void)
{
    /* SIGPIPE never kills the process because of weft's own I/O. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *worker_thread(void *arg)
{
    weft__worker *w = arg;
    weft__thread_block_sigpipe();
    if (weft__worker_loop(w))
        weft__spare_serve(w->rt); /* w went to another thread: be a spare */
    weft__thread_release();
    return NULL;
}

int weft__workers_start(weft__rt *rt)
{
    for (unsigned i = 1; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_thread, w);
        if (rc) {
            atomic_store_explicit(&rt->shutdown, true, memory_order_release);
            for (unsigned k = 1; k < i; k++) {
                weft__idle_unpark(&rt->workers[k]);
                pthread_join(rt->workers[k].thread, NULL);
            }
            return -rc;
        }
    }
    return 0;
}

void weft__workers_stop(weft__rt *rt)
{
    atomic_store_explicit(&rt->shutdown, true, memory_order_release);
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__idle_unpark(&rt->workers[i]);
    weft__spares_stop(rt);
    for (unsigned i = 1; i < rt->nworkers; i++)
        pthread_join(rt->workers[i].thread, NULL);
    weft__spares_join(rt);
}
