/* A cancel reaches the bottom of a chain of 3000 nested nurseries (each task
 * opens one and spawns the next link), and the whole chain unwinds: the
 * cancel walk must not recurse on the canceller's stack.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

static long depth_max;
static atomic_long reached, unwound;

static int link_fn(void *arg)
{
    long depth = (long)(intptr_t)arg;
    atomic_fetch_add(&reached, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    int rc = 0;
    if (depth < depth_max)
        rc = weft_spawn(n, link_fn, (void *)(intptr_t)(depth + 1));
    if (rc == 0)
        rc = weft_sleep(60LL * 1000000000); /* until cancelled */
    CHECK_EQ(rc, -ECANCELED);
    int crc = weft_nursery_close(n);
    CHECK(crc == 0 || crc == -ECANCELED);
    atomic_fetch_add(&unwound, 1);
    return rc;
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, link_fn, (void *)(intptr_t)1));
    while (atomic_load(&reached) < depth_max)
        CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_OK(weft_sleep(test_ms(5)));
    int64_t t0 = weft_now();
    weft_nursery_cancel(n); /* one walk down the whole chain */
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&unwound), depth_max);
    printf("structured_deep: %ld nested tasks cancelled and unwound in %.1f ms\n", depth_max,
           (weft_now() - t0) / 1e6);
    return 0;
}

int main(void)
{
    test_watchdog(50);
    depth_max = test_sanitized() ? 1000 : 3000;
    for (unsigned w = 1; w <= 2; w++) {
        atomic_store(&reached, 0);
        atomic_store(&unwound, 0);
        CHECK_OK(test_run(w, root, NULL));
    }
    return 0;
}
