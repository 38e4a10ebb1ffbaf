/*
 * io_cancel: cancellation and deadlines on in-flight I/O, on the backend
 * WEFT_IO picks. A cancelled recv consumed nothing (the next recv sees the
 * bytes), under load too; an accept cancelled under load leaks no fd and
 * loses no connection; deadlines reach accept, connect, recv and poll,
 * also when they are set while the op is in flight; weft_close makes other
 * tasks' ops on the fd return -EBADF. A recv parked on one worker's ring
 * cancelled from a task on the other worker (scope and nursery cancel):
 * -ECANCELED, nothing consumed. weft_tcp_connect cancelled and timed out
 * while its name resolution is in flight (a forked child in namespaces of
 * its own, whose resolver asks a DNS server the test holds the answer of)
 * and while its connect is in flight (a listener with a full backlog): no
 * fd and no thread left behind. Every case checks for leaked fds.
 * TIMEOUT: 180
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

static int fds_before;
static void fd_mark(void) { fds_before = io_count_fds_stable(); }
static void fd_check(void) { io_check_fds(fds_before); }

/* splitmix64 over an atomic counter: tasks on several workers draw. */
static _Atomic uint64_t rng_ctr;
static uint64_t rnd(void)
{
    uint64_t z = atomic_fetch_add(&rng_ctr, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- a cancelled recv consumed nothing --------------------------------- */

typedef struct {
    int fd;
    atomic_int result;
    atomic_bool parked;
} waiter;

static int recv_forever(void *arg)
{
    waiter *w = arg;
    char buf[64];
    atomic_store(&w->parked, true);
    atomic_store(&w->result, (int)weft_recv(w->fd, buf, sizeof buf, 0));
    return 0;
}

static int t_cancel_recv(void *arg)
{
    (void)arg;
    fd_mark();
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    waiter w = {.fd = s[0]};
    atomic_store(&w.result, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_forever, &w));
    CHECK_SOON(atomic_load(&w.parked));
    weft_sleep(test_ms(5)); /* most likely parked in the kernel by now */
    weft_nursery_cancel(n);
    CHECK_EQ(weft_nursery_close(n), 0);
    CHECK_EQ(atomic_load(&w.result), -ECANCELED);
    CHECK_EQ(weft_send(s[1], "data", 4, 0), 4);
    char buf[8];
    CHECK_EQ(weft_recv(s[0], buf, sizeof buf, 0), 4);
    CHECK(memcmp(buf, "data", 4) == 0);
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    fd_check();
    return 0;
}

/* Under load: a sender streams numbered bytes while the receiver's recvs
 * run under tiny random deadlines; every byte arrives exactly once. */
typedef struct {
    int fd;
    size_t total;
} stream_arg;

static int stream_sender(void *arg)
{
    stream_arg *a = arg;
    char buf[512];
    size_t sent = 0;
    uint64_t r = 12345;
    while (sent < a->total) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = 1 + (size_t)(r >> 33) % sizeof buf;
        if (k > a->total - sent)
            k = a->total - sent;
        for (size_t i = 0; i < k; i++)
            buf[i] = (char)((sent + i) * 31 + ((sent + i) >> 8));
        io_send_all(a->fd, buf, k);
        sent += k;
        if ((r >> 20) % 4 == 0)
            weft_sleep((int64_t)((r >> 40) % 50000));
        else
            weft_yield();
    }
    CHECK_OK(weft_shutdown(a->fd, SHUT_WR));
    return 0;
}

static int t_cancel_recv_load(void *arg)
{
    (void)arg;
    fd_mark();
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    stream_arg a = {s[1], (size_t)test_scale(200000)};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, stream_sender, &a));
    size_t got = 0;
    long cancelled = 0, data = 0;
    char buf[300];
    int64_t give_up = weft_now() + LONG_NS;
    for (;;) {
        CHECK(weft_now() < give_up);
        weft_scope sc;
        weft_scope_enter(&sc, weft_now() + (int64_t)(rnd() % 100000));
        ssize_t r = weft_recv(s[0], buf, sizeof buf, 0);
        weft_scope_exit(&sc);
        if (r == -ECANCELED) {
            cancelled++;
            continue;
        }
        CHECK(r >= 0);
        if (r == 0)
            break;
        data++;
        for (ssize_t i = 0; i < r; i++)
            CHECK_EQ((unsigned char)buf[i],
                     (unsigned char)((got + (size_t)i) * 31 + ((got + (size_t)i) >> 8)));
        got += (size_t)r;
    }
    CHECK_EQ(got, a.total);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    fprintf(stderr, "   %ld recvs with data, %ld cancelled\n", data, cancelled);
    fd_check();
    return 0;
}

/* ---- accept cancelled under load: no fd leaked, no connection lost ----- */

typedef struct {
    const char *port;
    int n;
} clients_arg;

static int one_client(void *arg)
{
    clients_arg *a = arg;
    int c = weft_tcp_connect("127.0.0.1", a->port);
    CHECK(c >= 0);
    char x;
    /* The server closes each accepted connection: EOF here. */
    CHECK_EQ(weft_recv(c, &x, 1, 0), 0);
    CHECK_OK(weft_close(c));
    return 0;
}

static int clients(void *arg)
{
    clients_arg *a = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < a->n; i++) {
        CHECK_OK(weft_spawn(n, one_client, a));
        if (i % 8 == 0)
            weft_sleep((int64_t)(rnd() % 200000));
    }
    return weft_nursery_close(n);
}

static int t_cancel_accept_load(void *arg)
{
    (void)arg;
    fd_mark();
    int l = weft_tcp_listen("127.0.0.1", "0", 1024);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    clients_arg ca = {port, (int)test_scale(300)};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, clients, &ca));
    int accepted = 0;
    long cancelled = 0;
    int64_t give_up = weft_now() + LONG_NS;
    while (accepted < ca.n) {
        CHECK(weft_now() < give_up);
        weft_scope sc;
        weft_scope_enter(&sc, weft_now() + (int64_t)(rnd() % 300000));
        int c = weft_accept(l, NULL, NULL, SOCK_CLOEXEC);
        weft_scope_exit(&sc);
        if (c == -ECANCELED) {
            cancelled++;
            continue;
        }
        CHECK(c >= 0);
        accepted++;
        CHECK_OK(weft_close(c));
    }
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(l));
    fprintf(stderr, "   %d accepted, %ld accepts cancelled\n", accepted, cancelled);
    fd_check();
    return 0;
}

/* ---- deadlines ----------------------------------------------------------- */

/* Connects to 127.0.0.1:port (a listener with backlog 1 that nobody
 * accepts on) until a connect under a deadline is cancelled: its queue is
 * then full, so a further SYN goes unanswered. A connect to a queue with
 * room completes at once on loopback; the deadline (200 ms, stretched for
 * sanitizers) only has to outlast a loaded machine's delay in reaping it,
 * and is waited out once. The connected sockets go to filler (at most 8);
 * returns how many. */
static int fill_backlog(const char *port, int filler[8])
{
    int nf = 0;
    bool full = false;
    for (int i = 0; i < 8 && !full; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(port)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        weft_scope sc;
        weft_scope_enter(&sc, weft_now() + test_ms(200) * test_slowdown());
        int r = weft_connect(c, (struct sockaddr *)&sa, sizeof sa);
        weft_scope_exit(&sc);
        if (r == -ECANCELED) {
            full = true;
            CHECK_OK(weft_close(c));
        } else {
            CHECK_OK(r);
            filler[nf++] = c;
        }
    }
    CHECK(full);
    return nf;
}

static int t_deadlines(void *arg)
{
    (void)arg;
    fd_mark();
    int l = weft_tcp_listen("127.0.0.1", "0", 1);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    weft_scope sc;
    int64_t t0 = weft_now();
    weft_scope_enter(&sc, t0 + test_ms(20));
    CHECK_EQ(weft_accept(l, NULL, NULL, 0), -ECANCELED);
    CHECK(weft_scope_exit(&sc));
    CHECK(weft_now() - t0 < PROMPT_NS);

    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    char buf[8];
    t0 = weft_now();
    weft_scope_enter(&sc, t0 + test_ms(20));
    CHECK_EQ(weft_recv(s[0], buf, sizeof buf, 0), -ECANCELED);
    CHECK_EQ(weft_read(s[0], buf, sizeof buf, -1), -ECANCELED); /* sticky */
    CHECK(weft_scope_exit(&sc));
    CHECK(weft_now() - t0 < PROMPT_NS);

    /* poll: its own deadline is -ETIMEDOUT, a scope's is a cancel. */
    CHECK_EQ(weft_poll(s[0], POLLIN, weft_now() + test_ms(10)), -ETIMEDOUT);
    CHECK_EQ(weft_poll(s[0], POLLIN, weft_now()), -ETIMEDOUT);
    weft_scope_enter(&sc, weft_now() + test_ms(10));
    CHECK_EQ(weft_poll(s[0], POLLIN, WEFT_FOREVER), -ECANCELED);
    CHECK(weft_scope_exit(&sc));
    CHECK_EQ(weft_poll(s[1], POLLOUT, WEFT_FOREVER) & POLLOUT, POLLOUT);
    CHECK_EQ(weft_send(s[1], "z", 1, 0), 1);
    CHECK_EQ(weft_poll(s[0], POLLIN, weft_now() + PROMPT_NS), POLLIN);
    CHECK_EQ(weft_recv(s[0], buf, sizeof buf, 0), 1);

    /* connect: fill the listener's queue (backlog 1, nobody accepts) so
     * that a further SYN goes unanswered, then connect under a deadline. */
    int filler[8];
    int nf = fill_backlog(port, filler);
    for (int i = 0; i < nf; i++)
        CHECK_OK(weft_close(filler[i]));

    /* A cancelled scope stops weft_tcp_connect before it starts. */
    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    CHECK_EQ(weft_tcp_connect("localhost", port), -ECANCELED);
    weft_scope_exit(&sc);

    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    CHECK_OK(weft_close(l));
    fd_check();
    return 0;
}

/* A deadline set on the scope while the recv is parked reaches it. */
typedef struct {
    int fd;
    weft_scope sc;
    atomic_bool entered;
    atomic_int result;
} late_arg;

static int late_child(void *arg)
{
    late_arg *a = arg;
    char buf[4];
    weft_scope_enter(&a->sc, WEFT_FOREVER);
    atomic_store(&a->entered, true);
    atomic_store(&a->result, (int)weft_recv(a->fd, buf, sizeof buf, 0));
    weft_scope_exit(&a->sc);
    return 0;
}

static int t_late_deadline(void *arg)
{
    (void)arg;
    fd_mark();
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    late_arg a = {.fd = s[0]};
    atomic_store(&a.result, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, late_child, &a));
    CHECK_SOON(atomic_load(&a.entered));
    weft_sleep(test_ms(5));
    weft_scope_set_deadline(&a.sc, weft_now() + test_ms(10));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&a.result), -ECANCELED);
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    fd_check();
    return 0;
}

/* weft_close cancels other tasks' ops on the fd: they return -EBADF. */
static int t_close_wakes(void *arg)
{
    (void)arg;
    fd_mark();
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    waiter w[3];
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++) {
        w[i].fd = s[0];
        atomic_store(&w[i].result, 1);
        atomic_store(&w[i].parked, false);
        CHECK_OK(weft_spawn(n, recv_forever, &w[i]));
    }
    for (int i = 0; i < 3; i++)
        CHECK_SOON(atomic_load(&w[i].parked));
    weft_sleep(test_ms(5));
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(atomic_load(&w[i].result), -EBADF);
    CHECK_OK(weft_close(s[1]));
    fd_check();
    return 0;
}

/* ---- a recv on one worker's ring, cancelled from the other worker ------
 * Two workers. The root pins itself to worker wa; the receiver, spawned
 * pinned there, unpins and calls weft_recv with no park in between, so its
 * op sits on wa's ring (io_uring). The root then spawns the canceller and
 * spins without parking until the receiver has returned: wa stays busy, so
 * the canceller can only run on the other worker, and so can the receiver
 * when the cancel wakes it (its cancel request goes to wa's ring from
 * there; the op's completion lands on wa's ring, which the monitor serves
 * while wa is busy). The recv returns -ECANCELED, and bytes sent afterwards
 * all reach a later recv: the cancelled op consumed none. */
typedef struct {
    int fd;
    bool own_scope; /* cancel the receiver's own scope, else the nursery */
    weft_scope sc;
    weft_nursery *n;
    atomic_int ring_worker, resumed_worker, cancel_worker, result;
    atomic_bool cancelled;
} xw_arg;

static int xw_receiver(void *arg)
{
    xw_arg *a = arg;
    char buf[64];
    if (a->own_scope)
        weft_scope_enter(&a->sc, WEFT_FOREVER);
    weft_unpin(); /* spawned pinned: it was running on the root's worker */
    atomic_store(&a->ring_worker, weft_worker_id());
    ssize_t r = weft_recv(a->fd, buf, sizeof buf, 0);
    atomic_store(&a->resumed_worker, weft_worker_id());
    if (a->own_scope)
        CHECK(weft_scope_exit(&a->sc));
    atomic_store(&a->result, (int)r); /* last: the root spins on it */
    return 0;
}

static int xw_canceller(void *arg)
{
    xw_arg *a = arg;
    atomic_store(&a->cancel_worker, weft_worker_id());
    if (a->own_scope)
        weft_scope_cancel(&a->sc);
    else
        weft_nursery_cancel(a->n);
    atomic_store(&a->cancelled, true);
    return 0;
}

static int t_cancel_other_worker(void *arg)
{
    (void)arg;
    fd_mark();
    weft_pin();
    int wa = weft_worker_id();
    for (int v = 0; v < 2; v++) {
        int l = -1, fds[2];
        if (v == 0)
            CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
        else
            io_tcp_pair(&l, &fds[0], &fds[1]);
        xw_arg a = {.fd = fds[0], .own_scope = v == 0};
        atomic_store(&a.ring_worker, -1);
        atomic_store(&a.resumed_worker, -1);
        atomic_store(&a.cancel_worker, -1);
        atomic_store(&a.result, 1);
        uint64_t before = io_in_flight(WEFT_IO_OP_RECV);
        uint64_t cancels = io_stats().uring_cancels;
        CHECK_OK(weft_nursery_open(&a.n));
        weft_spawn_attr pinned = {.pinned = true, .name = "receiver"};
        CHECK_OK(weft_spawn_ex(a.n, xw_receiver, &a, &pinned));
        CHECK_SOON(io_in_flight(WEFT_IO_OP_RECV) == before + 1); /* parked in its recv */
        CHECK_EQ(atomic_load(&a.ring_worker), wa);
        CHECK_OK(weft_spawn(a.n, xw_canceller, &a));
        /* Busy on wa, no park, until the receiver is back. */
        int64_t give_up = weft_now() + PROMPT_NS;
        while (atomic_load(&a.result) == 1)
            CHECK(weft_now() < give_up);
        CHECK(atomic_load(&a.cancelled));
        CHECK(atomic_load(&a.cancel_worker) != wa);
        CHECK(atomic_load(&a.resumed_worker) != wa);
        CHECK_EQ(atomic_load(&a.result), -ECANCELED);
        CHECK_OK(weft_nursery_close(a.n));
        /* io_uring: the op was cancelled in the kernel (an ASYNC_CANCEL
         * sent to wa's ring), not completed. */
        if (strcmp(weft_io_backend_name(), "io_uring") == 0)
            CHECK(io_stats().uring_cancels > cancels);
        fprintf(stderr, "   %s cancel: recv parked on worker %d (%s), cancelled from worker %d\n",
                v == 0 ? "scope" : "nursery", wa, weft_io_backend_name(),
                atomic_load(&a.cancel_worker));
        /* Nothing was consumed: every byte sent now reaches one recv. */
        char out[100], in[sizeof out];
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(i * 3 + 1);
        io_send_all(fds[1], out, sizeof out);
        size_t got = 0;
        while (got < sizeof in) { /* bounded: bytes a live op took never come */
            CHECK_EQ(weft_poll(fds[0], POLLIN, weft_now() + PROMPT_NS), POLLIN);
            ssize_t r = weft_recv(fds[0], in + got, sizeof in - got, 0);
            CHECK(r > 0);
            got += (size_t)r;
        }
        CHECK(memcmp(in, out, sizeof out) == 0);
        CHECK_EQ(weft_poll(fds[0], POLLIN, weft_now()), -ETIMEDOUT); /* and no more */
        CHECK_OK(weft_close(fds[0]));
        CHECK_OK(weft_close(fds[1]));
        if (l >= 0)
            CHECK_OK(weft_close(l));
    }
    weft_unpin();
    fd_check();
    return 0;
}

/* ---- weft_tcp_connect while its connect is in flight --------------------
 * A listener with backlog 1 that nobody accepts from: once its queue is
 * full, a SYN goes unanswered and the connect stays in flight. */

typedef struct {
    const char *host, *port;
    weft_scope sc;
    atomic_bool entered;
    atomic_int result;
    bool scope_cancelled;
} tc_arg;

static int tc_task(void *arg)
{
    tc_arg *a = arg;
    weft_scope_enter(&a->sc, WEFT_FOREVER);
    atomic_store(&a->entered, true);
    int r = weft_tcp_connect(a->host, a->port);
    a->scope_cancelled = weft_scope_exit(&a->sc);
    atomic_store(&a->result, r);
    return 0;
}

static int t_tcp_connect_in_flight(void *arg)
{
    (void)arg;
    fd_mark();
    int l = weft_tcp_listen("127.0.0.1", "0", 1);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    int filler[8];
    int nf = fill_backlog(port, filler);
    int fds = io_count_fds_stable();

    /* A scope's deadline: -ECANCELED (weft.h: a scope's deadline cancels). */
    weft_scope sc;
    int64_t t0 = weft_now();
    weft_scope_enter(&sc, t0 + test_ms(20));
    CHECK_EQ(weft_tcp_connect("127.0.0.1", port), -ECANCELED);
    CHECK(weft_scope_exit(&sc));
    CHECK(weft_now() - t0 < PROMPT_NS);
    io_check_fds(fds); /* the socket it made is closed */

    /* Cancelled by another task once its connect is in flight. */
    tc_arg a = {.host = "127.0.0.1", .port = port};
    atomic_store(&a.result, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, tc_task, &a));
    /* entered orders its scope_enter before our cancel (the counters are
     * relaxed snapshots: no such edge). */
    CHECK_SOON(atomic_load(&a.entered) && io_in_flight(WEFT_IO_OP_CONNECT) == 1);
    weft_scope_cancel(&a.sc);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&a.result), -ECANCELED);
    CHECK(a.scope_cancelled);
    io_check_fds(fds);

    /* A nursery's deadline set while the connect is in flight: the call
     * returns -ECANCELED and the close -ETIMEDOUT. */
    a = (tc_arg){.host = "127.0.0.1", .port = port};
    atomic_store(&a.result, 1);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, tc_task, &a));
    CHECK_SOON(io_in_flight(WEFT_IO_OP_CONNECT) == 1);
    weft_nursery_set_deadline(n, weft_now() + test_ms(10));
    CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&a.result), -ECANCELED);
    CHECK(!a.scope_cancelled); /* its own scope was not the one */
    io_check_fds(fds);

    for (int i = 0; i < nf; i++)
        CHECK_OK(weft_close(filler[i]));
    CHECK_OK(weft_close(l));
    fd_check();
    return 0;
}

/* ---- weft_tcp_connect while its name resolution is in flight ------------
 * In a forked child: namespaces of its own (mount and network; a user
 * namespace too when not root) where /etc/resolv.conf names 127.0.0.1 and
 * /etc/nsswitch.conf says "hosts: dns", and the loopback device is up.
 * A plain thread of the test serves 127.0.0.1:53 and holds every query
 * until told to answer (NXDOMAIN, or 127.0.0.1): getaddrinfo for SLOW_NAME
 * stays in flight as long as the test wants, with no network at all. The
 * call must return at once when cancelled, with the query unanswered; the
 * resolver thread it abandoned ends (and closes its socket) once the query
 * is answered. */
#define SLOW_NAME "slow.weft.invalid"
enum { DNS_HOLD, DNS_NXDOMAIN, DNS_LOCALHOST };

static struct {
    int fd;
    atomic_int mode;
    atomic_int queries;
    atomic_bool stop;
} dns;

/* Turns query q (n bytes) into its reply in place; returns its length (0:
 * not a query to answer). */
static size_t dns_reply(unsigned char *q, size_t n, size_t cap, int mode)
{
    size_t at = 12; /* the header; then the question: labels, type, class */
    while (at < n && q[at] != 0)
        at += (size_t)q[at] + 1;
    at += 5;
    if (n < 12 || at > n)
        return 0;
    unsigned qtype = (unsigned)q[at - 4] << 8 | q[at - 3];
    q[2] = (unsigned char)(0x84 | (q[2] & 0x01)); /* a reply, authoritative, RD kept */
    q[3] = 0x80;                                  /* RA, NOERROR */
    memset(q + 6, 0, 6);                          /* no answer, authority, additional */
    n = at;
    if (mode == DNS_NXDOMAIN) {
        q[3] |= 3;
    } else if (qtype == 1 && n + 16 <= cap) { /* A: 127.0.0.1 (AAAA: no data) */
        static const unsigned char rr[16] = {0xc0, 0x0c, 0, 1, 0,   1, 0, 0,
                                             0,    60,   0, 4, 127, 0, 0, 1};
        memcpy(q + n, rr, sizeof rr);
        q[7] = 1;
        n += sizeof rr;
    }
    return n;
}

static void *dns_main(void *arg)
{
    (void)arg;
    struct {
        unsigned char b[512];
        size_t n;
        struct sockaddr_storage from;
        socklen_t fl;
    } held[8];
    int nheld = 0;
    while (!atomic_load(&dns.stop)) {
        struct pollfd p = {.fd = dns.fd, .events = POLLIN};
        if (poll(&p, 1, 2) > 0) {
            unsigned char scratch[512];
            bool keep = nheld < 8;
            unsigned char *b = keep ? held[nheld].b : scratch;
            struct sockaddr_storage from;
            socklen_t fl = sizeof from;
            ssize_t r = recvfrom(dns.fd, b, 512, 0, (struct sockaddr *)&from, &fl);
            if (r > 0) {
                atomic_fetch_add(&dns.queries, 1);
                if (keep) {
                    held[nheld].n = (size_t)r;
                    held[nheld].from = from;
                    held[nheld].fl = fl;
                    nheld++;
                }
            }
        }
        int mode = atomic_load(&dns.mode);
        if (mode == DNS_HOLD)
            continue;
        for (int i = 0; i < nheld; i++) {
            size_t len = dns_reply(held[i].b, held[i].n, sizeof held[i].b, mode);
            if (len)
                (void)sendto(dns.fd, held[i].b, len, 0, (struct sockaddr *)&held[i].from,
                             held[i].fl);
        }
        nheld = 0;
    }
    return NULL;
}

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* Binds a temporary file holding text over path (in this mount namespace). */
static bool bind_text(const char *path, const char *text)
{
    char tmp[] = "/tmp/weft_io_cancel_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    ok = ok && mount(tmp, path, NULL, MS_BIND, NULL) == 0;
    unlink(tmp);
    return ok;
}

/* Enters the namespaces; 0, or 77 when they cannot be had (said why). */
static int dns_sandbox(void)
{
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0) {
            fprintf(stderr, "   skipped: no mount and network namespaces here (unshare: %s)\n",
                    strerror(errno));
            return 77;
        }
        char map[64];
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        bool ok = write_file("/proc/self/setgroups", "deny") &&
                  write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        if (!ok || !write_file("/proc/self/gid_map", map)) {
            fprintf(stderr, "   skipped: user namespace id maps: %s\n", strerror(errno));
            return 77;
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        !bind_text("/etc/resolv.conf", "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n") ||
        !bind_text("/etc/nsswitch.conf", "hosts: dns\n")) {
        fprintf(stderr, "   skipped: cannot replace the resolver's configuration: %s\n",
                strerror(errno));
        return 77;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    CHECK_OK(ioctl(s, SIOCGIFFLAGS, &ifr));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    CHECK_OK(ioctl(s, SIOCSIFFLAGS, &ifr));
    close(s);
    return 0;
}

/* Threads, once the count holds still (the run's own have started). */
static int threads_stable(void)
{
    int prev = io_count_threads();
    for (int i = 0; i < 100; i++) {
        CHECK_OK(weft_sleep(test_ms(5)));
        int n = io_count_threads();
        if (n == prev)
            return n;
        prev = n;
    }
    return prev;
}

static int resolve_root(void *arg)
{
    (void)arg;
    int l = weft_tcp_listen("127.0.0.1", "0", 16);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    int threads = threads_stable();
    int fds = io_count_fds_stable();
    for (int v = 0; v < 3; v++) {
        /* 0: the scope cancelled; 1: the nursery's deadline; 2: answered
         * late (the query seen is the call's: it then connects). */
        tc_arg a = {.host = SLOW_NAME, .port = port};
        atomic_store(&a.result, 1);
        int q0 = atomic_load(&dns.queries);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, tc_task, &a));
        /* Resolution in flight (entered orders the task's scope_enter
         * before a cancel: the query reaches us through a socket). */
        CHECK_SOON(atomic_load(&a.entered) && atomic_load(&dns.queries) > q0);
        CHECK(io_count_threads() > threads); /* on a thread of its own */
        int64_t t0 = weft_now();
        if (v == 0) {
            weft_scope_cancel(&a.sc);
            CHECK_SOON(atomic_load(&a.result) != 1); /* not waiting for the answer */
            CHECK_OK(weft_nursery_close(n));
            CHECK(a.scope_cancelled);
        } else if (v == 1) {
            weft_nursery_set_deadline(n, weft_now() + test_ms(10));
            CHECK_SOON(atomic_load(&a.result) != 1);
            CHECK_EQ(weft_nursery_close(n), -ETIMEDOUT);
            CHECK(!a.scope_cancelled);
        } else {
            CHECK_OK(weft_sleep(test_ms(20)));
            CHECK_EQ(atomic_load(&a.result), 1); /* still waiting for the answer */
            atomic_store(&dns.mode, DNS_LOCALHOST);
            CHECK_OK(weft_nursery_close(n));
            int c = atomic_load(&a.result);
            CHECK(c >= 0);
            int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC);
            CHECK(s >= 0);
            CHECK_EQ(weft_send(c, "dns", 3, 0), 3);
            char buf[4];
            io_recv_all(s, buf, 3);
            CHECK(memcmp(buf, "dns", 3) == 0);
            CHECK_OK(weft_close(s));
            CHECK_OK(weft_close(c));
        }
        if (v < 2) {
            CHECK_EQ(atomic_load(&a.result), -ECANCELED);
            CHECK(weft_now() - t0 < PROMPT_NS);
            /* It did not wait for the resolver, which still waits for the
             * answer; given one, that thread ends and closes its socket. */
            CHECK(io_count_threads() > threads);
            atomic_store(&dns.mode, DNS_NXDOMAIN);
        }
        io_check_threads(threads, PROMPT_NS);
        io_check_fds(fds);
        atomic_store(&dns.mode, DNS_HOLD);
        fprintf(stderr, "   %s\n",
                v == 0   ? "cancelled while resolving: -ECANCELED"
                : v == 1 ? "deadline while resolving: -ECANCELED, close -ETIMEDOUT"
                         : "answered late: connected");
    }
    CHECK_OK(weft_close(l));
    return 0;
}

static int child_resolve(void)
{
    int rc = dns_sandbox();
    if (rc)
        return rc;
    dns.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(dns.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(53),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(dns.fd, (struct sockaddr *)&sa, sizeof sa));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, dns_main, NULL));
    int threads = io_count_threads();
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    CHECK_OK(weft_run(&cfg, resolve_root, NULL));
    /* The run's threads are gone, and no resolver thread is left over. */
    io_check_threads(threads, PROMPT_NS);
    atomic_store(&dns.stop, true);
    CHECK_OK(pthread_join(th, NULL));
    close(dns.fd);
    return 0;
}

static void t_resolve_in_flight(void)
{
    int rc = io_fork(child_resolve, 60);
    if (rc == 77)
        return; /* the child said why */
    CHECK_EQ(rc, 0);
}

int main(void)
{
    test_watchdog(170);
    CASE(t_resolve_in_flight); /* first: it forks */
    RUN(t_cancel_recv);
    RUN(t_cancel_recv_load);
    RUN(t_cancel_accept_load);
    RUN(t_deadlines);
    RUN(t_late_deadline);
    RUN(t_close_wakes);
    if (test_case_selected("t_cancel_other_worker"))
        CHECK_OK(test_run(2, t_cancel_other_worker, NULL));
    RUN(t_tcp_connect_in_flight);
    printf("io_cancel: ok (%s)\n", io_expected_backend());
    return 0;
}
