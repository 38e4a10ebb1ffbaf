/*
 * structured_start.c - weft_nursery_start / weft_task_started: the result
 * rules (0 after started, the child's error, -ECHILD, -ECANCELED), which
 * scopes cover the child before and after it started, the
 * "weft_task_started happens-before start returns" rule, and misuse.
 */
/* TIMEOUT: 60 */
/* LABELS: unit */
#include "test.h"

#include <sched.h>

/* ---- start returns 0 after weft_task_started; the child lives on -------------- */

typedef struct {
    int before;      /* plain: written before weft_task_started */
    weft_event go;   /* set by the starter after start returned */
    atomic_int done; /* the child finished its after-start work */
    atomic_int after_result;
    int fail_with; /* returned after the start */
} svc;

static int service(void *arg)
{
    svc *s = arg;
    s->before = 42;
    weft_task_started();
    /* Runs on under the nursery after start returned. */
    CHECK_OK(weft_event_wait(&s->go));
    CHECK_OK(weft_sleep(test_ms(5)));
    atomic_store(&s->done, 1);
    return s->fail_with;
}

static int case_start_ok(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        svc s = {.before = 0};
        weft_event_init(&s.go);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_nursery_start(n, service, &s));
        /* weft_task_started happens-before start returns: a plain read. */
        CHECK_EQ(s.before, 42);
        CHECK_EQ(atomic_load(&s.done), 0); /* it waits for go */
        weft_event_set(&s.go);
        CHECK_OK(weft_nursery_close(n)); /* close waits for it */
        CHECK_EQ(atomic_load(&s.done), 1);
        weft_event_destroy(&s.go);
    }

    /* After the start its result goes to the nursery. */
    svc s = {.before = 0, .fail_with = -EPIPE};
    weft_event_init(&s.go);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_nursery_start(n, service, &s));
    weft_event_set(&s.go);
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    CHECK_EQ(atomic_load(&s.done), 1);
    weft_event_destroy(&s.go);
    return 0;
}

/* ---- results before the start ------------------------------------------------- */

static int fail_before_start(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(2)));
    return -EPIPE;
}

static int zero_without_start(void *arg)
{
    (void)arg;
    weft_yield();
    return 0;
}

static int positive_without_start(void *arg)
{
    (void)arg;
    return 3;
}

static atomic_int g_sibling_ok;

static int sibling(void *arg)
{
    (void)arg;
    if (weft_sleep(test_ms(20)) == 0)
        atomic_store(&g_sibling_ok, 1);
    return 0;
}

static int case_start_results(void *arg)
{
    (void)arg;
    atomic_store(&g_sibling_ok, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sibling, NULL));
    /* The error goes to start only: n is neither failed nor cancelled. */
    CHECK_EQ(weft_nursery_start(n, fail_before_start, NULL), -EPIPE);
    CHECK_EQ(weft_nursery_start(n, zero_without_start, NULL), -ECHILD);
    CHECK_EQ(weft_nursery_start(n, positive_without_start, NULL), -EINVAL);
    CHECK(!weft_cancelled());
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_sibling_ok), 1);

    CHECK_OK(weft_nursery_open(&n));
    CHECK_EQ(weft_nursery_start(n, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_nursery_start(NULL, zero_without_start, NULL), -EINVAL);
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* ---- the caller cancelled while the child has not started ------------------------ */

static atomic_int g_child_result;
static atomic_int g_child_ran;

static int never_starts(void *arg)
{
    (void)arg;
    atomic_store(&g_child_ran, 1);
    int r = weft_sleep(LONG_NS);
    atomic_store(&g_child_result, r);
    return r;
}

static int case_caller_cancelled_deadline(void *arg)
{
    (void)arg;
    atomic_store(&g_child_result, 12345);
    atomic_store(&g_sibling_ok, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sibling, NULL));
    weft_scope s;
    int64_t t0 = weft_now();
    weft_scope_enter(&s, weft_now() + test_ms(20));
    /* The child runs under s until it starts: s's deadline cancels it. */
    CHECK_EQ(weft_nursery_start(n, never_starts, NULL), -ECANCELED);
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_child_result), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    /* n was not cancelled: its other child finished normally. */
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_sibling_ok), 1);

    /* Cancelled on entry: -ECANCELED. */
    CHECK_OK(weft_nursery_open(&n));
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_nursery_start(n, never_starts, NULL), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* An explicit weft_scope_cancel of the caller's scope, from another task. */
static weft_scope *_Atomic g_scope;
static atomic_int g_cancel_done;

static int cancel_scope_later(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_child_ran))
        CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_scope_cancel(atomic_load(&g_scope));
    atomic_store(&g_cancel_done, 1);
    return 0;
}

static int case_caller_cancelled_explicit(void *arg)
{
    (void)arg;
    atomic_store(&g_child_result, 12345);
    atomic_store(&g_child_ran, 0);
    atomic_store(&g_cancel_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    atomic_store(&g_scope, &s);
    /* The canceller is a child of n (outside s): not cancelled by s. */
    CHECK_OK(weft_spawn(n, cancel_scope_later, NULL));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_nursery_start(n, never_starts, NULL), -ECANCELED);
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_child_result), -ECANCELED);
    while (!atomic_load(&g_cancel_done))
        sched_yield();
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* Before it started, the child runs under the caller's scopes, not n's: a
 * cancel of n (which the caller is not inside) does not reach it until it
 * calls weft_task_started. */
static weft_nursery *g_n;
static weft_event g_running, g_ready;
static atomic_int g_start_rc;

static int start_late(void *arg)
{
    (void)arg;
    weft_event_set(&g_running);          /* start was called and we run */
    CHECK_OK(weft_event_wait(&g_ready)); /* set after n was cancelled */
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_task_started();
    int r = weft_sleep(LONG_NS); /* now under n, which is cancelled */
    atomic_store(&g_child_result, r);
    return r;
}

static int starter_of_g_n(void *arg)
{
    (void)arg;
    atomic_store(&g_start_rc, weft_nursery_start(g_n, start_late, NULL));
    return 0;
}

static int case_nursery_cancel_before_started(void *arg)
{
    (void)arg;
    atomic_store(&g_child_result, 12345);
    atomic_store(&g_start_rc, 12345);
    weft_event_init(&g_running);
    weft_event_init(&g_ready);
    weft_nursery *m, *n;
    CHECK_OK(weft_nursery_open(&m)); /* the starter lives here, outside n */
    CHECK_OK(weft_nursery_open(&n));
    g_n = n;
    CHECK_OK(weft_spawn(m, starter_of_g_n, NULL));
    /* Not a sleep: until the starter has called weft_nursery_start, n has
     * no child, and the close below could free n under it. */
    CHECK_OK(weft_event_wait(&g_running));
    int64_t t0 = weft_now();
    weft_nursery_cancel(n);
    weft_event_set(&g_ready);
    CHECK_OK(weft_nursery_close(n)); /* waits for the started child; a cancel is success */
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_OK(weft_nursery_close(m));
    CHECK_EQ(atomic_load(&g_start_rc), 0);
    CHECK_EQ(atomic_load(&g_child_result), -ECANCELED);
    weft_event_destroy(&g_running);
    weft_event_destroy(&g_ready);
    return 0;
}

/* ---- after the start, the caller's scope no longer covers the child ---------------- */

typedef struct {
    atomic_int result;
    atomic_int done;
    int own_scope; /* enter a scope of its own before starting */
    int64_t sleep_ns;
} daemon_ctl;

static int daemon_body(void *arg)
{
    daemon_ctl *d = arg;
    weft_scope mine;
    if (d->own_scope)
        weft_scope_enter(&mine, WEFT_FOREVER);
    weft_task_started();
    int r = weft_sleep(d->sleep_ns);
    if (d->own_scope)
        CHECK(!weft_scope_exit(&mine)); /* mine itself is never cancelled */
    atomic_store(&d->result, r);
    atomic_store(&d->done, 1);
    return r;
}

static int case_after_started_caller_scope(void *arg)
{
    (void)arg;
    for (int own = 0; own < 2; own++) {
        daemon_ctl d = {.own_scope = own, .sleep_ns = test_ms(30)};
        atomic_store(&d.result, 12345);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        weft_scope s;
        weft_scope_enter(&s, WEFT_FOREVER);
        CHECK_OK(weft_nursery_start(n, daemon_body, &d));
        weft_scope_cancel(&s);
        CHECK_EQ(weft_yield(), -ECANCELED);
        CHECK(weft_scope_exit(&s));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&d.done), 1);
        CHECK_EQ(atomic_load(&d.result), 0); /* slept its 30 ms uncancelled */

        /* A deadline on the caller's scope, likewise. */
        daemon_ctl e = {.own_scope = own, .sleep_ns = test_ms(40)};
        atomic_store(&e.result, 12345);
        CHECK_OK(weft_nursery_open(&n));
        weft_scope_enter(&s, weft_now() + test_ms(10));
        CHECK_OK(weft_nursery_start(n, daemon_body, &e));
        CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
        CHECK(weft_scope_exit(&s));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&e.result), 0);
    }
    return 0;
}

/* ...but n's cancel does reach it, also through scopes it entered before it
 * started. */
static int case_after_started_nursery_cancel(void *arg)
{
    (void)arg;
    for (int own = 0; own < 2; own++) {
        daemon_ctl d = {.own_scope = own, .sleep_ns = LONG_NS};
        atomic_store(&d.result, 12345);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        weft_scope s;
        weft_scope_enter(&s, WEFT_FOREVER);
        CHECK_OK(weft_nursery_start(n, daemon_body, &d));
        CHECK(!weft_scope_exit(&s));
        CHECK_OK(weft_sleep(test_ms(5)));
        int64_t t0 = weft_now();
        weft_nursery_cancel(n);
        CHECK_OK(weft_nursery_close(n));
        CHECK(weft_now() - t0 < PROMPT_NS);
        CHECK_EQ(atomic_load(&d.result), -ECANCELED);

        /* And n's deadline. */
        daemon_ctl e = {.own_scope = own, .sleep_ns = LONG_NS};
        atomic_store(&e.result, 12345);
        CHECK_OK(weft_nursery_open(&n));
        weft_nursery_set_deadline(n, weft_now() + test_ms(20));
        CHECK_OK(weft_nursery_start(n, daemon_body, &e));
        t0 = weft_now();
        CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
        CHECK(weft_now() - t0 < PROMPT_NS);
        CHECK_EQ(atomic_load(&e.result), -ECANCELED);
    }
    return 0;
}

/* The scenario of the brief: n opened outside the scope, in another task. */
static weft_nursery *g_daemon_n;
static daemon_ctl g_daemon;

static int starter_task(void *arg)
{
    (void)arg;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_OK(weft_nursery_start(g_daemon_n, daemon_body, &g_daemon));
    weft_scope_cancel(&s);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    return 0;
}

static int case_after_started_other_task(void *arg)
{
    (void)arg;
    g_daemon.own_scope = 0;
    g_daemon.sleep_ns = test_ms(30);
    atomic_store(&g_daemon.result, 12345);
    atomic_store(&g_daemon.done, 0);
    weft_nursery *n, *m;
    CHECK_OK(weft_nursery_open(&n));
    g_daemon_n = n;
    CHECK_OK(weft_nursery_open(&m));
    CHECK_OK(weft_spawn(m, starter_task, NULL));
    CHECK_OK(weft_nursery_close(m));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_daemon.done), 1);
    CHECK_EQ(atomic_load(&g_daemon.result), 0);
    return 0;
}

/* ---- misuse: weft_task_started from a task not being started ---------------------- */

static atomic_int g_misuse_ok;

static int plain_child_calls_started(void *arg)
{
    (void)arg;
    weft_task_started(); /* misuse: reported, does nothing */
    CHECK_OK(weft_sleep(test_ms(2)));
    atomic_fetch_add(&g_misuse_ok, 1);
    return 0;
}

static int started_twice(void *arg)
{
    (void)arg;
    weft_task_started();
    weft_task_started(); /* misuse: reported, does nothing */
    CHECK_OK(weft_sleep(test_ms(2)));
    atomic_fetch_add(&g_misuse_ok, 1);
    return 0;
}

static int case_misuse(void *arg)
{
    (void)arg;
    atomic_store(&g_misuse_ok, 0);
    weft_task_started(); /* the root task: misuse */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, plain_child_calls_started, NULL));
    CHECK_OK(weft_nursery_start(n, started_twice, NULL));
    CHECK_OK(weft_nursery_start(n, started_twice, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_misuse_ok), 3);
    CHECK(!weft_cancelled());
    return 0;
}

/* ---- many starts at once ------------------------------------------------------------ */

static atomic_int g_started_count;

static int quick_service(void *arg)
{
    long i = (long)(intptr_t)arg;
    if (i % 2)
        weft_yield();
    weft_task_started();
    atomic_fetch_add(&g_started_count, 1);
    return i % 5 == 0 ? weft_sleep(1000) : 0;
}

static int starter_many(void *arg)
{
    weft_nursery *n = arg;
    for (long i = 0; i < 50; i++)
        CHECK_OK(weft_nursery_start(n, quick_service, (void *)(intptr_t)i));
    return 0;
}

static int case_many(void *arg)
{
    (void)arg;
    atomic_store(&g_started_count, 0);
    long k = test_scale(40);
    weft_nursery *n, *m;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_nursery_open(&m));
    for (long i = 0; i < k; i++)
        CHECK_OK(weft_spawn(m, starter_many, n));
    CHECK_OK(weft_nursery_close(m));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_started_count), k * 50);
    return 0;
}

int main(void)
{
    test_watchdog(60);
    RUN(case_start_ok);
    RUN(case_start_results);
    RUN(case_caller_cancelled_deadline);
    RUN(case_caller_cancelled_explicit);
    RUN(case_nursery_cancel_before_started);
    RUN(case_after_started_caller_scope);
    RUN(case_after_started_nursery_cancel);
    RUN(case_after_started_other_task);
    RUN(case_misuse);
    RUN(case_many);
    return 0;
}
