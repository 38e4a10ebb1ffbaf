/* cat.c - copy files (or stdin) to stdout or to a TCP connection.
 *
 *   cat [FILE...]                  to stdout
 *   cat -c HOST PORT [FILE...]     to a TCP connection (e.g. echo_server)
 *
 * Each file is opened with weft_open and sent with weft_sendfile; stdin
 * (no FILE, or "-") goes through weft_read / weft_write. Every call parks
 * the task, not the worker thread, and a cancel (Ctrl-C) stops it at the
 * next call with nothing half-done behind its back.
 */
#include <weft.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int argc;
    char **argv;
} args;

static int write_all(int out, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = weft_write(out, buf, n, -1);
        if (w < 0)
            return (int)w;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static int copy_stream(int in, int out)
{
    size_t size = 65536; /* on the heap: task stacks are small */
    char *buf = malloc(size);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        ssize_t r = weft_read(in, buf, size, -1);
        if (r <= 0) {
            rc = (int)r;
            break;
        }
        rc = write_all(out, buf, (size_t)r);
    }
    free(buf);
    return rc;
}

static int copy_file(const char *path, int out)
{
    if (strcmp(path, "-") == 0)
        return copy_stream(0, out);
    int fd = weft_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && S_ISREG(st.st_mode)) {
        int64_t off = 0;
        while (rc == 0 && off < st.st_size) {
            ssize_t s = weft_sendfile(out, fd, &off, (size_t)(st.st_size - off));
            rc = s < 0 ? (int)s : s == 0 ? -EIO : 0;
        }
    } else if (rc == 0) {
        rc = copy_stream(fd, out); /* a pipe, a device, ... */
    }
    weft_close(fd);
    return rc;
}

static int main_task(void *arg)
{
    args *a = arg;
    int i = 1, out = 1;
    if (a->argc > 3 && strcmp(a->argv[1], "-c") == 0) {
        out = weft_tcp_connect(a->argv[2], a->argv[3]);
        if (out < 0) {
            fprintf(stderr, "cat: connect %s:%s: %s\n", a->argv[2], a->argv[3], strerror(-out));
            return out;
        }
        i = 4;
    }
    int rc = 0;
    if (i == a->argc)
        rc = copy_stream(0, out);
    for (; i < a->argc && rc == 0; i++) {
        rc = copy_file(a->argv[i], out);
        if (rc)
            fprintf(stderr, "cat: %s: %s\n", a->argv[i], strerror(-rc));
    }
    if (out != 1) {
        weft_shutdown(out, SHUT_WR);
        weft_close(out);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 1 && isatty(0)) {
        fprintf(stderr, "usage: cat [-c HOST PORT] [FILE...]  (stdin when no FILE)\n");
        return 0;
    }
    args a = {argc, argv};
    return weft_run(NULL, main_task, &a) == 0 ? 0 : 1;
}
