/*
 * structured_close_count.c - close waits for every child, also for the
 * children that children spawn into the same nursery while it closes.
 *
 * A nursery counts its children on two sides (spawns, ends) and close
 * counts them over once; a spawn that lands after that (by a child, into
 * its parent's nursery) must still be waited for. Each round opens a
 * nursery, spawns a few children and closes it at once (or after a
 * pause). Each child may pause, may spawn 0-3 siblings into the parent's
 * nursery (to a bounded depth, often right while the parent counts), and
 * may park. Some children go through weft_nursery_start. Checked, for
 * every round:
 *  - conservation: when close returns, every child that was spawned has
 *    run exactly once and has ended (alive count 0, ran == spawned);
 *  - close returns 0 (nobody fails, nothing is cancelled);
 * Runs on 1, 2 and 4 workers; rounds run several at once.
 */
/* TIMEOUT: 240 */
/* LABELS: stress */
#include "test.h"

#define MAX_GEN 4
#define AT_ONCE 4

typedef struct round_state {
    weft_nursery *n;
    atomic_long spawned, ran, alive;
    uint64_t seed;
} round_state;

typedef struct kid {
    round_state *r;
    int gen;
    uint64_t seed;
    atomic_int runs;
} kid;

static atomic_long g_rounds, g_spawned;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void pause_point(uint64_t *rng)
{
    switch (next_rand(rng) % 5) {
    case 0:
        CHECK_OK(weft_sleep((int64_t)(next_rand(rng) % 50000)));
        break;
    case 1:
        CHECK_OK(weft_yield());
        break;
    default:
        break;
    }
}

static int kid_body(void *arg);
static int started_kid_body(void *arg);

static kid *new_kid(round_state *r, int gen, uint64_t *rng)
{
    kid *k = calloc(1, sizeof *k);
    CHECK(k);
    k->r = r;
    k->gen = gen;
    k->seed = next_rand(rng);
    return k;
}

/* Counted as alive before the spawn, so the round can check that close
 * waited for it. */
static void spawn_kid(round_state *r, int gen, uint64_t *rng)
{
    kid *k = new_kid(r, gen, rng);
    atomic_fetch_add(&r->alive, 1);
    atomic_fetch_add(&r->spawned, 1);
    if (next_rand(rng) % 8 == 0) {
        /* Through weft_nursery_start: it runs under our scopes until it
         * says it started. */
        CHECK_OK(weft_nursery_start(r->n, started_kid_body, k));
    } else {
        CHECK_OK(weft_spawn(r->n, kid_body, k));
    }
}

static int kid_body(void *arg)
{
    kid *k = arg;
    round_state *r = k->r;
    CHECK_EQ(atomic_fetch_add(&k->runs, 1), 0);
    atomic_fetch_add(&r->ran, 1);
    uint64_t rng = k->seed;
    pause_point(&rng);
    if (k->gen < MAX_GEN) {
        int sibs = (int)(next_rand(&rng) % 4);
        for (int i = 0; i < sibs; i++)
            spawn_kid(r, k->gen + 1, &rng);
    }
    pause_point(&rng);
    free(k);
    atomic_fetch_sub(&r->alive, 1);
    return 0;
}

/* A child made with weft_nursery_start says it started first (else start
 * returns -ECHILD), then does what the others do. */
static int started_kid_body(void *arg)
{
    weft_task_started();
    return kid_body(arg);
}

static int one_round(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    round_state r = {0};
    r.seed = rng;
    CHECK_OK(weft_nursery_open(&r.n));
    int first = 1 + (int)(next_rand(&rng) % 4);
    for (int i = 0; i < first; i++)
        spawn_kid(&r, 0, &rng);
    if (next_rand(&rng) % 3 == 0)
        pause_point(&rng);
    CHECK_OK(weft_nursery_close(r.n));
    /* Conservation, the moment close returns. */
    CHECK_EQ(atomic_load(&r.alive), 0);
    CHECK_EQ(atomic_load(&r.ran), atomic_load(&r.spawned));
    atomic_fetch_add(&g_spawned, atomic_load(&r.spawned));
    atomic_fetch_add(&g_rounds, 1);
    return 0;
}

static int main_task(void *arg)
{
    long rounds = *(long *)arg;
    uint64_t rng = 0x5eed;
    for (long i = 0; i < rounds; i += AT_ONCE) {
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        for (int j = 0; j < AT_ONCE; j++)
            CHECK_OK(weft_spawn(n, one_round, (void *)(uintptr_t)next_rand(&rng)));
        CHECK_OK(weft_nursery_close(n));
    }
    return 0;
}

int main(void)
{
    test_watchdog(230); /* tsan-full: ~40 s on a loaded 2-core machine */
    long rounds = test_scale(8000);
    unsigned workers[] = {1, 2, 4};
    for (unsigned i = 0; i < sizeof workers / sizeof workers[0]; i++) {
        atomic_store(&g_rounds, 0);
        CHECK_OK(test_run(workers[i], main_task, &rounds));
        CHECK(atomic_load(&g_rounds) >= rounds);
    }
    printf("structured_close_count: ok (%ld spawns over %ld rounds per run)\n",
           atomic_load(&g_spawned), atomic_load(&g_rounds));
    return 0;
}
