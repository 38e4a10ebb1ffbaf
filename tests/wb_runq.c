/* White-box run queue test, no scheduler running: the owner pushes and pops
 * while thieves steal half at a time; every item must be taken exactly once.
 * Also: wrap-around of the ring indices, overflow into the inject queue,
 * and the inject queue's own shapes: overflow arrays and single pushes
 * mixed, popped into queues of every fill (whole segments, a first entry
 * of a segment too large for the caller, a ring grown past its start),
 * in FIFO order, each entry once.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "sched/internal.h"

#include "test.h"

#include <pthread.h>

#define ITEMS 400000
#define THIEVES 3

static weft__rt rt;
static weft__worker owner_w, thief_w[THIEVES];
static weft__task *tasks;
static atomic_uchar *taken;
static atomic_bool owner_done;
static atomic_long total_taken;

static void take(uintptr_t e)
{
    weft__task *t = weft__entry_task(e);
    long i = t - tasks;
    CHECK(i >= 0 && i < ITEMS);
    CHECK_EQ(atomic_fetch_add(&taken[i], 1), 0); /* exactly once */
    atomic_fetch_add(&total_taken, 1);
}

static void *thief(void *arg)
{
    weft__worker *me = arg;
    weft__runq_init(&me->runq);
    for (;;) {
        bool done = atomic_load(&owner_done);
        uintptr_t e = weft__runq_steal(&owner_w.runq, &me->runq);
        if (e) {
            take(e);
            while ((e = weft__runq_pop(&me->runq)) != 0)
                take(e);
        } else if (done && weft__runq_len(&owner_w.runq) == 0) {
            break;
        }
    }
    return NULL;
}

/* Pushes 20,000 entries as overflow batches of 129 and single wake-ups
 * (a backlog that grows the segment ring many times over), then pops them
 * into a queue kept at fills from empty to full. Every entry comes out
 * once; entries of one segment stay in order, so each batch's entries come
 * out in increasing index order. */
static void inject_shapes(void)
{
    enum { N = 20000, BATCH = WEFT__RUNQ_SIZE / 2 + 1 };
    CHECK_EQ(atomic_load(&rt.inject_n), 0);
    for (long i = 0; i < N; i++)
        atomic_store(&taken[i], 0);
    long i = 0;
    uintptr_t batch[BATCH];
    while (i < N) {
        if ((i / BATCH) % 3 == 2 || N - i < BATCH) { /* some singles */
            for (int k = 0; k < 40 && i < N; k++, i++) {
                uintptr_t e = weft__entry(&tasks[i], (i & 1) != 0);
                weft__inject_push(&rt, e, e, 1);
            }
        } else {
            for (int k = 0; k < BATCH; k++, i++)
                batch[k] = weft__entry(&tasks[i], (i & 1) != 0);
            weft__inject_push_batch(&rt, batch, BATCH);
        }
    }
    CHECK_EQ(atomic_load(&rt.inject_n), N);
    weft__runq q;
    weft__runq_init(&q);
    long got = 0, last = -1, round = 0;
    uintptr_t e;
    for (;;) {
        /* The caller's own queue at some fill: 0, 100, 200 or 255. */
        static const unsigned fills[] = {0, 100, 200, WEFT__RUNQ_SIZE - 1};
        unsigned fill = fills[round++ % 4];
        while (weft__runq_len(&q) > fill) {
            e = weft__runq_pop(&q);
            take(e);
            got++;
        }
        /* Keep entries of the queue's own (not from inject) out of it: only
         * what inject gives goes in, so order can be checked on the run
         * entry. */
        e = weft__inject_pop(&rt, &q);
        if (!e)
            break;
        long idx = weft__entry_task(e) - tasks;
        CHECK(idx > last); /* FIFO: the queue's head only moves forward */
        last = idx;
        take(e);
        got++;
    }
    while ((e = weft__runq_pop(&q)) != 0) {
        take(e);
        got++;
    }
    CHECK_EQ(got, N);
    CHECK_EQ(atomic_load(&rt.inject_n), 0);
    CHECK_EQ(rt.inject_seg_len, 0);
    for (long k = 0; k < N; k++)
        CHECK_EQ(atomic_load(&taken[k]), 1);
}

int main(void)
{
    test_watchdog(50);
    tasks = calloc(ITEMS, sizeof *tasks);
    taken = calloc(ITEMS, sizeof *taken);
    CHECK(tasks && taken);
    rt.nworkers = 1 + THIEVES;
    owner_w.rt = &rt;
    weft__runq_init(&owner_w.runq);
    /* Start near the 32-bit wrap of the indices. */
    atomic_store(&owner_w.runq.head, UINT32_MAX - 1000);
    atomic_store(&owner_w.runq.tail, UINT32_MAX - 1000);

    pthread_t th[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        pthread_create(&th[i], NULL, thief, &thief_w[i]);
    long overflowed = 0;
    for (long i = 0; i < ITEMS; i++) {
        weft__runq_push_or_overflow(&rt, &owner_w.runq, weft__entry(&tasks[i], (i & 1) != 0));
        if (i % 3 == 0) {
            uintptr_t e = weft__runq_pop(&owner_w.runq);
            if (e)
                take(e);
        }
        /* Drain what overflowed into the inject queue now and then. */
        if (i % 1000 == 0) {
            uintptr_t e;
            while ((e = weft__inject_pop(&rt, NULL)) != 0) {
                take(e);
                overflowed++;
            }
        }
    }
    atomic_store(&owner_done, true);
    uintptr_t e;
    while ((e = weft__runq_pop(&owner_w.runq)) != 0)
        take(e);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(th[i], NULL);
    while ((e = weft__inject_pop(&rt, NULL)) != 0) {
        take(e);
        overflowed++;
    }
    CHECK_EQ(atomic_load(&total_taken), ITEMS);
    for (long i = 0; i < ITEMS; i++)
        CHECK_EQ(atomic_load(&taken[i]), 1);

    /* Overflow with no consumer: a full ring sends half plus one onward. */
    weft__runq_init(&owner_w.runq);
    for (unsigned i = 0; i < WEFT__RUNQ_SIZE + 1; i++)
        weft__runq_push_or_overflow(&rt, &owner_w.runq, weft__entry(&tasks[i], false));
    CHECK_EQ(weft__runq_len(&owner_w.runq), WEFT__RUNQ_SIZE / 2);
    CHECK_EQ(atomic_load(&rt.inject_n), WEFT__RUNQ_SIZE / 2 + 1);
    /* The ring keeps the newer half in order; inject has the older half. */
    for (unsigned i = 0; i < WEFT__RUNQ_SIZE / 2 + 1; i++) {
        e = weft__inject_pop(&rt, NULL);
        unsigned want = i < WEFT__RUNQ_SIZE / 2 ? i : WEFT__RUNQ_SIZE;
        CHECK(weft__entry_task(e) == &tasks[want]);
    }
    for (unsigned i = WEFT__RUNQ_SIZE / 2; i < WEFT__RUNQ_SIZE; i++)
        CHECK(weft__entry_task(weft__runq_pop(&owner_w.runq)) == &tasks[i]);
    CHECK_EQ(weft__runq_pop(&owner_w.runq), 0);
    inject_shapes();
    weft__inject_fini(&rt);
    printf("wb_runq: ok (%d items, %ld via overflow)\n", ITEMS, overflowed);
    free(tasks);
    free((void *)taken);
    return 0;
}
