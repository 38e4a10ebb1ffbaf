/* Accepting loopback TCP connections: multishot IORING_OP_ACCEPT against
 * single-shot accept and the plain syscalls, five ways:
 *   a 1 accept SQE in flight, resubmitted after each CQE, one
 *     io_uring_submit_and_wait(1) per wait (what weft_accept does: one SQE
 *     per call);
 *   b NINFLIGHT (default 8) single-shot accept SQEs in flight, each CQE's
 *     re-arm submitted with the next submit_and_wait(1);
 *   c multishot accept (io_uring_prep_multishot_accept): one SQE, a CQE per
 *     connection, re-armed only when a CQE comes without IORING_CQE_F_MORE;
 *   d blocking accept4 in a loop (SO_RCVTIMEO 100 ms so it stays bounded);
 *   e epoll, edge-triggered, accept4 until EAGAIN (listening socket
 *     O_NONBLOCK while this method runs).
 * One server thread owns the listening socket (127.0.0.1, port 0, backlog
 * 4096) and one ring set up as weft's (CQSIZE 16384|CLAMP|COOP_TASKRUN, 256
 * SQEs; kernel features probed and printed). It close(2)s every accepted fd
 * at once (not IORING_OP_CLOSE: the close is the same syscall in every
 * method and is counted in its CPU, not in its syscalls). CLIENTS threads
 * (default "1,4": one phase per count, a fresh listening socket each) loop:
 * socket, IP_BIND_ADDRESS_NO_PORT + bind to their own 127.0.0.(2+i), connect
 * to 127.0.0.1, (WRITE=1: write 1 byte), close with SO_LINGER {1,0} (an RST:
 * no TIME_WAIT, so no port exhaustion). The clients stop while more than
 * MAXQ (default 512) connections wait in the accept queue (a 20 us
 * nanosleep per check: "stalls"), so the queue (4096) never overflows into
 * a dropped SYN and its 1 s retransmit.
 * Methods run in blocks of BLOCK_MS (default 1000) ms, rotated every round
 * so all see the same load; ROUNDS (default 6) measured rounds after one
 * 300 ms warm-up round. Per block: accepts/s, the server thread's CPU
 * (CLOCK_THREAD_CPUTIME_ID) per accept, the process's CPU (getrusage
 * RUSAGE_SELF: clients, io-wq workers if any) per accept, io_uring_enter
 * calls per accept (counted: every submit_and_wait is one enter), all
 * accept-side syscalls per accept ("sys": io_uring_enter, accept4,
 * epoll_wait; never the close), the longest time between two turns of the
 * server loop ("gap"), client stalls per accept. The summary compares each
 * method with method a in the same round (io/tools/accept_multishot_pool.py
 * pools several runs' rounds). Bounded: alarm() kills
 * it if it overruns. Not built by CMake (io/README.md, "Kernel features
 * measured", has the figures):
 *   gcc -O2 -Wall io/tools/accept_multishot.c -o /tmp/accept_multishot -luring -lpthread
 *   /tmp/accept_multishot      (env: CLIENTS=1,4 ROUNDS=6 BLOCK_MS=1000
 *                               NINFLIGHT=8 MAXQ=512 WRITE=0) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#define M 5
#define MAXR 64
#define UD_ACCEPT 1
#define UD_CANCEL 2

static const char *mname[M] = {"a single-shot, 1 in flight (weft today)",
                               "b single-shot, N in flight", "c multishot accept",
                               "d blocking accept4", "e epoll ET + accept4 to EAGAIN"};

static int rounds = 6, block_ms = 1000, ninflight = 8, maxq = 512, write1;
static int lfd;
static struct sockaddr_in srv;
static struct io_uring ring;
static unsigned ring_flags, ring_features;
static _Atomic int stop;
static _Atomic long connected, accepted, cerr, stalls;

typedef struct {
    double rate, cpu_us, proc_us, enters, sys, gap_ms, stalls;
    long n, rearm;
} blk;
static blk res[M][MAXR];

static int64_t now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int64_t proc_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}
static void die(const char *what, int err)
{
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
}

/* ---- clients ---- */
static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (unsigned)(id % 250));
    struct linger lg = {1, 0};
    int one = 1;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&connected, memory_order_relaxed) -
                atomic_load_explicit(&accepted, memory_order_relaxed) >
            maxq) {
            /* sleep, not sched_yield: a yielding client keeps its CPU
             * from the server thread and burns process CPU */
            atomic_fetch_add_explicit(&stalls, 1, memory_order_relaxed);
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            continue;
        }
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            die("client socket", errno);
        setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (bind(s, (struct sockaddr *)&src, sizeof src) < 0 ||
            connect(s, (struct sockaddr *)&srv, sizeof srv) < 0) {
            atomic_fetch_add(&cerr, 1);
            close(s);
            continue;
        }
        if (write1 && write(s, "x", 1) != 1)
            atomic_fetch_add(&cerr, 1);
        atomic_fetch_add_explicit(&connected, 1, memory_order_relaxed);
        close(s);
    }
    return NULL;
}

/* ---- server ---- */
static long got; /* accepts inside the current window */
static void take(int fd, int counting)
{
    close(fd);
    atomic_fetch_add_explicit(&accepted, 1, memory_order_relaxed);
    got += counting;
}

static void prep_accept(int multi)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe)
        die("no sqe", EBUSY);
    if (multi)
        io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    else
        io_uring_prep_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, UD_ACCEPT);
}

/* Reap every CQE there is: close accepted fds, count ops still in flight. */
static int inflight, cancel_pending;
static long errs, rearms;
static int reap(int multi, int counting)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    int freed = 0;
    io_uring_for_each_cqe(&ring, head, cqe)
    {
        n++;
        if (cqe->user_data == UD_CANCEL) {
            cancel_pending = 0;
            continue;
        }
        if (cqe->res >= 0)
            take(cqe->res, counting);
        else if (cqe->res != -ECANCELED)
            errs++;
        if (!multi || !(cqe->flags & IORING_CQE_F_MORE)) {
            inflight--;
            freed++;
        }
    }
    io_uring_cq_advance(&ring, n);
    return freed;
}

static long enters, sysc;
static int64_t prev_t, maxgap; /* longest time between two loop iterations */
static int done(int64_t until)
{
    int64_t t = now(CLOCK_MONOTONIC);
    if (t - prev_t > maxgap)
        maxgap = t - prev_t;
    prev_t = t;
    return t >= until;
}
static void wait1(void)
{
    int rc = io_uring_submit_and_wait(&ring, 1);
    enters++;
    if (rc < 0 && rc != -EINTR)
        die("submit_and_wait", -rc);
}

static void uring_method(int m, int64_t until)
{
    int multi = m == 2, want = m == 0 ? 1 : m == 1 ? ninflight : 1;
    while (inflight < want) {
        prep_accept(multi);
        inflight++;
    }
    for (;;) {
        int freed = reap(multi, 1);
        if (multi && freed)
            rearms++;
        while (inflight < want) {
            prep_accept(multi);
            inflight++;
        }
        if (done(until))
            break;
        wait1();
    }
}

/* After the window: cancel what is armed, close what it still accepts. */
static void uring_drain(int m)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_cancel_fd(sqe, lfd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, UD_CANCEL);
    cancel_pending = 1;
    while (inflight > 0 || cancel_pending) {
        io_uring_submit_and_wait(&ring, 1);
        reap(m == 2, 0);
    }
}

static void blocking_method(int64_t until)
{
    struct timeval tv = {0, 100000};
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        if (done(until))
            break;
        int fd = accept4(lfd, NULL, NULL, 0);
        sysc++;
        if (fd >= 0)
            take(fd, 1);
        else if (errno != EAGAIN && errno != EINTR)
            errs++;
    }
    struct timeval z = {0, 0};
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &z, sizeof z);
}

static int ep = -1;
static void epoll_method(int64_t until)
{
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl", errno);
    for (;;) {
        for (;;) { /* ADD reports a queue already non-empty as one edge too */
            int fd = accept4(lfd, NULL, NULL, 0);
            sysc++;
            if (fd >= 0)
                take(fd, 1);
            else {
                if (errno != EAGAIN)
                    errs++;
                break;
            }
        }
        if (done(until))
            break;
        struct epoll_event out[8];
        epoll_wait(ep, out, 8, 100);
        sysc++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
    fcntl(lfd, F_SETFL, fl);
}

static int run_round(int r, int bms, int record)
{
    for (int k = 0; k < M; k++) {
        int m = (k + r) % M; /* rotate the order every round */
        got = enters = sysc = errs = rearms = maxgap = 0;
        long s0 = atomic_load(&stalls);
        int64_t w0 = prev_t = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID),
                p0 = proc_cpu();
        int64_t until = w0 + (int64_t)bms * 1000000;
        if (m <= 2)
            uring_method(m, until);
        else if (m == 3)
            blocking_method(until);
        else
            epoll_method(until);
        int64_t w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_THREAD_CPUTIME_ID), p1 = proc_cpu();
        if (m <= 2)
            uring_drain(m);
        if (!record)
            continue;
        blk *b = &res[m][r];
        double n = got ? (double)got : 1;
        b->n = got;
        b->rate = got / ((w1 - w0) / 1e9);
        b->cpu_us = (c1 - c0) / 1e3 / n;
        b->proc_us = (p1 - p0) / 1e3 / n;
        b->enters = enters / n;
        b->sys = (enters + sysc) / n;
        b->rearm = rearms;
        b->gap_ms = maxgap / 1e6;
        b->stalls = (double)(atomic_load(&stalls) - s0) / n;
        printf("  round %d %-38s %8ld acc %8.0f/s  srv %6.2f us  proc %6.2f us  enter %.3f  "
               "sys %.3f  gap %.2f ms  stalls %.3f%s",
               r, mname[m], got, b->rate, b->cpu_us, b->proc_us, b->enters, b->sys, b->gap_ms,
               b->stalls, errs ? "" : "\n");
        if (errs)
            printf("  errors %ld\n", errs);
        if (m == 2 && rearms)
            printf("    (multishot re-armed %ld times)\n", rearms);
    }
    return 0;
}

static void *server(void *arg)
{
    (void)arg;
    run_round(0, 300, 0); /* warm-up, dropped */
    for (int r = 0; r < rounds; r++)
        run_round(r, block_ms, 1);
    return NULL;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double stat3(double *v, int n, double *lo, double *hi)
{
    qsort(v, n, sizeof *v, cmpd);
    *lo = v[0];
    *hi = v[n - 1];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void summary(int nc)
{
    double v[MAXR], lo, hi, med;
    printf("\nclients %d, %d rounds x %d ms; median [min-max] over rounds\n", nc, rounds, block_ms);
    printf("%-38s | %-24s | %-20s | %-20s | %-6s | %-6s | %-10s | %s\n", "method", "accepts/s",
           "server CPU us/acc", "process CPU us/acc", "enter", "sys", "max gap ms",
           "vs a, same round: srv CPU ratio (rounds lower), rate ratio");
    for (int m = 0; m < M; m++) {
        printf("%-38s |", mname[m]);
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].rate;
        med = stat3(v, rounds, &lo, &hi);
        printf(" %7.0f [%6.0f-%6.0f] |", med, lo, hi);
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].cpu_us;
        med = stat3(v, rounds, &lo, &hi);
        printf(" %5.2f [%5.2f-%5.2f] |", med, lo, hi);
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].proc_us;
        med = stat3(v, rounds, &lo, &hi);
        printf(" %5.2f [%5.2f-%5.2f] |", med, lo, hi);
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].enters;
        printf(" %6.3f |", stat3(v, rounds, &lo, &hi));
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].sys;
        printf(" %6.3f |", stat3(v, rounds, &lo, &hi));
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].gap_ms;
        med = stat3(v, rounds, &lo, &hi);
        printf(" %4.1f %5.1f |", med, hi);
        int lower = 0;
        for (int r = 0; r < rounds; r++) {
            v[r] = res[m][r].cpu_us / res[0][r].cpu_us;
            lower += res[m][r].cpu_us < res[0][r].cpu_us;
        }
        med = stat3(v, rounds, &lo, &hi);
        printf(" x%.3f [%.3f-%.3f] (%d of %d)", med, lo, hi, lower, rounds);
        for (int r = 0; r < rounds; r++)
            v[r] = res[m][r].rate / res[0][r].rate;
        med = stat3(v, rounds, &lo, &hi);
        printf(", x%.3f\n", med);
    }
}

static void listen_socket(void)
{
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&srv, &al) < 0)
        die("listen", errno);
}

static void probe(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = 16384;
    int rc = io_uring_queue_init_params(256, &ring, &p);
    if (rc == -EINVAL) { /* as weft: retry without COOP_TASKRUN */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = 16384;
        rc = io_uring_queue_init_params(256, &ring, &p);
    }
    if (rc < 0)
        die("io_uring_queue_init_params", -rc);
    ring_flags = p.flags;
    ring_features = p.features;
    struct utsname u;
    uname(&u);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("kernel %s, liburing 2.3 headers; ring flags CQSIZE|CLAMP%s, sq %u cq %u; "
           "features EXT_ARG %d NODROP %d FAST_POLL %d POLL_32BITS %d\n",
           u.release, ring_flags & IORING_SETUP_COOP_TASKRUN ? "|COOP_TASKRUN" : "", p.sq_entries,
           p.cq_entries, !!(p.features & IORING_FEAT_EXT_ARG), !!(p.features & IORING_FEAT_NODROP),
           !!(p.features & IORING_FEAT_FAST_POLL), !!(p.features & IORING_FEAT_POLL_32BITS));
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    printf("opcodes: ACCEPT %d ASYNC_CANCEL %d CLOSE %d SOCKET %d; ",
           pr && io_uring_opcode_supported(pr, IORING_OP_ACCEPT),
           pr && io_uring_opcode_supported(pr, IORING_OP_ASYNC_CANCEL),
           pr && io_uring_opcode_supported(pr, IORING_OP_CLOSE),
           pr && io_uring_opcode_supported(pr, IORING_OP_SOCKET));
    if (pr)
        io_uring_free_probe(pr);
    /* multishot accept is a flag, not an opcode: try it on one connection */
    listen_socket();
    prep_accept(1);
    io_uring_submit(&ring);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, (struct sockaddr *)&srv, sizeof srv) < 0)
        die("probe connect", errno);
    struct io_uring_cqe *cqe;
    io_uring_wait_cqe(&ring, &cqe);
    int ok = cqe->res >= 0 && (cqe->flags & IORING_CQE_F_MORE);
    printf("multishot accept: %s (res %d, F_MORE %d)\n", ok ? "works" : "NOT SUPPORTED", cqe->res,
           !!(cqe->flags & IORING_CQE_F_MORE));
    if (cqe->res >= 0)
        close(cqe->res);
    io_uring_cqe_seen(&ring, cqe);
    close(c);
    inflight = ok ? 1 : 0;
    uring_drain(2);
    close(lfd);
    if (!ok)
        exit(1);
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    int smc = 0;
    if (f) {
        if (fscanf(f, "%d", &smc) != 1)
            smc = 0;
        fclose(f);
    }
    printf("somaxconn %d, RLIMIT_NOFILE %ld/%ld; clients: IP_BIND_ADDRESS_NO_PORT from "
           "127.0.0.(2+i), SO_LINGER {1,0} (RST close), %s; MAXQ %d, NINFLIGHT %d\n",
           smc, (long)rl.rlim_cur, (long)rl.rlim_max, write1 ? "write 1 byte" : "no write", maxq,
           ninflight);
}

static int env_int(const char *k, int d)
{
    const char *v = getenv(k);
    return v && *v ? atoi(v) : d;
}

int main(void)
{
    rounds = env_int("ROUNDS", 6);
    block_ms = env_int("BLOCK_MS", 1000);
    ninflight = env_int("NINFLIGHT", 8);
    maxq = env_int("MAXQ", 512);
    write1 = env_int("WRITE", 0);
    if (rounds < 1 || rounds > MAXR || block_ms < 10 || ninflight < 1 || ninflight > 200 ||
        maxq < 1 || maxq > 3500)
        die("bad ROUNDS/BLOCK_MS/NINFLIGHT/MAXQ", EINVAL);
    const char *cl = getenv("CLIENTS");
    if (!cl || !*cl)
        cl = "1,4";
    int ncs[16], nph = 0;
    for (const char *s = cl; *s && nph < 16;) {
        ncs[nph] = atoi(s);
        if (ncs[nph] < 1 || ncs[nph] > 64)
            die("bad CLIENTS", EINVAL);
        nph++;
        s = strchr(s, ',');
        if (!s)
            break;
        s++;
    }
    /* hard bound: every phase's blocks plus a generous margin */
    alarm((unsigned)(nph * (M * (rounds * block_ms + 300)) / 1000 + 30));
    setvbuf(stdout, NULL, _IOLBF, 0);
    probe();
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (int ph = 0; ph < nph; ph++) {
        double la[3] = {0};
        getloadavg(la, 3);
        printf("\n== clients %d (load average %.2f at start)\n", ncs[ph], la[0]);
        listen_socket();
        atomic_store(&stop, 0);
        atomic_store(&connected, 0);
        atomic_store(&accepted, 0);
        atomic_store(&cerr, 0);
        pthread_t sv, ct[64];
        pthread_create(&sv, NULL, server, NULL);
        for (int i = 0; i < ncs[ph]; i++)
            pthread_create(&ct[i], NULL, client, (void *)(intptr_t)i);
        pthread_join(sv, NULL);
        atomic_store(&stop, 1);
        for (int i = 0; i < ncs[ph]; i++)
            pthread_join(ct[i], NULL);
        close(lfd);
        printf("  client connects %ld, server accepts %ld, client errors %ld\n",
               atomic_load(&connected), atomic_load(&accepted), atomic_load(&cerr));
        summary(ncs[ph]);
    }
    return 0;
}
