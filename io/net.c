/*
 * net.c - weft_tcp_listen and weft_tcp_connect.
 *
 * Name resolution (getaddrinfo) can block for seconds on DNS, so a name
 * that is not a numeric address is resolved on a thread of its own while
 * the task waits in a cancellable wait. A cancel or deadline abandons the
 * thread's job: whichever of the two finishes last frees it (the job's
 * word, as io/internal.h describes for ops, with ABANDONED for the task's
 * side), so the task returns at once and nothing leaks.
 */
#include "io/internal.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <unistd.h>

#define ABANDONED 2u

typedef struct {
    _Atomic uint64_t word;
    weft__task *t;
    char *host, *port;
    struct addrinfo hints, *res;
    int rc;
} rjob;

static void rjob_free(rjob *j)
{
    if (j->res)
        freeaddrinfo(j->res);
    free(j->host);
    free(j->port);
    free(j);
}

/* Resolver threads between their completion and the end of their wake.
 * The woken task may finish, and the runtime end, while the wake is still
 * unparking a worker: weft__io_stop waits for this to drop to zero. It is
 * raised before the exchange the task waits for, so it is visible to
 * whoever sees every task done. */
static atomic_int wakers;

void weft__net_quiesce(void)
{
    while (atomic_load_explicit(&wakers, memory_order_acquire) != 0)
        sched_yield();
}

static void *resolver(void *arg)
{
    rjob *j = arg;
    weft__task *t = j->t;
    j->rc = getaddrinfo(j->host, j->port, &j->hints, &j->res);
    atomic_fetch_add_explicit(&wakers, 1, memory_order_seq_cst);
    uint64_t tok = atomic_exchange_explicit(&j->word, WEFT__OP_DONE, memory_order_acq_rel);
    if (tok == ABANDONED)
        rjob_free(j);
    else
        weft__wake(t, tok, W_WOKEN);
    /* release: pairs with the acquire in weft__net_quiesce. */
    atomic_fetch_sub_explicit(&wakers, 1, memory_order_release);
    return NULL;
}

static int gai_err(int rc)
{
    if (rc == EAI_SYSTEM)
        return errno ? -errno : -EIO;
    if (rc == EAI_MEMORY)
        return -ENOMEM;
    if (rc == EAI_AGAIN)
        return -EAGAIN;
    return -EINVAL; /* does not resolve */
}

/* Resolves host:port; *out is freed with freeaddrinfo. */
static int resolve(const char *host, const char *port, int flags, struct addrinfo **out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, out);
    if (rc != EAI_NONAME && rc != EAI_SERVICE)
        return rc ? gai_err(rc) : 0;
    hints.ai_flags = flags | AI_ADDRCONFIG;
    weft__task *t = weft__current();
    if (!t) {
        rc = getaddrinfo(host, port, &hints, out);
        return rc ? gai_err(rc) : 0;
    }
    if (weft__task_cancelled(t))
        return -ECANCELED;
    rjob *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->t = t;
    j->hints = hints;
    j->host = host ? strdup(host) : NULL;
    j->port = strdup(port);
    if ((host && !j->host) || !j->port) {
        rjob_free(j);
        return -ENOMEM;
    }
    uint64_t tok = weft__wait_begin(t, WAIT_CANCELLABLE);
    atomic_store_explicit(&j->word, tok, memory_order_relaxed);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    /* The thread creation publishes the job (happens-before). */
    rc = pthread_create(&th, &attr, resolver, j);
    pthread_attr_destroy(&attr);
    if (rc) {
        if (!weft__wake_claim(t, tok, W_WOKEN))
            weft__wait_park(t, tok, WEFT_FOREVER, 0);
        rjob_free(j);
        return -rc;
    }
    weft__wait_note("io resolve", j);
    int reason = weft__wait_park(t, tok, WEFT_FOREVER, WAIT_CANCELLABLE);
    if (reason != W_WOKEN) {
        uint64_t cur = tok;
        if (atomic_compare_exchange_strong_explicit(&j->word, &cur, ABANDONED, memory_order_acq_rel,
                                                    memory_order_acquire))
            return -ECANCELED; /* the resolver frees the job */
        rjob_free(j);          /* it finished meanwhile */
        return -ECANCELED;
    }
    rc = j->rc;
    *out = j->res;
    j->res = NULL;
    rjob_free(j);
    return rc ? gai_err(rc) : 0;
}

int weft_tcp_listen(const char *host, const char *port, int backlog)
{
    if (!port)
        return -EINVAL;
    struct addrinfo *ai;
    int rc = resolve(host, port, AI_PASSIVE, &ai);
    if (rc)
        return rc;
    /* Host NULL: the IPv6 wildcard takes IPv4 too (V6ONLY off); put it first. */
    int err = -EADDRNOTAVAIL;
    for (int pass = 0; pass < 2; pass++) {
        for (struct addrinfo *p = ai; p; p = p->ai_next) {
            if ((pass == 0) != (p->ai_family == AF_INET6 && !host))
                continue;
            int s = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (s < 0) {
                err = -errno;
                continue;
            }
            int one = 1, zero = 0;
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (p->ai_family == AF_INET6)
                setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            if (bind(s, p->ai_addr, p->ai_addrlen) == 0 &&
                listen(s, backlog > 0 ? backlog : SOMAXCONN) == 0) {
                freeaddrinfo(ai);
                return s;
            }
            err = -errno;
            close(s);
        }
    }
    freeaddrinfo(ai);
    return err;
}

int weft_tcp_connect(const char *host, const char *port)
{
    if (!host || !port)
        return -EINVAL;
    struct addrinfo *ai;
    int rc = resolve(host, port, 0, &ai);
    if (rc)
        return rc;
    int err = -ECONNREFUSED;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        int s = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            err = -errno;
            continue;
        }
        err = weft_connect(s, p->ai_addr, p->ai_addrlen);
        if (err == 0) {
            int one = 1;
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            freeaddrinfo(ai);
            return s;
        }
        weft_close(s);
        if (err == -ECANCELED)
            break;
    }
    freeaddrinfo(ai);
    return err;
}
