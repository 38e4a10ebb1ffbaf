// sched_cxx_exception.cc - a C++ exception escaping a task body terminates
// the process with a message naming the task (each case in a forked child):
//  1. a task on its own stack;
//  2. a child that the parent's weft_nursery_close runs inline on its own
//     stack, while the parent sits in a try/catch: the exception must stop
//     at the child's edge, never reach the parent's catch;
//  3. a weft_blocking body: the message names the task that called it.
/* LABELS: unit */
#include <weft.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

static int thrower(void *)
{
    weft_task_set_name("thrower");
    throw std::runtime_error("boom");
}

static int own_stack(void *)
{
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    weft_spawn(n, thrower, nullptr);
    weft_sleep(10 * 1000 * 1000);
    return weft_nursery_close(n);
}

static int quiet_thrower(void *) { throw std::runtime_error("inline boom"); }

static int inline_child(void *)
{
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    // A small stack, so that the parent's close may run it inline on the
    // parent's stack (one worker: nobody else takes it first).
    weft_spawn_attr a = {};
    a.stack_size = 16 * 1024;
    a.name = "inline-thrower";
    if (weft_spawn_ex(n, quiet_thrower, nullptr, &a))
        return -1;
    try {
        weft_nursery_close(n);
    } catch (...) {
        std::fprintf(stderr, "parent caught the child's exception (task %llu)\n",
                     (unsigned long long)weft_task_id());
        _exit(3);
    }
    return 0;
}

static int blocking_thrower(void *) { throw std::logic_error("blocking boom"); }

static int blocking_caller(void *)
{
    weft_task_set_name("blocking-caller");
    try {
        weft_blocking(blocking_thrower, nullptr);
    } catch (...) {
        std::fprintf(stderr, "caller caught the body's exception\n");
        _exit(3);
    }
    return 0;
}

static int blocking_root(void *)
{
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    weft_spawn(n, blocking_caller, nullptr);
    return weft_nursery_close(n);
}

static bool expect_named_abort(const char *what, weft_fn root, const char *needle1,
                               const char *needle2)
{
    int p[2];
    if (pipe(p))
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        weft_config cfg = {};
        cfg.workers = 1;
        weft_run(&cfg, root, nullptr);
        _exit(0); // not reached: terminate aborts
    }
    close(p[1]);
    static char buf[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    std::fprintf(stderr, "%s: child said: %s\n", what, buf);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        std::fprintf(stderr, "%s: expected the child to abort (status %d)\n", what, status);
        return false;
    }
    if (!std::strstr(buf, needle1) || !std::strstr(buf, needle2)) {
        std::fprintf(stderr, "%s: expected a message with \"%s\" and \"%s\"\n", what, needle1,
                     needle2);
        return false;
    }
    return true;
}

int main()
{
    bool ok = expect_named_abort("own stack", own_stack, "escaped task", "thrower");
    ok &= expect_named_abort("inline child", inline_child, "escaped task", "inline-thrower");
    ok &= expect_named_abort("weft_blocking body", blocking_root, "weft_blocking body",
                             "blocking-caller");
    if (!ok)
        return 1;
    std::puts("sched_cxx_exception: ok");
    return 0;
}
