/*
 * ops.c - the weft_* I/O calls.
 *
 * Each call: outside a task (a plain thread, a weft_blocking body, before
 * weft_run) the plain blocking syscall; in a task, a cancellation point on
 * entry, then the backend: an SQE on the worker's ring (ring.c), or the
 * non-blocking syscall retried on readiness (epoll.c), or, for regular
 * files on the epoll backend, weft_blocking.
 */
#include "io/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define IO_MAX 0x7ffff000u /* Linux's own cap on one read or write */

enum {
    OP_READ,
    OP_WRITE,
    OP_READV,
    OP_WRITEV,
    OP_RECV,
    OP_SEND,
    OP_RECVMSG,
    OP_SENDMSG,
    OP_ACCEPT,
    OP_OPEN,
    OP_FSYNC
};

typedef struct {
    int op, fd, flags;
    void *buf;
    size_t n;
    const struct iovec *iov;
    int iovcnt;
    int64_t off;
    struct msghdr *msg;
    struct sockaddr *addr;
    socklen_t *alen;
    const char *path;
    mode_t mode;
    ssize_t res;
} sysargs;

static ssize_t neg(ssize_t r) { return r < 0 ? -errno : r; }

/* The counters' kind of each op (weft_io_op_kind). */
static const uint8_t op_kind[] = {
    [OP_READ] = WEFT_IO_OP_READ,    [OP_WRITE] = WEFT_IO_OP_WRITE,  [OP_READV] = WEFT_IO_OP_READ,
    [OP_WRITEV] = WEFT_IO_OP_WRITE, [OP_RECV] = WEFT_IO_OP_RECV,    [OP_SEND] = WEFT_IO_OP_SEND,
    [OP_RECVMSG] = WEFT_IO_OP_RECV, [OP_SENDMSG] = WEFT_IO_OP_SEND, [OP_ACCEPT] = WEFT_IO_OP_ACCEPT,
    [OP_OPEN] = WEFT_IO_OP_OTHER,   [OP_FSYNC] = WEFT_IO_OP_OTHER};

/* The names tasks wait in (weft_dump shows "in weft_recv on fd 7"): by op,
 * then weft_connect and weft_poll. The wait object is the fd. */
static const char *const wait_names[] = {"weft_read",    "weft_write",   "weft_readv",
                                         "weft_writev",  "weft_recv",    "weft_send",
                                         "weft_recvmsg", "weft_sendmsg", "weft_accept",
                                         "weft_open",    "weft_fsync",   "weft_connect",
                                         "weft_poll"};
#define WAIT_CONNECT wait_names[OP_FSYNC + 1]
#define WAIT_POLL wait_names[OP_FSYNC + 2]

bool weft__io_is_fd_wait(const char *what)
{
    for (size_t i = 0; i < sizeof wait_names / sizeof wait_names[0]; i++)
        if (what == wait_names[i])
            return true;
    return false;
}

static int ep_connect(int fd, const struct sockaddr *addr, socklen_t len);
static int ep_poll(int fd, short events, int64_t deadline);

/* The calling worker thread's counters (own words). */
static weft__io_ctr *ctr(weft__worker *w) { return weft__io_ctr_of((unsigned)w->id); }

/* The syscall itself, as the plain call does it (blocking, or not, as the
 * fd is). An offset on a non-seekable fd is ignored, as io_uring does. */
static ssize_t sys_once(sysargs *a)
{
    ssize_t r;
    switch (a->op) {
    case OP_READ:
        r = a->off < 0 ? read(a->fd, a->buf, a->n) : pread(a->fd, a->buf, a->n, a->off);
        if (r < 0 && errno == ESPIPE && a->off >= 0)
            r = read(a->fd, a->buf, a->n);
        return neg(r);
    case OP_WRITE:
        r = a->off < 0 ? write(a->fd, a->buf, a->n) : pwrite(a->fd, a->buf, a->n, a->off);
        if (r < 0 && errno == ESPIPE && a->off >= 0)
            r = write(a->fd, a->buf, a->n);
        return neg(r);
    case OP_READV:
        r = a->off < 0 ? readv(a->fd, a->iov, a->iovcnt) : preadv(a->fd, a->iov, a->iovcnt, a->off);
        if (r < 0 && errno == ESPIPE && a->off >= 0)
            r = readv(a->fd, a->iov, a->iovcnt);
        return neg(r);
    case OP_WRITEV:
        r = a->off < 0 ? writev(a->fd, a->iov, a->iovcnt)
                       : pwritev(a->fd, a->iov, a->iovcnt, a->off);
        if (r < 0 && errno == ESPIPE && a->off >= 0)
            r = writev(a->fd, a->iov, a->iovcnt);
        return neg(r);
    case OP_RECV:
        return neg(recv(a->fd, a->buf, a->n, a->flags));
    case OP_SEND:
        return neg(send(a->fd, a->buf, a->n, a->flags | MSG_NOSIGNAL));
    case OP_RECVMSG:
        return neg(recvmsg(a->fd, a->msg, a->flags));
    case OP_SENDMSG:
        return neg(sendmsg(a->fd, a->msg, a->flags | MSG_NOSIGNAL));
    case OP_ACCEPT:
        return neg(accept4(a->fd, a->addr, a->alen, a->flags));
    case OP_OPEN:
        return neg(open(a->path, a->flags, a->mode));
    case OP_FSYNC:
        return neg(fsync(a->fd));
    default:
        return -EINVAL;
    }
}

static ssize_t sys_retry(sysargs *a)
{
    ssize_t r;
    while ((r = sys_once(a)) == -EINTR) {
    }
    return r;
}

static int file_job(void *arg)
{
    sysargs *a = arg;
    a->res = sys_retry(a);
    return 0;
}

/* Through weft_blocking: regular files on the epoll backend. */
static ssize_t run_blocking(sysargs *a)
{
    a->res = 0;
    int rc = weft_blocking(file_job, a);
    return rc < 0 ? rc : a->res;
}

static weft__worker *io_worker(void)
{
    weft__worker *w = weft__self();
    if (!w || !w->current || !w->io)
        return NULL;
    return w;
}

/* The drained-read shortcut of the epoll backend. epoll(7): for a stream
 * socket, a read that returns less than it asked for exhausted the read
 * space; more data comes with a new edge. So while no edge was harvested
 * since such a read (rseq unchanged), the next read would say EAGAIN: it
 * parks at once instead. An echo server's recv after its send is that
 * read, one syscall a round trip. Only for a plain recv or read (a flag
 * such as MSG_PEEK or MSG_WAITALL changes what short means) on a TCP
 * socket: a Unix stream read also stops early at passed fds or another
 * sender's credentials, a datagram read at the datagram's end. A hangup,
 * error or urgent data (a read stops at the urgent mark) seen on the fd
 * turns it off (fe->hup): the read that ends there can come back short
 * with no edge left to come. The park itself is the usual one, which
 * rechecks rseq under the record's lock, so an edge harvested meanwhile
 * still makes it retry. */
static bool drain_op(const sysargs *a)
{
    return (a->op == OP_RECV || a->op == OP_READ) && (a->flags & ~MSG_DONTWAIT) == 0 && a->n > 0;
}

static bool drained(weft__fdent *fe, uint32_t rseq)
{
    /* rseq was loaded with acquire: hup set before that bump is seen. */
    return atomic_load_explicit(&fe->rdrain, memory_order_relaxed) == rseq &&
           !atomic_load_explicit(&fe->hup, memory_order_relaxed);
}

static bool fd_is_tcp(weft__worker *w, int fd, weft__fdent *fe)
{
    int t = atomic_load_explicit(&fe->tcp, memory_order_relaxed);
    if (WEFT__UNLIKELY(t == FD_TCP_UNKNOWN)) {
        int type = 0, proto = 0;
        socklen_t tl = sizeof type, pl = sizeof proto;
        t = FD_TCP_NO;
        WEFT__IO_COUNT(ctr(w)->other, 1);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM) {
            WEFT__IO_COUNT(ctr(w)->other, 1);
            if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) == 0 && proto == IPPROTO_TCP)
                t = FD_TCP_YES;
        }
        atomic_store_explicit(&fe->tcp, (uint8_t)t, memory_order_relaxed);
    }
    return t == FD_TCP_YES;
}

/* The epoll backend's loop: try, and on EAGAIN wait for the edge. */
static ssize_t ep_run(weft__worker *w, sysargs *a, uint32_t dir)
{
    weft__fdent *fe = weft__fdent_get(a->fd);
    if (!fe)
        return -EBADF;
    int kind = weft__ep_prepare(a->fd, fe);
    if (kind < 0)
        return kind;
    if (kind == FD_FILE)
        return run_blocking(a);
    if (a->op == OP_RECV || a->op == OP_SEND || a->op == OP_RECVMSG || a->op == OP_SENDMSG)
        a->flags |= MSG_DONTWAIT;
    bool drain = drain_op(a);
    for (;;) {
        uint32_t rseq = atomic_load_explicit(&fe->rseq, memory_order_acquire);
        uint64_t seq = (uint64_t)rseq << 32 | atomic_load_explicit(&fe->wseq, memory_order_relaxed);
        if (!drain || !drained(fe, rseq)) {
            ssize_t r = sys_once(a);
            WEFT__IO_COUNT(ctr(w)->direct, 1);
            WEFT__IO_COUNT(ctr(w)->direct_op[op_kind[a->op]], 1);
            if (r != -EAGAIN && r != -EWOULDBLOCK && r != -EINTR) {
                if (drain && r > 0 && (size_t)r < a->n && fd_is_tcp(w, a->fd, fe))
                    atomic_store_explicit(&fe->rdrain, rseq, memory_order_relaxed);
                return r;
            }
        }
        if (weft__task_cancelled(w->current))
            return -ECANCELED;
        int rc = weft__ep_wait(fe, dir, seq, WEFT_FOREVER);
        if (rc < 0)
            return rc;
        w = weft__self(); /* may have migrated */
    }
}

/* The io_uring path of one op: prep the SQE, park. */
static ssize_t ring_run(weft__worker *w, sysargs *a)
{
    struct io_uring_sqe *sqe = weft__ring_sqe(w);
    if (!sqe)
        return -EAGAIN;
    uint64_t off = a->off < 0 ? (uint64_t)-1 : (uint64_t)a->off;
    switch (a->op) {
    case OP_READ:
        io_uring_prep_read(sqe, a->fd, a->buf, (unsigned)a->n, off);
        break;
    case OP_WRITE:
        io_uring_prep_write(sqe, a->fd, a->buf, (unsigned)a->n, off);
        break;
    case OP_READV:
        io_uring_prep_readv(sqe, a->fd, a->iov, (unsigned)a->iovcnt, off);
        break;
    case OP_WRITEV:
        io_uring_prep_writev(sqe, a->fd, a->iov, (unsigned)a->iovcnt, off);
        break;
    case OP_RECV:
        io_uring_prep_recv(sqe, a->fd, a->buf, a->n, a->flags);
        break;
    case OP_SEND:
        io_uring_prep_send(sqe, a->fd, a->buf, a->n, a->flags | MSG_NOSIGNAL);
        break;
    case OP_RECVMSG:
        io_uring_prep_recvmsg(sqe, a->fd, a->msg, (unsigned)a->flags);
        break;
    case OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, a->fd, a->msg, (unsigned)(a->flags | MSG_NOSIGNAL));
        break;
    case OP_ACCEPT:
        io_uring_prep_accept(sqe, a->fd, a->addr, a->alen, a->flags);
        break;
    case OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, a->path, a->flags, a->mode);
        break;
    case OP_FSYNC:
        io_uring_prep_fsync(sqe, a->fd, 0);
        break;
    }
    weft__wait_note(wait_names[a->op], (const void *)(intptr_t)a->fd);
    weft__io_op op;
    return weft__ring_wait(w, sqe, &op, op_kind[a->op], a->op == OP_OPEN ? -1 : a->fd,
                           WEFT_FOREVER);
}

static ssize_t run(sysargs *a, uint32_t dir)
{
    weft__worker *w = io_worker();
    if (!w)
        return sys_retry(a);
    if (weft__task_cancelled(w->current))
        return -ECANCELED;
    if (a->n > IO_MAX)
        a->n = IO_MAX;
    if (weft__io_backend() == IO_URING) {
        /* A send usually fits the socket buffer: try it without blocking
         * first, and park on the ring only when it would block. That saves
         * a park and a wake per send (a request-response server then parks
         * once per round trip, in its recv). */
        if (a->op == OP_SEND || a->op == OP_SENDMSG) {
            int flags = a->flags;
            a->flags |= MSG_DONTWAIT;
            ssize_t r = sys_once(a);
            a->flags = flags;
            weft__io_ctr *c = ctr(w);
            WEFT__IO_COUNT(c->direct, 1);
            WEFT__IO_COUNT(c->direct_op[op_kind[a->op]], 1);
            if (r != -EAGAIN && r != -EWOULDBLOCK && r != -EINTR && r != -ENOTSOCK) {
                WEFT__IO_COUNT(c->sub[op_kind[a->op]], 1);
                WEFT__IO_COUNT(c->done[op_kind[a->op]], 1);
                return r;
            }
        }
        return ring_run(w, a); /* counted by weft__ring_wait and the reaper */
    }
    WEFT__IO_COUNT(ctr(w)->sub[op_kind[a->op]], 1);
    ssize_t r;
    if (a->op == OP_OPEN || a->op == OP_FSYNC) {
        r = run_blocking(a);
    } else {
        weft__wait_note(wait_names[a->op], (const void *)(intptr_t)a->fd);
        r = ep_run(w, a, dir);
    }
    WEFT__IO_COUNT_SELF(done[op_kind[a->op]], 1); /* on the worker it returns on */
    return r;
}

static bool bad_buf(const void *buf, size_t n) { return !buf && n; }

ssize_t weft_read(int fd, void *buf, size_t n, int64_t offset)
{
    if (bad_buf(buf, n) || offset < -1)
        return -EINVAL;
    sysargs a = {.op = OP_READ, .fd = fd, .buf = buf, .n = n, .off = offset};
    return run(&a, EPOLLIN);
}

ssize_t weft_write(int fd, const void *buf, size_t n, int64_t offset)
{
    if (bad_buf(buf, n) || offset < -1)
        return -EINVAL;
    sysargs a = {.op = OP_WRITE, .fd = fd, .buf = (void *)buf, .n = n, .off = offset};
    return run(&a, EPOLLOUT);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if ((!iov && iovcnt) || iovcnt < 0 || iovcnt > IOV_MAX || offset < -1)
        return -EINVAL;
    sysargs a = {.op = OP_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt, .off = offset};
    return run(&a, EPOLLIN);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if ((!iov && iovcnt) || iovcnt < 0 || iovcnt > IOV_MAX || offset < -1)
        return -EINVAL;
    sysargs a = {.op = OP_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt, .off = offset};
    return run(&a, EPOLLOUT);
}

ssize_t weft_recv(int fd, void *buf, size_t n, int flags)
{
    if (bad_buf(buf, n))
        return -EINVAL;
    sysargs a = {.op = OP_RECV, .fd = fd, .buf = buf, .n = n, .flags = flags, .off = -1};
    return run(&a, EPOLLIN);
}

ssize_t weft_send(int fd, const void *buf, size_t n, int flags)
{
    if (bad_buf(buf, n))
        return -EINVAL;
    sysargs a = {.op = OP_SEND, .fd = fd, .buf = (void *)buf, .n = n, .flags = flags, .off = -1};
    return run(&a, EPOLLOUT);
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg)
        return -EINVAL;
    sysargs a = {.op = OP_RECVMSG, .fd = fd, .msg = msg, .flags = flags, .off = -1};
    return run(&a, EPOLLIN);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return -EINVAL;
    sysargs a = {
        .op = OP_SENDMSG, .fd = fd, .msg = (struct msghdr *)msg, .flags = flags, .off = -1};
    return run(&a, EPOLLOUT);
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if ((addr && !len) || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
        return -EINVAL;
    sysargs a = {.op = OP_ACCEPT, .fd = fd, .addr = addr, .alen = len, .flags = flags, .off = -1};
    return (int)run(&a, EPOLLIN);
}

int weft_open(const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EINVAL;
    sysargs a = {
        .op = OP_OPEN, .fd = -1, .path = path, .flags = flags | O_CLOEXEC, .mode = mode, .off = -1};
    return (int)run(&a, 0);
}

int weft_fsync(int fd)
{
    sysargs a = {.op = OP_FSYNC, .fd = fd, .off = -1};
    return (int)run(&a, 0);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!addr)
        return -EINVAL;
    weft__worker *w = io_worker();
    if (!w) {
        int r = (int)neg(connect(fd, addr, len));
        if (r != -EINTR)
            return r;
        /* Interrupted, the attempt goes on in the kernel and a second
         * connect would only say EALREADY (connect(2)): wait for it the way
         * a non-blocking connect is waited for. */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        while (poll(&p, 1, -1) < 0)
            if (errno != EINTR)
                return -errno;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            return -errno;
        return -err;
    }
    if (weft__task_cancelled(w->current))
        return -ECANCELED;
    weft__wait_note(WAIT_CONNECT, (const void *)(intptr_t)fd);
    if (weft__io_backend() == IO_URING) {
        struct io_uring_sqe *sqe = weft__ring_sqe(w);
        if (!sqe)
            return -EAGAIN;
        io_uring_prep_connect(sqe, fd, addr, len);
        weft__io_op op;
        return weft__ring_wait(w, sqe, &op, WEFT_IO_OP_CONNECT, fd, WEFT_FOREVER);
    }
    WEFT__IO_COUNT(ctr(w)->sub[WEFT_IO_OP_CONNECT], 1);
    int r = ep_connect(fd, addr, len);
    WEFT__IO_COUNT_SELF(done[WEFT_IO_OP_CONNECT], 1);
    return r;
}

/* weft_connect on the epoll backend. */
static int ep_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    weft__fdent *fe = weft__fdent_get(fd);
    if (!fe)
        return -EBADF;
    int kind = weft__ep_prepare(fd, fe);
    if (kind < 0)
        return kind;
    uint64_t seq = (uint64_t)atomic_load_explicit(&fe->rseq, memory_order_relaxed) << 32 |
                   atomic_load_explicit(&fe->wseq, memory_order_relaxed);
    int r = (int)neg(connect(fd, addr, len));
    WEFT__IO_COUNT_SELF(direct, 1);
    WEFT__IO_COUNT_SELF(direct_op[WEFT_IO_OP_CONNECT], 1);
    if (r != -EINPROGRESS && r != -EINTR)
        return r;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int pr = poll(&p, 1, 0);
        WEFT__IO_COUNT_SELF(direct, 1);
        WEFT__IO_COUNT_SELF(direct_op[WEFT_IO_OP_CONNECT], 1);
        if (pr > 0) {
            int err = 0;
            socklen_t el = sizeof err;
            WEFT__IO_COUNT_SELF(direct, 1);
            WEFT__IO_COUNT_SELF(direct_op[WEFT_IO_OP_CONNECT], 1);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                return -errno;
            return -err;
        }
        int rc = weft__ep_wait(fe, EPOLLOUT, seq, WEFT_FOREVER);
        if (rc < 0)
            return rc;
        seq = (uint64_t)atomic_load_explicit(&fe->rseq, memory_order_relaxed) << 32 |
              atomic_load_explicit(&fe->wseq, memory_order_relaxed);
    }
}

int weft_poll(int fd, short events, int64_t deadline)
{
    if (fd < 0)
        return -EBADF;
    weft__worker *w = io_worker();
    if (!w) {
        for (;;) {
            struct pollfd p = {.fd = fd, .events = events};
            int64_t left = deadline == WEFT_FOREVER ? -1 : deadline - weft__now();
            if (left < 0 && deadline != WEFT_FOREVER)
                left = 0;
            struct timespec ts = {left / 1000000000, left % 1000000000};
            int r = ppoll(&p, 1, left < 0 ? NULL : &ts, NULL);
            if (r > 0)
                return p.revents;
            if (r == 0)
                return -ETIMEDOUT;
            if (errno != EINTR)
                return -errno;
        }
    }
    if (weft__task_cancelled(w->current))
        return -ECANCELED;
    weft__wait_note(WAIT_POLL, (const void *)(intptr_t)fd);
    weft__io_ctr *c = ctr(w);
    if (weft__io_backend() == IO_URING) {
        struct pollfd p = {.fd = fd, .events = events};
        int pr = poll(&p, 1, 0);
        WEFT__IO_COUNT(c->direct, 1);
        WEFT__IO_COUNT(c->direct_op[WEFT_IO_OP_POLL], 1);
        if (pr > 0 || deadline <= weft__now()) {
            WEFT__IO_COUNT(c->sub[WEFT_IO_OP_POLL], 1);
            WEFT__IO_COUNT(c->done[WEFT_IO_OP_POLL], 1);
            return pr > 0 ? p.revents : -ETIMEDOUT;
        }
        struct io_uring_sqe *sqe = weft__ring_sqe(w);
        if (!sqe)
            return -EAGAIN;
        io_uring_prep_poll_add(sqe, fd, (unsigned)(unsigned short)events);
        weft__io_op op;
        return weft__ring_wait(w, sqe, &op, WEFT_IO_OP_POLL, fd, deadline);
    }
    WEFT__IO_COUNT(c->sub[WEFT_IO_OP_POLL], 1);
    int r = ep_poll(fd, events, deadline);
    WEFT__IO_COUNT_SELF(done[WEFT_IO_OP_POLL], 1);
    return r;
}

/* weft_poll on the epoll backend. */
static int ep_poll(int fd, short events, int64_t deadline)
{
    weft__fdent *fe = weft__fdent_get(fd);
    if (!fe)
        return -EBADF;
    int kind = weft__ep_prepare(fd, fe);
    if (kind < 0)
        return kind;
    uint32_t dir = 0;
    if (events & (POLLIN | POLLPRI | POLLRDHUP))
        dir |= EPOLLIN;
    if (events & POLLOUT)
        dir |= EPOLLOUT;
    if (!dir)
        dir = EPOLLIN | EPOLLOUT; /* only errors and hangups: any edge */
    for (;;) {
        uint64_t seq = (uint64_t)atomic_load_explicit(&fe->rseq, memory_order_relaxed) << 32 |
                       atomic_load_explicit(&fe->wseq, memory_order_relaxed);
        struct pollfd p = {.fd = fd, .events = events};
        int pr = poll(&p, 1, 0);
        WEFT__IO_COUNT_SELF(direct, 1);
        WEFT__IO_COUNT_SELF(direct_op[WEFT_IO_OP_POLL], 1);
        if (pr > 0)
            return p.revents;
        if (kind == FD_FILE || deadline <= weft__now())
            return -ETIMEDOUT;
        int rc = weft__ep_wait(fe, dir, seq, deadline);
        if (rc < 0)
            return rc;
    }
}

/* weft_close and weft_shutdown in a task: one call of kind CLOSE, which
 * makes its one syscall itself. */
static void count_close(weft__worker *w)
{
    if (!w)
        return;
    weft__io_ctr *c = ctr(w);
    WEFT__IO_COUNT(c->sub[WEFT_IO_OP_CLOSE], 1);
    WEFT__IO_COUNT(c->done[WEFT_IO_OP_CLOSE], 1);
    WEFT__IO_COUNT(c->direct, 1);
    WEFT__IO_COUNT(c->direct_op[WEFT_IO_OP_CLOSE], 1);
}

int weft_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    int b = weft__io_backend();
    weft__fdent *fe = b != IO_NONE ? weft__fdent_get(fd) : NULL;
    if (fe) {
        if (b == IO_URING) {
            if (atomic_load_explicit(&fe->inflight, memory_order_relaxed))
                weft__ring_close_fd(fd);
        } else {
            weft__ep_close_fd(fd, fe);
        }
    }
    /* Linux closes the fd even when close reports EINTR. */
    int r = close(fd) < 0 && errno != EINTR ? -errno : 0;
    count_close(io_worker());
    return r;
}

int weft_shutdown(int fd, int how)
{
    if (weft__current() && weft__task_cancelled(weft__current()))
        return -ECANCELED;
    if (how != SHUT_WR && weft__io_backend() == IO_EPOLL) {
        /* Reads now end at once: no drained-read shortcut (the kernel's
         * wake-up for the shutdown would end a parked read anyway). */
        weft__fdent *fe = weft__fdent_get(fd);
        if (fe)
            atomic_store_explicit(&fe->hup, 1, memory_order_relaxed);
    }
    int r = shutdown(fd, how) < 0 ? -errno : 0;
    count_close(io_worker());
    return r;
}

/* Zero-copy sendfile would block a worker on a socket that is not
 * O_NONBLOCK (io_uring) or on the disk; instead a copy through a buffer,
 * with weft_read at an explicit offset and weft_write, each parking. */
ssize_t weft_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count)
{
    if (offset && *offset < 0)
        return -EINVAL;
    if (!io_worker()) {
        off_t o = offset ? (off_t)*offset : 0;
        ssize_t r = neg(sendfile(out_fd, in_fd, offset ? &o : NULL, count));
        if (offset && r >= 0)
            *offset = o;
        return r;
    }
    if (weft__task_cancelled(weft__current()))
        return -ECANCELED;
    int64_t pos = offset ? *offset : (int64_t)lseek(in_fd, 0, SEEK_CUR);
    if (pos < 0)
        return -errno;
    size_t chunk = count < 65536 ? count : 65536;
    char *buf = chunk ? malloc(chunk) : NULL;
    if (chunk && !buf)
        return -ENOMEM;
    ssize_t total = 0, err = 0;
    while ((size_t)total < count) {
        size_t want = count - (size_t)total < chunk ? count - (size_t)total : chunk;
        ssize_t r = weft_read(in_fd, buf, want, pos + total);
        if (r <= 0) {
            err = r;
            break;
        }
        ssize_t done = 0;
        while (done < r) {
            ssize_t k = weft_write(out_fd, buf + done, (size_t)(r - done), -1);
            if (k <= 0) {
                err = k ? k : -EIO;
                break;
            }
            done += k;
        }
        total += done;
        if (done < r)
            break;
    }
    free(buf);
    if (offset)
        *offset = pos + total;
    else
        lseek(in_fd, pos + total, SEEK_SET);
    return total > 0 ? total : err;
}
