/*
 * blocking.c - weft_blocking: a blocking call that costs a function call,
 * and a worker hand-off for the calls that last.
 *
 * The call runs fn on the calling worker's own OS thread, on that thread's
 * own (large) stack: below the scheduler context, which is suspended while
 * any task runs on the worker, so that stack is free. No queue, no futex,
 * no other thread. What it costs is Go's entersyscall bargain: while fn
 * runs, the worker's queues, timers and pinned-free work wait, unless
 * somebody takes them. So:
 *
 *  - on entry, work already queued on the worker wakes an idle worker that
 *    can steal it (weft__wake_idle), and pokes the monitor if it naps;
 *  - w->bcall says the worker is in a call, with a sequence number per
 *    call; the monitor looks every 2 ms, every 50 us while a call holds up
 *    work (queued tasks, timers due within 1 ms, or inject work no idle
 *    worker takes), and when it finds a call 20 us old with work waiting
 *    (a younger one it waits out, spinning, unless the call ends first),
 *    it hands the worker to another OS thread: an idle spare, or a new one
 *    within the cap (weft_config.blocking_threads). A call that starts
 *    with work waiting while the monitor naps also asks an idle spare to
 *    watch it (weft__blocking_watch): the spare takes the worker itself
 *    once the call is 20 us old, one thread wake-up after the call began
 *    instead of two (the monitor's, then the spare's). One CAS on
 *    w->bcall (IN_CALL -> HANDED) decides against the caller's own CAS
 *    (IN_CALL -> IDLE) when fn returns, so exactly one side keeps w.
 *  - a caller that lost w finishes its call off the worker: the task
 *    switches to its thread's own scheduler context (weft__tls_thr, not the
 *    worker's), which requeues it as a plain thread would, and the thread
 *    becomes a spare.
 *
 * A worker with pinned tasks is never handed off: they are tied to its
 * thread, so they wait for the call (API.md). Spare threads and hand-offs
 * are counted in the stats' monitor figures by the deadlock check only as
 * threads of weft's own.
 */
#include "internal.h"

#include <signal.h>

WEFT__TLS weft__task *weft__tls_blocking_for;
atomic_bool weft__monitor_napping;
atomic_bool weft__monitor_idle;
void (*weft__monitor_poke)(void);

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    weft__worker **assign; /* workers handed off, waiting for a spare */
    unsigned nassign;
    unsigned idle;     /* spares waiting for a worker */
    unsigned cap;      /* threads weft may start for hand-offs */
    unsigned nthreads; /* started so far */
    pthread_t *threads;
    bool stop;
    /* A call to watch (weft__blocking_watch), for the first idle spare. */
    weft__worker *watch_w;
    uint64_t watch_call;
    atomic_uint handed_calls; /* calls still running on threads that lost their worker */
} spares;

static spares *sp_of(weft__rt *rt) { return rt->blocking; }

int weft__blocking_init(weft__rt *rt)
{
    spares *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->cap = rt->blocking_cap;
    p->threads = calloc(p->cap ? p->cap : 1, sizeof *p->threads);
    p->assign = calloc(rt->nworkers, sizeof *p->assign);
    if (!p->threads || !p->assign) {
        free(p->threads);
        free(p->assign);
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    rt->blocking = p;
    return 0;
}

void weft__spares_stop(weft__rt *rt)
{
    spares *p = sp_of(rt);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void weft__spares_join(weft__rt *rt)
{
    spares *p = sp_of(rt);
    /* Every thread started for a hand-off leaves once the run is ending;
     * none starts after stop (the monitor has stopped handing off: the
     * workers' loops are over). */
    pthread_mutex_lock(&p->mu);
    unsigned n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
}

void weft__blocking_fini(weft__rt *rt)
{
    spares *p = sp_of(rt);
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->assign);
    free(p);
    rt->blocking = NULL;
}

bool weft__blocking_busy(weft__rt *rt, unsigned *threads)
{
    spares *p = sp_of(rt);
    bool busy = atomic_load_explicit(&p->handed_calls, memory_order_acquire) != 0;
    for (unsigned i = 0; i < rt->nworkers && !busy; i++)
        busy = (atomic_load_explicit(&rt->workers[i].bcall, memory_order_acquire) & 3) ==
               WEFT__BC_IN_CALL;
    pthread_mutex_lock(&p->mu);
    *threads = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return busy;
}

/* A spare: waits for a handed-off worker and drives it; when that worker is
 * handed away from this thread in turn, waits again. Returns when the run
 * ends. */
static void serve(weft__rt *rt)
{
    spares *p = sp_of(rt);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->nassign == 0 && !p->watch_w && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        weft__worker *w;
        if (p->nassign) {
            w = p->assign[--p->nassign];
            p->idle--;
        } else if (p->watch_w && !p->stop) {
            /* Watch a young call that holds up work: take its worker
             * ourselves if it lasts, one wake-up sooner than the monitor's
             * look and its wake-up of a spare would. */
            w = p->watch_w;
            uint64_t call = p->watch_call;
            p->watch_w = NULL;
            p->idle--;
            pthread_mutex_unlock(&p->mu);
            bool took = weft__handoff_take(rt, w, call);
            if (took)
                atomic_fetch_add_explicit(&p->handed_calls, 1, memory_order_relaxed);
            pthread_mutex_lock(&p->mu);
            if (!took) {
                p->idle++;
                continue;
            }
        } else {
            break; /* stop */
        }
        pthread_mutex_unlock(&p->mu);
        bool handed = weft__worker_loop(w);
        pthread_mutex_lock(&p->mu);
        if (!handed)
            break; /* the run is over */
        p->idle++;
    }
    pthread_mutex_unlock(&p->mu);
}

void weft__spare_serve(weft__rt *rt)
{
    /* A thread that lost its worker joins the spares: counted as idle, as
     * a spare that lost one is (serve) and a new one is from its start
     * (weft__blocking_handoff), so that a watch or a hand-off finds it. */
    spares *p = sp_of(rt);
    pthread_mutex_lock(&p->mu);
    p->idle++;
    pthread_mutex_unlock(&p->mu);
    serve(rt);
}

static void *spare_main(void *arg)
{
    weft__rt *rt = arg;
    weft__thread_block_sigpipe();
    serve(rt);
    weft__thread_release();
    return NULL;
}

bool weft__blocking_handoff(weft__rt *rt, weft__worker *w, uint64_t seen)
{
    spares *p = sp_of(rt);
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    /* A thread first (a spare, or a new one counted as a spare): once the
     * CAS below wins, w must get one. A new thread that is not needed after
     * all stays as a spare. */
    if (p->idle == p->nassign) {
        int rc = EAGAIN;
        if (p->nthreads < p->cap && !weft__test_fail_threads)
            rc = pthread_create(&p->threads[p->nthreads], NULL, spare_main, rt);
        if (rc) {
            pthread_mutex_unlock(&p->mu);
            return false;
        }
        p->nthreads++;
        p->idle++;
    }
    if (!weft__bcall_hand(w, seen)) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    atomic_fetch_add_explicit(&p->handed_calls, 1, memory_order_relaxed);
    p->assign[p->nassign++] = w;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

bool weft__blocking_watch(weft__rt *rt, weft__worker *w, uint64_t call)
{
    spares *p = sp_of(rt);
    pthread_mutex_lock(&p->mu);
    /* Only a spare that nothing else needs: one still owed to a handed-off
     * worker is not free. One watch at a time; the monitor covers the rest. */
    bool ok = !p->stop && !p->watch_w && p->idle > p->nassign;
    if (ok) {
        p->watch_w = w;
        p->watch_call = call;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void weft__blocking_handed_done(weft__rt *rt)
{
    atomic_fetch_sub_explicit(&sp_of(rt)->handed_calls, 1, memory_order_release);
}

/* ---- the call ------------------------------------------------------------ */

typedef struct {
    weft_fn fn;
    void *arg;
    int result;
    weft__task *task;
} native_call;

static void on_native_stack(void *arg)
{
    native_call *c = arg;
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_native_entered();
    /* Fenced: an exception escaping fn terminates, naming the task, rather
     * than unwinding into the task's frames on the other stack. */
    c->result = weft__call_fenced(c->fn, c->arg);
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_native_leave(c->task);
}

static bool has_local_work(weft__worker *w)
{
    return weft__runq_len(&w->runq) || weft__deque_len(&w->spawnq) ||
           atomic_load_explicit(&w->runnext, memory_order_relaxed) != NULL;
}

int weft_blocking(weft_fn fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    weft__worker *w = weft__self();
    weft__task *t = w ? w->current : NULL;
    if (!t)
        return fn(arg);
    if (weft__task_cancelled(t))
        return -ECANCELED;
    weft__task_list(t); /* weft_dump shows it in its call */
    weft__rt *rt = w->rt;
    /* Everything that touches w comes before the store of IN_CALL: from
     * then on the monitor may give w to another thread at any moment. */
    bool work_waits = has_local_work(w);
    native_call c = {fn, arg, 0, t};
    /* fn runs below the suspended scheduler context, on this thread's own
     * stack (which belongs to the thread, not to w), as a plain thread:
     * weft_in_task() is false inside. */
    char *top = (char *)weft__tls_thr.sched_ctx.sp - 256;
    /* For weft_dump: the task waits in its call. */
    atomic_store_explicit(&t->wait_what, "weft_blocking", memory_order_relaxed);
    atomic_store_explicit(&t->wait_obj, (const void *)fn, memory_order_relaxed);
    uint64_t t0 = weft__ticks();
    atomic_store_explicit(&t->wait_since, t0, memory_order_relaxed);
    atomic_store_explicit(&w->bcall_t0, t0, memory_order_relaxed);
    atomic_store_explicit(&t->state, T_PARKED, memory_order_relaxed);
    weft__tls_worker = NULL;
    weft__tls_blocking_for = t;
    uint64_t in_call = ((atomic_load_explicit(&w->bcall, memory_order_relaxed) >> 2) + 1) << 2 |
                       WEFT__BC_IN_CALL;
    /* release: w's state so far is the next thread's (the monitor's
     * hand-off CAS acquires it). */
    atomic_store_explicit(&w->bcall, in_call, memory_order_seq_cst);
    if (work_waits) {
        /* Work waits behind this call: an idle worker may steal it, and the
         * monitor must look soon in case the call lasts (woken from a
         * sleep longer than its fast look, once per sleep). */
        weft__wake_idle(rt);
        if (WEFT__UNLIKELY(atomic_load_explicit(&weft__monitor_napping, memory_order_relaxed)) &&
            atomic_exchange(&weft__monitor_napping, false)) {
            /* An idle spare watches the call and takes the worker itself
             * if the call lasts: one wake-up in the way of the queued work
             * instead of two (the monitor's, then a spare's). The monitor
             * is poked as well: its looks go on as before (every 50 us
             * while a call holds up work), and whichever of the two takes
             * the worker first does (one CAS decides). */
            weft__blocking_watch(rt, w, in_call);
            if (weft__monitor_poke)
                weft__monitor_poke();
        }
    }
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_native_enter(t);
    /* TSan: every call on this thread's stack happens-before the next one
     * there, whichever tasks make them (as a task stack's reuse is
     * ordered, in after_switch and weft__stack_get); consecutive tasks on
     * a worker are not ordered otherwise (fiber.c). */
    weft__hb_acquire(&weft__tls_thr);
    weft__call_on_stack(on_native_stack, &c, top);
    weft__hb_release(&weft__tls_thr);
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_native_left(t);
    weft__tls_blocking_for = NULL;
    /* fn may have seen a cancel through weft_cancelled's fresh look at the
     * chain while the canceller was between setting the flag and bumping
     * cancel_gen: t's cached verdict could still say "not cancelled", and
     * the caller's next checkpoint must not contradict what fn saw. */
    weft__task_cancel_cache_reset(t);

    uint64_t expect = in_call;
    if (WEFT__LIKELY(
            atomic_compare_exchange_strong_explicit(&w->bcall, &expect, in_call & ~(uint64_t)3,
                                                    memory_order_acq_rel, memory_order_relaxed))) {
        weft__tls_worker = w;
        atomic_store_explicit(&t->state, T_RUNNING, memory_order_relaxed);
        return c.result;
    }
    /* The monitor gave w to another thread meanwhile: t leaves this one
     * (weft__blocking_handed_done counts the call over once t is queued). */
    weft__switch_out_handed(t);
    return c.result;
}
