/*
 * structured_exit.c - tasks returning with nurseries or scopes still open
 * (closed for them, never a leaked child), weft_run's result precedence,
 * weft_run_cancel, -EBUSY, bad configurations, running again, and "every
 * task's return happens-before weft_run returns".
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

/* ---- stderr capture: misuse must be reported, naming the task --------------------- */

static int g_saved_stderr = -1;
static char g_capture_path[64];

static void capture_begin(void)
{
    fflush(stderr);
    strcpy(g_capture_path, "/tmp/weft_test_stderr_XXXXXX");
    int fd = mkstemp(g_capture_path);
    CHECK(fd >= 0);
    /* If the case crashes, its stderr (sanitizer reports too) is in there. */
    fprintf(stderr, "(stderr captured in %s until the case ends)\n", g_capture_path);
    g_saved_stderr = dup(2);
    CHECK(g_saved_stderr >= 0);
    CHECK(dup2(fd, 2) == 2);
    close(fd);
}

/* Restores stderr, echoes what was captured, and returns it (malloc'd). */
static char *capture_end(void)
{
    fflush(stderr);
    CHECK(dup2(g_saved_stderr, 2) == 2);
    close(g_saved_stderr);
    FILE *f = fopen(g_capture_path, "r");
    CHECK(f);
    char *buf = calloc(1, 65536);
    CHECK(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = 0;
    fclose(f);
    unlink(g_capture_path);
    fputs(buf, stderr);
    return buf;
}

static void expect_reported(const char *captured, const char *task_name)
{
    if (!strstr(captured, task_name)) {
        fprintf(stderr, "no misuse report naming task \"%s\" on stderr\n", task_name);
        CHECK(0);
    }
}

/* ---- a task returning with nurseries open ------------------------------------------ */

#define NKIDS 8
static atomic_int g_done;
static int g_plain[2 * NKIDS];

static int sleepy_kid(void *arg)
{
    int i = (int)(intptr_t)arg;
    CHECK_OK(weft_sleep(test_ms(10 + 3 * (i % NKIDS))));
    g_plain[i] = i + 1; /* plain: read after the outer close */
    atomic_fetch_add(&g_done, 1);
    return 0;
}

static int leaves_nurseries_open(void *arg)
{
    (void)arg;
    weft_task_set_name("leaky-nursery-task");
    weft_nursery *a, *b;
    CHECK_OK(weft_nursery_open(&a));
    for (int i = 0; i < NKIDS; i++)
        CHECK_OK(weft_spawn(a, sleepy_kid, (void *)(intptr_t)i));
    CHECK_OK(weft_nursery_open(&b)); /* nested inside a, also left open */
    for (int i = NKIDS; i < 2 * NKIDS; i++)
        CHECK_OK(weft_spawn(b, sleepy_kid, (void *)(intptr_t)i));
    return 0; /* misuse: reported, both closed for us */
}

static int main_nursery_left_open(void *arg)
{
    (void)arg;
    atomic_store(&g_done, 0);
    memset(g_plain, 0, sizeof g_plain);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, leaves_nurseries_open, NULL));
    CHECK_OK(weft_nursery_close(n));
    /* No leaked child: all grandchildren finished before close returned. */
    CHECK_EQ(atomic_load(&g_done), 2 * NKIDS);
    for (int i = 0; i < 2 * NKIDS; i++)
        CHECK_EQ(g_plain[i], i + 1);
    /* The program continues normally. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleepy_kid, (void *)(intptr_t)0));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_sleep(test_ms(1)));
    CHECK(!weft_cancelled());
    return 0;
}

static void case_nursery_left_open(void)
{
    capture_begin();
    int rc = test_run(0, main_nursery_left_open, NULL);
    char *err = capture_end();
    CHECK_OK(rc);
    expect_reported(err, "leaky-nursery-task");
    free(err);
}

/* ---- a task returning with a scope entered -------------------------------------------- */

static weft_scope g_heap_scope; /* valid for the whole run */

static int leaves_scope_entered(void *arg)
{
    int variant = (int)(intptr_t)arg;
    char name[32];
    snprintf(name, sizeof name, "leaky-scope-task-%d", variant);
    weft_task_set_name(name);
    if (variant == 0) {
        weft_scope_enter(&g_heap_scope, WEFT_FOREVER);
    } else if (variant == 1) {
        weft_scope_enter(&g_heap_scope, weft_now() + LONG_NS);
        CHECK_OK(weft_sleep(test_ms(1)));
    } else {
        /* A scope, then a nursery inside it, both left open. */
        weft_scope_enter(&g_heap_scope, WEFT_FOREVER);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, sleepy_kid, (void *)(intptr_t)3));
    }
    return 0;
}

static int stack_scope_left(void *arg)
{
    (void)arg;
    weft_task_set_name("leaky-frame-task");
    weft_scope s; /* in this frame, which returns with s entered */
    weft_scope_enter(&s, weft_now() + LONG_NS);
    CHECK_OK(weft_yield());
    return 0;
}

static int main_scope_left(void *arg)
{
    (void)arg;
    for (int v = 0; v < 3; v++) {
        atomic_store(&g_done, 0);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, leaves_scope_entered, (void *)(intptr_t)v));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&g_done), v == 2 ? 1 : 0);
    }
    /* Later code works. */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK(weft_scope_exit(&s));
    CHECK_OK(weft_sleep(test_ms(1)));
    return 0;
}

static void case_scope_left(void)
{
    capture_begin();
    int rc = test_run(0, main_scope_left, NULL);
    char *err = capture_end();
    CHECK_OK(rc);
    expect_reported(err, "leaky-scope-task-0");
    expect_reported(err, "leaky-scope-task-1");
    expect_reported(err, "leaky-scope-task-2");
    free(err);
}

/* The usual form of the misuse: the scope lives in the frame that returned. */
static int main_stack_scope_left(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, stack_scope_left, NULL));
    CHECK_OK(weft_nursery_close(n));
    /* Later code works. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleepy_kid, (void *)(intptr_t)0));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_sleep(test_ms(1)));
    return 0;
}

static void case_stack_scope_left(void)
{
    capture_begin();
    int rc = test_run(0, main_stack_scope_left, NULL);
    char *err = capture_end();
    CHECK_OK(rc);
    expect_reported(err, "leaky-frame-task");
    free(err);
}

/* ---- weft_run's result ------------------------------------------------------------------ */

static int return_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int fail_epipe(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(test_ms(2)));
    return -EPIPE;
}

static atomic_int g_main_ran;

static int main_left_failing_nursery(void *arg)
{
    int main_result = (int)(intptr_t)arg;
    atomic_store(&g_main_ran, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, fail_epipe, NULL));
    return main_result; /* n left open: closed on main's behalf */
}

static int return_positive(void *arg)
{
    (void)arg;
    return 9;
}

static int main_clean(void *arg)
{
    (void)arg;
    atomic_store(&g_main_ran, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleepy_kid, (void *)(intptr_t)1));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static int main_left_clean_nursery(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, sleepy_kid, (void *)(intptr_t)1));
    return 0;
}

static void case_run_result(void)
{
    CHECK_EQ(test_run(0, return_eio, NULL), -EIO);
    CHECK_EQ(test_run(0, main_left_failing_nursery, (void *)(intptr_t)0), -EPIPE);
    /* main's own non-zero result takes precedence over the nursery's. */
    CHECK_EQ(test_run(0, main_left_failing_nursery, (void *)(intptr_t)-EIO), -EIO);
    CHECK_EQ(test_run(0, return_positive, NULL), -EINVAL);
    CHECK_OK(test_run(0, main_clean, NULL));
    CHECK_OK(test_run(0, main_left_clean_nursery, NULL));
    CHECK_OK(weft_run(NULL, main_clean, NULL)); /* cfg NULL: defaults */
}

/* ---- weft_run_cancel ------------------------------------------------------------------- */

static atomic_int g_thread_done;
static atomic_int g_main_sleep_result;
static atomic_llong g_main_sleep_ns;
static atomic_int g_kid_result;

static void *run_canceller(void *arg)
{
    (void)arg;
    plain_sleep_ms(20);
    weft_run_cancel();
    weft_run_cancel(); /* twice is harmless */
    atomic_store(&g_thread_done, 1);
    return NULL;
}

static int kid_sleep_long(void *arg)
{
    (void)arg;
    int r = weft_sleep(LONG_NS);
    atomic_store(&g_kid_result, r);
    return r;
}

static int main_cancelled_by_run_cancel(void *arg)
{
    int main_result = (int)(intptr_t)arg;
    atomic_store(&g_thread_done, 0);
    atomic_store(&g_kid_result, 12345);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, kid_sleep_long, NULL));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, run_canceller, NULL));
    int64_t t0 = weft_now();
    int r = weft_sleep(LONG_NS);
    atomic_store(&g_main_sleep_ns, weft_now() - t0);
    atomic_store(&g_main_sleep_result, r);
    /* The thread is finishing; joining it directly blocks this worker only
     * briefly (weft_blocking would not run: we are cancelled). */
    while (!atomic_load(&g_thread_done))
        sched_yield();
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(weft_nursery_close(n), -ECANCELED); /* cancelled from outside n */
    CHECK(weft_cancelled());
    return main_result;
}

static void case_run_cancel(void)
{
    /* No runtime running: a no-op that does not linger into the next run. */
    weft_run_cancel();
    CHECK_OK(test_run(0, main_clean, NULL));

    atomic_store(&g_main_sleep_result, 12345);
    CHECK_EQ(test_run(0, main_cancelled_by_run_cancel, (void *)(intptr_t)-ENOTCONN), -ENOTCONN);
    CHECK_EQ(atomic_load(&g_main_sleep_result), -ECANCELED);
    CHECK(atomic_load(&g_main_sleep_ns) < PROMPT_NS);
    CHECK_EQ(atomic_load(&g_kid_result), -ECANCELED);

    /* main returning 0 after the cancel: weft_run returns 0, not -EINTR. */
    atomic_store(&g_main_sleep_result, 12345);
    CHECK_OK(test_run(0, main_cancelled_by_run_cancel, (void *)(intptr_t)0));
    CHECK_EQ(atomic_load(&g_main_sleep_result), -ECANCELED);
    CHECK(atomic_load(&g_main_sleep_ns) < PROMPT_NS);

    /* And the runtime is usable again afterwards. */
    CHECK_OK(test_run(0, main_clean, NULL));
}

/* ---- -EBUSY ------------------------------------------------------------------------------- */

static atomic_int g_inner_ran;
static int g_busy_rc;

static int inner_main(void *arg)
{
    (void)arg;
    atomic_store(&g_inner_ran, 1);
    return 0;
}

static void *second_run(void *arg)
{
    (void)arg;
    g_busy_rc = weft_run(NULL, inner_main, NULL);
    return NULL;
}

static int join_fn(void *arg) { return -pthread_join(*(pthread_t *)arg, NULL); }

static int main_busy(void *arg)
{
    (void)arg;
    atomic_store(&g_inner_ran, 0);
    g_busy_rc = 12345;
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, second_run, NULL));
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK_EQ(g_busy_rc, -EBUSY);
    /* From inside a task (misuse of the context, but still -EBUSY). */
    CHECK_EQ(weft_run(NULL, inner_main, NULL), -EBUSY);
    CHECK_EQ(atomic_load(&g_inner_ran), 0);
    return 0;
}

static void case_busy(void)
{
    CHECK_OK(test_run(0, main_busy, NULL));
    /* Not busy any more. */
    atomic_store(&g_inner_ran, 0);
    CHECK_OK(test_run(0, inner_main, NULL));
    CHECK_EQ(atomic_load(&g_inner_ran), 1);
}

/* ---- bad configurations ------------------------------------------------------------------ */

static void expect_einval(const weft_config *cfg)
{
    atomic_store(&g_main_ran, 0);
    CHECK_EQ(weft_run(cfg, main_clean, NULL), -EINVAL);
    CHECK_EQ(atomic_load(&g_main_ran), 0);
}

static void case_bad_config(void)
{
    weft_config c;
    memset(&c, 0, sizeof c);
    c.reserved_[sizeof c.reserved_ / sizeof c.reserved_[0] - 1] = 1;
    expect_einval(&c);
    memset(&c, 0, sizeof c);
    c.stack_size = 1;
    expect_einval(&c);
    c.stack_size = 16 * 1024 - 1;
    expect_einval(&c);
    c.stack_size = ((size_t)1 << 30) + 1;
    expect_einval(&c);
    memset(&c, 0, sizeof c);
    c.io = (weft_io_backend)7;
    expect_einval(&c);
    CHECK_EQ(weft_run(NULL, NULL, NULL), -EINVAL);

    /* Environment values that do not parse. */
    const char *old = getenv("WEFT_WORKERS");
    char *saved = old ? strdup(old) : NULL;
    CHECK_OK(setenv("WEFT_WORKERS", "abc", 1));
    expect_einval(NULL);
    CHECK_OK(setenv("WEFT_WORKERS", "2x", 1));
    expect_einval(NULL);
    if (saved) {
        CHECK_OK(setenv("WEFT_WORKERS", saved, 1));
        free(saved);
    } else {
        CHECK_OK(unsetenv("WEFT_WORKERS"));
    }
    const char *olds = getenv("WEFT_STACK_SIZE");
    CHECK(olds == NULL); /* the test harness does not set it */
    CHECK_OK(setenv("WEFT_STACK_SIZE", "lots", 1));
    expect_einval(NULL);
    CHECK_OK(unsetenv("WEFT_STACK_SIZE"));

    /* Good configurations still work after all that. */
    memset(&c, 0, sizeof c);
    c.stack_size = 16 * 1024;
    atomic_store(&g_main_ran, 0);
    CHECK_OK(weft_run(&c, main_clean, NULL));
    CHECK_EQ(atomic_load(&g_main_ran), 1);
    memset(&c, 0, sizeof c);
    c.stack_size = 100 * 1000; /* rounded up to pages */
    CHECK_OK(weft_run(&c, main_clean, NULL));
}

/* ---- running again ---------------------------------------------------------------------- */

static int *g_hb;
#define NHB 512

static int hb_writer(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i % 4 == 0)
        weft_sleep(1000 * (i % 13));
    g_hb[i] = i * 3 + 1;
    return 0;
}

static int main_hb(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < NHB; i++)
        CHECK_OK(weft_spawn(n, hb_writer, (void *)(intptr_t)i));
    return 0; /* n closed on main's behalf */
}

static void case_run_again(void)
{
    for (int round = 0; round < 3; round++) {
        g_hb = calloc(NHB, sizeof *g_hb);
        CHECK(g_hb);
        CHECK_OK(test_run(0, main_hb, NULL));
        /* Every task's return happens-before weft_run returns: plain reads. */
        for (int i = 0; i < NHB; i++)
            CHECK_EQ(g_hb[i], i * 3 + 1);
        free(g_hb);
        g_hb = NULL;
        CHECK(weft_seed() != 0);
        CHECK(!weft_in_task());
    }
}

int main(void)
{
    test_watchdog(60);
    CASE(case_nursery_left_open);
    CASE(case_scope_left);
    CASE(case_run_result);
    CASE(case_busy);
    CASE(case_bad_config);
    CASE(case_run_again);
    CASE(case_stack_scope_left);
    CASE(case_run_cancel);
    return 0;
}
