/* Wake latency of a thread asleep in io_uring_enter(GETEVENTS), three ways:
 *   0 eventfd: write(2) to an eventfd whose READ is armed in the sleeper's
 *     ring (what weft does today);
 *   1 MSG_RING from the waker's own ring: IORING_OP_MSG_RING (CQE_SKIP_SUCCESS
 *     on the source side) + io_uring_enter to submit it;
 *   2 ringless MSG_RING: io_uring_register(-1, IORING_REGISTER_SEND_MSG_RING,
 *     &sqe, 1) (kernel 6.13+; liburing 2.3's headers lack it).
 * The sleeper A (ring set up as weft's: CQSIZE|CLAMP|COOP_TASKRUN) sleeps for
 * one CQE; the waker B spins until A acked the previous wake, spins GAP_NS
 * more so A is surely asleep, stamps t0, wakes; A stamps t1 when
 * io_uring_enter returns. latency = t1 - t0; "waker" = B's time in the call.
 * Methods rotate every BLOCK wakes so all three see the same machine load.
 * Not built by CMake (io/README.md, "Waking a sleeping ring", has the
 * figures and the method):
 *   gcc -O2 io/tools/wake_latency.c -o /tmp/wake_latency -luring -lpthread
 *   /tmp/wake_latency [pin]      (COMPACT=1: one line per method) */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_REGISTER_SEND_MSG_RING
#define IORING_REGISTER_SEND_MSG_RING 31
#endif
#define M 3
#define PER 10000 /* measured wakes per method */
#define BLOCK 500
#define WARM BLOCK /* first block of each method: warm-up, dropped */
#define TOTAL (M * (PER + WARM))
#define GAP_NS 30000

static const char *mname[M] = {"eventfd write (READ armed in the ring)",
                               "IORING_OP_MSG_RING from the waker's own ring",
                               "IORING_REGISTER_SEND_MSG_RING (no ring)"};
static struct io_uring ra, rb;
static int efd, pin;
static uint64_t efd_buf;
static _Atomic int64_t t0;
static _Atomic int ack;
static int64_t lat[TOTAL], cost[TOTAL];

static int method_of(int i) { return (i / BLOCK) % M; }

static int64_t now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin_to(int cpu)
{
    if (!pin)
        return;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void ring_init(struct io_uring *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = 16384;
    int rc = io_uring_queue_init_params(256, r, &p);
    if (rc < 0) {
        fprintf(stderr, "ring init: %s\n", strerror(-rc));
        exit(1);
    }
}

static void *sleeper(void *arg)
{
    (void)arg;
    pin_to(0);
    bool armed = false;
    for (int i = 0; i < TOTAL; i++) {
        if (method_of(i) == 0 && !armed) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ra);
            io_uring_prep_read(sqe, efd, &efd_buf, 8, 0);
            io_uring_sqe_set_data64(sqe, 1);
            armed = true;
        }
        int rc;
        do {
            rc = io_uring_submit_and_wait(&ra, 1); /* one enter: re-arm + sleep */
        } while (rc == -EINTR);
        int64_t t1 = now();
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&ra, &cqe)) {
            fprintf(stderr, "no cqe\n");
            exit(1);
        }
        if (cqe->user_data == 1)
            armed = false;
        io_uring_cqe_seen(&ra, cqe);
        lat[i] = t1 - atomic_load(&t0);
        atomic_store_explicit(&ack, i + 1, memory_order_release);
    }
    return NULL;
}

static void wake(int m)
{
    if (m == 0) {
        uint64_t one = 1;
        if (write(efd, &one, 8) != 8)
            abort();
    } else if (m == 1) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rb);
        io_uring_prep_msg_ring(sqe, ra.ring_fd, 0, 2, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        if (io_uring_submit(&rb) != 1)
            abort();
    } else {
        struct io_uring_sqe sqe;
        memset(&sqe, 0, sizeof sqe);
        sqe.opcode = IORING_OP_MSG_RING;
        sqe.fd = ra.ring_fd;
        sqe.off = 3; /* the target CQE's user_data */
        if (syscall(__NR_io_uring_register, -1, IORING_REGISTER_SEND_MSG_RING, &sqe, 1) < 0) {
            perror("IORING_REGISTER_SEND_MSG_RING");
            exit(1);
        }
    }
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t q50, q99;
static void report(const char *what, int m, int64_t *v)
{
    static int64_t s[PER];
    int n = 0, seen[M] = {0};
    for (int i = 0; i < TOTAL; i++) {
        int k = method_of(i);
        if (k == m && seen[k]++ >= WARM)
            s[n++] = v[i];
    }
    qsort(s, n, sizeof *s, cmp);
    q50 = s[n / 2];
    q99 = s[n * 99 / 100];
    if (getenv("COMPACT")) {
        printf(" %6lld %8lld", (long long)q50, (long long)q99);
        return;
    }
    printf("  %-8s p50 %7lld ns  p90 %7lld  p99 %8lld  max %9lld  (n=%d)\n", what,
           (long long)s[n / 2], (long long)s[n * 90 / 100], (long long)s[n * 99 / 100],
           (long long)s[n - 1], n);
}

int main(int argc, char **argv)
{
    pin = argc > 1 && strcmp(argv[1], "pin") == 0;
    ring_init(&ra);
    ring_init(&rb);
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct io_uring_sqe probe;
    memset(&probe, 0, sizeof probe);
    probe.opcode = IORING_OP_MSG_RING;
    probe.fd = ra.ring_fd;
    probe.off = 99;
    long prc = syscall(__NR_io_uring_register, -1, IORING_REGISTER_SEND_MSG_RING, &probe, 1);
    struct io_uring_cqe *cqe;
    if (prc >= 0 && io_uring_wait_cqe(&ra, &cqe) == 0)
        io_uring_cqe_seen(&ra, cqe);
    struct utsname u;
    uname(&u);
    printf("kernel %s, liburing 2.3 (headers), ringless MSG_RING probe: %s; %s\n", u.release,
           prc >= 0 ? "ok" : strerror(errno),
           pin ? "threads pinned to CPUs 0 and 1" : "threads not pinned");
    pin_to(1);
    pthread_t th;
    pthread_create(&th, NULL, sleeper, NULL);
    for (int i = 0; i < TOTAL; i++) {
        while (atomic_load_explicit(&ack, memory_order_acquire) != i) {
        }
        int64_t until = now() + GAP_NS;
        while (now() < until) {
        }
        int64_t a = now();
        atomic_store(&t0, a);
        wake(method_of(i));
        cost[i] = now() - a;
    }
    pthread_join(th, NULL);
    for (int m = 0; m < M; m++) {
        if (getenv("COMPACT"))
            printf("m%d", m);
        else
            printf("%s:\n", mname[m]);
        report("latency", m, lat);
        report("waker", m, cost);
        if (getenv("COMPACT"))
            printf("\n");
    }
    return 0;
}
