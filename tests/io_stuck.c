/*
 * io_stuck: no stranded completions. With two workers, echo round trips on
 * loopback keep completing while one worker is held by a task that spins
 * (never yields) for at least 200 ms: what completes on the stuck worker's
 * ring is reaped by the monitor, and its tasks run on the other worker.
 * The spin lasts until every pair made round trips during it, with a
 * generous liveness bound, so the test never depends on speed (a pair
 * whose completions sat on the stuck worker's ring would never finish).
 * TIMEOUT: 120
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#define PAIRS 8
#define MIN_DURING 5 /* round trips of each pair while the worker spins */

static atomic_long rounds, pair_rounds[PAIRS];
static atomic_bool stop;
static int fds_before;

typedef struct {
    int fd, pair;
} conn;

static int echo(void *arg)
{
    conn *c = arg;
    char buf[64];
    for (;;) {
        ssize_t r = weft_recv(c->fd, buf, sizeof buf, 0);
        CHECK(r >= 0);
        if (r == 0)
            break;
        io_send_all(c->fd, buf, (size_t)r);
    }
    return 0;
}

static int pinger(void *arg)
{
    conn *c = arg;
    char buf[32] = "ping";
    while (!atomic_load(&stop)) {
        io_send_all(c->fd, buf, sizeof buf);
        io_recv_all(c->fd, buf, sizeof buf);
        atomic_fetch_add(&rounds, 1);
        atomic_fetch_add(&pair_rounds[c->pair], 1);
        /* A pause: the other worker runs out of work now and then, so it
         * steals what sits in the stuck worker's run queue (the monitor
         * only wakes idle workers for that; sched/worker.c). What this
         * test is about is the ring: a task whose CQE sits on the stuck
         * worker's ring is in no queue anyone could steal from. */
        weft_sleep(test_ms(1) / 10);
    }
    CHECK_OK(weft_shutdown(c->fd, SHUT_WR));
    return 0;
}

static bool all_pairs_moved(const long *start)
{
    for (int i = 0; i < PAIRS; i++)
        if (atomic_load(&pair_rounds[i]) - start[i] < MIN_DURING)
            return false;
    return true;
}

static int spinner(void *arg)
{
    long *during = arg;
    /* Let the pairs get going everywhere first. */
    while (atomic_load(&rounds) < 100)
        weft_sleep(test_ms(1));
    long r0 = atomic_load(&rounds), start[PAIRS];
    for (int i = 0; i < PAIRS; i++)
        start[i] = atomic_load(&pair_rounds[i]);
    int64_t t0 = weft_now(), give_up = t0 + test_bound_ns(10);
    /* Spin without a single cancellation point or yield: this worker is
     * stuck in this task. */
    bool moved;
    while (!(moved = all_pairs_moved(start)) || weft_now() - t0 < test_ms(200)) {
        if (weft_now() > give_up)
            break;
    }
    *during = moved ? atomic_load(&rounds) - r0 : -1;
    if (!moved)
        for (int i = 0; i < PAIRS; i++)
            fprintf(stderr, "   pair %d: %ld round trips during the spin\n", i,
                    atomic_load(&pair_rounds[i]) - start[i]);
    atomic_store(&stop, true);
    return 0;
}

static int body(void *arg)
{
    (void)arg;
    conn ends[PAIRS][2];
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < PAIRS; i++) {
        int s[2];
        CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, s));
        ends[i][0] = (conn){s[0], i};
        ends[i][1] = (conn){s[1], i};
        CHECK_OK(weft_spawn(n, echo, &ends[i][0]));
        CHECK_OK(weft_spawn(n, pinger, &ends[i][1]));
    }
    long during = -1;
    CHECK_OK(weft_spawn(n, spinner, &during));
    CHECK_OK(weft_nursery_close(n));
    fprintf(stderr, "   %ld round trips while a worker spun (%ld in all)\n", during,
            atomic_load(&rounds));
    CHECK(during >= 0); /* every pair made round trips during the spin */
    for (int i = 0; i < PAIRS; i++) {
        CHECK_OK(weft_close(ends[i][0].fd));
        CHECK_OK(weft_close(ends[i][1].fd));
    }
    return 0;
}

int main(void)
{
    test_watchdog(100);
    for (int round = 0; round < 2; round++) {
        /* After the first run: the workers' wake eventfds stay open for
         * the life of the process (io/io.c). */
        if (round == 1)
            fds_before = io_count_fds_stable();
        atomic_store(&rounds, 0);
        for (int i = 0; i < PAIRS; i++)
            atomic_store(&pair_rounds[i], 0);
        atomic_store(&stop, false);
        CHECK_OK(test_run(2, body, NULL));
    }
    io_check_fds(fds_before);
    printf("io_stuck: ok (%s)\n", io_expected_backend());
    return 0;
}
