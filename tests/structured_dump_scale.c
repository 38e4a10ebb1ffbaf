/* weft_dump at scale: totals by state and by wait reason ahead of the tree,
 * each wait with its duration, a mutex with its owner, a select with its
 * channels, a blocking job with its function named, and a task spawned
 * through a wrapper with its name and the wrapper's caller as its site.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

static weft_event never = WEFT_EVENT_INIT;
static weft_event release_blocking = WEFT_EVENT_INIT;
static weft_mutex mu = WEFT_MUTEX_INIT;
static weft_chan *c1, *c2;
static atomic_int parked;
static atomic_int blocking_running;

static int waits_event(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    return weft_event_wait(&never);
}

static int waits_mutex(void *arg)
{
    (void)arg;
    weft_task_set_name("mutex-waiter");
    atomic_fetch_add(&parked, 1);
    CHECK_OK(weft_mutex_lock(&mu));
    weft_mutex_unlock(&mu);
    return 0;
}

static int waits_select(void *arg)
{
    (void)arg;
    weft_task_set_name("selector");
    int a, b;
    weft_case cs[2] = {{c1, WEFT_RECV, &a, 0}, {c2, WEFT_RECV, &b, 0}};
    atomic_fetch_add(&parked, 1);
    int r = weft_select(cs, 2, WEFT_FOREVER);
    return r == -EPIPE || r >= 0 || r == -ECANCELED ? 0 : r;
}

/* Non-static so that dladdr may find it when the test is linked with
 * -rdynamic; otherwise the dump names the module and offset. */
int dump_scale_blocking_body(void *arg);
int dump_scale_blocking_body(void *arg)
{
    (void)arg;
    atomic_store(&blocking_running, 1);
    weft_event_wait(&release_blocking);
    return 0;
}

static int waits_blocking(void *arg)
{
    (void)arg;
    weft_task_set_name("blocker");
    return weft_blocking(dump_scale_blocking_body, NULL);
}

/* A wrapper that passes its caller's site, as a server's helper would. */
static int spawn_named_from(weft_nursery *n, weft_fn fn, const char *name, const char *file,
                            int line)
{
    weft_spawn_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    return weft_spawn_ex_at(n, fn, NULL, &a, file, line);
}

static char *dump_to_string(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    weft_dump(fileno(f));
    long len = lseek(fileno(f), 0, SEEK_END);
    CHECK(len > 0);
    char *buf = malloc((size_t)len + 1);
    CHECK(buf != NULL);
    CHECK_EQ(pread(fileno(f), buf, (size_t)len, 0), len);
    buf[len] = 0;
    fclose(f);
    return buf;
}

static bool all_shown(long n_event)
{
    char *out = dump_to_string();
    char want[64];
    snprintf(want, sizeof want, "parked in event: %ld (", n_event);
    bool ok = strstr(out, want) && strstr(out, "\"mutex-waiter\" parked in mutex") &&
              strstr(out, "\"selector\" parked in select on channel") &&
              strstr(out, "\"blocker\" parked in weft_blocking running");
    free(out);
    return ok;
}

static int root(void *arg)
{
    (void)arg;
    long n_event = test_scale(2000);
    CHECK_OK(weft_chan_open(&c1, sizeof(int), 0));
    CHECK_OK(weft_chan_open(&c2, sizeof(int), 0));
    CHECK_OK(weft_mutex_lock(&mu));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (long i = 0; i < n_event; i++)
        CHECK_OK(spawn_named_from(n, waits_event, "ev", "caller_site.c", 4242));
    CHECK_OK(weft_spawn(n, waits_mutex, NULL));
    CHECK_OK(weft_spawn(n, waits_select, NULL));
    CHECK_OK(weft_spawn(n, waits_blocking, NULL));
    CHECK_SOON(atomic_load(&parked) == n_event + 2 && atomic_load(&blocking_running));
    CHECK_SOON(all_shown(n_event));
    /* Let the waits age a little, so a duration shows. */
    CHECK_OK(weft_sleep(test_ms(20)));
    char *out = dump_to_string();
    fprintf(stderr, "%.1200s\n...\n", out);
    char *tree = strstr(out, "  tree:\n");
    char *totals = strstr(out, "  totals: ");
    CHECK(tree != NULL && totals != NULL && totals < tree);
    char want[96];
    snprintf(want, sizeof want, "parked in event: %ld (longest ", n_event);
    char *ev = strstr(out, want);
    CHECK(ev != NULL && ev < tree);
    CHECK(strstr(out, " parked\n") || strstr(out, " parked "));
    /* Each wait shows its duration; the mutex its owner (main, task 1). */
    char *m = strstr(out, "\"mutex-waiter\" parked in mutex");
    CHECK(m != NULL);
    char *eol = strchr(m, '\n');
    CHECK(eol != NULL);
    *eol = 0;
    fprintf(stderr, "%s\n", m);
    CHECK(strstr(m, "held by task 1") != NULL);
    CHECK(strstr(m, " for ") != NULL);
    *eol = '\n';
    char *s = strstr(out, "\"selector\" parked in select on channel");
    CHECK(s != NULL);
    eol = strchr(s, '\n');
    *eol = 0;
    fprintf(stderr, "%s\n", s);
    char p1[32], p2[32];
    snprintf(p1, sizeof p1, "%p", (void *)c1);
    snprintf(p2, sizeof p2, "%p", (void *)c2);
    CHECK(strstr(s, p1) != NULL && strstr(s, p2) != NULL);
    *eol = '\n';
    char *bl = strstr(out, "\"blocker\" parked in weft_blocking running");
    CHECK(bl != NULL);
    eol = strchr(bl, '\n');
    *eol = 0;
    fprintf(stderr, "%s\n", bl);
    CHECK(strstr(bl, "dump_scale_blocking_body") || strstr(bl, " in structured_dump_scale"));
    *eol = '\n';
    /* The wrapper's caller is the site, with the name from the attr. */
    CHECK(strstr(out, "\"ev\" parked in event") != NULL);
    CHECK(strstr(out, "[spawned at caller_site.c:4242]") != NULL);
    free(out);

    weft_mutex_unlock(&mu);
    weft_event_set(&release_blocking);
    weft_chan_close(c1);
    weft_nursery_cancel(n);
    int rc = weft_nursery_close(n);
    CHECK(rc == 0 || rc == -ECANCELED);
    weft_chan_free(c1);
    weft_chan_free(c2);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    CHECK_OK(test_run(2, root, NULL));
    return 0;
}
