/*
 * wait.c - the one park/wake primitive, and the per-task cancel state.
 *
 * Every wait in weft (sleep, event, nursery close, start, blocking jobs, and
 * later channels, mutexes and I/O) is: weft__wait_begin, publish the token,
 * weft__wait_park; and on the other side weft__wake with the token. The
 * protocol and its proof are at the top of internal.h.
 *
 * Cancellation state. A task's scope chain (t->scope_top, linked through
 * scope->parent into the scopes of the nursery it was spawned in and on
 * outward) decides whether it is cancelled: walk from the innermost scope
 * outward, stop after the first shielded one; any cancelled flag, or any
 * deadline that has passed, means cancelled. The verdict and the earliest
 * deadline are cached per task against rt->cancel_gen, which every cancel,
 * deadline move and shield change bumps (seq_cst). So a cancellation point
 * usually costs one shared load, plus a clock read when a deadline exists.
 *
 * Lost-cancel freedom (Dekker): a canceller sets the flag, bumps cancel_gen
 * and then reads each task's wstate (all seq_cst); a task stores W_WAITING
 * and then loads cancel_gen (seq_cst). One of them sees the other: either
 * the task sees the new generation and re-evaluates (finding the flag), or
 * the canceller sees W_WAITING and fires the wait.
 */
#include "internal.h"

/* wstate = gen << 8 | cancellable bit (0x80) | listed bit (0x40) | reason.
 * The cancellable bit is part of the token, so a canceller reads it in the
 * same atomic load as the WAITING state it pokes (a separate field could
 * already belong to the task's next wait). The listed bit (WEFT__WS_LISTED,
 * weft__task_list) is the task's own: set by it while it runs, carried from
 * wait to wait (so it is part of every token too), cleared when the block
 * is reused. */
#define WS_CANCELLABLE 0x80u
#define WS_REASON(ws) ((int)((ws)&0x3fu))
#define WS_TOKEN(ws) ((ws) & ~(uint64_t)0x3fu)
#define WS_GEN(ws) ((ws) & ~(uint64_t)0xffu)

static weft__rt *rt_of(void) { return atomic_load_explicit(&weft__g_rt, memory_order_acquire); }

bool weft__chain_eval(weft__scope *top, int64_t *deadline, weft__scope **which)
{
    bool cancelled = false;
    int64_t dl = WEFT_FOREVER;
    weft__scope *w = NULL;
    /* acquire: pairs with the release that linked each scope (scope.c). */
    for (weft__scope *s = top; s; s = atomic_load_explicit(&s->parent, memory_order_acquire)) {
        unsigned f = atomic_load_explicit(&s->flags, memory_order_seq_cst);
        if (f & S_CANCELLED)
            cancelled = true;
        int64_t d = atomic_load_explicit(&s->deadline, memory_order_relaxed);
        if (d < dl) {
            dl = d;
            w = s;
        }
        if (f & S_SHIELDED)
            break;
    }
    *deadline = dl;
    if (which)
        *which = w;
    return cancelled;
}

static void refresh(weft__task *t)
{
    weft__rt *rt = rt_of();
    uint64_t g = atomic_load_explicit(&rt->cancel_gen, memory_order_seq_cst);
    if (WEFT__LIKELY(t->cgen == g))
        return;
    t->c_cancelled = weft__chain_eval(t->scope_top, &t->c_deadline, &t->c_dl_scope);
    t->cgen = g;
}

bool weft__task_cancelled_slow(weft__task *t)
{
    refresh(t);
    if (t->c_cancelled)
        return true;
    if (t->c_deadline != WEFT_FOREVER && t->c_deadline <= weft__now()) {
        /* The deadline fired: remember it on its scope (nursery close reports
         * -ETIMEDOUT from this). */
        if (t->c_dl_scope)
            atomic_fetch_or_explicit(&t->c_dl_scope->flags, S_DEADLINE_HIT, memory_order_relaxed);
        return true;
    }
    return false;
}

int64_t weft__task_deadline(weft__task *t, weft__scope **which)
{
    refresh(t);
    if (which)
        *which = t->c_dl_scope;
    return t->c_deadline;
}

bool weft__chain_cancelled(weft__scope *top, int64_t *deadline)
{
    int64_t dl;
    bool c = weft__chain_eval(top, &dl, NULL);
    if (deadline)
        *deadline = dl;
    return c || (dl != WEFT_FOREVER && dl <= weft__now());
}

bool weft__task_cancelled_fresh(weft__task *t, int64_t *deadline)
{
    return weft__chain_cancelled(t->scope_top, deadline);
}

int weft__cancel_point(weft__task *t) { return weft__task_cancelled(t) ? -ECANCELED : 0; }

static inline uint64_t begin(weft__task *t, unsigned flags, uint64_t ws)
{
    uint64_t tok = (WS_GEN(ws) + 0x100u) | (ws & WEFT__WS_LISTED);
    if (flags & WAIT_CANCELLABLE)
        tok |= WS_CANCELLABLE;
    /* For the dump's wait durations: a tick read, not a clock read. */
    atomic_store_explicit(&t->wait_since, weft__ticks(), memory_order_relaxed);
    /* Nobody can touch handoff now: the previous wait's waker finished with
     * it before the task could run again. */
    atomic_store_explicit(&t->handoff, 0, memory_order_relaxed);
    /* seq_cst: the task's half of the Dekker pair with cancellers. */
    atomic_store_explicit(&t->wstate, tok | W_WAITING, memory_order_seq_cst);
    return tok;
}

/* A task's first wait: it goes on its nursery's list first (see
 * weft__task_list), before the seq_cst store, so a cancel that walked the
 * nursery before that is seen by the wait's own check. */
__attribute__((noinline)) static uint64_t begin_unlisted(weft__task *t, unsigned flags)
{
    weft__task_list_slow(t);
    return begin(t, flags, atomic_load_explicit(&t->wstate, memory_order_relaxed));
}

uint64_t weft__wait_begin(weft__task *t, unsigned flags)
{
    uint64_t ws = atomic_load_explicit(&t->wstate, memory_order_relaxed);
    if (WEFT__UNLIKELY(!(ws & WEFT__WS_LISTED)))
        return begin_unlisted(t, flags);
    return begin(t, flags, ws);
}

bool weft__wake_claim(weft__task *t, uint64_t token, int reason)
{
    uint64_t expect = token | W_WAITING;
    return atomic_compare_exchange_strong_explicit(&t->wstate, &expect, token | (unsigned)reason,
                                                   memory_order_acq_rel, memory_order_acquire);
}

void weft__wake_finish(weft__task *t, int reason)
{
    if (WEFT__TRACING())
        weft__trace_wake(t, reason);
    /* Before t can run: what the waker handed over happens-before t's
     * resumption (paired in weft__wait_park). */
    weft__hb_release(t);
    /* A waker on the very worker t last ran on, t not running: t switched
     * out there, and that worker ran t's after_switch (step 5) before any
     * code that could wake it, so the hand-off is already settled and the
     * second read-modify-write can be skipped. t->worker is stable: t was
     * WAITING, and our claim read its wait_begin store (happens-before). */
    weft__worker *self = weft__self();
    if (self && t->worker == self && self->current != t) {
        weft__ready(t, false, reason == W_WOKEN);
        return;
    }
    /* Step 4: pairs with the fetch_or in after_switch (worker.c). acq_rel:
     * what the waker wrote (results, copied data) happens-before the task
     * runs again, whoever of the two makes it runnable. */
    unsigned prev = atomic_fetch_or_explicit(&t->handoff, H_WOKEN, memory_order_acq_rel);
    if (prev & H_SWITCHED)
        weft__ready(t, false, reason == W_WOKEN);
}

bool weft__wake(weft__task *t, uint64_t token, int reason)
{
    if (!weft__wake_claim(t, token, reason))
        return false;
    weft__wake_finish(t, reason);
    return true;
}

int weft__wait_park(weft__task *t, uint64_t token, int64_t deadline, unsigned flags)
{
    weft__worker *w = weft__self();
    t->wait_deadline = deadline;
    t->budget = weft__coop_refill; /* it gives way now: a fresh budget */
    int64_t eff = deadline;
    if (flags & WAIT_CANCELLABLE) {
        if (weft__task_cancelled(t)) {
            uint64_t expect = token | W_WAITING;
            if (atomic_compare_exchange_strong_explicit(&t->wstate, &expect, token | W_CANCEL,
                                                        memory_order_acq_rel, memory_order_acquire))
                return W_CANCEL;
            /* Someone else fired first: it will make us runnable once we
             * have switched out, so park normally. */
        } else {
            weft__scope *sc;
            int64_t dl = weft__task_deadline(t, &sc);
            if (dl < eff) {
                eff = dl;
                t->wait_dl_scope = sc; /* read below if the timer fires */
            }
        }
    }
    bool armed = false;
    if (eff != WEFT_FOREVER) {
        /* Only an armed timer fires (a cancel walk re-aims a timer armed
         * here; with none armed it leaves the deadline to the watch):
         * which scope armed it matters only then. */
        if (eff == deadline)
            t->wait_dl_scope = NULL;
        weft__timer_arm(w, t, eff, token);
        armed = true;
    }
    weft__switch_out(t, PREV_PARK);
    weft__hb_acquire(t);
    if (armed)
        weft__timer_disarm(t);
    int reason = WS_REASON(atomic_load_explicit(&t->wstate, memory_order_acquire));
    if (reason == W_TIMER)
        WEFT__COUNT(weft__self_fresh(), timers_fired, 1);
    if (reason == W_TIMER && (deadline == WEFT_FOREVER || weft__now() < deadline)) {
        /* Not the wait's own deadline: a scope's (armed at park time, or
         * re-aimed by a cancel walk since). That is a cancel. */
        weft__task_cancel_cache_reset(t);
        if (!weft__task_cancelled(t)) {
            /* The deadline moved later after the timer fired: the fire came
             * first, and cancellation is sticky. */
            weft__scope *s = t->wait_dl_scope ? t->wait_dl_scope : t->c_dl_scope;
            if (s) {
                atomic_fetch_or_explicit(&s->flags, S_CANCELLED | S_DEADLINE_HIT,
                                         memory_order_seq_cst);
                atomic_fetch_add_explicit(&rt_of()->cancel_gen, 1, memory_order_seq_cst);
            }
        }
        reason = W_CANCEL;
    } else if (reason == W_CANCEL) {
        /* A poke's fresh look at the chain may have seen a flag whose
         * canceller has not bumped cancel_gen yet: the cached verdict must
         * not contradict this wait's answer at the next checkpoint. */
        weft__task_cancel_cache_reset(t);
    }
    return reason;
}

bool weft__wait_poke(weft__task *t)
{
    uint64_t ws = atomic_load_explicit(&t->wstate, memory_order_seq_cst);
    if (WS_REASON(ws) != W_WAITING || !(ws & WS_CANCELLABLE))
        return false;
    int64_t dl;
    if (weft__task_cancelled_fresh(t, &dl)) {
        weft__wake(t, WS_TOKEN(ws), W_CANCEL);
        return false;
    }
    /* Re-aim its timer at the chain's deadline as it is now (earlier or
     * later); with no timer armed, someone must watch that deadline. */
    if (weft__timer_retarget(t, WS_TOKEN(ws), dl))
        return false;
    return dl != WEFT_FOREVER;
}

/* ---- public cancellation points of the core ---------------------------- */

bool weft_cancelled(void)
{
    weft__task *t = weft__current();
    if (t)
        return weft__task_cancelled(t);
    if (weft__tls_blocking_for)
        return weft__task_cancelled_fresh(weft__tls_blocking_for, NULL);
    return false;
}

int weft_sleep_until(int64_t deadline)
{
    weft__task *t = weft__current();
    if (!t) {
        struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
        while (weft__now() < deadline &&
               clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        return 0;
    }
    if (weft__task_cancelled(t))
        return -ECANCELED;
    if (deadline <= weft__now())
        return weft_yield();
    weft__wait_note("sleep", NULL);
    uint64_t tok = weft__wait_begin(t, WAIT_CANCELLABLE);
    int r = weft__wait_park(t, tok, deadline, WAIT_CANCELLABLE);
    return r == W_CANCEL ? -ECANCELED : 0;
}

int weft_sleep(int64_t ns) { return weft_sleep_until(weft__deadline_add(weft__now(), ns)); }
