/* pipeline.c - three stages joined by channels, under a deadline.
 *
 *   generate --nums--> square --squares--> sum (the main task)
 *
 * Each stage is a task in one nursery. A stage closes its output channel
 * when its input is drained, so the end of the data flows down the
 * pipeline. The whole pipeline runs under a 2 s deadline: if a stage got
 * stuck, every blocked send and receive would return -ECANCELED and the
 * nursery would unwind. Pass a count (default 100000) to change the size.
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    weft_chan *nums, *squares;
    long count;
} pipeline;

static int generate(void *arg)
{
    pipeline *p = arg;
    weft_task_set_name("generate"); /* shown in dumps and traces */
    int rc = 0;
    for (long i = 1; i <= p->count && rc == 0; i++)
        rc = weft_chan_send(p->nums, &i);
    weft_chan_close(p->nums);
    return rc;
}

static int square(void *arg)
{
    weft_task_set_name("square");
    pipeline *p = arg;
    long v;
    int rc;
    while ((rc = weft_chan_recv(p->nums, &v)) == 0) {
        v *= v;
        if ((rc = weft_chan_send(p->squares, &v)) != 0)
            break;
    }
    weft_chan_close(p->squares);
    return rc == -EPIPE ? 0 : rc; /* -EPIPE: input drained, a normal end */
}

static int main_task(void *arg)
{
    pipeline p = {.count = *(long *)arg};
    int rc = weft_chan_open(&p.nums, sizeof(long), 64);
    if (rc == 0)
        rc = weft_chan_open(&p.squares, sizeof(long), 64);
    if (rc)
        return rc;

    weft_scope deadline;
    weft_scope_enter(&deadline, weft_now() + 2000000000LL);
    weft_nursery *n;
    if ((rc = weft_nursery_open(&n)) == 0) {
        weft_spawn(n, generate, &p);
        weft_spawn(n, square, &p);
        long v, sum = 0, got = 0;
        while ((rc = weft_chan_recv(p.squares, &v)) == 0) {
            sum += v;
            got++;
        }
        int crc = weft_nursery_close(n);
        if (rc == -EPIPE)
            rc = crc; /* drained: the result is the stages' */
        printf("sum of squares of 1..%ld = %ld (%ld items)\n", p.count, sum, got);
        long want = p.count * (p.count + 1) * (2 * p.count + 1) / 6;
        if (rc == 0 && sum != want)
            rc = -EIO;
    }
    if (weft_scope_exit(&deadline))
        fprintf(stderr, "pipeline: the deadline cancelled the pipeline\n");
    weft_chan_free(p.nums);
    weft_chan_free(p.squares);
    return rc;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 100000;
    if (count <= 0 || count > 1000000) {
        fprintf(stderr, "usage: %s [count 1..1000000]\n", argv[0]);
        return 2;
    }
    int rc = weft_run(NULL, main_task, &count);
    if (rc) {
        fprintf(stderr, "pipeline: %d\n", rc);
        return 1;
    }
    return 0;
}
