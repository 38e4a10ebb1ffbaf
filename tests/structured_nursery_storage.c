/* Nurseries in caller storage (weft_nursery_init / weft_nursery_fini):
 *  - the children of a nursery on the stack all run and are all waited for
 *    (conservation: every spawn that returned 0 ran exactly once);
 *  - fork-join with a nursery per call on every worker (fib, checked
 *    against the serial value; children stolen by other workers);
 *  - failures, cancellation and deadlines as for weft_nursery_open;
 *  - one storage initialised again and again; close and fini interchangeable;
 *  - misuse is reported by name: a second fini, a spawn after fini, an init
 *    of an open nursery, a NULL nursery;
 *  - a frame that returns with its nursery still open aborts the process
 *    with a message naming it (its children would write to a dead frame);
 *    one in heap storage is closed for the task instead, as a pool one is;
 *  - a cancel scope left open by a returned frame inside a live
 *    caller-storage nursery is dropped as before, without that abort.
 * LABELS: unit
 */
#include "test.h"

static atomic_long g_runs;

static int count_body(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&g_runs, 1, memory_order_relaxed);
    return 0;
}

static int case_basics(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_nursery_init(NULL), -EINVAL);
    atomic_store(&g_runs, 0);
    long spawned = 0;
    weft_nursery n;
    CHECK_OK(weft_nursery_init(&n));
    for (int i = 0; i < 5000; i++)
        if (weft_spawn(&n, count_body, NULL) == 0)
            spawned++;
    CHECK_OK(weft_nursery_fini(&n));
    CHECK_EQ(spawned, 5000);
    CHECK_EQ(atomic_load(&g_runs), spawned);
    /* The same storage, again and again; close works on it too. */
    for (int r = 0; r < 2000; r++) {
        CHECK_OK(weft_nursery_init(&n));
        CHECK_OK(weft_spawn(&n, count_body, NULL));
        CHECK_OK(weft_spawn(&n, count_body, NULL));
        CHECK_OK((r & 1) ? weft_nursery_close(&n) : weft_nursery_fini(&n));
    }
    CHECK_EQ(atomic_load(&g_runs), 5000 + 2 * 2000);
    /* fini on a nursery from the pool works too. */
    weft_nursery *p;
    CHECK_OK(weft_nursery_open(&p));
    CHECK_OK(weft_spawn(p, count_body, NULL));
    CHECK_OK(weft_nursery_fini(p));
    CHECK_EQ(atomic_load(&g_runs), 5000 + 2 * 2000 + 1);
    return 0;
}

typedef struct {
    int n;
    long result;
} fib_arg;

static long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

static int fib_task(void *arg)
{
    fib_arg *a = arg;
    if (a->n < 10) {
        a->result = fib_serial(a->n);
        return 0;
    }
    fib_arg x = {a->n - 1, 0}, y = {a->n - 2, 0};
    weft_nursery n;
    CHECK_OK(weft_nursery_init(&n));
    CHECK_OK(weft_spawn(&n, fib_task, &x));
    CHECK_OK(weft_spawn(&n, fib_task, &y));
    CHECK_OK(weft_nursery_fini(&n));
    a->result = x.result + y.result;
    return 0;
}

static int case_fork_join(void *arg)
{
    (void)arg;
    for (int round = 0; round < 5; round++) {
        fib_arg a = {24, 0};
        CHECK_OK(fib_task(&a));
        CHECK_EQ(a.result, fib_serial(24));
    }
    return 0;
}

static int fail_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static atomic_int g_sleepers_cancelled;

static int sleep_long(void *arg)
{
    (void)arg;
    int r = weft_sleep(LONG_NS);
    if (r == -ECANCELED)
        atomic_fetch_add(&g_sleepers_cancelled, 1);
    return r;
}

static int case_failure_and_deadline(void *arg)
{
    (void)arg;
    atomic_store(&g_sleepers_cancelled, 0);
    weft_nursery n;
    CHECK_OK(weft_nursery_init(&n));
    for (int i = 0; i < 8; i++)
        CHECK_OK(weft_spawn(&n, sleep_long, NULL));
    CHECK_OK(weft_spawn(&n, fail_eio, NULL));
    CHECK_EQ(weft_nursery_fini(&n), -EIO);
    CHECK_EQ(atomic_load(&g_sleepers_cancelled), 8);

    CHECK_OK(weft_nursery_init(&n));
    weft_nursery_set_deadline(&n, weft_now() + test_ms(20));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(&n, sleep_long, NULL));
    CHECK_EQ(weft_nursery_fini(&n), -ETIMEDOUT);

    CHECK_OK(weft_nursery_init(&n));
    CHECK_OK(weft_spawn(&n, sleep_long, NULL));
    weft_nursery_cancel(&n);
    CHECK_OK(weft_nursery_fini(&n));
    return 0;
}

static int misuse_body(void *arg)
{
    (void)arg;
    weft_nursery n;
    CHECK_OK(weft_nursery_init(&n));
    CHECK_EQ(weft_nursery_init(&n), -EINVAL); /* open: reported, left alone */
    CHECK_OK(weft_spawn(&n, count_body, NULL));
    CHECK_OK(weft_nursery_fini(&n));
    CHECK_EQ(weft_nursery_fini(&n), -EINVAL);
    CHECK_EQ(weft_spawn(&n, count_body, NULL), -EINVAL);
    return 0;
}

static __attribute__((noinline)) void leave_open(weft_nursery *heap)
{
    weft_nursery n;
    CHECK_OK(weft_nursery_init(heap ? heap : &n));
    CHECK_OK(weft_spawn(heap ? heap : &n, sleep_long, NULL));
    if (heap)
        weft_nursery_cancel(heap); /* so that the close at task exit ends */
    __asm__ __volatile__("" ::"r"(&n) : "memory");
}

static int returns_open(void *arg)
{
    (void)arg;
    leave_open(NULL);
    return 0; /* the task's exit finds the nursery in a dead frame */
}

static int returns_open_heap(void *arg)
{
    (void)arg;
    weft_nursery *h = malloc(sizeof *h);
    CHECK(h != NULL);
    leave_open(h);
    /* Closed when this task returns (misuse, reported), as a pool nursery
     * would be; the storage is leaked on purpose (the child ends first). */
    return 0;
}

static __attribute__((noinline)) void enter_and_return(weft_scope *s)
{
    weft_scope_enter(s, WEFT_FOREVER);
}

static int scope_dropped_inside(void *arg)
{
    (void)arg;
    weft_nursery n;
    weft_scope left; /* lives as long as this frame: no lifetime misuse */
    CHECK_OK(weft_nursery_init(&n));
    CHECK_OK(weft_spawn(&n, count_body, NULL));
    enter_and_return(&left); /* left entered: fini exits it (reported) */
    CHECK_OK(weft_nursery_fini(&n));
    return 0;
}

static __attribute__((noinline)) void leave_scope(void)
{
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    __asm__ __volatile__("" ::"r"(&s) : "memory");
}

static int scope_dead_inside(void *arg)
{
    (void)arg;
    weft_nursery n;
    CHECK_OK(weft_nursery_init(&n));
    CHECK_OK(weft_spawn(&n, count_body, NULL));
    leave_scope(); /* a scope in a returned frame, inside a live nursery */
    CHECK_OK(weft_nursery_fini(&n));
    return 0;
}

int main(void)
{
    test_watchdog(50);
    RUN(case_basics);
    RUN(case_fork_join);
    RUN(case_failure_and_deadline);
    if (test_case_selected("misuse")) {
        int st;
        char *err = test_run_in_child(2, misuse_body, NULL, &st);
        fprintf(stderr, "misuse child said: %s\n", err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(strstr(err, "weft_nursery_init on a nursery that is open") != NULL);
        CHECK(strstr(err, "weft_nursery_fini on an invalid or already closed nursery") != NULL);
        CHECK(strstr(err, "weft_spawn into a nursery that is not open") != NULL);
    }
    if (test_case_selected("returned_frame")) {
        int st;
        char *err = test_run_in_child(2, returns_open, NULL, &st);
        fprintf(stderr, "returned-frame child said: %s\n", err);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
        CHECK(strstr(err, "a nursery in caller storage (weft_nursery_init) was still open") !=
              NULL);
        err = test_run_in_child(2, returns_open_heap, NULL, &st);
        fprintf(stderr, "heap child said: %s\n", err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(strstr(err, "a nursery opened later is still open; closing it") != NULL);
        err = test_run_in_child(2, scope_dropped_inside, NULL, &st);
        fprintf(stderr, "scope-inside child said: %s\n", err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(strstr(err, "a cancel scope entered later is still entered; exiting it") != NULL);
        err = test_run_in_child(2, scope_dead_inside, NULL, &st);
        fprintf(stderr, "dead-scope child said: %s\n", err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(strstr(err, "cancel scope(s) entered in frames that have returned") != NULL);
        CHECK(strstr(err, "caller storage") == NULL);
    }
    printf("structured_nursery_storage: ok\n");
    return 0;
}
