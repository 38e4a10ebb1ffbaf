/*
 * io_stats: weft_io_stats and the io_* fields of weft_stats count, on the
 * backend WEFT_IO picks: N ping-pong round trips of weft_send / weft_recv
 * between two tasks over a socketpair count exactly 2N recv and 2N send
 * calls, submitted and completed; a call parked in weft_recv shows as one
 * in flight; syscalls move; every run starts from zero and the counts of
 * the last run stay readable after it; a plain thread's wakes reach
 * sleeping workers and are counted (MSG_RING, and the eventfd in a child
 * with WEFT_TEST_NO_MSG_RING=1); the size field's rules. No fd is leaked:
 * not by a case (counted inside its run), nor by a run (counted around the
 * runs after the first, which made what a process keeps).
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>

static int rounds;

static int pthread_join_fn(void *arg)
{
    CHECK_OK(pthread_join(*(pthread_t *)arg, NULL));
    return 0;
}

typedef struct {
    int fd;
    bool first; /* sends first */
} pp_arg;

static int ping_pong(void *arg)
{
    pp_arg *a = arg;
    char c = 'x';
    for (int i = 0; i < rounds; i++) {
        if (a->first)
            CHECK_EQ(weft_send(a->fd, &c, 1, 0), 1);
        CHECK_EQ(weft_recv(a->fd, &c, 1, 0), 1);
        if (!a->first)
            CHECK_EQ(weft_send(a->fd, &c, 1, 0), 1);
    }
    return 0;
}

static int parked_recv(void *arg)
{
    char c;
    CHECK_EQ(weft_recv(*(int *)arg, &c, 1, 0), 1);
    return 0;
}

static int t_round_trips(void *arg)
{
    (void)arg;
    CHECK(strcmp(weft_io_backend_name(), io_expected_backend()) == 0);
    /* A fresh run starts from zero (the previous run counted too). */
    weft_io_stats s0 = io_stats();
    for (int k = 0; k < WEFT_IO_OP_KINDS; k++) {
        CHECK_EQ(s0.submitted[k], 0);
        CHECK_EQ(s0.completed[k], 0);
    }
    int fds_before = io_count_fds_stable();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    pp_arg a = {sv[0], true}, b = {sv[1], false};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ping_pong, &a));
    CHECK_OK(weft_spawn(n, ping_pong, &b));
    CHECK_OK(weft_nursery_close(n));

    weft_io_stats s = io_stats();
    uint64_t n2 = 2 * (uint64_t)rounds;
    /* Once per call, however often a call waited or retried. */
    CHECK_EQ(s.submitted[WEFT_IO_OP_RECV], n2);
    CHECK_EQ(s.completed[WEFT_IO_OP_RECV], n2);
    CHECK_EQ(s.submitted[WEFT_IO_OP_SEND], n2);
    CHECK_EQ(s.completed[WEFT_IO_OP_SEND], n2);
    CHECK_EQ(s.submitted[WEFT_IO_OP_READ], 0);
    CHECK(s.syscalls > 0);
    CHECK_EQ(s.syscalls, s.uring_enters + s.uring_registers + s.epoll_waits + s.direct_syscalls +
                             s.other_syscalls + s.wake_syscalls);
    CHECK(s.uring_sleeps <= s.uring_enters && s.epoll_sleeps <= s.epoll_waits);
    /* The direct syscalls by the kind of the call that made them. */
    uint64_t by_op = 0;
    for (int k = 0; k < WEFT_IO_OP_KINDS; k++)
        by_op += s.syscalls_by_op[k];
    CHECK_EQ(by_op, s.direct_syscalls);
    CHECK_EQ(s.syscalls_by_op[WEFT_IO_OP_READ], 0);
    CHECK(s.syscalls_by_op[WEFT_IO_OP_SEND] >= n2); /* tried directly on both backends */
    if (strcmp(weft_io_backend_name(), "epoll") == 0) {
        /* Every call tries its syscall at least once. */
        CHECK(s.direct_syscalls >= 2 * n2);
        CHECK(s.syscalls_by_op[WEFT_IO_OP_RECV] >= n2);
        CHECK_EQ(s.uring_enters, 0);
    } else {
        /* Every recv went through the ring: at least one submit. */
        CHECK(s.uring_enters > 0);
        CHECK_EQ(s.epoll_waits, 0);
    }
    fprintf(stderr,
            "%d round trips on %s: %llu syscalls (%.2f per round trip): %llu io_uring_enter (%llu "
            "asleep), %llu epoll waits (%llu asleep), %llu direct, %llu other, %llu wakes\n",
            rounds, weft_io_backend_name(), (unsigned long long)s.syscalls,
            (double)s.syscalls / rounds, (unsigned long long)s.uring_enters,
            (unsigned long long)s.uring_sleeps, (unsigned long long)s.epoll_waits,
            (unsigned long long)s.epoll_sleeps, (unsigned long long)s.direct_syscalls,
            (unsigned long long)s.other_syscalls, (unsigned long long)s.wake_syscalls);
    weft_stats st;
    weft_stats_get(&st);
    CHECK(st.io_submitted >= 2 * n2);
    CHECK(st.io_completed >= 2 * n2);
    CHECK(st.io_syscalls >= s.syscalls);

    /* A call parked in weft_recv is one recv in flight until data comes. */
    uint64_t before = io_in_flight(WEFT_IO_OP_RECV);
    CHECK_EQ(before, 0);
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, parked_recv, &sv[1]));
    CHECK_SOON(io_in_flight(WEFT_IO_OP_RECV) == 1);
    CHECK_EQ(weft_send(sv[0], "y", 1, 0), 1);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(io_in_flight(WEFT_IO_OP_RECV), 0);

    /* weft_poll and a write count under their own kinds. */
    CHECK_EQ(weft_poll(sv[0], POLLOUT, WEFT_FOREVER), POLLOUT);
    CHECK_EQ(weft_write(sv[0], "z", 1, -1), 1);
    CHECK_EQ(weft_read(sv[1], &(char){0}, 1, -1), 1);
    s = io_stats();
    CHECK_EQ(s.submitted[WEFT_IO_OP_POLL], 1);
    CHECK_EQ(s.completed[WEFT_IO_OP_POLL], 1);
    CHECK_EQ(s.submitted[WEFT_IO_OP_WRITE], 1);
    CHECK_EQ(s.completed[WEFT_IO_OP_WRITE], 1);
    CHECK_EQ(s.submitted[WEFT_IO_OP_READ], 1);
    CHECK_EQ(s.completed[WEFT_IO_OP_READ], 1);

    /* A close and a shutdown in a task: one call of kind CLOSE each, its
     * syscall its own. */
    uint64_t closes = s.submitted[WEFT_IO_OP_CLOSE], close_sc = s.syscalls_by_op[WEFT_IO_OP_CLOSE];
    CHECK_OK(weft_shutdown(sv[0], SHUT_WR));
    CHECK_OK(weft_close(sv[0]));
    CHECK_OK(weft_close(sv[1]));
    s = io_stats();
    CHECK_EQ(s.submitted[WEFT_IO_OP_CLOSE], closes + 3);
    CHECK_EQ(s.completed[WEFT_IO_OP_CLOSE], closes + 3);
    CHECK_EQ(s.syscalls_by_op[WEFT_IO_OP_CLOSE], close_sc + 3);
    io_check_fds(fds_before);
    return 0;
}

/* A plain thread wakes a task while the workers sleep in their rings (or
 * epoll sets): every wake reaches them (MSG_RING, or the eventfd with
 * WEFT_TEST_NO_MSG_RING=1), and the wakes are counted. */
#define WAKES 100
static weft_chan *wake_chan;

static void *plain_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < WAKES; i++) {
        usleep(1000); /* the workers go idle meanwhile */
        CHECK_OK(weft_chan_send(wake_chan, &i));
    }
    return NULL;
}

static int wake_receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < WAKES; i++) {
        int v;
        CHECK_OK(weft_chan_recv(wake_chan, &v));
        CHECK_EQ(v, i);
    }
    return 0;
}

static int t_plain_thread_wakes(void *arg)
{
    (void)arg;
    int fds_before = io_count_fds_stable();
    CHECK_OK(weft_chan_open(&wake_chan, sizeof(int), 0));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, wake_receiver, NULL));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, plain_sender, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_blocking(pthread_join_fn, &th));
    weft_chan_free(wake_chan);
    /* Some of the 100 sends found every worker asleep. */
    CHECK(io_stats().wake_syscalls > 0);
    io_check_fds(fds_before);
    return 0;
}

static void t_wakes_eventfd(void)
{
    int status;
    char *err = test_run_in_child(2, t_plain_thread_wakes, "WEFT_TEST_NO_MSG_RING=1", &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "eventfd wakes child:\n%s\n", err);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The size rules: -EINVAL below the size field, a short struct gets its
 * prefix, a longer one zeros past what this library knows. */
static void t_size(void)
{
    CHECK_EQ(weft_io_stats_get(NULL), -EINVAL);
    weft_io_stats s;
    s.size = sizeof s.size - 1;
    CHECK_EQ(weft_io_stats_get(&s), -EINVAL);

    weft_io_stats full = io_stats();
    CHECK(full.submitted[WEFT_IO_OP_RECV] > 0); /* the last run's, kept */

    struct {
        weft_io_stats s;
        uint64_t later[4];
    } big;
    memset(&big, 0xa5, sizeof big);
    big.s.size = sizeof big;
    CHECK_OK(weft_io_stats_get(&big.s));
    CHECK_EQ(big.s.size, sizeof big);
    CHECK_EQ(big.s.submitted[WEFT_IO_OP_RECV], full.submitted[WEFT_IO_OP_RECV]);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(big.later[i], 0);

    /* A caller built when the struct ended after submitted[]. */
    size_t short_size = offsetof(weft_io_stats, completed);
    memset(&s, 0xa5, sizeof s);
    s.size = short_size;
    CHECK_OK(weft_io_stats_get(&s));
    CHECK_EQ(s.submitted[WEFT_IO_OP_RECV], full.submitted[WEFT_IO_OP_RECV]);
    unsigned char *tail = (unsigned char *)&s + short_size;
    for (size_t i = 0; i < sizeof s - short_size; i++)
        CHECK_EQ(tail[i], 0xa5);
}

/* Before any run: all zero. */
static void t_before(void)
{
    weft_io_stats s = io_stats();
    CHECK_EQ(s.syscalls, 0);
    CHECK_EQ(s.submitted[WEFT_IO_OP_RECV], 0);
    weft_stats st;
    weft_stats_get(&st);
    CHECK_EQ(st.io_submitted, 0);
    CHECK_EQ(st.io_syscalls, 0);
}

int main(void)
{
    test_watchdog(50);
    rounds = test_scale(2000);
    if (rounds < 10)
        rounds = 10;
    CASE(t_before);
    CASE(t_wakes_eventfd); /* first: it forks */
    RUN(t_round_trips);
    /* The first run made what the process keeps for later runs (the
     * workers' wake eventfds); from then on a run leaves no fd behind. */
    int fds_before = io_count_fds_stable();
    RUN(t_round_trips); /* a second run starts from zero again */
    CASE(t_size);       /* reads what the last run counted */
    RUN(t_plain_thread_wakes);
    io_check_fds(fds_before);
    printf("io_stats: ok (%s)\n", io_expected_backend());
    return 0;
}
