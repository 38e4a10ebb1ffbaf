/* Cancellation of every sync wait, with the "nothing happened" property: a
 * cancelled recv consumed nothing, a cancelled send delivered nothing, a
 * cancelled select performed no case, a cancelled acquire took no permit, a
 * cancelled cond wait consumed no signal; waitgroup and event waits; a
 * cancel on entry fails even when the operation could proceed; mutex_lock
 * is not a cancellation point. Races (on 1, 2 and 4 workers): a cancel and
 * a send / release / signal land at about the same time; conservation: a
 * value whose send returned 0 is received exactly once, a permit or a
 * signal is never lost, a waiter chosen by the waker returns success.
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <sched.h>

static const unsigned worker_counts[] = {1, 2, 4};

/* A scope whose deadline already passed: every cancellation point fails. */
static void enter_cancelled(weft_scope *s) { weft_scope_enter(s, weft_now() - 1); }

static weft_chan *open_chan(size_t cap)
{
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(long), cap));
    return c;
}

/* A task that waits `ms`, then cancels the scope it was given (and sets
 * `issued`, if any). */
typedef struct {
    weft_scope *s;
    weft_nursery *n;
    int ms;
    weft_event *issued;
} cancel_req;

static int cancel_later(void *arg)
{
    cancel_req *c = arg;
    CHECK_OK(weft_sleep(test_ms(c->ms)));
    if (c->s)
        weft_scope_cancel(c->s);
    else
        weft_nursery_cancel(c->n);
    if (c->issued)
        weft_event_set(c->issued);
    return 0;
}

/* How a blocked call is cancelled: 0 = scope deadline, 1 = weft_scope_cancel
 * from another task, 2 = weft_nursery_cancel of the nursery the waiting task
 * is a child of. Runs op(arg) in a child and returns its result. */
typedef int (*op_fn)(void *arg);

typedef struct {
    op_fn op;
    void *arg;
    int how;
    int result;
    bool cancelled_after;
    weft_event *issued; /* if not NULL: set once the cancel took effect */
} cancelled_call;

/* how 0: sets c->issued once the scope's deadline has passed (a sleep never
 * returns early), which is when the scope counts as cancelled. */
typedef struct {
    int64_t deadline;
    weft_event *issued;
} deadline_watch;

static int watch_deadline(void *arg)
{
    deadline_watch *w = arg;
    CHECK_OK(weft_sleep_until(w->deadline));
    weft_event_set(w->issued);
    return 0;
}

static int call_in_scope(void *arg)
{
    cancelled_call *c = arg;
    weft_scope s;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    cancel_req req = {&s, NULL, 10, c->issued};
    int64_t dl = c->how == 0 ? weft_now() + test_ms(10) : WEFT_FOREVER;
    deadline_watch watch = {dl, c->issued};
    weft_scope_enter(&s, dl);
    if (c->how == 0 && c->issued)
        CHECK_OK(weft_spawn(n, watch_deadline, &watch)); /* n is outside s */
    if (c->how == 1)
        CHECK_OK(weft_spawn(n, cancel_later, &req));
    c->result = c->op(c->arg);
    c->cancelled_after = weft_cancelled();
    weft_scope_exit(&s);
    /* how 2: the task itself is cancelled from outside n. */
    CHECK_EQ(weft_nursery_close(n), c->how == 2 ? -ECANCELED : 0);
    return 0;
}

/* Runs op in a child that is cancelled (see call_in_scope) while op waits,
 * or before op is called if the machine is slow (every op must return
 * -ECANCELED either way, but for mutex_lock). If `issued` is not NULL it is
 * set once the cancel took effect. */
static int run_cancelled_ex(op_fn op, void *arg, int how, weft_event *issued)
{
    cancelled_call c = {op, arg, how, 1, false, issued};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, call_in_scope, &c));
    if (how == 2) {
        CHECK_OK(weft_sleep(test_ms(10)));
        weft_nursery_cancel(n);
        if (issued)
            weft_event_set(issued);
    }
    CHECK_OK(weft_nursery_close(n));
    CHECK(c.cancelled_after);
    return c.result;
}

static int run_cancelled(op_fn op, void *arg, int how)
{
    return run_cancelled_ex(op, arg, how, NULL);
}

/* ---- 1. channels ------------------------------------------------------------ */

typedef struct {
    weft_chan *c;
    long v;
} chan_arg;

static int op_recv(void *arg)
{
    chan_arg *a = arg;
    a->v = -7;
    int r = weft_chan_recv(a->c, &a->v);
    if (r != 0)
        CHECK_EQ(a->v, -7); /* nothing was written */
    return r;
}

static int op_send(void *arg)
{
    chan_arg *a = arg;
    return weft_chan_send(a->c, &a->v);
}

static int send_task(void *arg)
{
    chan_arg *a = arg;
    CHECK_OK(weft_chan_send(a->c, &a->v));
    return 0;
}

static int recv_task(void *arg)
{
    chan_arg *a = arg;
    CHECK_OK(weft_chan_recv(a->c, &a->v));
    return 0;
}

static int chan_root(void *arg)
{
    (void)arg;
    for (int how = 0; how < 3; how++) {
        for (size_t cap = 0; cap <= 2; cap += 2) {
            weft_chan *c = open_chan(cap);
            /* A cancelled recv consumed nothing: the next item is still
             * there for the next receiver. */
            chan_arg a = {c, 0};
            CHECK_EQ(run_cancelled(op_recv, &a, how), -ECANCELED);
            long v = 11, out = -1;
            if (cap) {
                CHECK_OK(weft_chan_send(c, &v));
                CHECK_EQ(weft_chan_len(c), 1);
                CHECK_OK(weft_chan_recv(c, &out));
            } else {
                /* No stale receiver: a try_send finds nobody. */
                CHECK_EQ(weft_chan_try_send(c, &v), -EAGAIN);
                chan_arg s = {c, 11};
                weft_nursery *n;
                CHECK_OK(weft_nursery_open(&n));
                CHECK_OK(weft_spawn(n, send_task, &s));
                CHECK_OK(weft_chan_recv(c, &out));
                CHECK_OK(weft_nursery_close(n));
            }
            CHECK_EQ(out, 11);

            /* A cancelled send delivered nothing: a receiver later gets only
             * the other value. Fill a buffered channel so the send parks. */
            for (size_t i = 0; i < cap; i++) {
                long f = 100 + (long)i;
                CHECK_OK(weft_chan_send(c, &f));
            }
            chan_arg s = {c, 666};
            CHECK_EQ(run_cancelled(op_send, &s, how), -ECANCELED);
            CHECK_EQ(weft_chan_len(c), cap);
            for (size_t i = 0; i < cap; i++) {
                CHECK_OK(weft_chan_recv(c, &out));
                CHECK_EQ(out, 100 + (long)i);
            }
            CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN); /* no stale sender */
            chan_arg s2 = {c, 12};
            weft_nursery *n;
            CHECK_OK(weft_nursery_open(&n));
            CHECK_OK(weft_spawn(n, send_task, &s2));
            CHECK_OK(weft_chan_recv(c, &out));
            CHECK_OK(weft_nursery_close(n));
            CHECK_EQ(out, 12);
            CHECK_EQ(weft_chan_try_recv(c, &out), -EAGAIN);
            weft_chan_free(c);
        }
    }

    /* Cancelled on entry: fails even though the operation could proceed. */
    weft_chan *b = open_chan(1), *u = open_chan(0);
    long v = 5, out = -1;
    CHECK_OK(weft_chan_send(b, &v));
    weft_scope s;
    enter_cancelled(&s);
    CHECK_EQ(weft_chan_recv(b, &out), -ECANCELED);
    CHECK_EQ(out, -1);
    CHECK_EQ(weft_chan_len(b), 1);
    weft_scope_exit(&s);
    CHECK_OK(weft_chan_recv(b, &out));
    CHECK_EQ(out, 5);
    enter_cancelled(&s);
    CHECK_EQ(weft_chan_send(b, &v), -ECANCELED);
    CHECK_EQ(weft_chan_len(b), 0);
    weft_scope_exit(&s);
    /* A parked receiver is there, but a cancelled send does not meet it. */
    chan_arg r = {u, -1};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_task, &r));
    CHECK_OK(weft_sleep(test_ms(5)));
    enter_cancelled(&s);
    long bad = 999;
    CHECK_EQ(weft_chan_send(u, &bad), -ECANCELED);
    weft_scope_exit(&s);
    v = 6;
    CHECK_OK(weft_chan_send(u, &v));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r.v, 6);
    weft_chan_free(b);
    weft_chan_free(u);
    return 0;
}

/* ---- 2. select ---------------------------------------------------------------- */

typedef struct {
    weft_chan *empty, *full, *unbuf;
    long in, out;
    weft_case cs[4];
} sel_arg;

static int op_select(void *arg)
{
    sel_arg *a = arg;
    memset(a->cs, 0, sizeof a->cs);
    a->cs[0] = (weft_case){a->empty, WEFT_RECV, &a->out, 12345};
    a->cs[1] = (weft_case){a->full, WEFT_SEND, &a->in, 12345};
    a->cs[2] = (weft_case){a->unbuf, WEFT_RECV, &a->out, 12345};
    a->cs[3] = (weft_case){a->unbuf, WEFT_SEND, &a->in, 12345};
    return weft_select(a->cs, 4, WEFT_FOREVER);
}

static int select_root(void *arg)
{
    (void)arg;
    sel_arg a;
    memset(&a, 0, sizeof a);
    a.empty = open_chan(1);
    a.full = open_chan(1);
    a.unbuf = open_chan(0);
    long v = 1;
    CHECK_OK(weft_chan_send(a.full, &v));
    for (int how = 0; how < 3; how++) {
        a.in = 50;
        a.out = -1;
        CHECK_EQ(run_cancelled(op_select, &a, how), -ECANCELED);
        /* No case performed, none reported. */
        CHECK_EQ(a.out, -1);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(a.cs[i].result, 12345);
        CHECK_EQ(weft_chan_len(a.empty), 0);
        CHECK_EQ(weft_chan_len(a.full), 1);
        /* No waiter left behind on any channel. */
        long x = 3;
        CHECK_EQ(weft_chan_try_send(a.unbuf, &x), -EAGAIN);
        CHECK_EQ(weft_chan_try_recv(a.unbuf, &x), -EAGAIN);
        CHECK_OK(weft_chan_try_send(a.empty, &x));
        CHECK_EQ(weft_chan_len(a.empty), 1);
        CHECK_OK(weft_chan_try_recv(a.empty, &x));
        CHECK_EQ(x, 3);
    }
    /* Cancelled on entry with ready cases: nothing performed. */
    CHECK_OK(weft_chan_send(a.empty, &v));
    CHECK_OK(weft_chan_recv(a.full, NULL));
    weft_scope s;
    enter_cancelled(&s);
    a.out = -1;
    CHECK_EQ(op_select(&a), -ECANCELED);
    CHECK_EQ(a.out, -1);
    CHECK_EQ(weft_chan_len(a.empty), 1);
    CHECK_EQ(weft_chan_len(a.full), 0);
    /* select_try is not a cancellation point; n == 0 is. */
    CHECK_EQ(weft_select(NULL, 0, WEFT_FOREVER), -ECANCELED);
    weft_scope_exit(&s);
    weft_chan_free(a.empty);
    weft_chan_free(a.full);
    weft_chan_free(a.unbuf);
    return 0;
}

/* ---- 3. semaphore, waitgroup, event ----------------------------------------- */

static int op_acquire(void *arg) { return weft_sem_acquire(arg); }
static int op_wg_wait(void *arg) { return weft_waitgroup_wait(arg); }
static int op_event_wait(void *arg) { return weft_event_wait(arg); }

typedef struct {
    weft_sem *s;
    atomic_int state; /* 1 waiting, 2 got it */
} sem_waiter;

static int sem_waiter_task(void *arg)
{
    sem_waiter *w = arg;
    atomic_store(&w->state, 1);
    CHECK_OK(weft_sem_acquire(w->s));
    atomic_store(&w->state, 2);
    return 0;
}

static int wg_waiter_task(void *arg)
{
    CHECK_OK(weft_waitgroup_wait(arg));
    return 0;
}

static int event_waiter_task(void *arg)
{
    CHECK_OK(weft_event_wait(arg));
    return 0;
}

static int misc_root(void *arg)
{
    (void)arg;
    /* Semaphore: a cancelled acquire took no permit. */
    for (int how = 0; how < 3; how++) {
        weft_sem sem;
        weft_sem_init(&sem, 0);
        CHECK_EQ(run_cancelled(op_acquire, &sem, how), -ECANCELED);
        weft_sem_release(&sem); /* goes to the count, not to the gone waiter */
        CHECK_OK(weft_sem_tryacquire(&sem));
        CHECK_EQ(weft_sem_tryacquire(&sem), -EAGAIN);
        weft_sem_destroy(&sem);
    }
    /* Two waiters, the first one cancelled: one release reaches the second. */
    {
        weft_sem sem;
        weft_sem_init(&sem, 0);
        sem_waiter w2 = {&sem, 0};
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        weft_scope s;
        weft_scope_enter(&s, weft_now() + test_ms(30));
        CHECK_OK(weft_spawn(n, sem_waiter_task, &w2)); /* queues behind us, usually */
        CHECK_EQ(weft_sem_acquire(&sem), -ECANCELED);
        CHECK(weft_scope_exit(&s));
        /* No permit was released yet: w2 has none, whether it is queued
         * already or has not even started (a loaded machine). */
        CHECK(atomic_load(&w2.state) != 2);
        weft_sem_release(&sem);
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&w2.state), 2);
        CHECK_EQ(weft_sem_tryacquire(&sem), -EAGAIN);
        weft_sem_destroy(&sem);
    }
    /* Cancelled on entry with a permit available: no permit taken. */
    {
        weft_sem sem;
        weft_sem_init(&sem, 1);
        weft_scope s;
        enter_cancelled(&s);
        CHECK_EQ(weft_sem_acquire(&sem), -ECANCELED);
        CHECK_OK(weft_sem_tryacquire(&sem)); /* not a cancellation point */
        weft_sem_release(&sem);
        weft_scope_exit(&s);
        CHECK_OK(weft_sem_tryacquire(&sem));
        CHECK_EQ(weft_sem_tryacquire(&sem), -EAGAIN);
    }

    /* Waitgroup: a cancelled wait; the group still works for others. */
    for (int how = 0; how < 3; how++) {
        weft_waitgroup wg = WEFT_WAITGROUP_INIT;
        weft_waitgroup_add(&wg, 2);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, wg_waiter_task, &wg));
        CHECK_EQ(run_cancelled(op_wg_wait, &wg, how), -ECANCELED);
        weft_waitgroup_done(&wg);
        weft_waitgroup_done(&wg);
        CHECK_OK(weft_nursery_close(n)); /* the other waiter was woken */
        CHECK_OK(weft_waitgroup_wait(&wg));
        weft_scope s;
        enter_cancelled(&s);
        CHECK_EQ(weft_waitgroup_wait(&wg), -ECANCELED); /* even at zero */
        weft_scope_exit(&s);
        weft_waitgroup_destroy(&wg);
    }

    /* Event: a cancelled wait; the event stays unset; others still wake. */
    for (int how = 0; how < 3; how++) {
        weft_event e = WEFT_EVENT_INIT;
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, event_waiter_task, &e));
        CHECK_EQ(run_cancelled(op_event_wait, &e, how), -ECANCELED);
        CHECK(!weft_event_is_set(&e));
        weft_event_set(&e);
        CHECK_OK(weft_nursery_close(n));
        CHECK_OK(weft_event_wait(&e));
        weft_scope s;
        enter_cancelled(&s);
        CHECK_EQ(weft_event_wait(&e), -ECANCELED); /* even when set */
        weft_scope_exit(&s);
        /* The scope's deadline is a cancel; the wait's own is -ETIMEDOUT. */
        weft_event e2 = WEFT_EVENT_INIT;
        weft_scope_enter(&s, weft_now() + test_ms(5));
        CHECK_EQ(weft_event_wait_until(&e2, weft_now() + LONG_NS), -ECANCELED);
        CHECK(weft_scope_exit(&s));
        weft_scope_enter(&s, weft_now() + LONG_NS);
        CHECK_EQ(weft_event_wait_until(&e2, weft_now() + test_ms(5)), -ETIMEDOUT);
        CHECK(!weft_scope_exit(&s));
        weft_event_destroy(&e);
        weft_event_destroy(&e2);
    }
    return 0;
}

/* ---- 4. condition variable ------------------------------------------------------ */

typedef struct {
    weft_mutex m;
    weft_cond c;
    int tokens;  /* guarded by m */
    int waiting; /* guarded by m */
    weft_scope *scope;
    int w1_result;
    bool w1_took;
    atomic_int w1_done;
    int w2_result;
} cond_set;

static int cond_w1(void *arg)
{
    cond_set *cs = arg;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_OK(weft_mutex_lock(&cs->m));
    cs->scope = &s;
    cs->waiting++;
    int r = 0;
    while (cs->tokens == 0) {
        r = weft_cond_wait(&cs->c, &cs->m);
        if (r != 0)
            break;
    }
    /* The mutex is held again on every return. */
    CHECK_EQ(weft_mutex_trylock(&cs->m), -EBUSY);
    if (cs->tokens > 0 && r == 0) {
        cs->tokens--;
        cs->w1_took = true;
    }
    cs->waiting--;
    cs->w1_result = r;
    cs->scope = NULL;
    weft_mutex_unlock(&cs->m);
    weft_scope_exit(&s);
    atomic_store(&cs->w1_done, 1);
    return 0;
}

static int cond_w2(void *arg)
{
    cond_set *cs = arg;
    CHECK_OK(weft_mutex_lock(&cs->m));
    cs->waiting++;
    int64_t dl = weft_now() + PROMPT_NS; /* liveness */
    int r = 0;
    while (cs->tokens == 0) {
        r = weft_cond_wait_until(&cs->c, &cs->m, dl);
        CHECK(r != -ETIMEDOUT); /* a lost wakeup */
        CHECK_OK(r);
    }
    cs->tokens--;
    cs->waiting--;
    cs->w2_result = r;
    weft_mutex_unlock(&cs->m);
    return 0;
}

static int waiting_now(cond_set *cs)
{
    CHECK_OK(weft_mutex_lock(&cs->m));
    int w = cs->waiting;
    weft_mutex_unlock(&cs->m);
    return w;
}

static void wait_waiting(cond_set *cs, int n) { CHECK_SOON(waiting_now(cs) == n); }

static int cond_root(void *arg)
{
    (void)arg;
    /* Deterministic: cancel w1 (queued first), wait for it to return, then
     * one signal must wake w2. */
    cond_set cs;
    memset(&cs, 0, sizeof cs);
    weft_mutex_init(&cs.m);
    weft_cond_init(&cs.c);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, cond_w1, &cs));
    wait_waiting(&cs, 1);
    CHECK_OK(weft_spawn(n, cond_w2, &cs));
    wait_waiting(&cs, 2);
    CHECK_OK(weft_mutex_lock(&cs.m));
    weft_scope_cancel(cs.scope); /* w1 is in cond_wait: it holds no mutex */
    weft_mutex_unlock(&cs.m);
    while (!atomic_load(&cs.w1_done))
        CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_EQ(cs.w1_result, -ECANCELED);
    CHECK(!cs.w1_took);
    CHECK_OK(weft_mutex_lock(&cs.m));
    cs.tokens++;
    weft_cond_signal(&cs.c);
    weft_mutex_unlock(&cs.m);
    CHECK_OK(weft_nursery_close(n)); /* w2 woke */
    CHECK_EQ(cs.tokens, 0);

    /* Cancelled on entry: -ECANCELED, still holding the mutex. */
    weft_scope s;
    CHECK_OK(weft_mutex_lock(&cs.m));
    enter_cancelled(&s);
    CHECK_EQ(weft_cond_wait(&cs.c, &cs.m), -ECANCELED);
    CHECK_EQ(weft_cond_wait_until(&cs.c, &cs.m, weft_now() + test_ms(1000)), -ECANCELED);
    CHECK_EQ(weft_mutex_trylock(&cs.m), -EBUSY);
    weft_scope_exit(&s);
    /* A scope deadline while waiting: -ECANCELED, holding the mutex. */
    weft_scope_enter(&s, weft_now() + test_ms(5));
    CHECK_EQ(weft_cond_wait(&cs.c, &cs.m), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    CHECK_EQ(weft_mutex_trylock(&cs.m), -EBUSY);
    weft_mutex_unlock(&cs.m);
    CHECK_OK(weft_mutex_trylock(&cs.m));
    weft_mutex_unlock(&cs.m);
    weft_cond_destroy(&cs.c);
    weft_mutex_destroy(&cs.m);
    return 0;
}

/* ---- 5. mutex_lock is not a cancellation point ----------------------------------- */

typedef struct {
    weft_mutex m;
    atomic_int held;
    long plain;
    weft_event cancelled; /* the lock's caller was cancelled */
} mtx_set;

static int mutex_holder(void *arg)
{
    mtx_set *s = arg;
    CHECK_OK(weft_mutex_lock(&s->m));
    atomic_store(&s->held, 1);
    /* Parks holding it until the waiting lock's task was cancelled, so that
     * the lock returns after the cancel whatever the machine's speed. */
    CHECK_OK(weft_event_wait(&s->cancelled));
    CHECK_OK(weft_sleep(test_ms(5)));
    s->plain = 1;
    weft_mutex_unlock(&s->m);
    return 0;
}

static int op_lock(void *arg)
{
    mtx_set *s = arg;
    int r = weft_mutex_lock(&s->m);
    CHECK_EQ(s->plain, 1); /* it waited for the holder's unlock */
    s->plain = 2;
    weft_mutex_unlock(&s->m);
    return r;
}

static int mutex_root(void *arg)
{
    (void)arg;
    for (int how = 0; how < 3; how++) {
        mtx_set s;
        memset(&s, 0, sizeof s);
        weft_mutex_init(&s.m);
        weft_event_init(&s.cancelled);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, mutex_holder, &s));
        CHECK_SOON(atomic_load(&s.held));
        /* The scope is cancelled (after 10 ms) while the lock waits (the
         * holder lets go only after that): the lock still returns 0 with
         * the mutex. */
        CHECK_EQ(run_cancelled_ex(op_lock, &s, how, &s.cancelled), 0);
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(s.plain, 2);
        weft_event_destroy(&s.cancelled);
        weft_mutex_destroy(&s.m);
    }
    /* Cancelled on entry: lock still takes the mutex. */
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_scope s;
    enter_cancelled(&s);
    CHECK_OK(weft_mutex_lock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_unlock(&m);
    CHECK_OK(weft_mutex_trylock(&m));
    weft_mutex_unlock(&m);
    weft_scope_exit(&s);
    return 0;
}

/* ---- 6. races: a cancel and a wake at about the same time ------------------------ */

enum { K_RECV, K_SELECT, K_SEND, K_SEM, K_COND, K_KINDS };

#define FILLER (-5L)

typedef struct {
    int kind;
    size_t cap;
    weft_chan *c, *other;
    weft_sem sem;
    weft_mutex m;
    weft_cond cv;
    int tokens;      /* cond: guarded by m */
    int cond_queued; /* cond: waiters that reached the wait, guarded by m */
    int w2_took;     /* cond: tokens the second waiter took */
    long value;
    /* per round */
    weft_scope *scope; /* the waiter's scope, published before phase = 1 */
    atomic_int phase;
    atomic_int go;
    weft_event first_done;     /* the waiter returned from its wait */
    weft_event canceller_done; /* the waiter keeps its scope entered until then */
    int waiter_result;
    bool waiter_got;       /* received the value / delivered it / took the permit or token */
    bool waiter_cancelled; /* weft_cancelled() right after a successful wait */
    int waker_result;
    long waker_value;
    int jit_cancel, jit_wake;
    /* totals */
    long n_rounds, n_success, n_cancelled, n_success_while_cancelled;
} race;

static void spin_until_go(race *r, int jitter)
{
    /* Spin on the worker: with several workers the parties start together,
     * then each waits its own few hundred nanoseconds, varied per round. */
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        sched_yield();
    for (volatile int i = 0; i < jitter * 64; i++) {
    }
}

static int race_waiter(void *arg)
{
    race *r = arg;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    r->scope = &s;
    long v = -1;
    int res = 0;
    switch (r->kind) {
    case K_RECV:
        atomic_store(&r->phase, 1);
        res = weft_chan_recv(r->c, &v);
        r->waiter_got = res == 0;
        if (res == 0)
            CHECK_EQ(v, r->value);
        else
            CHECK_EQ(v, -1);
        break;
    case K_SELECT: {
        weft_case cs[2] = {{r->other, WEFT_RECV, &v, 7}, {r->c, WEFT_RECV, &v, 7}};
        atomic_store(&r->phase, 1);
        res = weft_select(cs, 2, WEFT_FOREVER);
        if (res >= 0) {
            CHECK_EQ(res, 1);
            CHECK_EQ(cs[1].result, 0);
            CHECK_EQ(v, r->value);
            r->waiter_got = true;
            res = 0;
        } else {
            CHECK_EQ(v, -1);
            CHECK_EQ(cs[0].result, 7);
            CHECK_EQ(cs[1].result, 7);
        }
        break;
    }
    case K_SEND:
        atomic_store(&r->phase, 1);
        res = weft_chan_send(r->c, &r->value);
        r->waiter_got = res == 0; /* here: the value was delivered */
        break;
    case K_SEM:
        atomic_store(&r->phase, 1);
        res = weft_sem_acquire(&r->sem);
        r->waiter_got = res == 0;
        break;
    case K_COND:
        CHECK_OK(weft_mutex_lock(&r->m));
        r->cond_queued++;
        atomic_store(&r->phase, 1);
        while (r->tokens == 0) {
            res = weft_cond_wait(&r->cv, &r->m);
            if (res != 0)
                break;
        }
        /* A cancelled wait consumed no signal: it leaves the token for the
         * other waiter, which the one signal must have woken. */
        if (res == 0) {
            r->tokens--;
            r->waiter_got = true;
        }
        weft_mutex_unlock(&r->m);
        break;
    }
    r->waiter_result = res;
    r->waiter_cancelled = weft_cancelled();
    weft_event_set(&r->first_done);
    /* Keep s entered until the canceller is done with it. */
    weft_scope sh;
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_shield(&sh, true);
    CHECK_OK(weft_event_wait(&r->canceller_done));
    weft_scope_exit(&sh);
    r->scope = NULL;
    weft_scope_exit(&s);
    return 0;
}

/* The second cond waiter: not cancellable (no scope of its own is
 * cancelled); a lost signal shows as its generous deadline passing. */
static int race_cond_w2(void *arg)
{
    race *r = arg;
    CHECK_OK(weft_mutex_lock(&r->m));
    r->cond_queued++;
    int64_t dl = weft_now() + PROMPT_NS; /* liveness */
    while (r->tokens == 0) {
        int res = weft_cond_wait_until(&r->cv, &r->m, dl);
        CHECK(res != -ETIMEDOUT); /* the signal was lost */
        CHECK_OK(res);
    }
    r->tokens--;
    r->w2_took++;
    weft_mutex_unlock(&r->m);
    return 0;
}

static int race_canceller(void *arg)
{
    race *r = arg;
    spin_until_go(r, r->jit_cancel);
    weft_scope_cancel(r->scope);
    weft_event_set(&r->canceller_done);
    return 0;
}

static int race_waker(void *arg)
{
    race *r = arg;
    spin_until_go(r, r->jit_wake);
    switch (r->kind) {
    case K_RECV:
    case K_SELECT:
        r->waker_result = weft_chan_send(r->c, &r->value);
        break;
    case K_SEND:
        r->waker_result = weft_chan_recv(r->c, &r->waker_value);
        break;
    case K_SEM:
        weft_sem_release(&r->sem);
        break;
    case K_COND:
        CHECK_OK(weft_mutex_lock(&r->m));
        r->tokens++;
        weft_cond_signal(&r->cv);
        weft_mutex_unlock(&r->m);
        break;
    }
    return 0;
}

/* Once the waiter is done, unblocks whoever still waits: closes the
 * channel (a parked waker gets -EPIPE); for cond, replaces the token the
 * waiter took so that the second waiter can finish. */
static int race_closer(void *arg)
{
    race *r = arg;
    CHECK_OK(weft_event_wait(&r->first_done));
    if (r->c)
        weft_chan_close(r->c);
    if (r->kind == K_COND && r->waiter_got) {
        CHECK_OK(weft_mutex_lock(&r->m));
        r->tokens++;
        weft_cond_signal(&r->cv);
        weft_mutex_unlock(&r->m);
    }
    return 0;
}

static void race_check(race *r)
{
    CHECK(r->waiter_result == 0 || r->waiter_result == -ECANCELED);
    switch (r->kind) {
    case K_RECV:
    case K_SELECT: {
        /* The value never vanishes: a send that returned 0 was received by
         * the waiter or is still buffered; a failed send (-EPIPE: the
         * waiter was gone) delivered nothing. */
        long left = -1;
        int lr = weft_chan_try_recv(r->c, &left);
        bool buffered = lr == 0;
        if (buffered)
            CHECK_EQ(left, r->value);
        else
            CHECK_EQ(lr, -EPIPE);
        if (r->waker_result == 0) {
            CHECK_EQ((int)r->waiter_got + (int)buffered, 1);
        } else {
            CHECK_EQ(r->waker_result, -EPIPE);
            CHECK(!r->waiter_got && !buffered);
        }
        if (!r->cap) /* rendezvous: the waiter got it iff the send returned 0 */
            CHECK_EQ(r->waiter_got, r->waker_result == 0);
        break;
    }
    case K_SEND: {
        /* The waiter's value was delivered (send 0) iff the waker received
         * it or it sits in the buffer; the filler is seen exactly once. */
        int seen_value = 0, seen_filler = 0;
        long v;
        if (r->waker_result == 0) {
            seen_value += r->waker_value == r->value;
            seen_filler += r->waker_value == FILLER;
            CHECK(r->waker_value == r->value || r->waker_value == FILLER);
        } else {
            CHECK_EQ(r->waker_result, -EPIPE);
        }
        while (weft_chan_try_recv(r->c, &v) == 0) {
            CHECK(v == r->value || v == FILLER);
            seen_value += v == r->value;
            seen_filler += v == FILLER;
        }
        CHECK_EQ(seen_value, (int)r->waiter_got);
        CHECK_EQ(seen_filler, r->cap ? 1 : 0);
        break;
    }
    case K_SEM:
        /* One release: the permit is the waiter's or in the count. */
        CHECK_EQ((int)r->waiter_got + (weft_sem_tryacquire(&r->sem) == 0), 1);
        CHECK_EQ(weft_sem_tryacquire(&r->sem), -EAGAIN);
        CHECK_EQ(r->waiter_got, r->waiter_result == 0);
        break;
    case K_COND:
        /* Tokens: 1 from the waker, +1 from the closer if the waiter took
         * one; the second waiter took exactly one, none is left. */
        CHECK_EQ(r->w2_took, 1);
        CHECK_EQ(r->tokens, 0);
        break;
    }
}

/* Rounds per kind and worker count: up to test_scale(5000), but no more
 * than fit in RACE_BUDGET_NS after the first 20. A round takes a fraction
 * of a millisecond on an idle machine, but its parties spin (sched_yield)
 * waiting for each other, and on a loaded machine every sched_yield may
 * hand a whole time slice to another process: rounds of tens of ms. The
 * test's duration must not grow with that; every round checks the same
 * things, only their number varies. */
#define RACE_MIN_ROUNDS 20
#define RACE_BUDGET_NS ((int64_t)3 * 1000000000)

static int race_root(void *arg)
{
    race *r = arg;
    long rounds = test_scale(5000);
    int64_t budget_end = weft_now() + RACE_BUDGET_NS;
    for (long i = 0; i < rounds; i++) {
        if (i >= RACE_MIN_ROUNDS && weft_now() > budget_end)
            break;
        bool chan = r->kind == K_RECV || r->kind == K_SELECT || r->kind == K_SEND;
        r->cap = (i % 3 == 2) ? 1 : 0;
        r->c = r->other = NULL;
        if (chan) {
            CHECK_OK(weft_chan_open(&r->c, sizeof(long), r->cap));
            CHECK_OK(weft_chan_open(&r->other, sizeof(long), 0));
            if (r->kind == K_SEND && r->cap) {
                long f = FILLER; /* full, so the waiter's send parks */
                CHECK_OK(weft_chan_send(r->c, &f));
            }
        }
        weft_sem_init(&r->sem, 0);
        r->tokens = r->cond_queued = r->w2_took = 0;
        r->value = 1000 + i;
        r->scope = NULL;
        atomic_store(&r->phase, 0);
        atomic_store(&r->go, 0);
        r->waiter_result = 1;
        r->waiter_got = r->waiter_cancelled = false;
        r->waker_result = 1;
        r->waker_value = -1;
        r->jit_cancel = (int)(i * 7 % 23);
        r->jit_wake = (int)(i * 5 % 13);
        weft_event_init(&r->first_done);
        weft_event_init(&r->canceller_done);

        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, race_waiter, r));
        while (!atomic_load(&r->phase))
            CHECK_OK(weft_yield());
        if (r->kind == K_COND) {
            CHECK_OK(weft_spawn(n, race_cond_w2, r));
            for (;;) { /* both queued on the cond (queued before unlocking) */
                CHECK_OK(weft_mutex_lock(&r->m));
                int q = r->cond_queued;
                weft_mutex_unlock(&r->m);
                if (q == 2)
                    break;
                CHECK_OK(weft_yield());
            }
        }
        if (i & 1)
            CHECK_OK(weft_yield()); /* sometimes the waiter is surely parked */
        if (i & 2) {                /* vary who is first in line */
            CHECK_OK(weft_spawn(n, race_canceller, r));
            CHECK_OK(weft_spawn(n, race_waker, r));
        } else {
            CHECK_OK(weft_spawn(n, race_waker, r));
            CHECK_OK(weft_spawn(n, race_canceller, r));
        }
        CHECK_OK(weft_spawn(n, race_closer, r));
        /* Give idle workers a moment to steal the two racers, so that they
         * start on different threads. */
        for (int k = 0; k < (int)(i % 4) * 8; k++)
            sched_yield();
        atomic_store_explicit(&r->go, 1, memory_order_release);
        CHECK_OK(weft_nursery_close(n));

        race_check(r);
        r->n_rounds++;
        if (r->waiter_result == 0) {
            r->n_success++;
            if (r->waiter_cancelled)
                r->n_success_while_cancelled++;
        } else {
            r->n_cancelled++;
        }
        if (chan) {
            weft_chan_free(r->c);
            weft_chan_free(r->other);
        }
        weft_sem_destroy(&r->sem);
        weft_event_destroy(&r->first_done);
        weft_event_destroy(&r->canceller_done);
    }
    return 0;
}

static void test_races(void)
{
    static const char *names[K_KINDS] = {"recv", "select", "send", "sem", "cond"};
    for (int kind = 0; kind < K_KINDS; kind++) {
        long succ = 0, canc = 0, both = 0, rounds = 0;
        for (size_t w = 0; w < 3; w++) {
            race *r = calloc(1, sizeof *r);
            CHECK(r != NULL);
            r->kind = kind;
            weft_mutex_init(&r->m);
            weft_cond_init(&r->cv);
            CHECK_OK(test_run(worker_counts[w], race_root, r));
            CHECK_EQ(r->n_success + r->n_cancelled, r->n_rounds);
            if (getenv("SYNC_CANCEL_VERBOSE"))
                printf("  %u workers: %ld woken, %ld cancelled\n", worker_counts[w], r->n_success,
                       r->n_cancelled);
            succ += r->n_success;
            canc += r->n_cancelled;
            both += r->n_success_while_cancelled;
            rounds += r->n_rounds;
            free(r);
        }
        printf("sync_cancel: race %-6s: %ld rounds: %ld woken, %ld cancelled, %ld woken although "
               "cancelled\n",
               names[kind], rounds, succ, canc, both);
        fflush(stdout);
    }
}

/* ---- main ------------------------------------------------------------------------ */

int main(void)
{
    test_watchdog(115);
    for (size_t w = 0; w < 3; w++) {
        unsigned nw = worker_counts[w];
        CHECK_OK(test_run(nw, chan_root, NULL));
        CHECK_OK(test_run(nw, select_root, NULL));
        CHECK_OK(test_run(nw, misc_root, NULL));
        CHECK_OK(test_run(nw, cond_root, NULL));
        CHECK_OK(test_run(nw, mutex_root, NULL));
    }
    printf("sync_cancel: units ok\n");
    fflush(stdout);
    test_races();
    printf("sync_cancel: ok\n");
    return 0;
}
