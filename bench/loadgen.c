/*
 * loadgen - echo load generator and the echo servers it measures.
 *
 *   loadgen --serve weft           weft echo server (task per connection)
 *   loadgen --serve epoll          plain C baseline: one thread per CPU, each
 *                                  with its own SO_REUSEPORT listener and
 *                                  edge-triggered epoll set
 *   (servers listen on 127.0.0.1:0, print "PORT <n>", serve until killed;
 *   the Go and Tokio peers have the same: weftpeers -bench echo_serve,
 *   weftpeers-tokio -bench echo_serve)
 *
 *   loadgen --server "CMD" --conns N --size BYTES --secs S --name NAME
 *           [--syscall-secs S2] [--report rate|syscalls|cpu|p99]
 *       starts CMD (sh -c), reads its PORT line, opens N connections, and
 *       on each sends BYTES, waits for all of them back, and repeats, for S
 *       seconds after a short warm-up (one thread, edge-triggered epoll).
 *       Prints "BENCH NAME <round trips/s> rt/s" and, on stderr, p50/p99
 *       latency and the server's CPU time per round trip (from
 *       /proc/<pid>/stat, over the S seconds), then kills CMD.
 *       Syscalls per round trip: after the S seconds, a second window of S2
 *       seconds (default 0.5; 0.2 with WEFT_BENCH_QUICK=1; 0 = none) counts
 *       the server's syscalls with `perf stat -e raw_syscalls:sys_enter -p
 *       PID` (started with its counter disabled, then enabled and disabled
 *       through its --control fifos, so that the count and the round trips
 *       cover the same interval). A separate window because enabling a
 *       syscall tracepoint sends every thread of the machine through the
 *       slow syscall path: the rate and CPU figures are taken without it.
 *       Without perf (or if it fails) the figure is n/a. stderr then shows
 *         NAME: server: 1.9 syscalls/rt, 2.1 us CPU/rt
 *         NAME: load generator: 97% of one CPU (one thread), 11.5 us CPU/rt
 *       (the CPU figures from the S-second window; near 100% of a CPU the
 *       generator, not the server, sets the rate). --report syscalls or
 *       --report cpu prints that figure as the BENCH line instead of the
 *       rate ("syscalls/rt", "us/rt"; no BENCH line if it is n/a), for rows
 *       that compare it; --report p99 the round trips' p99 latency ("us").
 *
 * WEFT_BENCH_QUICK=1 shortens the measurement to 0.5 s.
 */
#define _GNU_SOURCE 1
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

typedef struct {
    int ep;
    conn *cs;
    size_t size;
    char *msg, *sink;
    int64_t *lat; /* latencies of the round trips counted, if not NULL */
    size_t ln, lcap;
} driver;

/* Drives the connections until `end`; returns the round trips completed at or
 * after `from`. */
static long pump(driver *d, int64_t from, int64_t end)
{
    long rts = 0;
    struct epoll_event evs[512];
    for (int64_t t = now_ns(); t < end; t = now_ns()) {
        int ms = (int)((end - t) / 1000000) + 1;
        int n = epoll_wait(d->ep, evs, 512, ms < 100 ? ms : 100);
        for (int i = 0; i < n; i++) {
            conn *c = &d->cs[evs[i].data.u32];
            kick(c, d->msg, d->size);
            ssize_t r;
            while ((r = read(c->fd, d->sink, 65536)) > 0)
                c->got += (size_t)r;
            if (c->got < d->size)
                continue;
            int64_t now = now_ns();
            if (now >= from) {
                rts++;
                if (d->lat && d->ln < d->lcap)
                    d->lat[d->ln++] = now - c->t0;
            }
            c->sent = c->got = 0;
            c->t0 = now;
            kick(c, d->msg, d->size);
        }
    }
    return rts;
}

/* ---- syscall counting with perf ------------------------------------------------- */

typedef struct {
    pid_t pid;
    int ctl, ack;
    char dir[64], out[96];
} perf_counter;

/* Writes cmd ("enable" / "disable") to perf's control fifo and waits (at most
 * 5 s, less if perf exits: not installed, not permitted) for its ack. */
static int perf_cmd(perf_counter *pc, const char *cmd)
{
    char line[32], ack[16];
    int len = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(pc->ctl, line, (size_t)len) != len)
        return -1;
    struct pollfd p = {.fd = pc->ack, .events = POLLIN};
    for (int waited = 0;; waited += 100) { /* a perf that failed to start exits */
        if (poll(&p, 1, 100) == 1)
            break;
        if (waited >= 5000 || waitpid(pc->pid, NULL, WNOHANG) == pc->pid) {
            if (waited < 5000)
                pc->pid = 0; /* reaped */
            return -1;
        }
    }
    ssize_t r = read(pc->ack, ack, sizeof ack - 1);
    return r > 0 && strncmp(ack, "ack", 3) == 0 ? 0 : -1;
}

static void perf_cleanup(perf_counter *pc)
{
    char path[128];
    if (pc->pid > 0) {
        kill(pc->pid, SIGKILL);
        waitpid(pc->pid, NULL, 0);
        pc->pid = 0;
    }
    if (pc->ctl >= 0)
        close(pc->ctl);
    if (pc->ack >= 0)
        close(pc->ack);
    pc->ctl = pc->ack = -1;
    if (pc->dir[0]) {
        snprintf(path, sizeof path, "%s/ctl", pc->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/ack", pc->dir);
        unlink(path);
        unlink(pc->out);
        rmdir(pc->dir);
        pc->dir[0] = '\0';
    }
}

/* Starts `perf stat -e raw_syscalls:sys_enter -p target` with the counter
 * disabled (-D -1); 0 once perf answers on its control fifo. */
static int perf_start(perf_counter *pc, pid_t target)
{
    char ctl[96], ack[96], pidstr[16], ctlarg[256];
    *pc = (perf_counter){.ctl = -1, .ack = -1};
    const char *tmp = getenv("TMPDIR");
    snprintf(pc->dir, sizeof pc->dir, "%s/loadgen-perf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (strlen(pc->dir) > 48 || !mkdtemp(pc->dir)) {
        pc->dir[0] = '\0';
        return -1;
    }
    snprintf(ctl, sizeof ctl, "%s/ctl", pc->dir);
    snprintf(ack, sizeof ack, "%s/ack", pc->dir);
    snprintf(pc->out, sizeof pc->out, "%s/out", pc->dir);
    snprintf(pidstr, sizeof pidstr, "%d", (int)target);
    snprintf(ctlarg, sizeof ctlarg, "fifo:%s,%s", ctl, ack);
    if (mkfifo(ctl, 0600) || mkfifo(ack, 0600))
        return perf_cleanup(pc), -1;
    /* O_RDWR: opening a fifo so never blocks, whoever comes first */
    pc->ctl = open(ctl, O_RDWR | O_CLOEXEC);
    pc->ack = open(ack, O_RDWR | O_CLOEXEC);
    if (pc->ctl < 0 || pc->ack < 0)
        return perf_cleanup(pc), -1;
    pc->pid = fork();
    if (pc->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execlp("perf", "perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-D", "-1",
               "--control", ctlarg, "-o", pc->out, "-p", pidstr, (char *)NULL);
        _exit(127);
    }
    if (pc->pid < 0) {
        pc->pid = 0;
        return perf_cleanup(pc), -1;
    }
    return 0;
}

/* Stops perf and returns the count it wrote, or -1. */
static long perf_finish(perf_counter *pc)
{
    long count = -1;
    int st;
    kill(pc->pid, SIGINT);
    waitpid(pc->pid, &st, 0);
    pc->pid = 0;
    FILE *f = fopen(pc->out, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "raw_syscalls:sys_enter") && line[0] >= '0' && line[0] <= '9')
            count = atol(line);
    if (f)
        fclose(f);
    perf_cleanup(pc);
    return count;
}

/* The server's syscalls per round trip over a window of `secs`, or -1. */
static double syscalls_per_rt(driver *d, pid_t server, double secs)
{
    perf_counter pc;
    if (perf_start(&pc, server) != 0) {
        fprintf(stderr, "loadgen: cannot start perf (syscall count n/a)\n");
        return -1;
    }
    /* perf answers once attached: the connections sit idle meanwhile */
    if (perf_cmd(&pc, "enable") != 0) {
        fprintf(stderr, "loadgen: perf did not start counting (syscall count n/a)\n");
        perf_cleanup(&pc);
        return -1;
    }
    int64_t t0 = now_ns();
    long rts = pump(d, t0, t0 + (int64_t)(secs * 1e9));
    int off = perf_cmd(&pc, "disable");
    long n = perf_finish(&pc);
    if (off != 0 || n < 0 || rts == 0) {
        fprintf(stderr, "loadgen: no syscall count from perf (n/a)\n");
        return -1;
    }
    return (double)n / (double)rts;
}

static int drive(const char *cmd, int nconn, size_t size, double secs, double sc_secs,
                 const char *report, const char *name)
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
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    int one = 1;
    driver d = {.ep = epoll_create1(0), .size = size, .lcap = 1 << 22};
    d.cs = calloc((size_t)nconn, sizeof *d.cs);
    d.msg = malloc(size);
    d.sink = malloc(65536);
    d.lat = malloc(d.lcap * sizeof *d.lat);
    memset(d.msg, 'x', size);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < nconn; i++) {
        conn *c = &d.cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) {
            fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 1;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(d.ep, EPOLL_CTL_ADD, c->fd, &ev);
        c->t0 = now_ns();
        kick(c, d.msg, size);
    }
    int64_t start = now_ns() + 200000000, end = start + (int64_t)(secs * 1e9);
    pump(&d, start, start); /* warm-up */
    long cpu0 = cpu_ticks(pid), self0 = cpu_ticks(getpid());
    long rts = pump(&d, start, end);
    long cpu1 = cpu_ticks(pid), self1 = cpu_ticks(getpid());
    /* The generator's own share of a CPU over the window: it is one thread,
     * so near 100% it, not the server, bounds the rate. */
    double self_pct = (double)(self1 - self0) / (double)sysconf(_SC_CLK_TCK) / secs * 100.0;
    double cpu_rt = rts ? (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) * 1e6 / (double)rts
                        : 0;
    int64_t *lat = d.lat;
    size_t ln = d.ln;
    d.lat = NULL; /* the syscall window's latencies are not kept */
    double sc_rt = sc_secs > 0 ? syscalls_per_rt(&d, pid, sc_secs) : -1;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    qsort(lat, ln, sizeof *lat, cmp64);
    double rate = (double)rts / secs;
    char sc_s[32] = "n/a";
    if (sc_rt >= 0)
        snprintf(sc_s, sizeof sc_s, "%.2f", sc_rt);
    fprintf(stderr, "%s: %.0f round trips/s, p50 %.1f us, p99 %.1f us, server CPU %.2f us/rt\n",
            name, rate, ln ? lat[ln / 2] / 1e3 : 0, ln ? lat[ln * 99 / 100] / 1e3 : 0, cpu_rt);
    fprintf(stderr, "%s: server: %s syscalls/rt, %.2f us CPU/rt\n", name, sc_s, cpu_rt);
    fprintf(stderr, "%s: load generator: %.0f%% of one CPU (one thread), %.2f us CPU/rt\n", name,
            self_pct, rts ? self_pct / 100.0 * secs * 1e6 / (double)rts : 0);
    if (strcmp(report, "syscalls") == 0) {
        if (sc_rt >= 0)
            printf("BENCH %s %.3f syscalls/rt\n", name, sc_rt);
    } else if (strcmp(report, "cpu") == 0) {
        if (rts)
            printf("BENCH %s %.3f us/rt\n", name, cpu_rt);
    } else if (strcmp(report, "p99") == 0) {
        if (ln)
            printf("BENCH %s %.1f us\n", name, lat[ln * 99 / 100] / 1e3);
    } else {
        printf("BENCH %s %.0f rt/s\n", name, rate);
    }
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
    bool quick = q && strcmp(q, "1") == 0;
    double secs = quick ? 0.5 : 3, sc_secs = quick ? 0.2 : 0.5;
    const char *report = "rate";
    if ((argc - 1) % 2)
        cmd = NULL, argc = 1; /* an option without its value: usage */
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
        else if (!strcmp(argv[i], "--syscall-secs"))
            sc_secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--report"))
            report = argv[i + 1];
        else {
            fprintf(stderr, "loadgen: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!cmd || nconn < 1 || size < 1 || size > 65536 || secs <= 0 || sc_secs < 0 ||
        (strcmp(report, "rate") && strcmp(report, "syscalls") && strcmp(report, "cpu") &&
         strcmp(report, "p99"))) {
        fprintf(stderr, "usage: loadgen --serve weft|epoll | loadgen --server CMD [--conns N] "
                        "[--size BYTES] [--secs S] [--name NAME] [--syscall-secs S] "
                        "[--report rate|syscalls|cpu|p99]\n");
        return 2;
    }
    return drive(cmd, nconn, size, secs, sc_secs, report, name);
}
