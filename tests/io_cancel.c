/*
 * io_cancel: cancellation and deadlines on in-flight I/O, on the backend
 * WEFT_IO picks. A cancelled recv consumed nothing (the next recv sees the
 * bytes), under load too; an accept cancelled under load leaks no fd and
 * loses no connection; deadlines reach accept, connect, recv and poll,
 * also when they are set while the op is in flight; weft_close makes other
 * tasks' ops on the fd return -EBADF. Every case checks for leaked fds.
 * TIMEOUT: 180
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#include <poll.h>

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
    int nf = 0;
    bool saw_cancel = false;
    for (int i = 0; i < 8 && !saw_cancel; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(port)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        weft_scope_enter(&sc, weft_now() + test_ms(30));
        int r = weft_connect(c, (struct sockaddr *)&sa, sizeof sa);
        weft_scope_exit(&sc);
        if (r == -ECANCELED) {
            saw_cancel = true;
            CHECK_OK(weft_close(c));
        } else {
            CHECK_OK(r);
            filler[nf++] = c;
        }
    }
    CHECK(saw_cancel);
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

int main(void)
{
    test_watchdog(170);
    RUN(t_cancel_recv);
    RUN(t_cancel_recv_load);
    RUN(t_cancel_accept_load);
    RUN(t_deadlines);
    RUN(t_late_deadline);
    RUN(t_close_wakes);
    printf("io_cancel: ok (%s)\n", io_expected_backend());
    return 0;
}
