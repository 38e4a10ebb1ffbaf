/* weft_dump: the tree of nurseries and tasks with names, states, what each
 * waits on and where it was spawned; SIGQUIT prints it to stderr and the run
 * goes on.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <signal.h>

static weft_event never = WEFT_EVENT_INIT;
static weft_chan *chan;
static atomic_int parked;

static int waits_event(void *arg)
{
    (void)arg;
    weft_task_set_name("event-waiter");
    atomic_fetch_add(&parked, 1);
    return weft_event_wait(&never);
}

static int waits_chan(void *arg)
{
    (void)arg;
    weft_task_set_name("chan-reader");
    int v;
    atomic_fetch_add(&parked, 1);
    return weft_chan_recv(chan, &v);
}

static int middle(void *arg)
{
    (void)arg;
    weft_task_set_name("middle");
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, waits_chan, NULL));
    return weft_nursery_close(n);
}

/* A dump taken now; true if it shows every task in its expected state. */
static bool dump_shows_all_parked(FILE *f)
{
    CHECK_OK(ftruncate(fileno(f), 0));
    CHECK_EQ(lseek(fileno(f), 0, SEEK_SET), 0);
    weft_dump(fileno(f));
    char *out = test_read_all(fileno(f));
    return strstr(out, "\"event-waiter\" parked in event") &&
           strstr(out, "\"chan-reader\" parked in channel receive") &&
           strstr(out, "\"middle\" parked in weft_nursery_close");
}

static int root(void *arg)
{
    (void)arg;
    CHECK_OK(weft_chan_open(&chan, sizeof(int), 0));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, waits_event, NULL));
    CHECK_OK(weft_spawn(n, middle, NULL));
    /* The counter says each is about to park, not that it did: look until
     * a dump shows them parked. */
    CHECK_SOON(atomic_load(&parked) == 2);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_SOON(dump_shows_all_parked(f));
    char *out = test_read_all(fileno(f));
    fprintf(stderr, "%s", out);
    CHECK(strstr(out, "task 1 \"main\" running") != NULL);
    /* Its worker's line names it too (a task that never waited is only
     * there). */
    CHECK(strstr(out, ": running task 1 \"main\",") != NULL);
    CHECK(strstr(out, "\"event-waiter\" parked in event") != NULL);
    CHECK(strstr(out, "\"chan-reader\" parked in channel receive") != NULL);
    CHECK(strstr(out, "\"middle\" parked in weft_nursery_close") != NULL);
    CHECK(strstr(out, "structured_dump.c:") != NULL); /* spawn sites */
    fclose(f);

    /* SIGQUIT: the same dump on stderr, and the run goes on. */
    fflush(stderr);
    int saved = dup(2);
    FILE *g = tmpfile();
    dup2(fileno(g), 2);
    raise(SIGQUIT);
    /* The monitor thread prints it: wait for it (up to the liveness bound;
     * dumps end with the task tree, so the reader's line is near the end). */
    int64_t give_up = weft_now() + PROMPT_NS;
    for (;;) {
        out = test_read_all(fileno(g));
        if ((strstr(out, "weft: dump:") && strstr(out, "chan-reader")) || weft_now() > give_up)
            break;
        CHECK_OK(weft_sleep(test_ms(1)));
    }
    dup2(saved, 2);
    close(saved);
    CHECK(strstr(out, "weft: dump:") != NULL);
    CHECK(strstr(out, "chan-reader") != NULL);
    fclose(g);

    weft_event_set(&never);
    weft_chan_close(chan);
    int rc = weft_nursery_close(n);
    CHECK(rc == 0 || rc == -EPIPE);
    weft_chan_free(chan);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    weft_dump(1); /* no runtime: says so */
    CHECK_OK(test_run(2, root, NULL));
    printf("structured_dump: ok\n");
    return 0;
}
