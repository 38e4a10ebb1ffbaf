/*
 * structured_scope.c - cancel scopes: deadlines, cancel from tasks and plain
 * threads, past deadlines, weft_cancelled, shields (at once, also against
 * earlier cancels; own deadline still counts; dropping one exposes the
 * outer cancel), stickiness, moving deadlines, nested scopes, misuse, and
 * weft_cancelled inside weft_blocking bodies.
 */
/* TIMEOUT: 60 */
/* LABELS: unit */
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

static void plain_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- deadlines ------------------------------------------------------------------ */

static int case_deadline(void *arg)
{
    (void)arg;
    CHECK(!weft_cancelled());
    weft_scope s;
    int64_t t0 = weft_now();
    int64_t dl = t0 + test_ms(20);
    weft_scope_enter(&s, dl);
    CHECK(!weft_cancelled());
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    int64_t t1 = weft_now();
    CHECK(t1 >= dl); /* never early */
    CHECK(t1 - t0 < PROMPT_NS);
    CHECK(weft_cancelled());
    CHECK(weft_scope_exit(&s));
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(1)));

    /* weft_sleep_until too, and a wait whose own deadline comes first is not
     * a cancel. */
    weft_scope_enter(&s, weft_now() + LONG_NS);
    CHECK_OK(weft_sleep_until(weft_now() + test_ms(5)));
    CHECK(!weft_scope_exit(&s));

    weft_scope_enter(&s, weft_now() + test_ms(10));
    CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* No deadline: exits false. */
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_OK(weft_yield());
    CHECK_OK(weft_checkpoint());
    CHECK(!weft_scope_exit(&s));
    return 0;
}

/* ---- cancel from another task ----------------------------------------------------- */

static weft_scope *_Atomic g_scope;
static atomic_int g_cancel_done;

static int cancel_published_scope(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(10)));
    weft_scope_cancel(atomic_load(&g_scope));
    atomic_store(&g_cancel_done, 1);
    return 0;
}

static int case_cancel_from_task(void *arg)
{
    (void)arg;
    weft_nursery *outer;
    CHECK_OK(weft_nursery_open(&outer));
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_scope, &s);
    atomic_store(&g_cancel_done, 0);
    /* The canceller lives in a nursery outside s, so s's cancel does not
     * reach it; s stays entered until it is done. */
    CHECK_OK(weft_spawn(outer, cancel_published_scope, NULL));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK(weft_cancelled());
    /* The canceller does not park inside weft_scope_cancel; wait until it has
     * returned from it before s goes away (no cancellation points here). */
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK(!weft_cancelled());
    CHECK_OK(weft_nursery_close(outer)); /* the canceller was not cancelled */
    return 0;
}

/* ---- cancel from a plain thread ------------------------------------------------------ */

static void *plain_canceller(void *arg)
{
    (void)arg;
    CHECK(!weft_in_task());
    CHECK(!weft_cancelled()); /* a plain thread is never cancelled */
    plain_sleep_ms(10);
    weft_scope_cancel(atomic_load(&g_scope));
    atomic_store(&g_cancel_done, 1);
    return NULL;
}

static int join_fn(void *arg) { return -pthread_join(*(pthread_t *)arg, NULL); }

static int case_cancel_from_thread(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_scope, &s);
    atomic_store(&g_cancel_done, 0);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, plain_canceller, NULL));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_now() - t0 < PROMPT_NS);
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    /* Not cancelled any more: weft_blocking runs the join. */
    CHECK_OK(weft_blocking(join_fn, &th));
    return 0;
}

/* ---- a deadline in the past ------------------------------------------------------------- */

static int case_past_deadline(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s, weft_now() - 1);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_yield(), -ECANCELED);
    CHECK_EQ(weft_sleep(0), -ECANCELED);
    CHECK_EQ(weft_sleep(-5), -ECANCELED);
    CHECK_EQ(weft_sleep_until(0), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* 0 (the epoch of CLOCK_MONOTONIC) and "exactly now". */
    weft_scope_enter(&s, 0);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    weft_scope_enter(&s, weft_now());
    CHECK_EQ(weft_yield(), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* Outside a cancelled scope these are fine. */
    CHECK_OK(weft_checkpoint());
    CHECK_OK(weft_yield());
    CHECK_OK(weft_sleep(0));
    CHECK_OK(weft_sleep_until(0));
    return 0;
}

/* ---- weft_cancelled ---------------------------------------------------------------------- */

static int case_cancelled_query(void *arg)
{
    (void)arg;
    CHECK(!weft_cancelled());
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK(!weft_cancelled());
    weft_scope_cancel(&s);
    CHECK(weft_cancelled());
    weft_scope_cancel(&s); /* idempotent */
    CHECK(weft_cancelled());
    CHECK(weft_scope_exit(&s));
    CHECK(!weft_cancelled());
    return 0;
}

/* ---- shields ----------------------------------------------------------------------------- */

static weft_scope *_Atomic g_outer;

static int cancel_outer_later(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_scope_cancel(atomic_load(&g_outer));
    return 0;
}

static int case_shield(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    weft_scope_enter(&outer, WEFT_FOREVER);
    atomic_store(&g_outer, &outer);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_shield(&inner, true);
    /* A task inside the shield cancels the outer scope while we sleep. */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, cancel_outer_later, NULL));
    CHECK_OK(weft_sleep(test_ms(30)));
    CHECK(!weft_cancelled());
    CHECK_OK(weft_checkpoint());
    CHECK_OK(weft_nursery_close(n));
    CHECK(!weft_scope_exit(&inner));
    /* Outside the shield the outer cancel counts. */
    CHECK(weft_cancelled());
    CHECK_EQ(weft_sleep(test_ms(1)), -ECANCELED);
    CHECK(weft_scope_exit(&outer));
    CHECK(!weft_cancelled());

    /* The shielded scope's own deadline still cancels. */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    int64_t t0 = weft_now();
    weft_scope_enter(&inner, weft_now() + test_ms(20));
    weft_scope_shield(&inner, true);
    CHECK(!weft_cancelled());
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK(weft_scope_exit(&inner));
    CHECK(weft_scope_exit(&outer));

    /* And its own weft_scope_cancel. */
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_shield(&inner, true);
    weft_scope_cancel(&inner);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&inner));
    CHECK(!weft_cancelled());
    return 0;
}

static int case_shield_at_once(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    CHECK(weft_cancelled());
    weft_scope_enter(&inner, WEFT_FOREVER);
    CHECK(weft_cancelled()); /* entering a scope does not shield */
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    weft_scope_shield(&inner, true);
    CHECK(!weft_cancelled());
    CHECK_OK(weft_checkpoint());
    CHECK_OK(weft_yield());
    CHECK_OK(weft_sleep(test_ms(1)));
    /* Dropping the shield exposes the outer cancel at the next point. */
    weft_scope_shield(&inner, false);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_sleep(test_ms(1)), -ECANCELED);
    /* inner itself was never cancelled. */
    CHECK(!weft_scope_exit(&inner));
    CHECK(weft_scope_exit(&outer));

    /* An outer deadline that passed is shielded the same way. */
    weft_scope_enter(&outer, weft_now() - 1);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_shield(&inner, true);
    CHECK_OK(weft_sleep(test_ms(1)));
    weft_scope_shield(&inner, false);
    CHECK_EQ(weft_yield(), -ECANCELED);
    CHECK(!weft_scope_exit(&inner));
    CHECK(weft_scope_exit(&outer));
    return 0;
}

/* Dropping a shield wakes a child parked under it. */
static atomic_int g_child_result;
static atomic_int g_child_done;

static int child_sleep_long(void *arg)
{
    (void)arg;
    int r = weft_sleep(LONG_NS);
    atomic_store(&g_child_result, r);
    atomic_store(&g_child_done, 1);
    return r;
}

static int case_unshield_wakes_children(void *arg)
{
    (void)arg;
    atomic_store(&g_child_result, 12345);
    atomic_store(&g_child_done, 0);
    weft_scope outer, inner;
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_shield(&inner, true);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, child_sleep_long, NULL));
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_scope_cancel(&outer);
    /* Shielded: the child keeps sleeping, spawning still works. */
    CHECK_OK(weft_sleep(test_ms(20)));
    CHECK_EQ(atomic_load(&g_child_done), 0);
    int64_t t0 = weft_now();
    weft_scope_shield(&inner, false);
    CHECK_EQ(weft_nursery_close(n), -ECANCELED); /* cancelled by a scope outside n */
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_child_result), -ECANCELED);
    CHECK(!weft_scope_exit(&inner));
    CHECK(weft_scope_exit(&outer));
    return 0;
}

/* Children of a nursery inside a shielded scope are not cancelled by an
 * outer cancel. */
static atomic_int g_ok_children;

static int child_sleep_short(void *arg)
{
    (void)arg;
    int r = weft_sleep(test_ms(30));
    if (r == 0)
        atomic_fetch_add(&g_ok_children, 1);
    return r;
}

static int case_shielded_nursery(void *arg)
{
    (void)arg;
    atomic_store(&g_ok_children, 0);
    weft_scope outer, inner;
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_shield(&inner, true);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, child_sleep_short, NULL));
    weft_scope_cancel(&outer);
    /* Spawning after the outer cancel: the child would not start cancelled. */
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, child_sleep_short, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_ok_children), 8);
    CHECK(!weft_scope_exit(&inner));
    CHECK(weft_scope_exit(&outer));
    return 0;
}

/* ---- stickiness and moving deadlines ------------------------------------------------------ */

static int case_sticky(void *arg)
{
    (void)arg;
    weft_scope s;
    /* (a) The deadline passes while nobody looks (no cancellation point),
     * then moves later: still cancelled. */
    int64_t dl = weft_now() + test_ms(5);
    weft_scope_enter(&s, dl);
    while (weft_now() <= dl) {
    }
    weft_scope_set_deadline(&s, weft_now() + LONG_NS);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* (b) The deadline fired a parked sleeper, then moves later. */
    weft_scope_enter(&s, weft_now() + test_ms(5));
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    weft_scope_set_deadline(&s, WEFT_FOREVER);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_sleep(test_ms(1)), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* (c) A cancel stays when a deadline is set afterwards. */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    weft_scope_set_deadline(&s, weft_now() + LONG_NS);
    CHECK_EQ(weft_yield(), -ECANCELED);
    CHECK(weft_scope_exit(&s));

    /* (d) A deadline moved later before it passed does not cancel (far
     * enough out that it cannot pass between the two calls). */
    weft_scope_enter(&s, weft_now() + LONG_NS);
    weft_scope_set_deadline(&s, WEFT_FOREVER);
    CHECK_OK(weft_sleep(test_ms(30)));
    CHECK(!weft_cancelled());
    CHECK(!weft_scope_exit(&s));
    return 0;
}

/* A deadline moved later by another task while we are parked under it,
 * before it passed: the parked sleep is not cancelled. */
static atomic_llong g_moved_at;
static weft_event g_moved;

static int move_outer_later(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(20))); /* the sleeper has most likely parked */
    weft_scope_set_deadline(atomic_load(&g_outer), WEFT_FOREVER);
    /* Read after the move: if this is before the old deadline, the move
     * certainly came first (a timer never fires early). */
    atomic_store(&g_moved_at, weft_now());
    weft_event_set(&g_moved);
    return 0;
}

static int case_move_later_while_parked(void *arg)
{
    (void)arg;
    weft_event_init(&g_moved);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n)); /* outside s: s's deadline does not reach the mover */
    weft_scope s;
    int64_t old_deadline = weft_now() + test_ms(300);
    weft_scope_enter(&s, old_deadline);
    atomic_store(&g_outer, &s);
    CHECK_OK(weft_spawn(n, move_outer_later, NULL));
    /* We park (with a timer at s's deadline); the mover runs meanwhile. */
    int r = weft_sleep(test_ms(400));
    /* Keep s entered until the mover is done with it; shielded, because s
     * is cancelled if the mover came late. */
    weft_scope sh;
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_shield(&sh, true);
    CHECK_OK(weft_event_wait(&g_moved));
    CHECK(!weft_scope_exit(&sh));
    if (atomic_load(&g_moved_at) < old_deadline) {
        CHECK_OK(r);
        CHECK(!weft_scope_exit(&s));
    } else {
        /* The mover was held up past the old deadline: inconclusive. */
        fprintf(stderr, "move_later: mover ran late, result not checked\n");
        (void)weft_scope_exit(&s);
    }
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&g_moved);
    return 0;
}

/* Moving a deadline earlier wakes an already-parked sleeper at the new one. */
static atomic_llong g_new_deadline;

static int move_outer_earlier(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(10))); /* the sleeper is parked by now (or soon) */
    int64_t dl = weft_now() + test_ms(20);
    atomic_store(&g_new_deadline, dl);
    weft_scope_set_deadline(atomic_load(&g_outer), dl);
    atomic_store(&g_cancel_done, 1);
    return 0;
}

static int case_move_earlier_while_parked(void *arg)
{
    (void)arg;
    atomic_store(&g_cancel_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_outer, &s);
    CHECK_OK(weft_spawn(n, move_outer_earlier, NULL));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    int64_t t1 = weft_now();
    CHECK(t1 - t0 < PROMPT_NS);
    CHECK(t1 >= atomic_load(&g_new_deadline));
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));

    /* From a finite deadline to an earlier one. */
    atomic_store(&g_cancel_done, 0);
    CHECK_OK(weft_nursery_open(&n));
    weft_scope_enter(&s, weft_now() + LONG_NS);
    atomic_store(&g_outer, &s);
    CHECK_OK(weft_spawn(n, move_outer_earlier, NULL));
    t0 = weft_now();
    CHECK_EQ(weft_sleep(2 * LONG_NS), -ECANCELED);
    t1 = weft_now();
    CHECK(t1 - t0 < PROMPT_NS);
    CHECK(t1 >= atomic_load(&g_new_deadline));
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* The same, for a sleeper parked with no timer at all (no deadline of its own
 * and none in its scopes when it parked). */
static int case_move_earlier_no_timer(void *arg)
{
    (void)arg;
    atomic_store(&g_cancel_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_outer, &s);
    CHECK_OK(weft_spawn(n, move_outer_earlier, NULL));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
    int64_t t1 = weft_now();
    CHECK(t1 - t0 < PROMPT_NS);
    CHECK(t1 >= atomic_load(&g_new_deadline));
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* ---- nested scopes ----------------------------------------------------------------------- */

static int case_nested(void *arg)
{
    (void)arg;
    weft_scope outer, inner;
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_cancel(&inner);
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_scope_exit(&inner));
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(1)));
    CHECK(!weft_scope_exit(&outer));

    /* An inner deadline, likewise. */
    weft_scope_enter(&outer, weft_now() + LONG_NS);
    weft_scope_enter(&inner, weft_now() + test_ms(5));
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_scope_exit(&inner));
    CHECK_OK(weft_sleep(test_ms(1)));
    CHECK(!weft_scope_exit(&outer));

    /* An outer cancel reaches inner code; exit of the (uncancelled) inner
     * scope reports false, the outer one true. */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(!weft_scope_exit(&inner));
    CHECK(weft_cancelled());
    CHECK(weft_scope_exit(&outer));
    CHECK(!weft_cancelled());

    /* Scopes around a nursery: the inner cancel reaches its children, and
     * close reports the scope outside n. */
    atomic_store(&g_child_result, 12345);
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, child_sleep_long, NULL));
    CHECK_OK(weft_sleep(test_ms(2)));
    weft_scope_cancel(&outer);
    CHECK_EQ(weft_nursery_close(n), -ECANCELED);
    CHECK_EQ(atomic_load(&g_child_result), -ECANCELED);
    CHECK(weft_scope_exit(&outer));
    return 0;
}

/* ---- misuse: exiting out of order ------------------------------------------------------------ */

static int case_misuse_out_of_order(void *arg)
{
    (void)arg;
    weft_scope a, b;
    weft_scope_enter(&a, WEFT_FOREVER);
    weft_scope_enter(&b, WEFT_FOREVER);
    (void)weft_scope_exit(&a); /* b is still entered: reported */
    (void)weft_scope_exit(&b); /* b is gone already: reported */
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(1)));

    /* The stack is sane again: a fresh scope works normally. */
    weft_scope c;
    weft_scope_enter(&c, WEFT_FOREVER);
    weft_scope_cancel(&c);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&c));
    CHECK_OK(weft_checkpoint());

    /* Exiting a scope twice, and one never entered (zeroed). */
    weft_scope_enter(&c, WEFT_FOREVER);
    CHECK(!weft_scope_exit(&c));
    (void)weft_scope_exit(&c);
    weft_scope z;
    memset(&z, 0, sizeof z);
    (void)weft_scope_exit(&z);
    CHECK_OK(weft_sleep(test_ms(1)));

    /* Cancelled scopes out of order: afterwards nothing is cancelled. */
    weft_scope_enter(&a, WEFT_FOREVER);
    weft_scope_enter(&b, WEFT_FOREVER);
    weft_scope_cancel(&b);
    (void)weft_scope_exit(&a);
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(1)));

    /* A nursery still works too. */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, child_sleep_short, NULL));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* ---- weft_cancelled inside weft_blocking --------------------------------------------------------
 */

static atomic_int g_blocking_started;

static int blocking_poll_cancel(void *arg)
{
    (void)arg;
    CHECK(!weft_in_task());
    bool at_start = weft_cancelled();
    atomic_store(&g_blocking_started, 1);
    if (at_start)
        return -EBADE; /* must not be cancelled yet */
    int64_t give_up = weft_now() + PROMPT_NS;
    while (weft_now() < give_up) {
        if (weft_cancelled())
            return 0;
        plain_sleep_ms(1);
    }
    return -ETIMEDOUT;
}

static int cancel_after_blocking_started(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_blocking_started))
        CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_scope_cancel(atomic_load(&g_scope));
    atomic_store(&g_cancel_done, 1);
    return 0;
}

static int blocking_check_not_cancelled(void *arg)
{
    (void)arg;
    return weft_cancelled() ? -EBADE : 0;
}

static int case_blocking_cancelled(void *arg)
{
    (void)arg;
    atomic_store(&g_blocking_started, 0);
    atomic_store(&g_cancel_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_scope, &s);
    CHECK_OK(weft_spawn(n, cancel_after_blocking_started, NULL));
    int64_t t0 = weft_now();
    /* Once started, weft_blocking waits for fn and returns its result. */
    CHECK_OK(weft_blocking(blocking_poll_cancel, NULL));
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));

    /* Not cancelled: false inside the body. */
    CHECK_OK(weft_blocking(blocking_check_not_cancelled, NULL));

    /* A deadline that passed: true inside the body, if it runs at all. */
    weft_scope_enter(&s, weft_now() + test_ms(1));
    int64_t dl = weft_now() + test_ms(1);
    while (weft_now() <= dl) {
    }
    int r = weft_blocking(blocking_check_not_cancelled, NULL);
    CHECK(r == -EBADE || r == -ECANCELED);
    CHECK(weft_scope_exit(&s));
    return 0;
}

int main(void)
{
    test_watchdog(60);
    /* Outside any runtime: a plain thread is never cancelled. */
    CHECK(!weft_cancelled());
    RUN(case_deadline);
    RUN(case_cancel_from_task);
    RUN(case_cancel_from_thread);
    RUN(case_past_deadline);
    RUN(case_cancelled_query);
    RUN(case_shield);
    RUN(case_shield_at_once);
    RUN(case_unshield_wakes_children);
    RUN(case_shielded_nursery);
    RUN(case_sticky);
    RUN(case_nested);
    RUN(case_misuse_out_of_order);
    RUN(case_blocking_cancelled);
    RUN(case_move_earlier_while_parked);
    RUN(case_move_later_while_parked);
    RUN(case_move_earlier_no_timer);
    /* The canceller stalls between the flag and the generation bump (as if
     * preempted there): a checkpoint after the blocking call must still
     * agree with what the call's body saw. */
    setenv("WEFT_TEST_DELAY", "cancel_bump=100000", 1);
    RUN(case_blocking_cancelled);
    unsetenv("WEFT_TEST_DELAY");
    CHECK(!weft_cancelled());
    return 0;
}
