/* echo_server.c - a TCP echo server: one task per connection.
 *
 *   echo_server PORT   serves on PORT until Ctrl-C (weft_run turns SIGINT
 *                      into a cancel of every task, so it shuts down cleanly)
 *   echo_server        a self-check: serves on a free port, runs a few
 *                      clients against itself, and stops
 *
 * Every connection gets its own task, which parks in weft_recv while its
 * client is quiet: 10,000 idle connections cost 10,000 parked tasks, not
 * 10,000 threads. The same code runs on io_uring or, where that is not
 * available (or WEFT_IO=epoll), on epoll.
 */
#include <weft.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = weft_recv(fd, buf, sizeof buf, 0)) > 0) {
        for (ssize_t done = 0; done < n;) {
            ssize_t w = weft_send(fd, buf + done, (size_t)(n - done), 0);
            if (w < 0)
                goto out;
            done += w;
        }
    }
out:
    weft_close(fd);
    return 0; /* a client going away is not an error of the server */
}

/* Accepts until cancelled; each connection runs in the server's nursery. */
static int serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue; /* e.g. EMFILE: keep serving the others */
        if (weft_spawn(n, serve_conn, (void *)(intptr_t)fd) != 0)
            weft_close(fd);
    }
    weft_nursery_close(n);
    return 0;
}

static const char *self_port;

static int client(void *arg)
{
    int fd = weft_tcp_connect("127.0.0.1", self_port);
    if (fd < 0)
        return fd;
    char msg[64], back[64];
    int len = snprintf(msg, sizeof msg, "hello from client %d", (int)(intptr_t)arg);
    ssize_t got = 0;
    int rc = weft_send(fd, msg, (size_t)len, 0) == len ? 0 : -EIO;
    while (rc == 0 && got < len) {
        ssize_t r = weft_recv(fd, back + got, sizeof back - (size_t)got, 0);
        if (r <= 0)
            rc = r ? (int)r : -ECONNRESET;
        else
            got += r;
    }
    if (rc == 0 && memcmp(back, msg, (size_t)len) != 0)
        rc = -EIO;
    weft_close(fd);
    return rc;
}

static int main_task(void *arg)
{
    const char *port = arg;
    int lfd = weft_tcp_listen(NULL, port ? port : "0", 128);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen: %s\n", strerror(-lfd));
        return lfd;
    }
    if (port) {
        printf("echo_server: listening on port %s (%s)\n", port, weft_io_backend_name());
        fflush(stdout);
        int rc = serve((void *)(intptr_t)lfd);
        weft_close(lfd);
        return rc;
    }
    /* Self-check: the server in one nursery, clients in another. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    static char buf[16];
    snprintf(buf, sizeof buf, "%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    self_port = buf;
    weft_nursery *srv, *cli;
    weft_nursery_open(&srv);
    weft_spawn(srv, serve, (void *)(intptr_t)lfd);
    weft_nursery_open(&cli);
    for (int i = 0; i < 8; i++)
        weft_spawn(cli, client, (void *)(intptr_t)i);
    int rc = weft_nursery_close(cli);
    weft_nursery_cancel(srv);
    weft_nursery_close(srv);
    weft_close(lfd);
    printf("echo_server: 8 clients echoed on %s: %s\n", weft_io_backend_name(),
           rc ? strerror(-rc) : "ok");
    return rc;
}

int main(int argc, char **argv)
{
    int rc = weft_run(NULL, main_task, argc > 1 ? argv[1] : NULL);
    if (rc == -EINTR)
        return 0; /* Ctrl-C */
    return rc ? 1 : 0;
}
