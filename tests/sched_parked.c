/* One million concurrently parked tasks on a default vm.max_map_count. A
 * parked task costs the one stack page it touched plus its control block
 * (and a 40-byte stack descriptor): at most a page + 768 bytes of RSS and
 * 1.25 minor page faults each, on any kernel, including those where a read
 * of an untouched anonymous page commits it (asserted in Release; sanitizer
 * builds scale the count down and skip the bounds). Conservation: every
 * task parks once and is woken once.
 * TIMEOUT: 240
 * LABELS: stress
 */
#include "test.h"

#include <sys/resource.h>

static atomic_long parked, woken;
static weft_event go = WEFT_EVENT_INIT;
static long want;
static long rss_before, rss_parked, maps_parked;
static long flt_before, flt_parked;

static long minor_faults(void)
{
    struct rusage ru;
    CHECK_OK(getrusage(RUSAGE_SELF, &ru));
    return ru.ru_minflt;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
    CHECK_OK(weft_event_wait(&go));
    atomic_fetch_add_explicit(&woken, 1, memory_order_relaxed);
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    rss_before = test_rss_bytes();
    flt_before = minor_faults();
    for (long i = 0; i < want; i++)
        CHECK_OK(weft_spawn(n, waiter, NULL));
    while (atomic_load(&parked) < want)
        CHECK_OK(weft_sleep(test_ms(1)));
    CHECK_OK(weft_sleep(test_ms(10)));
    rss_parked = test_rss_bytes();
    flt_parked = minor_faults();
    maps_parked = count_maps();
    weft_stats st;
    weft_stats_get(&st);
    CHECK((long)st.tasks_live >= want);
    weft_event_set(&go);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&woken), want);
    return 0;
}

int main(void)
{
    test_watchdog(230);
    want = test_scale(1000000);
    /* Each TSan fiber maps its own shadow stack: stay under the map limit. */
    if (test_sanitized() && want > 20000)
        want = 20000;
    CHECK_OK(test_run(2, root, NULL));
    double per = (double)(rss_parked - rss_before) / (double)want;
    double flt = (double)(flt_parked - flt_before) / (double)want;
    printf("sched_parked: %ld tasks parked, %.0f bytes RSS and %.3f minor faults each, %ld "
           "mappings\n",
           want, per, flt, maps_parked);
    CHECK(maps_parked < 65530);
    if (!test_sanitized()) {
        CHECK(per <= (double)sysconf(_SC_PAGESIZE) + 768);
        CHECK(flt <= 1.25);
    }
    return 0;
}
