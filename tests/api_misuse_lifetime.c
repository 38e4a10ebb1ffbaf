/* Misuse of lifetimes is reported by name and never turns into a crash or
 * a hang (run in a forked child each, its stderr checked):
 *  - weft_chan_free while a task is parked on the channel: reported, the
 *    channel is closed instead (the task gets -EPIPE) and leaked; before,
 *    it was freed and the parked task spun on freed memory forever;
 *  - weft_spawn into a nursery after its close: reported, -EINVAL (was a
 *    bare SIGSEGV);
 *  - a second weft_nursery_close: reported, -EINVAL, no use after free.
 * And two consistency fixes: WEFT_WORKERS=0 means one worker per CPU, as
 * workers = 0 does in the config (it was rejected); weft_mutex_lock on a
 * mutex the caller holds returns -EDEADLK, as now documented.
 * LABELS: unit
 */
#include "test.h"

static int recv_parked(void *arg)
{
    weft_chan *c = arg;
    int v;
    CHECK_EQ(weft_chan_recv(c, &v), -EPIPE);
    return 0;
}

static int chan_free_parked(void *arg)
{
    (void)arg;
    weft_chan *c;
    CHECK_OK(weft_chan_open(&c, sizeof(int), 0));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, recv_parked, c));
    CHECK_OK(weft_sleep(test_ms(20)));
    weft_chan_free(c); /* misuse: someone is parked on it */
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static int nop(void *arg)
{
    (void)arg;
    return 0;
}

static int use_after_close(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, nop, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(weft_spawn(n, nop, NULL), -EINVAL);
    CHECK_EQ(weft_nursery_close(n), -EINVAL);
    return 0;
}

static int relock(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    CHECK_OK(weft_mutex_lock(&m));
    CHECK_EQ(weft_mutex_lock(&m), -EDEADLK);
    weft_mutex_unlock(&m);
    return 0;
}

/* The runtime's worker count, from the header of a dump. */
static int count_workers(void *arg)
{
    unsigned *out = arg;
    FILE *f = tmpfile();
    CHECK(f != NULL);
    weft_dump(fileno(f));
    char *d = test_read_all(fileno(f));
    CHECK_EQ(sscanf(d, "weft: dump: %u workers", out), 1);
    fclose(f);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    int st;
    char *err = test_run_in_child(2, chan_free_parked, NULL, &st);
    fprintf(stderr, "chan_free child said: %s\n", err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(err, "weft_chan_free while tasks") != NULL);
    err = test_run_in_child(2, use_after_close, NULL, &st);
    fprintf(stderr, "use-after-close child said: %s\n", err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(err, "weft_spawn into a nursery that is not open") != NULL);
    CHECK(strstr(err, "weft_nursery_close on an invalid or already closed nursery") != NULL);
    setenv("WEFT_WORKERS", "0", 1);
    CHECK_OK(weft_run(NULL, relock, NULL));
    /* ... and means what workers = 0 means without it. */
    unsigned by_env = 0, by_config = 0;
    CHECK_OK(weft_run(NULL, count_workers, &by_env));
    unsetenv("WEFT_WORKERS");
    CHECK_OK(weft_run(NULL, count_workers, &by_config));
    CHECK(by_config >= 1);
    CHECK_EQ(by_env, by_config);
    printf("api_misuse_lifetime: ok\n");
    return 0;
}
