/* Helpers shared by the tests/io_*.c programs. */
#ifndef WEFT_IO_TEST_H
#define WEFT_IO_TEST_H

#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Open fds of this process, not counting those open on /proc: this
 * directory's own, and the ones the runtime's monitor (its thread count
 * reads /proc/self/task) or a sanitizer runtime (/proc/self/maps) hold for
 * a moment on threads of their own. Under a CPU hog such a moment lasted
 * longer than io_count_fds_stable's 1 ms, and a leak check failed on a
 * count one too high *before* the case. Every fd a test case could leak
 * (sockets, pipes, files, rings, eventfds) is still counted. */
static inline int io_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[64];
        ssize_t len = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        if (len < 0)
            continue; /* closed meanwhile */
        link[len] = 0;
        if (strncmp(link, "/proc/", 6) != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The fd count once it holds still: a sanitizer runtime opens files (e.g.
 * /proc/self/maps) for a moment on threads of its own. */
static inline int io_count_fds_stable(void)
{
    int prev = io_count_fds();
    for (int i = 0; i < 100; i++) {
        usleep(1000);
        int n = io_count_fds();
        if (n == prev)
            return n;
        prev = n;
    }
    return prev;
}

/* Fails unless the fd count comes back to `before` (within a generous
 * liveness bound: transient fds of other threads must go away first). */
static inline void io_check_fds(int before)
{
    int n = 0;
    for (int i = 0; i < 200; i++) {
        if ((n = io_count_fds()) == before)
            return;
        usleep(10000);
    }
    CHECK_EQ(n, before);
}

/* Threads of this process, not counting io_uring's kernel workers
 * ("iou-wrk-*", "iou-sqp-*"), which the kernel starts for a ring and reaps
 * on its own schedule. A thread that exits while it is counted is not. */
static inline int io_count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "%s/comm", e->d_name);
        int fd = openat(dirfd(d), path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone meanwhile */
        ssize_t len = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (len < 0)
            continue;
        comm[len] = 0;
        if (strncmp(comm, "iou-", 4) != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Fails unless the thread count comes back to `before` within `bound_ns`
 * (a task polls with weft_sleep, a plain thread with usleep). */
static inline void io_check_threads(int before, int64_t bound_ns)
{
    int64_t end = weft_now() + bound_ns;
    int n;
    while ((n = io_count_threads()) != before && weft_now() < end) {
        if (weft_in_task())
            (void)weft_sleep(test_ms(2));
        else
            usleep(2000);
    }
    CHECK_EQ(n, before);
}

/* Runs fn in a forked child, under a watchdog of its own (alarms are not
 * inherited), with stdout and stderr shared; returns its exit status: 0
 * passed, 77 skipped (fn said why on stderr), anything else failed (a CHECK
 * in the child aborts it: 128 + the signal). Fork before this process has
 * other threads that could hold a lock (a run's, a resolver thread): cases
 * that fork run first. */
static inline int io_fork(int (*fn)(void), unsigned watchdog_seconds)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        test_watchdog(watchdog_seconds);
        int rc = fn();
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

/* The port a bound socket listens on, as a string. */
static inline void io_port_of(int fd, char out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len));
    int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(out, 16, "%d", port);
}

/* The backend WEFT_IO asks for ("io_uring" when unset). */
static inline const char *io_expected_backend(void)
{
    const char *e = getenv("WEFT_IO");
    return e && strcmp(e, "epoll") == 0 ? "epoll" : "io_uring";
}

/* A loopback TCP connection: *l listens on 127.0.0.1 (any port), *c is
 * connected to it and *s is the accepted end. */
static inline void io_tcp_pair(int *l, int *c, int *s)
{
    *l = weft_tcp_listen("127.0.0.1", "0", 16);
    CHECK(*l >= 0);
    char port[16];
    io_port_of(*l, port);
    *c = weft_tcp_connect("127.0.0.1", port);
    CHECK(*c >= 0);
    *s = weft_accept(*l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(*s >= 0);
}

/* Sends all n bytes (loops over partial sends). */
static inline void io_send_all(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = weft_send(fd, (const char *)buf + done, n - done, 0);
        CHECK(r > 0);
        done += (size_t)r;
    }
}

/* Receives exactly n bytes (fails on EOF or error). */
static inline void io_recv_all(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = weft_recv(fd, (char *)buf + done, n - done, 0);
        if (r <= 0)
            fprintf(stderr, "io_recv_all: %zd after %zu of %zu\n", r, done, n);
        CHECK(r > 0);
        done += (size_t)r;
    }
}

/* weft_io_stats_get into a struct full of garbage: every field must come
 * back written (the size too). */
static inline weft_io_stats io_stats(void)
{
    weft_io_stats s;
    memset(&s, 0xa5, sizeof s);
    s.size = sizeof s;
    CHECK_OK(weft_io_stats_get(&s));
    CHECK_EQ(s.size, sizeof s);
    return s;
}

/* Calls of one kind (weft_io_op_kind) submitted and not yet completed. */
static inline uint64_t io_in_flight(int kind)
{
    weft_io_stats s = io_stats();
    return s.submitted[kind] - s.completed[kind];
}

#endif
