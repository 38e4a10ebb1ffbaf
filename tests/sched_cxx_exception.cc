// sched_cxx_exception.cc - a C++ exception escaping a task body terminates
// the process with a message naming the task (run in a forked child).
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

static int root(void *)
{
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    weft_spawn(n, thrower, nullptr);
    weft_sleep(10 * 1000 * 1000);
    return weft_nursery_close(n);
}

int main()
{
    int p[2];
    if (pipe(p))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        weft_config cfg = {};
        cfg.workers = 1;
        weft_run(&cfg, root, nullptr);
        _exit(0); // not reached: terminate aborts
    }
    close(p[1]);
    static char buf[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    int status = 0;
    waitpid(pid, &status, 0);
    std::fprintf(stderr, "child said: %s\n", buf);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        std::fprintf(stderr, "expected the child to abort\n");
        return 1;
    }
    if (!std::strstr(buf, "escaped task") || !std::strstr(buf, "thrower")) {
        std::fprintf(stderr, "expected a message naming the task\n");
        return 1;
    }
    std::puts("sched_cxx_exception: ok");
    return 0;
}
