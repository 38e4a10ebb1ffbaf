/* Stack overflow is caught with a message naming the task, in a forked
 * child: (1) a guarded stack hits its guard page; (2) past the guard budget,
 * an unguarded stack overwrites its limit word and the scheduler catches it
 * at the task's next switch.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <sys/wait.h>

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

/* Uses the stack down to `limit`, touching every word, then returns. */
__attribute__((noinline)) static void dig(char *limit)
{
    volatile char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (char)0xAB;
    if ((char *)buf > limit)
        dig(limit);
    sink = buf[0];
}

static int unguarded_victim(void *arg)
{
    (void)arg;
    weft_task_set_name("slow-leak");
    char here;
    top_of_stack = &here;
    /* 64 KiB stack: dig 1 KiB past its end, into the untouched dead page. */
    uintptr_t limit = (uintptr_t)top_of_stack - 64 * 1024 - 1024;
    dig((char *)limit);
    weft_yield(); /* the switch-out check must catch it here */
    return 0;
}

static weft_event never = WEFT_EVENT_INIT;

static int parked(void *arg)
{
    (void)arg;
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
    CHECK_OK(weft_sleep(test_ms(50)));
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

/* Runs fn in a child; returns its stderr; *sig gets the killing signal. */
static char *in_child(weft_fn fn, int *sig)
{
    int p[2];
    CHECK_OK(pipe(p));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        test_run(1, fn, NULL);
        _exit(0);
    }
    close(p[1]);
    static char buf[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(p[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    /* The killing signal, or 1000 + the exit status (sanitizers report a
     * deadly signal and may then exit instead of re-raising it). */
    *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 1000 + WEXITSTATUS(status);
    return buf;
}

int main(void)
{
    test_watchdog(50);
    int sig;
    char *err = in_child(guarded_root, &sig);
    fprintf(stderr, "guarded child (signal %d) said: %s\n", sig, err);
    CHECK(sig != 1000); /* not a clean exit */
    if (!test_sanitized()) {
        CHECK_EQ(sig, SIGABRT);
        CHECK(strstr(err, "stack overflow in task") && strstr(err, "deep-diver"));
    } else {
        CHECK(strstr(err, "overflow") || strstr(err, "SEGV"));
    }
    if (!test_sanitized()) {
        err = in_child(spend_guards_then_overflow, &sig);
        fprintf(stderr, "unguarded child (signal %d) said: %s\n", sig, err);
        CHECK_EQ(sig, SIGABRT);
        CHECK(strstr(err, "stack overflow in task") && strstr(err, "slow-leak"));
    }
    printf("sched_overflow: ok\n");
    return 0;
}
