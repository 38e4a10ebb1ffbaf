/*
 * io_basic: every I/O call against pipes, a tmpfile and loopback sockets,
 * on the backend WEFT_IO picks: data round trips, EOF, ECONNRESET, EPIPE,
 * partial writes, offsets, bad input, a TCP recv after a short read (the
 * epoll backend parks it without a syscall: more data, EOF that came with
 * the data, an RST, several readers), the plain-syscall path outside a
 * task, and the automatic fallback when io_uring setup fails. Vectored
 * calls (readv/writev, recvmsg/sendmsg with several iovecs) on a loopback
 * TCP connection and a pipe; short writes asserted to happen (small socket
 * buffers), with a cancelled write moving nothing; weft_config.io choosing
 * epoll over WEFT_IO=uring; the fallback under a real seccomp filter that
 * makes io_uring_setup fail. Every case checks that it leaked no fd.
 * TIMEOUT: 120
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static int fds_before;

static void fd_mark(void) { fds_before = io_count_fds_stable(); }
static void fd_check(void) { io_check_fds(fds_before); }

/* ---- pipes --------------------------------------------------------------- */

typedef struct {
    int fd;
    size_t total;
} pipe_arg;

static int pipe_writer(void *arg)
{
    pipe_arg *a = arg;
    char buf[1000];
    for (size_t i = 0; i < a->total; i += sizeof buf) {
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (char)(i + k);
        size_t done = 0;
        while (done < sizeof buf) {
            ssize_t r = weft_write(a->fd, buf + done, sizeof buf - done, -1);
            CHECK(r > 0);
            done += (size_t)r;
        }
    }
    CHECK_OK(weft_close(a->fd));
    return 0;
}

static int t_pipe(void *arg)
{
    (void)arg;
    fd_mark();
    int p[2];
    CHECK_OK(pipe(p));
    pipe_arg a = {p[1], (size_t)test_scale(1000) * 1000};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, pipe_writer, &a));
    size_t got = 0;
    char buf[777];
    for (;;) {
        /* A pipe is not seekable: the offset is ignored. */
        ssize_t r = weft_read(p[0], buf, sizeof buf, got % 2 ? 5 : -1);
        CHECK(r >= 0);
        if (r == 0)
            break; /* EOF: the writer closed its end */
        for (ssize_t k = 0; k < r; k++)
            CHECK_EQ((unsigned char)buf[k], (unsigned char)(got + (size_t)k));
        got += (size_t)r;
    }
    CHECK_EQ(got, a.total);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(p[0]));
    fd_check();
    return 0;
}

/* EPIPE: the reader is gone; no SIGPIPE kills us. */
static int t_epipe(void *arg)
{
    (void)arg;
    fd_mark();
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_OK(weft_close(p[0]));
    CHECK_EQ(weft_write(p[1], "x", 1, -1), -EPIPE);
    struct iovec iov = {.iov_base = "yz", .iov_len = 2};
    CHECK_EQ(weft_writev(p[1], &iov, 1, -1), -EPIPE);
    CHECK_OK(weft_close(p[1]));
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    CHECK_OK(weft_close(s[1]));
    CHECK_EQ(weft_send(s[0], "x", 1, 0), -EPIPE);
    CHECK_OK(weft_close(s[0]));
    fd_check();
    return 0;
}

/* ---- a regular file -------------------------------------------------------- */

static int t_file(void *arg)
{
    (void)arg;
    fd_mark();
    char path[] = "/tmp/weft_io_basic_XXXXXX";
    int tmp = mkstemp(path);
    CHECK(tmp >= 0);
    close(tmp);
    int fd = weft_open(path, O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(weft_write(fd, "hello", 5, -1), 5); /* at the position: 0..5 */
    CHECK_EQ(weft_write(fd, " world", 6, -1), 6);
    CHECK_EQ(weft_write(fd, "W", 1, 6), 1); /* at an offset: position unchanged */
    char buf[64] = {0};
    CHECK_EQ(weft_read(fd, buf, sizeof buf, 0), 11);
    CHECK(memcmp(buf, "hello World", 11) == 0);
    CHECK_EQ(weft_read(fd, buf, sizeof buf, -1), 0); /* the position is at the end */
    char a[3], b[4];
    struct iovec iov[2] = {{a, 3}, {b, 4}};
    CHECK_EQ(weft_readv(fd, iov, 2, 2), 7);
    CHECK(memcmp(a, "llo", 3) == 0 && memcmp(b, " Wor", 4) == 0);
    struct iovec wv[2] = {{"ab", 2}, {"cd", 2}};
    CHECK_EQ(weft_writev(fd, wv, 2, 11), 4);
    CHECK_EQ(weft_writev(fd, wv, 2, -1), 4); /* at the position (11): overwrites */
    CHECK_OK(weft_fsync(fd));
    struct stat st;
    CHECK_OK(fstat(fd, &st));
    CHECK_EQ(st.st_size, 15);
    /* sendfile into a socket, both with an offset and from the position. */
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    int64_t off = 6;
    CHECK_EQ(weft_sendfile(s[0], fd, &off, 5), 5);
    CHECK_EQ(off, 11);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(weft_sendfile(s[0], fd, NULL, 5), 5);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
    io_recv_all(s[1], buf, 10);
    CHECK(memcmp(buf, "Worldhello", 10) == 0);
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    CHECK_OK(weft_close(fd));
    CHECK_EQ(weft_open("/nonexistent/weft/x", O_RDONLY, 0), -ENOENT);
    unlink(path);
    fd_check();
    return 0;
}

/* ---- sockets ----------------------------------------------------------------- */

static int t_unix_msg(void *arg)
{
    (void)arg;
    fd_mark();
    int s[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    char one[] = "abc", two[] = "defg";
    struct iovec iov[2] = {{one, 3}, {two, 4}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    CHECK_EQ(weft_sendmsg(s[0], &m, 0), 7);
    char r1[2], r2[10];
    struct iovec riov[2] = {{r1, 2}, {r2, 10}};
    struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2};
    CHECK_EQ(weft_recvmsg(s[1], &rm, 0), 7);
    CHECK(memcmp(r1, "ab", 2) == 0 && memcmp(r2, "cdefg", 5) == 0);
    CHECK_OK(weft_shutdown(s[0], SHUT_WR));
    CHECK_EQ(weft_recv(s[1], r2, sizeof r2, 0), 0); /* EOF */
    CHECK_OK(weft_close(s[0]));
    CHECK_OK(weft_close(s[1]));
    fd_check();
    return 0;
}

typedef struct {
    int lfd;
    size_t total;
} srv_arg;

/* Echoes every byte of one connection back, until EOF. */
static int echo_server(void *arg)
{
    srv_arg *a = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int c = weft_accept(a->lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    CHECK(c >= 0);
    CHECK(len > 0);
    char buf[3000];
    for (;;) {
        ssize_t r = weft_recv(c, buf, sizeof buf, 0);
        CHECK(r >= 0);
        if (r == 0)
            break;
        io_send_all(c, buf, (size_t)r);
    }
    CHECK_OK(weft_close(c));
    return 0;
}

static int t_tcp_echo(void *arg)
{
    (void)arg;
    fd_mark();
    int l = weft_tcp_listen("127.0.0.1", "0", 16);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    srv_arg a = {l, 0};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, echo_server, &a));
    /* "localhost" is not numeric: resolved on the resolver thread. */
    int c = weft_tcp_connect("localhost", port);
    if (c < 0)
        c = weft_tcp_connect("127.0.0.1", port);
    CHECK(c >= 0);
    /* A big buffer: the sends are partial while nobody reads, and the
     * echo must still deliver every byte in order. */
    size_t total = (size_t)test_scale(4 << 20);
    char *out = malloc(total), *in = malloc(total);
    CHECK(out && in);
    for (size_t i = 0; i < total; i++)
        out[i] = (char)(i * 7 + (i >> 9));
    size_t sent = 0, got = 0;
    while (got < total) {
        if (sent < total) {
            ssize_t r = weft_send(c, out + sent, total - sent < 65536 ? total - sent : 65536, 0);
            CHECK(r > 0);
            sent += (size_t)r;
        }
        while (got < sent) {
            int m = weft_poll(c, POLLIN, sent < total ? weft_now() : WEFT_FOREVER);
            if (m == -ETIMEDOUT)
                break;
            CHECK(m > 0 && (m & POLLIN));
            ssize_t r = weft_recv(c, in + got, total - got, 0);
            CHECK(r > 0);
            got += (size_t)r;
        }
    }
    CHECK(memcmp(in, out, total) == 0);
    CHECK_OK(weft_shutdown(c, SHUT_WR));
    char x;
    CHECK_EQ(weft_recv(c, &x, 1, 0), 0); /* the server saw EOF and closed */
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(l));
    free(out);
    free(in);
    fd_check();
    return 0;
}

/* ECONNRESET: the peer closes with unread data (an RST). */
static int t_reset(void *arg)
{
    (void)arg;
    fd_mark();
    int l = weft_tcp_listen("127.0.0.1", "0", 16);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    int c = weft_tcp_connect("127.0.0.1", port);
    CHECK(c >= 0);
    int s = weft_accept(l, NULL, NULL, 0);
    CHECK(s >= 0);
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    CHECK_OK(weft_close(s));
    char buf[16];
    ssize_t r = weft_recv(c, buf, sizeof buf, 0);
    CHECK_EQ(r, -ECONNRESET);
    /* Sending on it now: EPIPE, no signal. */
    r = weft_send(c, "x", 1, 0);
    CHECK(r == -EPIPE || r == -ECONNRESET);
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(l));
    fd_check();
    return 0;
}

/* ---- vectored calls: several iovecs, over TCP and a pipe ----------------- */

typedef enum { V_RW, V_MSG } vmode; /* readv/writev, or recvmsg/sendmsg */

static ssize_t vec_out(vmode m, int fd, const struct iovec *iov, int cnt)
{
    if (m == V_RW)
        return weft_writev(fd, iov, cnt, -1);
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
    return weft_sendmsg(fd, &mh, 0);
}

static ssize_t vec_in(vmode m, int fd, struct iovec *iov, int cnt)
{
    if (m == V_RW)
        return weft_readv(fd, iov, cnt, -1);
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
    return weft_recvmsg(fd, &mh, 0);
}

/* Cuts buf[at..n) into up to three pieces of the sizes in cut[] (fewer
 * only at the end); returns how many. */
static int vec_cut(char *buf, size_t at, size_t n, const size_t cut[3], struct iovec iov[3])
{
    int k = 0;
    for (; k < 3 && at < n; k++) {
        size_t len = n - at < cut[k] ? n - at : cut[k];
        iov[k] = (struct iovec){buf + at, len};
        at += len;
    }
    return k;
}

static char vec_byte(size_t i) { return (char)(i * 11 + (i >> 10)); }

typedef struct {
    vmode m;
    int fd;
    size_t total;
    bool close_after; /* close fd (a pipe's write end), else SHUT_WR */
} vec_arg;

/* Writes total pattern bytes with the vectored call, three pieces a call,
 * following its partial writes. */
static int vec_writer(void *arg)
{
    vec_arg *a = arg;
    static const size_t cut[3] = {1000, 1, 3001};
    char *buf = malloc(a->total);
    CHECK(buf != NULL);
    for (size_t i = 0; i < a->total; i++)
        buf[i] = vec_byte(i);
    size_t done = 0;
    while (done < a->total) {
        struct iovec iov[3];
        int k = vec_cut(buf, done, a->total, cut, iov);
        size_t want = 0;
        for (int i = 0; i < k; i++)
            want += iov[i].iov_len;
        ssize_t r = vec_out(a->m, a->fd, iov, k);
        CHECK(r > 0 && (size_t)r <= want);
        done += (size_t)r;
    }
    if (a->close_after)
        CHECK_OK(weft_close(a->fd));
    else
        CHECK_OK(weft_shutdown(a->fd, SHUT_WR));
    free(buf);
    return 0;
}

/* Reads with the vectored call, three pieces a call, until EOF: every
 * byte intact and in order, exactly total of them. */
static void vec_read_all(vmode m, int fd, size_t total)
{
    static const size_t cut[3] = {777, 2, 4096};
    char *buf = malloc(total + 1);
    CHECK(buf != NULL);
    size_t got = 0;
    for (;;) {
        struct iovec iov[3];
        int k = vec_cut(buf, got, total + 1, cut, iov); /* room for one byte too many */
        ssize_t r = vec_in(m, fd, iov, k);
        CHECK(r >= 0);
        if (r == 0)
            break;
        got += (size_t)r;
        CHECK(got <= total);
    }
    CHECK_EQ(got, total);
    for (size_t i = 0; i < total; i++)
        if (buf[i] != vec_byte(i)) {
            fprintf(stderr, "byte %zu of %zu: %d, want %d\n", i, total, buf[i], vec_byte(i));
            CHECK(false);
        }
    free(buf);
}

static void vec_stream(vmode m, int wfd, int rfd, bool close_after)
{
    vec_arg a = {m, wfd, (size_t)test_scale(300000), close_after};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, vec_writer, &a));
    vec_read_all(m, rfd, a.total);
    CHECK_OK(weft_nursery_close(n));
}

/* Waits until n bytes are queued to read on fd (a socket or a pipe). */
static void wait_queued(int fd, int n)
{
    int q = 0;
    CHECK_SOON(ioctl(fd, FIONREAD, &q) == 0 && q >= n);
    CHECK_EQ(q, n);
}

static int t_vectored(void *arg)
{
    (void)arg;
    fd_mark();
    int l, c, s;
    /* sendmsg/recvmsg over loopback TCP: three pieces out, two in. With
     * all 14 bytes queued, one call fills both pieces. */
    io_tcp_pair(&l, &c, &s);
    char one[] = "abc", two[] = "defg", three[] = "hijklmn";
    struct iovec iov[3] = {{one, 3}, {two, 4}, {three, 7}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    CHECK_EQ(weft_sendmsg(c, &m, 0), 14);
    wait_queued(s, 14);
    char r1[5], r2[20];
    struct iovec riov[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
    struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2};
    CHECK_EQ(weft_recvmsg(s, &rm, 0), 14);
    CHECK(memcmp(r1, "abcde", 5) == 0 && memcmp(r2, "fghijklmn", 9) == 0);
    /* writev/readv at the position (-1), the other way. */
    struct iovec wv[2] = {{"0123", 4}, {"456789", 6}};
    CHECK_EQ(weft_writev(s, wv, 2, -1), 10);
    wait_queued(c, 10);
    char a[3], b[7], extra[4];
    struct iovec rv[3] = {{a, 3}, {b, 7}, {extra, 4}};
    CHECK_EQ(weft_readv(c, rv, 3, -1), 10);
    CHECK(memcmp(a, "012", 3) == 0 && memcmp(b, "3456789", 7) == 0);
    /* Longer streams, three pieces a call on both sides, each call's
     * count followed. */
    vec_stream(V_MSG, c, s, false);
    vec_stream(V_RW, s, c, false);
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(s));
    CHECK_OK(weft_close(l));
    /* writev/readv on a pipe (offset -1: not seekable anyway). */
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(weft_writev(p[1], iov, 3, -1), 14);
    wait_queued(p[0], 14);
    CHECK_EQ(weft_readv(p[0], riov, 2, -1), 14);
    CHECK(memcmp(r1, "abcde", 5) == 0 && memcmp(r2, "fghijklmn", 9) == 0);
    vec_stream(V_RW, p[1], p[0], true);
    CHECK_OK(weft_close(p[0]));
    fd_check();
    return 0;
}

/* ---- short writes ---------------------------------------------------------
 * weft_send/write/writev/sendmsg return what the kernel took (weft.h): a
 * short count when the socket buffer fills, never a loop until all is
 * sent. With small buffers and nobody reading, a 1 MiB write must come back
 * short; a write that a deadline cancels while it waits for room returns
 * -ECANCELED having moved nothing, or the count it moved; the reader then
 * sees exactly the bytes the counts add up to, in order. */

enum { W_SEND, W_WRITE, W_WRITEV, W_SENDMSG, W_KINDS };
static const char *const w_names[W_KINDS] = {"weft_send", "weft_write", "weft_writev",
                                             "weft_sendmsg"};

static ssize_t w_call(int kind, int fd, const char *buf, size_t n)
{
    size_t h = n / 2;
    struct iovec iov[2] = {{(char *)buf, h}, {(char *)buf + h, n - h}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    switch (kind) {
    case W_SEND:
        return weft_send(fd, buf, n, 0);
    case W_WRITE:
        return weft_write(fd, buf, n, -1);
    case W_WRITEV:
        return weft_writev(fd, iov, 2, -1);
    default:
        return weft_sendmsg(fd, &mh, 0);
    }
}

static char short_byte(size_t i, int kind) { return (char)(i * 13 + (i >> 11) + (size_t)kind); }

typedef struct {
    int fd, kind;
    size_t total;
} short_rd;

static int short_reader(void *arg)
{
    short_rd *a = arg;
    size_t got = 0;
    char buf[4096];
    while (got < a->total) {
        ssize_t r = weft_recv(a->fd, buf, sizeof buf, 0);
        CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != short_byte(got + (size_t)i, a->kind)) {
                fprintf(stderr, "%s: byte %zu: %d, want %d\n", w_names[a->kind], got + (size_t)i,
                        buf[i], short_byte(got + (size_t)i, a->kind));
                CHECK(false);
            }
        got += (size_t)r;
    }
    return 0;
}

static int t_short_write(void *arg)
{
    (void)arg;
    fd_mark();
    const size_t total = 1 << 20;
    char *buf = malloc(total);
    CHECK(buf != NULL);
    for (int kind = 0; kind < W_KINDS; kind++) {
        int l = weft_tcp_listen("127.0.0.1", "0", 4);
        CHECK(l >= 0);
        int small = 4096;
        /* The accepted end inherits the listener's receive buffer. */
        CHECK_OK(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
        char port[16];
        io_port_of(l, port);
        int c = weft_tcp_connect("127.0.0.1", port);
        CHECK(c >= 0);
        int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC);
        CHECK(s >= 0);
        CHECK_OK(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small));
        for (size_t i = 0; i < total; i++)
            buf[i] = short_byte(i, kind);
        /* Nobody reads yet: the kernel takes a part of the megabyte, and
         * the call returns that on its own (the deadline is only there so
         * that a call waiting to send it all fails fast). */
        weft_scope sc;
        weft_scope_enter(&sc, weft_now() + PROMPT_NS);
        ssize_t first = w_call(kind, c, buf, total);
        CHECK(!weft_scope_exit(&sc));
        CHECK(first > 0 && (size_t)first < total);
        size_t sent = (size_t)first;
        /* Still nobody reads: a write under a deadline waits for room that
         * does not come (or takes what an ACK freed meanwhile, a count). */
        bool cancelled = false;
        for (int i = 0; i < 200 && !cancelled; i++) {
            weft_scope_enter(&sc, weft_now() + test_ms(10));
            ssize_t r = w_call(kind, c, buf + sent, total - sent);
            weft_scope_exit(&sc);
            if (r == -ECANCELED) {
                cancelled = true;
            } else {
                CHECK(r > 0 && (size_t)r < total - sent);
                sent += (size_t)r;
            }
        }
        CHECK(cancelled);
        size_t before_reader = sent;
        /* A reader drains; the writes go on, each taking what fits. */
        short_rd rd = {s, kind, total};
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, short_reader, &rd));
        long calls = 0, shorts = 0;
        while (sent < total) {
            ssize_t r = w_call(kind, c, buf + sent, total - sent);
            CHECK(r > 0 && (size_t)r <= total - sent);
            calls++;
            shorts += (size_t)r < total - sent;
            sent += (size_t)r;
        }
        CHECK_OK(weft_nursery_close(n)); /* the reader saw every byte */
        fprintf(
            stderr,
            "   %s: first write %zd of %zu, %zu before the reader, then %ld calls (%ld short)\n",
            w_names[kind], first, total, before_reader, calls, shorts);
        CHECK_OK(weft_shutdown(c, SHUT_WR));
        char x;
        CHECK_EQ(weft_recv(s, &x, 1, 0), 0); /* nothing more than total */
        CHECK_OK(weft_close(c));
        CHECK_OK(weft_close(s));
        CHECK_OK(weft_close(l));
    }
    free(buf);
    fd_check();
    return 0;
}

/* ---- a read after a short read (epoll: parks without trying it) ---------- */

static int recv_reset(void *arg)
{
    char b[16];
    CHECK_EQ(weft_recv(*(int *)arg, b, sizeof b, 0), -ECONNRESET);
    return 0;
}

static uint64_t direct_syscalls(void)
{
    weft_io_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_OK(weft_io_stats_get(&st));
    return st.direct_syscalls;
}

typedef struct {
    int fd;
    const char *msg;
    int64_t delay;
    bool fin;
} later_arg;

static int send_later(void *arg)
{
    later_arg *a = arg;
    CHECK_OK(weft_sleep(a->delay));
    if (a->msg)
        io_send_all(a->fd, a->msg, strlen(a->msg));
    if (a->fin)
        CHECK_OK(weft_shutdown(a->fd, SHUT_WR));
    return 0;
}

static int recv_one(void *arg)
{
    char b[16];
    CHECK_EQ(weft_recv(*(int *)arg, b, sizeof b, 0), 1);
    return 0;
}

static int t_tcp_drained(void *arg)
{
    (void)arg;
    fd_mark();
    bool ep = strcmp(io_expected_backend(), "epoll") == 0;
    int l, c, s;
    char buf[16];
    weft_nursery *n;
    /* More data after a short read wakes the next recv, which (epoll)
     * made no syscall before it parked: the sender's send and its own
     * successful recv are the only direct syscalls meanwhile. */
    io_tcp_pair(&l, &c, &s);
    io_send_all(s, "a", 1);
    /* Idle, so that the edge of "a" is harvested now: harvested after the
     * recv, it would void what that recv learnt (a retry, correctly). */
    CHECK_OK(weft_sleep(10 * 1000 * 1000));
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 1);
    later_arg la = {s, "b", 20 * 1000 * 1000, false};
    uint64_t d0 = direct_syscalls();
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, send_later, &la));
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 1);
    CHECK_EQ(buf[0], 'b');
    CHECK_OK(weft_nursery_close(n));
    if (ep)
        CHECK_EQ(direct_syscalls() - d0, 2);
    /* Several tasks parked on one drained fd: each message wakes one. */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_one, &c));
    CHECK_OK(weft_spawn(n, recv_one, &c));
    CHECK_OK(weft_sleep(10 * 1000 * 1000));
    io_send_all(s, "1", 1);
    CHECK_OK(weft_sleep(10 * 1000 * 1000));
    io_send_all(s, "2", 1);
    CHECK_OK(weft_nursery_close(n));
    /* Data and EOF that came together, the recv parked before them: the
     * short read that takes the data may take the FIN with it, and the
     * next recv must still see EOF. */
    la = (later_arg){s, "xyz", 10 * 1000 * 1000, true};
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, send_later, &la));
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 3);
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 0);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(s));
    /* The same with data and EOF harvested before the first recv. */
    CHECK_OK(weft_close(l));
    io_tcp_pair(&l, &c, &s);
    io_send_all(s, "xyz", 3);
    CHECK_OK(weft_shutdown(s, SHUT_WR));
    CHECK_OK(weft_sleep(10 * 1000 * 1000));
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 3);
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 0);
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(s));
    /* An RST after a short read: the parked recv wakes with ECONNRESET. */
    CHECK_OK(weft_close(l));
    io_tcp_pair(&l, &c, &s);
    io_send_all(s, "a", 1);
    CHECK_EQ(weft_recv(c, buf, sizeof buf, 0), 1);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_reset, &c));
    CHECK_OK(weft_sleep(10 * 1000 * 1000));
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    CHECK_OK(weft_close(s));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(l));
    fd_check();
    return 0;
}

static int t_bad_input(void *arg)
{
    (void)arg;
    fd_mark();
    char buf[4];
    CHECK_EQ(weft_read(0, NULL, 4, -1), -EINVAL);
    CHECK_EQ(weft_read(0, buf, 4, -2), -EINVAL);
    CHECK_EQ(weft_write(0, NULL, 4, -1), -EINVAL);
    CHECK_EQ(weft_readv(0, NULL, 1, -1), -EINVAL);
    CHECK_EQ(weft_writev(0, (struct iovec *)buf, -1, -1), -EINVAL);
    CHECK_EQ(weft_recvmsg(0, NULL, 0), -EINVAL);
    CHECK_EQ(weft_sendmsg(0, NULL, 0), -EINVAL);
    CHECK_EQ(weft_connect(0, NULL, 0), -EINVAL);
    CHECK_EQ(weft_open(NULL, 0, 0), -EINVAL);
    CHECK_EQ(weft_accept(0, (struct sockaddr *)buf, NULL, 0), -EINVAL);
    CHECK_EQ(weft_close(-1), -EBADF);
    CHECK_EQ(weft_poll(-1, POLLIN, 0), -EBADF);
    CHECK_EQ(weft_tcp_listen(NULL, NULL, 1), -EINVAL);
    CHECK_EQ(weft_tcp_connect(NULL, "1"), -EINVAL);
    int64_t off = -3;
    CHECK_EQ(weft_sendfile(1, 0, &off, 1), -EINVAL);
    /* A closed fd number: -EBADF from the kernel, not a crash. */
    int p[2];
    CHECK_OK(pipe(p));
    close(p[0]);
    close(p[1]);
    CHECK_EQ(weft_read(p[0], buf, 4, -1), -EBADF);
    CHECK_EQ(weft_recv(p[0], buf, 4, 0), -EBADF);
    CHECK(weft_tcp_connect("127.0.0.1", "notaport") < 0);
    fd_check();
    return 0;
}

static int t_backend(void *arg)
{
    (void)arg;
    const char *b = weft_io_backend_name();
    CHECK(b != NULL);
    if (getenv("WEFT_TEST_URING_FAIL"))
        CHECK(strcmp(b, "epoll") == 0);
    else
        CHECK(strcmp(b, io_expected_backend()) == 0);
    return 0;
}

/* io_uring setup fails (as under seccomp): weft falls back to epoll and
 * the calls work there. */
static int fallback_body(void *arg)
{
    (void)arg;
    CHECK(strcmp(weft_io_backend_name(), "epoll") == 0);
    return t_tcp_echo(NULL);
}

static void t_fallback(void)
{
    const char *envs[] = {"WEFT_TEST_URING_FAIL=EPERM", "WEFT_TEST_URING_FAIL=ENOSYS"};
    for (int i = 0; i < 2; i++) {
        int status;
        char *err = test_run_in_child(2, fallback_body, envs[i], &status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "fallback child (%s):\n%s\n", envs[i], err);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* weft_config.io = WEFT_IO_EPOLL takes epoll, even with WEFT_IO=uring in
 * the environment (the variable applies only to a field left at AUTO);
 * WEFT_IO_URING takes io_uring over WEFT_IO=epoll where io_uring works. */
static int config_epoll_body(void *arg)
{
    (void)arg;
    CHECK(strcmp(weft_io_backend_name(), "epoll") == 0);
    return t_tcp_echo(NULL);
}

/* Can this process set up a ring with what weft needs (io/ring.c)? */
static bool uring_usable(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return false;
    close(fd);
    unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS;
    return (p.features & need) == need;
}

static bool uring_expected;

static int config_uring_body(void *arg)
{
    (void)arg;
    CHECK(strcmp(weft_io_backend_name(), uring_expected ? "io_uring" : "epoll") == 0);
    return t_tcp_echo(NULL);
}

static int child_config_epoll(void)
{
    unsetenv("WEFT_TEST_URING_FAIL");
    CHECK_OK(setenv("WEFT_IO", "uring", 1));
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.io = WEFT_IO_EPOLL;
    CHECK_OK(weft_run(&cfg, config_epoll_body, NULL));
    CHECK(weft_io_backend_name() == NULL); /* outside the run */
    return 0;
}

static int child_config_uring(void)
{
    unsetenv("WEFT_TEST_URING_FAIL");
    CHECK_OK(setenv("WEFT_IO", "epoll", 1));
    uring_expected = uring_usable();
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.io = WEFT_IO_URING;
    CHECK_OK(weft_run(&cfg, config_uring_body, NULL));
    return 0;
}

static void t_config_io(void)
{
    CHECK_EQ(io_fork(child_config_epoll, 60), 0);
    CHECK_EQ(io_fork(child_config_uring, 60), 0);
}

/* The fallback with a real setup failure: a seccomp filter makes
 * io_uring_setup fail with EPERM (as container profiles do); asked for
 * io_uring (WEFT_IO=uring), weft runs on epoll and a TCP echo works. */
#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

static int seccomp_body(void *arg)
{
    (void)arg;
    CHECK(strcmp(weft_io_backend_name(), "epoll") == 0);
    return t_tcp_echo(NULL);
}

static int child_seccomp(void)
{
#ifndef SECCOMP_ARCH
    fprintf(stderr, "   skipped: no seccomp arch value for this architecture\n");
    return 77;
#else
    unsetenv("WEFT_TEST_URING_FAIL");
    CHECK_OK(setenv("WEFT_IO", "uring", 1));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "   skipped: PR_SET_NO_NEW_PRIVS: %s\n", strerror(errno));
        return 77;
    }
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* Another ABI's syscall numbers mean other calls: leave them be
         * (weft makes none). */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
        fprintf(stderr, "   skipped: seccomp filter: %s\n", strerror(errno));
        return 77;
    }
    /* The filter is in force: io_uring_setup itself fails. */
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(syscall(__NR_io_uring_setup, 4, &p), -1);
    CHECK_EQ(errno, EPERM);
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    CHECK_OK(weft_run(&cfg, seccomp_body, NULL));
    return 0;
#endif
}

static void t_fallback_seccomp(void)
{
    int rc = io_fork(child_seccomp, 60);
    if (rc == 77)
        return; /* the child said why */
    CHECK_EQ(rc, 0);
}

/* Outside a task: the plain syscalls. */
static void t_outside(void)
{
    CHECK(weft_io_backend_name() == NULL);
    fd_mark();
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(weft_write(p[1], "abc", 3, -1), 3);
    char buf[8];
    CHECK_EQ(weft_poll(p[0], POLLIN, WEFT_FOREVER), POLLIN);
    CHECK_EQ(weft_read(p[0], buf, sizeof buf, -1), 3);
    CHECK_EQ(weft_poll(p[0], POLLIN, weft_now() + test_ms(1)), -ETIMEDOUT);
    CHECK_OK(weft_close(p[0]));
    CHECK_OK(weft_close(p[1]));
    int l = weft_tcp_listen(NULL, "0", 4);
    CHECK(l >= 0);
    char port[16];
    io_port_of(l, port);
    int c = weft_tcp_connect("127.0.0.1", port);
    CHECK(c >= 0);
    int s = weft_accept(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(s >= 0);
    CHECK_EQ(weft_send(c, "hi", 2, 0), 2);
    CHECK_EQ(weft_recv(s, buf, sizeof buf, 0), 2);
    CHECK_OK(weft_close(s));
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(l));
    fd_check();
}

int main(void)
{
    test_watchdog(100);
    /* First: it forks, and later cases leave resolver threads (detached,
     * maybe still exiting) that could hold a lock of the allocator. */
    CASE(t_fallback);
    CASE(t_fallback_seccomp);
    CASE(t_config_io);
    CASE(t_outside);
    RUN(t_backend);
    RUN(t_pipe);
    RUN(t_epipe);
    RUN(t_file);
    RUN(t_unix_msg);
    RUN(t_vectored);
    RUN(t_tcp_echo);
    RUN(t_short_write);
    RUN(t_reset);
    RUN(t_tcp_drained);
    RUN(t_bad_input);
    printf("io_basic: ok (%s)\n", io_expected_backend());
    return 0;
}
