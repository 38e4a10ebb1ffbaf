/* Bad input gets a clear error (-EINVAL and a message naming the misuse),
 * never a crash: channels, select, spawn, nurseries, scopes, keys, run.
 * TIMEOUT: 30
 * LABELS: unit
 */
#include "test.h"

static char captured[8192];

/* Runs fn with stderr going to a temporary file; returns fn's result and
 * leaves what was written in `captured`. */
static int with_stderr_captured(int (*fn)(void), const char *must_contain)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    dup2(fileno(f), 2);
    int r = fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fileno(f), 0, SEEK_SET);
    ssize_t n = read(fileno(f), captured, sizeof captured - 1);
    captured[n > 0 ? n : 0] = 0;
    fclose(f);
    if (must_contain && !strstr(captured, must_contain)) {
        fprintf(stderr, "expected \"%s\" in: %s\n", must_contain, captured);
        abort();
    }
    return r;
}

static weft_chan *ch;

static int send_null(void) { return weft_chan_send(ch, NULL); }
static int select_bad_op(void)
{
    weft_case c = {ch, (weft_case_op)7, NULL, 0};
    return weft_select(&c, 1, WEFT_FOREVER);
}
static int select_send_null(void)
{
    weft_case c = {ch, WEFT_SEND, NULL, 0};
    return weft_select_try(&c, 1);
}

static int child(void *arg)
{
    (void)arg;
    return 0;
}

static weft_nursery *outer;

static int close_foreign(void *arg)
{
    (void)arg;
    /* Closing a nursery this task did not open. */
    return weft_nursery_close(outer);
}

static int close_foreign_in_task(void)
{
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, close_foreign, NULL));
    return weft_nursery_close(n);
}

static int root(void *arg)
{
    (void)arg;
    CHECK_OK(weft_chan_open(&ch, sizeof(int), 4));
    CHECK_EQ(with_stderr_captured(send_null, "NULL element"), -EINVAL);
    CHECK_EQ(with_stderr_captured(select_bad_op, "op 7"), -EINVAL);
    CHECK_EQ(with_stderr_captured(select_send_null, "NULL element"), -EINVAL);
    CHECK_EQ(weft_chan_open(NULL, 4, 4), -EINVAL);
    weft_chan *other = (weft_chan *)&other;
    CHECK_EQ(weft_chan_open(&other, SIZE_MAX / 2, 4), -EINVAL);
    CHECK(other == NULL); /* a failed open leaves NULL */
    int v = 1;
    CHECK_OK(weft_chan_send(ch, &v)); /* still usable */
    CHECK_OK(weft_chan_recv(ch, &v));

    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_EQ(weft_spawn(n, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_spawn(NULL, child, NULL), -EINVAL);
    weft_spawn_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.reserved_[1] = 1;
    CHECK_EQ(weft_spawn_ex(n, child, NULL, &attr), -EINVAL);
    CHECK_OK(weft_nursery_close(n));

    /* A nursery closed by a task that did not open it: -EINVAL, reported. */
    CHECK_OK(weft_nursery_open(&outer));
    int r = with_stderr_captured(close_foreign_in_task, "did not open");
    CHECK_EQ(r, -EINVAL); /* the child's -EINVAL is the inner nursery's failure */
    CHECK_OK(weft_nursery_close(outer));

    /* Scope calls on a scope that is not entered are reported, no crash. */
    static weft_scope never_entered;
    memset(&never_entered, 0, sizeof never_entered);
    weft_scope_cancel(&never_entered);
    CHECK(!weft_scope_exit(&never_entered));
    CHECK(!weft_cancelled());

    weft_chan_free(ch);
    return 0;
}

static int bad_run(void) { return weft_run(NULL, NULL, NULL); }

int main(void)
{
    test_watchdog(25);
    CHECK_EQ(weft_key_create(NULL, NULL), -EINVAL);
    CHECK_EQ(with_stderr_captured(bad_run, "main_fn is NULL"), -EINVAL);
    CHECK_OK(test_run(2, root, NULL));
    printf("api_misuse: ok\n");
    return 0;
}
