/* timeout.c - a deadline cancelling a whole tree of sleepers.
 *
 * The root opens a nursery with a 50 ms deadline and spawns a tree of
 * tasks, each sleeping "forever". When the deadline passes, every sleeper's
 * weft_sleep returns -ECANCELED, the tree unwinds, and weft_nursery_close
 * reports -ETIMEDOUT. No task outlives the nursery.
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int cancelled;
static atomic_int started;

static int sleeper(void *arg)
{
    int depth = (int)(intptr_t)arg;
    atomic_fetch_add(&started, 1);
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    for (int i = 0; depth > 0 && i < 3; i++)
        if (weft_spawn(n, sleeper, (void *)(intptr_t)(depth - 1)) != 0)
            break;                     /* the deadline already passed: stop growing */
    rc = weft_sleep(WEFT_FOREVER / 2); /* until cancelled */
    if (rc == -ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    weft_nursery_close(n);
    return rc; /* -ECANCELED while cancelled is not a failure */
}

static int main_task(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    weft_nursery_set_deadline(n, t0 + 50 * 1000000LL);
    weft_spawn(n, sleeper, (void *)(intptr_t)4); /* 1 + 3 + 9 + 27 + 81 tasks */
    rc = weft_nursery_close(n);
    printf("close returned %d (%s) after %.1f ms; %d of %d sleepers cancelled\n", rc,
           rc == -ETIMEDOUT ? "-ETIMEDOUT" : "?", (weft_now() - t0) / 1e6, atomic_load(&cancelled),
           atomic_load(&started));
    return rc == -ETIMEDOUT && atomic_load(&cancelled) == atomic_load(&started) ? 0 : -EIO;
}

int main(void)
{
    int rc = weft_run(NULL, main_task, NULL);
    if (rc) {
        fprintf(stderr, "timeout: unexpected result %d\n", rc);
        return 1;
    }
    return 0;
}
