/*
 * structured_nursery.c - nurseries: open/spawn/close, close waits, result
 * rules of close (first failure, cancel echo, deadline, outer cancel),
 * spawn errors and contexts, weft_spawn_ex attributes, positive results,
 * dropped failures, spawning into a nursery while close waits, and the
 * "a child's return happens-before close returns" rule.
 */
/* TIMEOUT: 60 */
/* LABELS: unit */
#include "test.h"

#include <pthread.h>

/* ---- basics ---------------------------------------------------------------- */

static atomic_int g_count;

static int inc_body(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_count, 1);
    return 0;
}

static int case_basics(void *arg)
{
    (void)arg;
    CHECK(weft_in_task());
    atomic_store(&g_count, 0);
    weft_nursery *n = NULL;
    CHECK_OK(weft_nursery_open(&n));
    CHECK(n != NULL);
    long k = test_scale(1000);
    for (long i = 0; i < k; i++)
        CHECK_OK(weft_spawn(n, inc_body, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_count), k);

    /* An empty nursery closes at once with 0. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_nursery_close(n));

    /* The undecorated function (not the macro) works too. */
    atomic_store(&g_count, 0);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK((weft_spawn)(n, inc_body, NULL));
    CHECK_OK(weft_spawn_at(n, inc_body, NULL, __FILE__, __LINE__));
    CHECK_OK(weft_spawn_ex(n, inc_body, NULL, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_count), 3);

    /* Bad arguments. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_EQ(weft_spawn(n, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_spawn(NULL, inc_body, NULL), -EINVAL);
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* ---- close waits for every child -------------------------------------------- */

#define NWAIT 64
static atomic_int g_flags[NWAIT];

static int sleep_then_flag(void *arg)
{
    int i = (int)(intptr_t)arg;
    CHECK_OK(weft_sleep(test_ms(5 + (i % 16))));
    atomic_store(&g_flags[i], 1);
    return 0;
}

static int case_close_waits(void *arg)
{
    (void)arg;
    for (int i = 0; i < NWAIT; i++)
        atomic_store(&g_flags[i], 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < NWAIT; i++)
        CHECK_OK(weft_spawn(n, sleep_then_flag, (void *)(intptr_t)i));
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < NWAIT; i++)
        CHECK_EQ(atomic_load(&g_flags[i]), 1);
    return 0;
}

/* ---- nested nurseries ---------------------------------------------------------- */

static int nest_body(void *arg)
{
    int depth = (int)(intptr_t)arg;
    atomic_fetch_add(&g_count, 1);
    if (depth == 0)
        return weft_sleep(1000 * (weft_task_id() % 50));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn(n, nest_body, (void *)(intptr_t)(depth - 1)));
    return weft_nursery_close(n);
}

static int case_nested(void *arg)
{
    (void)arg;
    atomic_store(&g_count, 0);
    weft_nursery *outer, *inner;
    CHECK_OK(weft_nursery_open(&outer));
    CHECK_OK(weft_spawn(outer, nest_body, (void *)(intptr_t)4)); /* 1+3+9+27+81 = 121 */
    CHECK_OK(weft_nursery_open(&inner));                         /* nested in the same task */
    CHECK_OK(weft_spawn(inner, nest_body, (void *)(intptr_t)2)); /* 13 */
    /* A child of the outer nursery spawned while the inner one is open. */
    CHECK_OK(weft_spawn(outer, nest_body, (void *)(intptr_t)1)); /* 4 */
    CHECK_OK(weft_nursery_close(inner));
    CHECK_OK(weft_nursery_close(outer));
    CHECK_EQ(atomic_load(&g_count), 121 + 13 + 4);
    return 0;
}

/* ---- first failure ------------------------------------------------------------------ */

static atomic_int g_sib_result;
static atomic_int g_sib_done;
static atomic_llong g_sib_elapsed;

static int fail_epipe_later(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(10)));
    return -EPIPE;
}

static int fail_epipe_now(void *arg)
{
    (void)arg;
    return -EPIPE;
}

static int long_sleeper(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    int r = weft_sleep(LONG_NS);
    atomic_store(&g_sib_elapsed, weft_now() - t0);
    atomic_store(&g_sib_result, r);
    atomic_store(&g_sib_done, 1);
    return r;
}

static int case_first_failure(void *arg)
{
    (void)arg;
    atomic_store(&g_sib_result, 12345);
    atomic_store(&g_sib_done, 0);
    int64_t t0 = weft_now();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, long_sleeper, NULL));
    CHECK_OK(weft_spawn(n, fail_epipe_later, NULL));
    /* The opener's own code between open and close is cancelled too. */
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    /* And a spawn into the failed nursery would start cancelled. */
    CHECK_EQ(weft_spawn(n, inc_body, NULL), -ECANCELED);
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_sib_done), 1);
    CHECK_EQ(atomic_load(&g_sib_result), -ECANCELED);
    CHECK(atomic_load(&g_sib_elapsed) < PROMPT_NS);
    /* The nursery's cancel does not outlive it. */
    CHECK(!weft_cancelled());
    CHECK_OK(weft_sleep(test_ms(1)));

    /* A failure at once, maybe before the sibling even parks (the sibling is
     * spawned first: once the failure happened, a spawn would fail). */
    atomic_store(&g_sib_result, 12345);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, long_sleeper, NULL));
    CHECK_OK(weft_spawn(n, fail_epipe_now, NULL));
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    CHECK_EQ(atomic_load(&g_sib_result), -ECANCELED);
    return 0;
}

/* -ECANCELED from a child that was NOT cancelled is a failure like any other. */
static int return_ecanceled(void *arg)
{
    (void)arg;
    return -ECANCELED;
}

static int case_uncancelled_ecanceled_is_failure(void *arg)
{
    (void)arg;
    atomic_store(&g_sib_result, 12345);
    atomic_store(&g_sib_done, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, long_sleeper, NULL));
    CHECK_OK(weft_spawn(n, return_ecanceled, NULL));
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED); /* the failure cancelled n */
    CHECK_EQ(weft_nursery_close(n), -ECANCELED);
    CHECK_EQ(atomic_load(&g_sib_result), -ECANCELED);
    CHECK(!weft_cancelled());
    return 0;
}

/* ---- deliberate cancel is success ---------------------------------------------- */

static int case_cancel_is_success(void *arg)
{
    (void)arg;
    atomic_store(&g_sib_result, 12345);
    atomic_store(&g_sib_done, 0);
    int64_t t0 = weft_now();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, long_sleeper, NULL));
    CHECK_OK(weft_sleep(test_ms(5)));
    CHECK(!weft_cancelled());
    weft_nursery_cancel(n);
    CHECK(weft_cancelled());
    CHECK_EQ(weft_yield(), -ECANCELED);
    CHECK_EQ(weft_spawn(n, inc_body, NULL), -ECANCELED);
    weft_nursery_cancel(n);          /* idempotent */
    CHECK_OK(weft_nursery_close(n)); /* the children's -ECANCELED echoes are not failures */
    CHECK(weft_now() - t0 < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_sib_result), -ECANCELED);
    CHECK(!weft_cancelled());

    /* Cancel before any child: close 0, nothing runs. */
    atomic_store(&g_count, 0);
    CHECK_OK(weft_nursery_open(&n));
    weft_nursery_cancel(n);
    CHECK_EQ(weft_spawn(n, inc_body, NULL), -ECANCELED);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_count), 0);
    return 0;
}

/* After a cancel, a non-ECANCELED error is still a failure. */
static int sleeper_then_epipe(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    return -EPIPE;
}

static int case_cancelled_child_other_error(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleeper_then_epipe, NULL));
    CHECK_OK(weft_sleep(test_ms(2)));
    weft_nursery_cancel(n);
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    return 0;
}

/* ---- nursery deadline ---------------------------------------------------------- */

static int sleep_forever(void *arg)
{
    (void)arg;
    return weft_sleep_until(WEFT_FOREVER);
}

static int case_deadline(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn(n, sleep_forever, NULL));
    int64_t dl = weft_now() + test_ms(20);
    weft_nursery_set_deadline(n, dl);
    CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
    int64_t t1 = weft_now();
    CHECK(t1 >= dl);
    CHECK(t1 - t0 < PROMPT_NS);

    /* Children already parked with no timer of their own when the deadline is
     * set: the deadline must still wake them. */
    t0 = weft_now();
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn(n, sleep_forever, NULL));
    CHECK_OK(weft_sleep(test_ms(10)));
    weft_nursery_set_deadline(n, weft_now() + test_ms(10));
    CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
    CHECK(weft_now() - t0 < PROMPT_NS);

    /* The opener parked at a cancellation point is woken by the deadline too. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleep_forever, NULL));
    weft_nursery_set_deadline(n, weft_now() + test_ms(10));
    CHECK_EQ(weft_sleep(LONG_NS), -ECANCELED);
    CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);

    /* A deadline that never fires: 0. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, inc_body, NULL));
    weft_nursery_set_deadline(n, weft_now() + LONG_NS);
    CHECK_OK(weft_nursery_close(n));

    /* A failure takes precedence over the deadline. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleeper_then_epipe, NULL));
    weft_nursery_set_deadline(n, weft_now() + test_ms(5));
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    CHECK(!weft_cancelled());
    return 0;
}

/* ---- close by a task cancelled from outside ---------------------------------------- */

static atomic_int g_shielded_done;

static int shielded_child(void *arg)
{
    (void)arg;
    /* Keeps running a while after the outer cancel; close must wait for it. */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_shield(&s, true);
    int r = weft_sleep(test_ms(30));
    CHECK(!weft_scope_exit(&s));
    CHECK_OK(r);
    atomic_store(&g_shielded_done, 1);
    return 0;
}

static int case_outer_cancelled_close(void *arg)
{
    (void)arg;
    atomic_store(&g_sib_result, 12345);
    atomic_store(&g_shielded_done, 0);
    weft_scope outer;
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, long_sleeper, NULL));
    CHECK_OK(weft_spawn(n, shielded_child, NULL));
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_scope_cancel(&outer);
    /* A child of n would start cancelled. */
    CHECK_EQ(weft_spawn(n, inc_body, NULL), -ECANCELED);
    /* close is not a cancellation point: it waits for the shielded child. */
    CHECK_EQ(weft_nursery_close(n), -ECANCELED);
    CHECK_EQ(atomic_load(&g_shielded_done), 1);
    CHECK_EQ(atomic_load(&g_sib_result), -ECANCELED);
    CHECK(weft_scope_exit(&outer));
    CHECK(!weft_cancelled());

    /* Opening a nursery never fails because the task is cancelled. */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_EQ(weft_spawn(n, inc_body, NULL), -ECANCELED);
    CHECK_EQ(weft_nursery_close(n), -ECANCELED);
    CHECK(weft_scope_exit(&outer));

    /* A child failure takes precedence over the outer cancel. */
    weft_scope_enter(&outer, WEFT_FOREVER);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleeper_then_epipe, NULL));
    CHECK_OK(weft_sleep(test_ms(2)));
    weft_scope_cancel(&outer);
    CHECK_EQ(weft_nursery_close(n), -EPIPE);
    CHECK(weft_scope_exit(&outer));
    return 0;
}

/* ---- contexts: plain threads ----------------------------------------------------- */

typedef struct {
    weft_nursery *n;
    int spawn_rc, open_rc;
    weft_nursery *opened;
    bool in_task;
} plain_ctx;

static void *plain_thread(void *arg)
{
    plain_ctx *c = arg;
    c->in_task = weft_in_task();
    c->spawn_rc = weft_spawn(c->n, inc_body, NULL);
    c->opened = (weft_nursery *)&c->opened; /* must be overwritten with NULL */
    c->open_rc = weft_nursery_open(&c->opened);
    return NULL;
}

static int join_fn(void *arg) { return -pthread_join(*(pthread_t *)arg, NULL); }

static int blocking_body(void *arg)
{
    plain_thread(arg);
    return 0;
}

static int case_plain_thread(void *arg)
{
    (void)arg;
    atomic_store(&g_count, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));

    plain_ctx c = {.n = n, .spawn_rc = 1, .open_rc = 1, .in_task = true};
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, plain_thread, &c));
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK(!c.in_task);
    CHECK_EQ(c.spawn_rc, -EPERM);
    CHECK_EQ(c.open_rc, -EPERM);
    CHECK(c.opened == NULL);

    /* A weft_blocking body is not a task either. */
    plain_ctx b = {.n = n, .spawn_rc = 1, .open_rc = 1, .in_task = true};
    CHECK_OK(weft_blocking(blocking_body, &b));
    CHECK(!b.in_task);
    CHECK_EQ(b.spawn_rc, -EPERM);
    CHECK_EQ(b.open_rc, -EPERM);
    CHECK(b.opened == NULL);

    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_count), 0);
    return 0;
}

/* ---- weft_spawn_ex --------------------------------------------------------------------- */

static int check_name(void *arg)
{
    const char *want = arg;
    CHECK(weft_task_name() != NULL);
    if (strcmp(weft_task_name(), want) != 0) {
        fprintf(stderr, "name \"%s\", want \"%s\"\n", weft_task_name(), want);
        CHECK(0);
    }
    atomic_fetch_add(&g_count, 1);
    return 0;
}

/* About 1 KiB per frame; noinline and the use after the call keep every
 * frame alive. */
__attribute__((noinline)) static int recurse(int depth)
{
    volatile char buf[1024];
    for (size_t i = 0; i < sizeof buf; i += 64)
        buf[i] = (char)depth;
    int r = depth > 0 ? recurse(depth - 1) : 0;
    return r + buf[0];
}

static int deep_stack(void *arg)
{
    (void)arg;
    int depth = 150; /* ~150 KiB */
    int r = recurse(depth);
    /* Each frame adds its own buf[0] == (char)depth. */
    int want = 0;
    for (int d = 0; d <= depth; d++)
        want += (char)d;
    CHECK_EQ(r, want);
    atomic_fetch_add(&g_count, 1);
    return 0;
}

static int case_spawn_ex(void *arg)
{
    (void)arg;
    atomic_store(&g_count, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));

    weft_spawn_attr a;
    memset(&a, 0, sizeof a);
    a.name = "a-child-name";
    CHECK_OK(weft_spawn_ex(n, check_name, (void *)"a-child-name", &a));
    /* The name is copied: the attr's buffer may change right after. */
    char buf[64];
    strcpy(buf, "copied-name");
    a.name = buf;
    CHECK_OK(weft_spawn_ex(n, check_name, (void *)"copied-name", &a));
    memset(buf, 'x', 20);
    /* Truncated to 31 bytes. */
    a.name = "0123456789012345678901234567890123456789";
    CHECK_OK(weft_spawn_ex(n, check_name, (void *)"0123456789012345678901234567890", &a));
    /* Unnamed: "". */
    a.name = NULL;
    CHECK_OK(weft_spawn_ex(n, check_name, (void *)"", &a));

    memset(&a, 0, sizeof a);
    a.reserved_[2] = 1;
    CHECK_EQ(weft_spawn_ex(n, inc_body, NULL, &a), -EINVAL);
    memset(&a, 0, sizeof a);
    a.stack_size = 8 * 1024;
    CHECK_EQ(weft_spawn_ex(n, inc_body, NULL, &a), -EINVAL);
    a.stack_size = ((size_t)1 << 30) + 4096;
    CHECK_EQ(weft_spawn_ex(n, inc_body, NULL, &a), -EINVAL);

    memset(&a, 0, sizeof a);
    a.stack_size = 256 * 1024;
    CHECK_OK(weft_spawn_ex(n, deep_stack, NULL, &a));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&g_count), 5);
    return 0;
}

/* ---- positive results ------------------------------------------------------------------- */

static int return_positive(void *arg)
{
    (void)arg;
    return 7;
}

static int case_positive_result(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, return_positive, NULL));
    CHECK_EQ(weft_nursery_close(n), -EINVAL);
    return 0;
}

/* ---- later failures are counted ------------------------------------------------------------ */

static weft_event g_go;

static int wait_then_eio(void *arg)
{
    (void)arg;
    /* All fail together, before any of them can see the first failure's cancel
     * (even if one does, -EIO is still a failure). */
    weft_event_wait(&g_go);
    return -EIO;
}

static int case_failures_dropped(void *arg)
{
    (void)arg;
    const int k = 8;
    weft_stats s0, s1;
    weft_stats_get(&s0);
    weft_event_init(&g_go);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < k; i++)
        CHECK_OK(weft_spawn(n, wait_then_eio, NULL));
    CHECK_OK(weft_sleep(test_ms(5)));
    weft_event_set(&g_go);
    CHECK_EQ(weft_nursery_close(n), -EIO);
    weft_event_destroy(&g_go);
    weft_stats_get(&s1);
    CHECK(s1.failures_dropped > s0.failures_dropped);
    /* Every later failure is counted: exactly k - 1 of them. */
    CHECK_EQ(s1.failures_dropped - s0.failures_dropped, k - 1);
    return 0;
}

/* ---- spawning into a nursery from a child, also while close waits ---------------------------- */

static atomic_int g_closing;
static weft_nursery *g_n;

static int sibling_spawner(void *arg)
{
    int wait_for_close = (int)(intptr_t)arg;
    if (wait_for_close) {
        while (!atomic_load(&g_closing))
            CHECK_OK(weft_sleep(test_ms(1)));
        CHECK_OK(weft_sleep(test_ms(10))); /* the parent is parked in close now */
    }
    for (int i = 0; i < 10; i++)
        CHECK_OK(weft_spawn(g_n, sleep_then_flag, (void *)(intptr_t)(i + 10 * wait_for_close)));
    /* A grandchild-level spawner: a sibling that spawns more siblings. */
    if (wait_for_close == 1)
        CHECK_OK(weft_spawn(g_n, sibling_spawner, (void *)(intptr_t)2));
    return 0;
}

static int case_spawn_while_closing(void *arg)
{
    (void)arg;
    for (int i = 0; i < NWAIT; i++)
        atomic_store(&g_flags[i], 0);
    atomic_store(&g_closing, 0);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    g_n = n;
    CHECK_OK(weft_spawn(n, sibling_spawner, (void *)(intptr_t)0));
    CHECK_OK(weft_spawn(n, sibling_spawner, (void *)(intptr_t)1));
    atomic_store(&g_closing, 1);
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < 30; i++)
        CHECK_EQ(atomic_load(&g_flags[i]), 1);
    return 0;
}

/* ---- happens-before: plain writes by children are visible after close ----------------- */

static int *g_plain;

static int plain_writer(void *arg)
{
    long i = (long)(intptr_t)arg;
    if (i % 3 == 0)
        weft_yield();
    else if (i % 3 == 1)
        weft_sleep(1000 * (i % 7));
    g_plain[i] = (int)(i % 1000) + 1;
    return 0;
}

static int case_happens_before(void *arg)
{
    (void)arg;
    long k = test_scale(20000);
    for (int round = 0; round < 3; round++) {
        g_plain = calloc((size_t)k, sizeof *g_plain);
        CHECK(g_plain);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        for (long i = 0; i < k; i++)
            CHECK_OK(weft_spawn(n, plain_writer, (void *)(intptr_t)i));
        CHECK_OK(weft_nursery_close(n));
        long long sum = 0, want = 0;
        for (long i = 0; i < k; i++) {
            sum += g_plain[i];
            want += i % 1000 + 1;
        }
        CHECK_EQ(sum, want);
        free(g_plain);
        g_plain = NULL;
    }
    return 0;
}

/* ---- outside any runtime --------------------------------------------------------------------- */

static void outside_runtime(void)
{
    weft_nursery *n = (weft_nursery *)&n;
    CHECK_EQ(weft_nursery_open(&n), -EPERM);
    CHECK(n == NULL);
    CHECK(!weft_in_task());
}

int main(void)
{
    test_watchdog(60);
    outside_runtime();
    RUN(case_basics);
    RUN(case_close_waits);
    RUN(case_nested);
    RUN(case_first_failure);
    RUN(case_uncancelled_ecanceled_is_failure);
    RUN(case_cancel_is_success);
    RUN(case_cancelled_child_other_error);
    RUN(case_outer_cancelled_close);
    RUN(case_plain_thread);
    RUN(case_spawn_ex);
    RUN(case_positive_result);
    RUN(case_failures_dropped);
    RUN(case_spawn_while_closing);
    RUN(case_happens_before);
    RUN(case_deadline);
    outside_runtime();
    return 0;
}
