/*
 * io_many: 10,000 concurrent loopback connections (scaled down under the
 * sanitizers). The clients run in a second process, this program
 * re-executed with --clients (the hard fd limit here is 20,000 per
 * process). Every client connects, makes one round trip, waits until all
 * clients have made theirs (so all connections are open at once), makes
 * three more and closes; the server echoes each connection until EOF. The
 * server checks it accepted every connection and leaked no fd; the child's
 * exit status says every client saw its own bytes back.
 * TIMEOUT: 300
 * LABELS: stress io
 */
#include "io_test.h"
#include "weft.h"

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>

extern char **environ;

static int nconn;
static const char *port;

/* ---- the clients (child process) ---------------------------------------- */

static weft_waitgroup first_round;
static weft_event all_connected;
static atomic_int clients_ok;

static void round_trip(int c, int id, int k)
{
    char out[64], in[64];
    int len = snprintf(out, sizeof out, "client %d round %d", id, k);
    io_send_all(c, out, (size_t)len);
    io_recv_all(c, in, (size_t)len);
    CHECK(memcmp(in, out, (size_t)len) == 0);
}

static int client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int c = weft_tcp_connect("127.0.0.1", port);
    if (c < 0)
        fprintf(stderr, "client %d: connect: %s\n", id, strerror(-c));
    CHECK(c >= 0);
    round_trip(c, id, 0);
    weft_waitgroup_done(&first_round);
    CHECK_OK(weft_event_wait(&all_connected));
    for (int k = 1; k <= 3; k++)
        round_trip(c, id, k);
    CHECK_OK(weft_close(c));
    atomic_fetch_add(&clients_ok, 1);
    return 0;
}

static int clients_main(void *arg)
{
    (void)arg;
    weft_waitgroup_init(&first_round);
    weft_event_init(&all_connected);
    weft_waitgroup_add(&first_round, nconn);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < nconn; i++)
        CHECK_OK(weft_spawn(n, client, (void *)(intptr_t)i));
    CHECK_OK(weft_waitgroup_wait(&first_round));
    weft_event_set(&all_connected);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&clients_ok), nconn);
    return 0;
}

/* ---- the server ------------------------------------------------------------ */

static int lfd;
static atomic_int open_now, open_max;

static int serve_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    int now = atomic_fetch_add(&open_now, 1) + 1, m = atomic_load(&open_max);
    while (now > m && !atomic_compare_exchange_weak(&open_max, &m, now)) {
    }
    char buf[256];
    for (;;) {
        ssize_t r = weft_recv(c, buf, sizeof buf, 0);
        CHECK(r >= 0);
        if (r == 0)
            break;
        io_send_all(c, buf, (size_t)r);
    }
    atomic_fetch_sub(&open_now, 1);
    CHECK_OK(weft_close(c));
    return 0;
}

static int server_main(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    weft_nursery_set_deadline(n, weft_now() + test_bound_ns(25));
    for (int i = 0; i < nconn; i++) {
        int c = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            fprintf(stderr, "server: accept %d of %d: %s\n", i, nconn, strerror(-c));
        CHECK(c >= 0);
        CHECK_OK(weft_spawn(n, serve_conn, (void *)(intptr_t)c));
    }
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--clients") == 0) {
        port = argv[2];
        nconn = atoi(argv[3]);
        test_watchdog(250);
        return test_run(0, clients_main, NULL) == 0 ? 0 : 1;
    }
    test_watchdog(280);
    nconn = (int)test_scale(10000);
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)nconn + 100) {
        printf("io_many: skipped (hard fd limit %llu < %d)\n", (unsigned long long)rl.rlim_max,
               nconn + 100);
        return 77;
    }
    /* A first run opens the workers' wake eventfds, which stay open for
     * the life of the process (io/io.c): count after it. */
    CHECK_OK(test_run(0, noop, NULL));
    int before = io_count_fds_stable();
    lfd = weft_tcp_listen("127.0.0.1", "0", 4096);
    CHECK(lfd >= 0);
    char portbuf[16], nbuf[16];
    io_port_of(lfd, portbuf);
    snprintf(nbuf, sizeof nbuf, "%d", nconn);
    char *cargv[] = {argv[0], "--clients", portbuf, nbuf, NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, lfd);
    CHECK_OK(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, cargv, environ));
    posix_spawn_file_actions_destroy(&fa);
    int rc = test_run(0, server_main, NULL);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_OK(rc);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(atomic_load(&open_max), nconn);
    CHECK_OK(weft_close(lfd));
    io_check_fds(before);
    printf("io_many: ok (%d connections, all open at once; %s)\n", nconn, io_expected_backend());
    return 0;
}
