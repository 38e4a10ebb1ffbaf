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
 *   bench/cg_ops fib N        fork-join fib with a task per call down to
 *                             n < 12 (a nursery per call in the caller's
 *                             frame, as bench_forkjoin's fib30c12), repeated
 *                             until at least N tasks ran (an op is one task:
 *                             its spawn, run and join; the leaves look their
 *                             value up, so the count is the runtime's alone)
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

typedef struct fibarg {
    int n;
    long out;
} fibarg;

static const long fib_small[12] = {0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89};

static long fib_tasks;

static int fib_task(void *arg)
{
    fibarg *f = arg;
    if (f->n < 12) {
        f->out = fib_small[f->n];
        return 0;
    }
    fibarg a = {f->n - 1, 0}, b = {f->n - 2, 0};
    weft_nursery n;
    int rc = weft_nursery_init(&n);
    if (rc)
        return rc;
    (weft_spawn)(&n, fib_task, &a);
    (weft_spawn)(&n, fib_task, &b);
    rc = weft_nursery_fini(&n);
    f->out = a.out + b.out;
    fib_tasks += 2; /* one worker: no race */
    return rc;
}

static int run_fib(void)
{
    /* fib(20) with cutoff 12: 108 tasks per round; the same call tree every
     * round, so the N and 2N runs differ only in the number of rounds. */
    while (ops_done < n_arg) {
        fibarg f = {20, 0};
        fib_tasks = 0;
        int rc = fib_task(&f);
        if (rc)
            return rc;
        if (f.out != 6765) {
            fprintf(stderr, "cg_ops: fib(20) gave %ld\n", f.out);
            return -1;
        }
        ops_done += fib_tasks;
    }
    return 0;
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
        else if (strcmp(argv[1], "fib") == 0)
            fn = run_fib;
        n_arg = atol(argv[2]);
    }
    if (!fn || n_arg <= 0) {
        fprintf(stderr, "usage: %s yield|pingpong|spawn|fib N\n", argv[0]);
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
