/*
 * cg_ops.c - fixed amounts of the three basic operations, one worker, for
 * counting their instructions and locked operations under callgrind
 * (bench/cg_ops.sh runs it; this VM has no hardware performance counters,
 * and callgrind's counts are the same from run to run).
 *
 *   bench/cg_ops yield N      two tasks each call weft_yield N times
 *                             (2N yields; an op is one yield, a pair = 2 ops)
 *   bench/cg_ops pingpong N   N round trips over two unbuffered channels
 *                             (root sends on ping, a second task receives
 *                             and answers on pong; an op is one round trip)
 *   bench/cg_ops spawn N      the root spawns N no-op tasks into one nursery
 *                             and closes it (an op is one spawn + join)
 *
 * Prints "ops <count>" (the number of operations done) on stdout; the figures
 * per operation come from the difference of two runs (N and 2N), which
 * removes the start-up and tear-down of the runtime: see bench/cg_ops.sh.
 * weft_config.workers = 1, signals left alone.
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long n_arg;
static long ops_done;

static int yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_arg; i++)
        if (weft_yield())
            return -1;
    return 0;
}

static int run_yield(void)
{
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    if ((rc = (weft_spawn)(n, yielder, NULL)) != 0 || (rc = (weft_spawn)(n, yielder, NULL)) != 0)
        weft_nursery_cancel(n);
    int crc = weft_nursery_close(n);
    if (rc == 0 && crc == 0)
        ops_done = 2 * n_arg;
    return rc ? rc : crc;
}

typedef struct pp {
    weft_chan *ping, *pong;
} pp;

static int ponger(void *arg)
{
    pp *p = arg;
    long v;
    while (weft_chan_recv(p->ping, &v) == 0) {
        v++;
        if (weft_chan_send(p->pong, &v))
            return -1;
    }
    return 0;
}

static int run_pingpong(void)
{
    pp p;
    int rc;
    if ((rc = weft_chan_open(&p.ping, sizeof(long), 0)) != 0)
        return rc;
    if ((rc = weft_chan_open(&p.pong, sizeof(long), 0)) != 0) {
        weft_chan_free(p.ping);
        return rc;
    }
    weft_nursery *n;
    if ((rc = weft_nursery_open(&n)) != 0)
        goto out;
    long v = 0;
    if ((rc = (weft_spawn)(n, ponger, &p)) == 0) {
        for (long i = 0; i < n_arg; i++) {
            if ((rc = weft_chan_send(p.ping, &v)) != 0 || (rc = weft_chan_recv(p.pong, &v)) != 0)
                break;
        }
    }
    weft_chan_close(p.ping);
    int crc = weft_nursery_close(n);
    if (rc == 0)
        rc = crc;
    if (rc == 0 && v != n_arg) {
        fprintf(stderr, "cg_ops: pingpong counted %ld, not %ld\n", v, n_arg);
        rc = -1;
    }
    if (rc == 0)
        ops_done = n_arg;
out:
    weft_chan_free(p.ping);
    weft_chan_free(p.pong);
    return rc;
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static int run_spawn(void)
{
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    for (long i = 0; i < n_arg; i++)
        if ((rc = (weft_spawn)(n, noop, NULL)) != 0) {
            weft_nursery_cancel(n);
            break;
        }
    int crc = weft_nursery_close(n);
    if (rc == 0 && crc == 0)
        ops_done = n_arg;
    return rc ? rc : crc;
}

static int (*mode_fn)(void);

static int root(void *arg)
{
    (void)arg;
    return mode_fn();
}

int main(int argc, char **argv)
{
    int (*fn)(void) = NULL;
    if (argc == 3) {
        if (strcmp(argv[1], "yield") == 0)
            fn = run_yield;
        else if (strcmp(argv[1], "pingpong") == 0)
            fn = run_pingpong;
        else if (strcmp(argv[1], "spawn") == 0)
            fn = run_spawn;
        n_arg = atol(argv[2]);
    }
    if (!fn || n_arg <= 0) {
        fprintf(stderr, "usage: %s yield|pingpong|spawn N\n", argv[0]);
        return 2;
    }
    mode_fn = fn;
    weft_config cfg = {0};
    cfg.workers = 1;
    cfg.no_signals = true;
    int rc = weft_run(&cfg, root, NULL);
    if (rc) {
        fprintf(stderr, "cg_ops: %s %ld: weft_run failed: %d\n", argv[1], n_arg, rc);
        return 1;
    }
    printf("ops %ld\n", ops_done);
    return 0;
}
