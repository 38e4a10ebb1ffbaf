/*
 * loadgen - echo load generator and the echo servers it measures.
 *
 *   loadgen --serve weft           weft echo server (task per connection)
 *   loadgen --serve epoll          plain C baseline: one thread per CPU, each
 *                                  with its own SO_REUSEPORT listener and
 *                                  edge-triggered epoll set
 *   (servers listen on 127.0.0.1:0, print "PORT <n>", serve until killed)
 *
 *   loadgen --server "CMD" --conns N --size BYTES --secs S --name NAME
 *       starts CMD (sh -c), reads its PORT line, opens N connections, and
 *       on each sends BYTES, waits for all of them back, and repeats, for S
 *       seconds after a short warm-up (one thread, edge-triggered epoll).
 *       Prints "BENCH NAME <round trips/s> rt/s" and, on stderr, p50/p99
 *       latency and the server's CPU time per round trip (from
 *       /proc/<pid>/stat), then kills CMD.
 *
 * WEFT_BENCH_QUICK=1 shortens the measurement to 0.5 s.
 */
#define _GNU_SOURCE 1
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int listen_on(int port, bool reuseport)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096))
        exit(1);
    return s;
}

static int port_of(int s)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

/* ---- weft server ----------------------------------------------------------- */

static int weft_conn(void *arg)
{
    int fd = (int)(intptr_t)arg, one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *buf = malloc(65536);
    ssize_t n;
    while ((n = weft_recv(fd, buf, 65536, 0)) > 0)
        for (ssize_t d = 0, w; d < n; d += w)
            if ((w = weft_send(fd, buf + d, (size_t)(n - d), 0)) < 0)
                goto out;
out:
    free(buf);
    weft_close(fd);
    return 0;
}

static int weft_server(void *arg)
{
    int l = (int)(intptr_t)arg;
    weft_nursery *n;
    weft_nursery_open(&n);
    int fd;
    while ((fd = weft_accept(l, NULL, NULL, SOCK_CLOEXEC)) != -ECANCELED)
        if (fd >= 0 && weft_spawn(n, weft_conn, (void *)(intptr_t)fd) != 0)
            weft_close(fd);
    weft_nursery_close(n);
    return 0;
}

/* ---- plain epoll server ------------------------------------------------------ */

static void *epoll_thread(void *arg)
{
    int l = (int)(intptr_t)arg, ep = epoll_create1(0);
    fcntl(l, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = l}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static __thread char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c, one = 1;
            if (fd == l) {
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP,
                                             .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0)
                for (ssize_t d = 0, w; d < r; d += w) /* request-response: fits the buffer */
                    if ((w = write(fd, buf + d, (size_t)(r - d))) < 0)
                        w = 0;
            if (r == 0 || (r < 0 && errno != EAGAIN))
                close(fd);
        }
    }
    return NULL;
}

static int serve(const char *kind)
{
    signal(SIGPIPE, SIG_IGN);
    int l = listen_on(0, strcmp(kind, "epoll") == 0);
    printf("PORT %d\n", port_of(l));
    fflush(stdout);
    if (strcmp(kind, "weft") == 0)
        return weft_run(NULL, weft_server, (void *)(intptr_t)l) == 0 ? 0 : 1;
    long nth = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 1; i < nth; i++) {
        pthread_t t;
        pthread_create(&t, NULL, epoll_thread, (void *)(intptr_t)listen_on(port_of(l), true));
    }
    epoll_thread((void *)(intptr_t)l);
    return 0;
}

/* ---- the driver ------------------------------------------------------------------ */

typedef struct {
    int fd;
    size_t sent, got;
    int64_t t0;
} conn;

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f))
        return f ? (fclose(f), 0) : 0;
    fclose(f);
    char *p = strrchr(buf, ')');
    long ut = 0, st = 0;
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st);
    return ut + st;
}

static void kick(conn *c, const char *msg, size_t size)
{
    while (c->sent < size) {
        ssize_t w = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        c->sent += (size_t)w;
    }
}

static int drive(const char *cmd, int nconn, size_t size, double secs, const char *name)
{
    int p[2];
    if (pipe(p))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        char line[4096]; /* exec: the pid is the server's, for its CPU time */
        snprintf(line, sizeof line, "exec %s", cmd);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    int port = 0;
    if (fscanf(in, "PORT %d", &port) != 1) {
        fprintf(stderr, "loadgen: no PORT line from %s\n", cmd);
        return 1;
    }
    int ep = epoll_create1(0), one = 1;
    conn *cs = calloc((size_t)nconn, sizeof *cs);
    char *msg = malloc(size), *sink = malloc(65536);
    memset(msg, 'x', size);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a))
            return fprintf(stderr, "loadgen: connect: %s\n", strerror(errno)), 1;
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        cs[i].t0 = now_ns();
        kick(&cs[i], msg, size);
    }
    size_t lcap = 1 << 22, ln = 0;
    int64_t *lat = malloc(lcap * sizeof *lat);
    int64_t start = now_ns() + 200000000, end = start + (int64_t)(secs * 1e9);
    long rts = 0, cpu0 = -1;
    struct epoll_event evs[512];
    for (int64_t t = now_ns(); t < end; t = now_ns()) {
        if (cpu0 < 0 && t >= start)
            cpu0 = cpu_ticks(pid);
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            conn *c = &cs[evs[i].data.u32];
            kick(c, msg, size);
            ssize_t r;
            while ((r = read(c->fd, sink, 65536)) > 0)
                c->got += (size_t)r;
            if (c->got < size)
                continue;
            int64_t now = now_ns();
            if (now >= start) {
                rts++;
                if (ln < lcap)
                    lat[ln++] = now - c->t0;
            }
            c->sent = c->got = 0;
            c->t0 = now;
            kick(c, msg, size);
        }
    }
    long cpu1 = cpu_ticks(pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    qsort(lat, ln, sizeof *lat, cmp64);
    double rate = (double)rts / secs;
    printf("BENCH %s %.0f rt/s\n", name, rate);
    fprintf(stderr, "%s: %.0f round trips/s, p50 %.1f us, p99 %.1f us, server CPU %.2f us/rt\n",
            name, rate, ln ? lat[ln / 2] / 1e3 : 0, ln ? lat[ln * 99 / 100] / 1e3 : 0,
            rts ? (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) * 1e6 / (double)rts : 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--serve") == 0)
        return serve(argv[2]);
    const char *cmd = NULL, *name = "echo";
    int nconn = 100;
    size_t size = 64;
    const char *q = getenv("WEFT_BENCH_QUICK");
    double secs = q && strcmp(q, "1") == 0 ? 0.5 : 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--server"))
            cmd = argv[i + 1];
        else if (!strcmp(argv[i], "--conns"))
            nconn = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--secs"))
            secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
    }
    if (!cmd || nconn < 1 || size < 1 || size > 65536 || secs <= 0) {
        fprintf(stderr, "usage: loadgen --serve weft|epoll | loadgen --server CMD [--conns N] "
                        "[--size BYTES] [--secs S] [--name NAME]\n");
        return 2;
    }
    return drive(cmd, nconn, size, secs, name);
}
