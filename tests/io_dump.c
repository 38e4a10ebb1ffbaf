/*
 * io_dump: weft_dump names what a task parked in I/O waits on: the call,
 * the fd, the backend and how long ("parked in weft_recv on fd 7
 * (io_uring) for 12 ms"), for a recv on a socketpair, an accept on a
 * listening socket and a poll on a pipe, on the backend WEFT_IO picks.
 * No fd is leaked: not by the case (counted inside the run), nor by the run
 * itself (counted around it, after a first run made what a process keeps).
 * LABELS: unit io
 */
#include "io_test.h"
#include "weft.h"

#include <poll.h>

static int sv[2], lfd, pfd[2];

static int recv_waiter(void *arg)
{
    (void)arg;
    weft_task_set_name("recv-waiter");
    char c;
    CHECK_EQ(weft_recv(sv[1], &c, 1, 0), 1);
    return 0;
}

static int accept_waiter(void *arg)
{
    (void)arg;
    weft_task_set_name("accept-waiter");
    int s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(s >= 0);
    CHECK_OK(weft_close(s));
    return 0;
}

static int poll_waiter(void *arg)
{
    (void)arg;
    weft_task_set_name("poll-waiter");
    CHECK_EQ(weft_poll(pfd[0], POLLIN, WEFT_FOREVER), POLLIN);
    return 0;
}

/* The dump line of the task named name contains want, followed by " for "
 * and a duration. */
static bool line_shows(const char *out, const char *name, const char *want)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\" parked in ", name);
    const char *p = strstr(out, key);
    if (!p)
        return false;
    const char *eol = strchr(p, '\n');
    const char *w = strstr(p, want);
    if (!w || (eol && w > eol))
        return false;
    const char *f = w + strlen(want);
    return strncmp(f, " for ", 5) == 0 && f[5] >= '0' && f[5] <= '9';
}

static char want_recv[96], want_accept[96], want_poll[96];

static bool dump_shows_all(FILE *f)
{
    CHECK_OK(ftruncate(fileno(f), 0));
    CHECK_EQ(lseek(fileno(f), 0, SEEK_SET), 0);
    weft_dump(fileno(f));
    char *out = test_read_all(fileno(f));
    return line_shows(out, "recv-waiter", want_recv) &&
           line_shows(out, "accept-waiter", want_accept) &&
           line_shows(out, "poll-waiter", want_poll);
}

static int root(void *arg)
{
    (void)arg;
    int fds_before = io_count_fds_stable();
    const char *backend = weft_io_backend_name();
    CHECK(strcmp(backend, io_expected_backend()) == 0);
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    lfd = weft_tcp_listen("127.0.0.1", "0", 4);
    CHECK(lfd >= 0);
    CHECK_OK(pipe(pfd));
    snprintf(want_recv, sizeof want_recv, "in weft_recv on fd %d (%s)", sv[1], backend);
    snprintf(want_accept, sizeof want_accept, "in weft_accept on fd %d (%s)", lfd, backend);
    snprintf(want_poll, sizeof want_poll, "in weft_poll on fd %d (%s)", pfd[0], backend);

    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_waiter, NULL));
    CHECK_OK(weft_spawn(n, accept_waiter, NULL));
    CHECK_OK(weft_spawn(n, poll_waiter, NULL));
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_SOON(dump_shows_all(f));
    char *out = test_read_all(fileno(f));
    fprintf(stderr, "%s", out);
    CHECK(strstr(out, "parked in weft_recv: 1 (longest ") != NULL); /* the totals */
    fclose(f);

    /* Release them: data, a connection, a readable pipe. */
    CHECK_EQ(weft_send(sv[0], "x", 1, 0), 1);
    char port[16];
    io_port_of(lfd, port);
    int c = weft_tcp_connect("127.0.0.1", port);
    CHECK(c >= 0);
    CHECK_EQ(weft_write(pfd[1], "p", 1, -1), 1);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_close(lfd));
    CHECK_OK(weft_close(sv[0]));
    CHECK_OK(weft_close(sv[1]));
    CHECK_OK(weft_close(pfd[0]));
    CHECK_OK(weft_close(pfd[1]));
    io_check_fds(fds_before);
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

int main(void)
{
    test_watchdog(50);
    /* The first run makes what the process keeps for later runs (the
     * workers' wake eventfds); from then on a run leaves no fd behind. */
    CHECK_OK(test_run(2, nothing, NULL));
    int fds_before = io_count_fds_stable();
    CHECK_OK(test_run(2, root, NULL));
    io_check_fds(fds_before);
    printf("io_dump: ok (%s)\n", io_expected_backend());
    return 0;
}
