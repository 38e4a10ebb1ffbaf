/* weft_dump writes to its fd only after it has let go of the tree's locks:
 * a dump stuck on a full pipe (nobody reading) must not stall the spawns
 * and exits of the nurseries it shows. Before, it held each nursery's lock
 * across its dprintf calls, and every spawn into that nursery spun behind
 * it. A plain thread dumps 2,000 parked tasks into a 4 KiB pipe; meanwhile
 * 2,000 more tasks are spawned into the same nursery and finish; only then
 * is the pipe drained. The liveness bound is generous (30 s).
 * Conservation: every spawned task runs once; the drained dump names the
 * parked tasks.
 * TIMEOUT: 90
 * LABELS: unit
 */
#include "test.h"

#include <fcntl.h>
#include <pthread.h>

static weft_event release_all;
static atomic_long ran;
static int pfd[2];
static atomic_int dump_done;

static int parked(void *arg)
{
    (void)arg;
    weft_task_set_name("parked-for-the-dump");
    return weft_event_wait(&release_all);
}

static int quick(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void *dumper(void *arg)
{
    (void)arg;
    weft_dump(pfd[1]); /* blocks: the pipe is small and nobody reads yet */
    atomic_store(&dump_done, 1);
    return NULL;
}

static int root(void *arg)
{
    (void)arg;
    weft_event_init(&release_all);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 2000; i++)
        CHECK_OK(weft_spawn(n, parked, NULL));
    CHECK_OK(weft_sleep(test_ms(50)));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, dumper, NULL));
    CHECK_OK(weft_sleep(test_ms(50))); /* the dump is now stuck on the pipe */
    int64_t t0 = weft_now();
    for (int i = 0; i < 2000; i++) {
        CHECK_OK(weft_spawn(n, quick, NULL));
        if (i % 64 == 0)
            CHECK_OK(weft_yield());
    }
    while (atomic_load(&ran) < 2000 && weft_now() - t0 < 30LL * 1000000000)
        CHECK_OK(weft_sleep(test_ms(1)));
    long got = atomic_load(&ran);
    /* Drain the pipe (the dump goes on), then check. */
    static char buf[1 << 20];
    size_t len = 0;
    int fl = fcntl(pfd[0], F_GETFL);
    fcntl(pfd[0], F_SETFL, fl | O_NONBLOCK);
    while (!atomic_load(&dump_done) || len < sizeof buf - 1) {
        ssize_t r = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (r > 0)
            len += (size_t)r;
        else if (atomic_load(&dump_done))
            break;
        else
            CHECK_OK(weft_sleep(100000));
    }
    buf[len] = 0;
    CHECK_OK(pthread_join(th, NULL));
    CHECK_EQ(got, 2000);
    CHECK(strstr(buf, "parked-for-the-dump") != NULL);
    weft_event_set(&release_all);
    return weft_nursery_close(n);
}

int main(void)
{
    test_watchdog(80);
    CHECK_OK(pipe(pfd));
    fcntl(pfd[1], F_SETPIPE_SZ, 4096);
    CHECK_OK(test_run(2, root, NULL));
    printf("structured_dump_slow_fd: ok\n");
    return 0;
}
