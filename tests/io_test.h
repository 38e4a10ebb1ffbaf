/* Helpers shared by the tests/io_*.c programs. */
#ifndef WEFT_IO_TEST_H
#define WEFT_IO_TEST_H

#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
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

#endif
