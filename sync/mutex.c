/*
 * mutex.c - weft_mutex: spin briefly, then park; Go's starvation guard.
 *
 * state bits: LOCKED, WAITERS (the queue may be non-empty), STARVING, and
 * WOKEN (a woken waiter is on its way back to compete: unlock need not wake
 * another, which would only add a park/wake pair per operation).
 * Normal mode: unlock clears LOCKED and wakes the first waiter, which then
 * competes with newcomers (barging keeps throughput up). A locker spins
 * (a bounded number of PAUSEs) while the owner is running on another worker, since
 * the lock is then likely to be free before a park/wake pair would end. A waiter that has
 * waited over 1 ms sets STARVING: from then on unlock hands the mutex
 * directly to the first waiter (LOCKED never drops), and newcomers queue
 * behind, so no waiter is bypassed forever. The mode ends when the queue
 * empties.
 *
 * Lost-wakeup freedom: a locker sets WAITERS with a CAS that requires
 * LOCKED to be still set, under the queue lock, before it enqueues; an
 * unlocker whose fast CAS (LOCKED -> 0) fails because WAITERS is set takes
 * the queue lock and finds the waiter.
 */
#include "internal.h"

#include <sys/syscall.h>
#include <unistd.h>

enum { LOCKED = 1u, WAITERS = 2u, STARVING = 4u, WOKEN = 8u };
#define STARVE_NS 1000000
#define SPINS 64     /* always, before looking at the owner */
#define SPIN_MAX 128 /* while the owner runs (about 3 us of PAUSE here) */
#define HANDOFF 1

typedef struct {
    atomic_uint state;
    weft__spin lock;
    weft__waitq q;
    _Atomic uint64_t owner; /* task id, or thread id | 1 << 63; 0 when free */
    /* For the spin decision, without touching the owner's task block (the
     * mutex may outlive the runtime that ran its owner): the worker the
     * owner locked on and that worker's switch count then. Unchanged count
     * and a task running there: the owner is still on the CPU. */
    atomic_int owner_worker; /* -1: a plain thread */
    atomic_uint owner_sw;
} mutex;
_Static_assert(sizeof(mutex) <= sizeof(weft_mutex), "weft_mutex too small");
_Static_assert(_Alignof(mutex) <= _Alignof(weft_mutex), "weft_mutex misaligned");

static mutex *priv(weft_mutex *m) { return (mutex *)(void *)m; }

static WEFT__TLS uint64_t thread_owner_id;

/* The caller's owner id: its task id, or its thread id with the top bit. */
static inline uint64_t me(weft__task *t)
{
    if (t)
        return t->id;
    if (WEFT__UNLIKELY(!thread_owner_id))
        thread_owner_id = (uint64_t)syscall(SYS_gettid) | (1ull << 63);
    return thread_owner_id;
}

static inline uint32_t switches(weft__worker *w)
{
    return (uint32_t)atomic_load_explicit(&w->ctr.v[WEFT__CTR_INDEX(context_switches)],
                                          memory_order_relaxed);
}

static inline void took(mutex *m, weft__worker *w, weft__task *t, uint64_t id)
{
    atomic_store_explicit(&m->owner, id, memory_order_relaxed);
    if (t) {
        atomic_store_explicit(&m->owner_worker, w->id, memory_order_relaxed);
        atomic_store_explicit(&m->owner_sw, switches(w), memory_order_relaxed);
        t->locks_held++;
    } else {
        atomic_store_explicit(&m->owner_worker, -1, memory_order_relaxed);
    }
}

/* Worth spinning: the holder is a task still on the CPU (a thread holder or
 * a parked task would keep us waiting long). Only tasks spin on this. */
static bool owner_running(mutex *x)
{
    weft__worker *self = weft__self();
    if (!self)
        return false;
    int i = atomic_load_explicit(&x->owner_worker, memory_order_relaxed);
    if (i < 0 || (unsigned)i >= self->rt->nworkers)
        return false;
    weft__worker *w = &self->rt->workers[i];
    return w != self && switches(w) == atomic_load_explicit(&x->owner_sw, memory_order_relaxed) &&
           atomic_load_explicit(&w->running_task, memory_order_relaxed);
}

void weft_mutex_init(weft_mutex *m) { memset(m, 0, sizeof *m); }

void weft_mutex_destroy(weft_mutex *m)
{
    mutex *x = priv(m);
    if (atomic_load_explicit(&x->state, memory_order_relaxed) || x->q.head)
        weft__misuse("weft_mutex_destroy on a mutex that is locked or waited on");
}

static inline __attribute__((always_inline)) int trylock_impl(weft_mutex *m)
{
    mutex *x = priv(m);
    unsigned zero = 0;
    /* acquire: pairs with unlock's release; unlock happens-before lock. */
    if (atomic_compare_exchange_strong_explicit(&x->state, &zero, LOCKED, memory_order_acquire,
                                                memory_order_relaxed)) {
        weft__worker *w = weft__self();
        weft__task *t = w ? w->current : NULL;
        took(x, w, t, me(t));
        return 0;
    }
    return -EBUSY;
}

static bool try_grab(mutex *x)
{
    unsigned s = atomic_load_explicit(&x->state, memory_order_relaxed);
    while (!(s & (LOCKED | STARVING)))
        if (atomic_compare_exchange_weak_explicit(&x->state, &s, s | LOCKED, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static int lock_slow(weft_mutex *m, weft__worker *w, weft__task *t, bool spent);

/* The uncontended lock, kept small so that it needs no stack frame: the
 * budget's yield and contention go to lock_slow. */
static inline __attribute__((always_inline)) int lock_impl(weft_mutex *m)
{
    mutex *x = priv(m);
    weft__worker *w = weft__self();
    weft__task *t = w ? w->current : NULL;
    if (t && WEFT__UNLIKELY(--t->budget == 0))
        return lock_slow(m, w, t, true);
    unsigned zero = 0;
    if (WEFT__LIKELY(atomic_compare_exchange_strong_explicit(&x->state, &zero, LOCKED,
                                                             memory_order_acquire,
                                                             memory_order_relaxed))) {
        took(x, w, t, me(t));
        return 0;
    }
    return lock_slow(m, w, t, false);
}

static __attribute__((noinline)) int lock_slow(weft_mutex *m, weft__worker *w, weft__task *t,
                                               bool spent)
{
    mutex *x = priv(m);
    if (spent) {
        /* The budget is spent: yield before taking the lock, never while
         * holding it (weft__coop_spend). */
        weft__coop_yield(t);
        w = weft__self_fresh();
    }
    uint64_t id = me(t);
    unsigned zero = 0;
    if (atomic_compare_exchange_strong_explicit(&x->state, &zero, LOCKED, memory_order_acquire,
                                                memory_order_relaxed)) {
        took(x, w, t, id);
        return 0;
    }
    if (atomic_load_explicit(&x->owner, memory_order_relaxed) == id) {
        weft__misuse("weft_mutex_lock on a mutex the caller already holds (self-deadlock)");
        return -EDEADLK;
    }
    for (int i = 0; i < SPIN_MAX && (i < SPINS || owner_running(x)); i++) {
        if (atomic_load_explicit(&x->state, memory_order_relaxed) & STARVING)
            break; /* hand-off mode: spinning cannot win it */
        if (try_grab(x)) {
            took(x, w, t, id);
            return 0;
        }
        weft__cpu_relax();
    }
    int64_t started = 0;
    bool waited = false;
    for (;;) {
        w = weft__self_fresh(); /* we may have parked and moved */
        weft__spin_lock(&x->lock);
        unsigned s = atomic_load_explicit(&x->state, memory_order_relaxed);
        if (!(s & LOCKED)) {
            /* Free (in starving mode LOCKED never drops while we wait). */
            if (atomic_compare_exchange_strong_explicit(&x->state, &s, s | LOCKED,
                                                        memory_order_acquire,
                                                        memory_order_relaxed)) {
                weft__spin_unlock(&x->lock);
                took(x, w, t, id);
                return 0;
            }
            weft__spin_unlock(&x->lock);
            continue;
        }
        unsigned want = s | WAITERS;
        int64_t now = weft__now();
        if (!started)
            started = now; /* the wait starts with the first park */
        else if (now - started > STARVE_NS)
            want |= STARVING;
        if (!atomic_compare_exchange_strong_explicit(&x->state, &s, want, memory_order_relaxed,
                                                     memory_order_relaxed)) {
            weft__spin_unlock(&x->lock);
            continue; /* state moved (maybe unlocked): look again */
        }
        /* Not a cancellation point; a waiter that already waited goes
         * first, as in Go. */
        weft__wait_how how = {NULL, WEFT_FOREVER, false, waited};
        weft__wait_note("mutex", m);
        int got = 0;
        weft__waitq_wait_how(&x->lock, &x->q, &how, &got);
        if (got != HANDOFF) /* we are the woken one: back to compete */
            atomic_fetch_and_explicit(&x->state, ~WOKEN, memory_order_relaxed);
        if (got == HANDOFF) {
            /* The unlocker's critical section happens-before this through
             * the park/wake hand-off itself. Leave hand-off mode once it is
             * not needed (Go's rule): this waiter did not wait long, or it
             * was the last one. */
            if (weft__now() - started < STARVE_NS ||
                !(atomic_load_explicit(&x->state, memory_order_relaxed) & WAITERS))
                atomic_fetch_and_explicit(&x->state, ~STARVING, memory_order_relaxed);
            took(x, weft__self_fresh(), t, id);
            return 0;
        }
        waited = true;
    }
}

static void unlock_slow(mutex *x);

static inline __attribute__((always_inline)) void unlock_impl(weft_mutex *m)
{
    mutex *x = priv(m);
    weft__task *t = weft__current();
    uint64_t owner = atomic_load_explicit(&x->owner, memory_order_relaxed);
    if (owner != me(t) || !(atomic_load_explicit(&x->state, memory_order_relaxed) & LOCKED)) {
        weft__misuse("weft_mutex_unlock by a task or thread that does not hold the mutex");
        return;
    }
    if (t)
        t->locks_held--;
    atomic_store_explicit(&x->owner, 0, memory_order_relaxed);
    unsigned s = atomic_load_explicit(&x->state, memory_order_relaxed);
    /* release: the critical section happens-before the next lock. No
     * waiters, or one already woken and on its way: just drop LOCKED. */
    while (!(s & STARVING) && (!(s & WAITERS) || (s & WOKEN)))
        if (atomic_compare_exchange_weak_explicit(&x->state, &s, s & ~LOCKED, memory_order_release,
                                                  memory_order_relaxed))
            return;
    unlock_slow(x);
}

/* Waiters to wake or a hand-off to make: out of line, so that the
 * uncontended unlock needs no stack frame. */
static __attribute__((noinline)) void unlock_slow(mutex *x)
{
    weft__spin_lock(&x->lock);
    unsigned s = atomic_load_explicit(&x->state, memory_order_relaxed);
    weft__waiter *w = NULL;
    if (s & STARVING) {
        w = weft__waitq_claim_first(&x->q, NULL);
        if (w) {
            /* Hand off: LOCKED stays set; the waiter owns it now. */
            w->p->result = HANDOFF;
            if (!x->q.head)
                atomic_fetch_and_explicit(&x->state, ~(WAITERS | STARVING), memory_order_release);
            weft__spin_unlock(&x->lock);
            weft__parker_finish(w->p);
            return;
        }
        atomic_fetch_and_explicit(&x->state, ~STARVING, memory_order_relaxed);
    }
    w = NULL;
    if (!(s & WOKEN)) {
        w = weft__waitq_claim_first(&x->q, NULL);
        if (w)
            atomic_fetch_or_explicit(&x->state, WOKEN, memory_order_relaxed);
    }
    unsigned clear = LOCKED | (x->q.head ? 0u : WAITERS);
    atomic_fetch_and_explicit(&x->state, ~clear, memory_order_release);
    weft__spin_unlock(&x->lock);
    if (w)
        weft__parker_finish(w->p); /* it competes for the mutex again */
}

/* The public calls. For a user's ThreadSanitizer (internal.h, weft__hb_*)
 * unlock happens-before the next lock; the annotated path is a branch of
 * its own at the entry, so the uncontended fast path keeps its code. */
int weft_mutex_trylock(weft_mutex *m)
{
    if (WEFT__UNLIKELY(weft__tsan_hb)) {
        int r = trylock_impl(m);
        if (r == 0)
            weft__hb_acquire_slow(priv(m));
        return r;
    }
    return trylock_impl(m);
}

int weft_mutex_lock(weft_mutex *m)
{
    if (WEFT__UNLIKELY(weft__tsan_hb)) {
        int r = lock_impl(m);
        if (r == 0)
            weft__hb_acquire_slow(priv(m));
        return r;
    }
    return lock_impl(m);
}

void weft_mutex_unlock(weft_mutex *m)
{
    if (WEFT__UNLIKELY(weft__tsan_hb))
        weft__hb_release_slow(priv(m));
    unlock_impl(m);
}

uint64_t weft__mutex_owner(const void *m)
{
    return atomic_load_explicit(&((const mutex *)m)->owner, memory_order_relaxed);
}
