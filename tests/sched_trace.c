/* WEFT_TRACE / weft_config.trace_path: the trace of a small known program
 * is JSON that scripts/trace_check.py accepts (well-formed events, no
 * overlapping slices on a worker track, every park followed by a wake or
 * the end, flows that match spawns and wakes), with run slices named after
 * the tasks. Needs python3 (exit 77 without it).
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <libgen.h>

static weft_chan *ch;

static int producer(void *arg)
{
    (void)arg;
    weft_task_set_name("producer");
    for (int i = 0; i < 50; i++)
        CHECK_OK(weft_chan_send(ch, &i));
    weft_chan_close(ch);
    return 0;
}

static int consumer(void *arg)
{
    (void)arg;
    weft_task_set_name("consumer");
    int v, n = 0;
    while (weft_chan_recv(ch, &v) == 0)
        CHECK_EQ(v, n++);
    CHECK_EQ(n, 50);
    return 0;
}

static int sleeper(void *arg)
{
    (void)arg;
    weft_task_set_name("sleeper");
    for (int i = 0; i < 5; i++)
        CHECK_OK(weft_sleep(test_ms(1)));
    return 0;
}

static int yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        CHECK_OK(weft_yield());
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    CHECK_OK(weft_chan_open(&ch, sizeof(int), 0));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, consumer, NULL));
    CHECK_OK(weft_spawn(n, producer, NULL));
    CHECK_OK(weft_spawn(n, sleeper, NULL));
    for (int i = 0; i < 20; i++)
        CHECK_OK(weft_spawn(n, yielder, NULL));
    CHECK_OK(weft_nursery_close(n));
    weft_chan_free(ch);
    return 0;
}

static int many_yielders(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    /* Every spawn is an event in the spawner's worker buffer: 3000 of them
     * overflow a 1024-event buffer whatever the schedule (the small-buffer
     * case below counts on drops). */
    for (int i = 0; i < 3000; i++)
        CHECK_OK(weft_spawn(n, yielder, NULL));
    return weft_nursery_close(n);
}

static char checker[4096];

static void check_trace(const char *path)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 %s %s --expect-name producer --expect-name consumer --expect-name sleeper "
             "--expect-name main",
             checker, path);
    int rc = system(cmd);
    CHECK(rc != -1 && WIFEXITED(rc));
    CHECK_EQ(WEXITSTATUS(rc), 0);
}

int main(void)
{
    test_watchdog(100);
    if (system("python3 -c 'import json' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no python3: skipped\n");
        return 77;
    }
    char src[4096];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(checker, sizeof checker, "%s/../scripts/trace_check.py", dirname(src));
    char dir[] = "/tmp/weft-trace-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];

    /* Through the config, on 2 workers. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.trace_path = path;
    CHECK_OK(weft_run(&cfg, root, NULL));
    check_trace(path);
    unlink(path);

    /* Through the environment, on 1 worker. */
    snprintf(path, sizeof path, "%s/env.json", dir);
    setenv("WEFT_TRACE", path, 1);
    CHECK_OK(test_run(1, root, NULL));
    unsetenv("WEFT_TRACE");
    check_trace(path);
    unlink(path);

    /* A path that cannot be opened is an error before anything runs. */
    memset(&cfg, 0, sizeof cfg);
    cfg.trace_path = "/nonexistent-dir/x.json";
    CHECK_EQ(weft_run(&cfg, root, NULL), -ENOENT);

    /* A tiny buffer: events are dropped and counted, the file stays valid. */
    snprintf(path, sizeof path, "%s/small.json", dir);
    setenv("WEFT_TRACE_EVENTS", "1024", 1);
    setenv("WEFT_TRACE", path, 1);
    CHECK_OK(test_run(2, many_yielders, NULL));
    unsetenv("WEFT_TRACE");
    unsetenv("WEFT_TRACE_EVENTS");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
             "sys.exit(0 if d[\"otherData\"][\"dropped_events\"] > 0 else 1)' %s",
             path);
    CHECK_EQ(system(cmd), 0);
    unlink(path);
    rmdir(dir);
    return 0;
}
