/* Stack overflow is caught with a message naming the task, in a forked
 * child: (1) a guarded stack hits its guard page; (2) with 9,000 stacks in
 * use, an overflow still hits a guard where the kernel has
 * MADV_GUARD_INSTALL; (3) without it (forced off), past the mprotect guard
 * budget, a task that is switched out while deeper than its stack is caught
 * by the scheduler's stack-pointer check at that switch.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

static volatile char sink;

static volatile int keep_going = 1;

static int recurse_forever(int depth)
{
    volatile char big[512];
    big[0] = (char)depth;
    big[511] = (char)depth;
    sink = big[0];
    if (!keep_going)
        return 0;
    return recurse_forever(depth + 1) + big[511];
}

static int guarded_victim(void *arg)
{
    (void)arg;
    weft_task_set_name("deep-diver");
    return recurse_forever(0);
}

static char *top_of_stack;

/* Uses the stack down to `limit`, touching every word, and parks in
 * the deepest frame: the switch-out check must catch it there. */
__attribute__((noinline)) static void dig(char *limit)
{
    volatile char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (char)0xAB;
    if ((char *)buf > limit)
        dig(limit);
    else
        weft_sleep(test_ms(1)); /* parks: a switch-out */
    sink = buf[0];
}

static int unguarded_victim(void *arg)
{
    (void)arg;
    weft_task_set_name("slow-leak");
    char here;
    top_of_stack = &here;
    /* 64 KiB stack: dig 1 KiB past its end, into its slot's dead page. */
    uintptr_t limit = (uintptr_t)top_of_stack - 64 * 1024 - 1024;
    dig((char *)limit);
    return 0;
}

static weft_event never = WEFT_EVENT_INIT;
static atomic_int nparked;

static int parked(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nparked, 1);
    return weft_event_wait(&never);
}

static int spend_guards_then_overflow(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    /* More parked tasks than the guard budget (max_map_count / 8). */
    for (int i = 0; i < 9000; i++)
        CHECK_OK(weft_spawn(n, parked, NULL));
    /* All of them hold their stacks before the victim gets one (it must
     * come after the budget, whatever the machine's speed). */
    while (atomic_load(&nparked) < 9000)
        CHECK_OK(weft_sleep(test_ms(1)));
    weft_nursery *m;
    CHECK_OK(weft_nursery_open(&m));
    CHECK_OK(weft_spawn(m, unguarded_victim, NULL));
    /* Let a worker start it on a stack of its own (a child that close runs
     * inline would borrow ours). */
    weft_sleep(test_ms(20));
    weft_nursery_close(m);
    weft_nursery_cancel(n);
    weft_nursery_close(n);
    return 0;
}

static int guarded_root(void *arg)
{
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, guarded_victim, arg));
    weft_nursery_close(n);
    return 0;
}

/* Runs fn on one worker in a child; returns its stderr; *sig gets the
 * killing signal, or 1000 + the exit status (sanitizers report a deadly
 * signal and may then exit instead of re-raising it). no_guard_install: the
 * child's runtime acts as on a kernel without MADV_GUARD_INSTALL. */
static char *in_child(weft_fn fn, int *sig, bool no_guard_install)
{
    int status;
    char *err = test_run_in_child(1, fn, no_guard_install ? "WEFT_TEST_NO_GUARD_INSTALL=1" : NULL,
                                  &status);
    *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 1000 + WEXITSTATUS(status);
    return err;
}

int main(void)
{
    test_watchdog(50);
    int sig;
    char *err = in_child(guarded_root, &sig, false);
    fprintf(stderr, "guarded child (signal %d) said: %s\n", sig, err);
    CHECK(sig != 1000 && sig != 1003); /* not an exit: a report */
    if (!test_sanitized()) {
        CHECK_EQ(sig, SIGABRT);
        CHECK(strstr(err, "stack overflow in task") && strstr(err, "deep-diver"));
    } else {
        CHECK(strstr(err, "overflow") || strstr(err, "SEGV"));
    }
    if (!test_sanitized()) {
        for (int no_guard = 0; no_guard <= 1; no_guard++) {
            err = in_child(spend_guards_then_overflow, &sig, no_guard);
            fprintf(stderr, "child with 9000 stacks (guard install %s; signal %d) said: %s\n",
                    no_guard ? "off" : "as the kernel has it", sig, err);
            CHECK_EQ(sig, SIGABRT);
            CHECK(strstr(err, "stack overflow in task") && strstr(err, "slow-leak"));
            /* Without guard markers, the stack was past the mprotect
             * budget: the stack-pointer check caught it, not a fault. */
            if (no_guard)
                CHECK(strstr(err, "hit its guard page") == NULL);
        }
    }
    printf("sched_overflow: ok\n");
    return 0;
}
