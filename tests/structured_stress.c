/*
 * structured_stress.c - random trees of nested nurseries.
 *
 * Each node of a tree runs as a task: it may sleep (0-200 us) or yield, and
 * unless it is at its tree's depth limit (1..6) it opens a nursery, spawns
 * 0-8 children into it, may cancel it or give it (or a scope around it) a
 * deadline, and closes it. Leaves fail with -EPIPE now and then; failures
 * propagate up. Checked:
 *  - conservation: every spawn that returned 0 ran its body exactly once
 *    (per child, and spawned == ran in total);
 *  - every spawn returned 0 or -ECANCELED, every cancellation point 0 or
 *    -ECANCELED;
 *  - every close returned an allowed value: -EPIPE exactly when a child
 *    failed; otherwise 0, -ETIMEDOUT only if a deadline was set on n,
 *    -ECANCELED only if the opener is cancelled from outside n;
 *  - a child's plain writes are visible to its parent after close.
 * Runs with 1, 2 and 4 workers.
 */
/* TIMEOUT: 120 */
/* LABELS: stress */
#include "test.h"

#define MAX_DEPTH 6
#define MAX_FAN 8
#define TREES_AT_ONCE 2

typedef struct node {
    atomic_int runs;
    int depth, max_depth;
    uint64_t seed;
    int result; /* plain: written by the child, read by the parent after close */
} node;

static atomic_long g_spawned, g_ran, g_budget;
static atomic_long g_closes[4]; /* 0, -ECANCELED, -ETIMEDOUT, -EPIPE */

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool take_budget(void) { return atomic_fetch_sub(&g_budget, 1) > 0; }

/* A random pause: a sleep of 0-200 us, a yield, a checkpoint, or nothing. */
static int pause_point(uint64_t *rng)
{
    int r = 0;
    switch (next_rand(rng) % 6) {
    case 0:
    case 1:
        r = weft_sleep((int64_t)(next_rand(rng) % 200001));
        break;
    case 2:
        r = weft_yield();
        break;
    case 3:
        r = weft_checkpoint();
        break;
    default:
        break;
    }
    CHECK(r == 0 || r == -ECANCELED);
    return r;
}

static int node_body(void *arg);

static node *new_child(node *parent, uint64_t *rng)
{
    node *c = calloc(1, sizeof *c);
    CHECK(c);
    c->depth = parent->depth + 1;
    c->max_depth = parent->max_depth;
    c->seed = next_rand(rng);
    c->result = 12345;
    return c;
}

static int node_body(void *arg)
{
    node *me = arg;
    CHECK_EQ(atomic_fetch_add(&me->runs, 1), 0);
    atomic_fetch_add(&g_ran, 1);
    uint64_t rng = me->seed;
    int ret = 0;

    if (pause_point(&rng) == -ECANCELED && next_rand(&rng) % 2) {
        me->result = -ECANCELED; /* the echo of a cancel: not a failure */
        return -ECANCELED;
    }

    if (me->depth >= me->max_depth) {
        /* A leaf. Now and then a real failure. */
        if (next_rand(&rng) % 3000 == 0)
            ret = -EPIPE;
        else if (pause_point(&rng) == -ECANCELED && next_rand(&rng) % 2)
            ret = -ECANCELED;
        me->result = ret;
        return ret;
    }

    /* Sometimes a scope with a deadline around the nursery. */
    weft_scope s;
    bool scoped = next_rand(&rng) % 16 == 0;
    if (scoped)
        weft_scope_enter(&s, weft_now() + (int64_t)(next_rand(&rng) % 400000));

    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    bool has_deadline = false;
    if (next_rand(&rng) % 12 == 0) {
        weft_nursery_set_deadline(n, weft_now() + (int64_t)(next_rand(&rng) % 300000));
        has_deadline = true;
    }
    node *kids[MAX_FAN + 1];
    int nk = 0;
    int fan = (int)(next_rand(&rng) % (MAX_FAN + 1));
    for (int i = 0; i < fan; i++) {
        if (!take_budget())
            break;
        node *c = new_child(me, &rng);
        int rc = weft_spawn(n, node_body, c);
        CHECK(rc == 0 || rc == -ECANCELED);
        if (rc == 0) {
            atomic_fetch_add(&g_spawned, 1);
            kids[nk++] = c;
        } else {
            free(c);
            atomic_fetch_add(&g_budget, 1); /* only spawned tasks count */
        }
        if (next_rand(&rng) % 4 == 0)
            pause_point(&rng);
        if (next_rand(&rng) % 40 == 0)
            weft_nursery_cancel(n);
    }
    pause_point(&rng);
    if (next_rand(&rng) % 8 == 0 && nk > 0) {
        /* A late sibling, spawned while the others run. */
        if (take_budget()) {
            node *c = new_child(me, &rng);
            int rc = weft_spawn(n, node_body, c);
            CHECK(rc == 0 || rc == -ECANCELED);
            if (rc == 0) {
                atomic_fetch_add(&g_spawned, 1);
                kids[nk++] = c;
            } else {
                free(c);
                atomic_fetch_add(&g_budget, 1);
            }
        }
    }

    int c = weft_nursery_close(n);
    bool any_failed = false;
    for (int i = 0; i < nk; i++) {
        CHECK_EQ(atomic_load(&kids[i]->runs), 1);
        int r = kids[i]->result;
        CHECK(r == 0 || r == -ECANCELED || r == -EPIPE);
        if (r == -EPIPE)
            any_failed = true;
    }
    if (any_failed) {
        CHECK_EQ(c, -EPIPE);
        atomic_fetch_add(&g_closes[3], 1);
    } else {
        switch (c) {
        case 0:
            atomic_fetch_add(&g_closes[0], 1);
            break;
        case -ECANCELED:
            CHECK(weft_cancelled()); /* by a scope outside n; sticky */
            atomic_fetch_add(&g_closes[1], 1);
            break;
        case -ETIMEDOUT:
            CHECK(has_deadline);
            atomic_fetch_add(&g_closes[2], 1);
            break;
        default:
            fprintf(stderr, "close returned %d with no failed child\n", c);
            CHECK(0);
        }
    }
    for (int i = 0; i < nk; i++)
        free(kids[i]);
    if (scoped)
        (void)weft_scope_exit(&s);

    if (c == -EPIPE)
        ret = -EPIPE; /* propagate the failure */
    else if (weft_cancelled() && next_rand(&rng) % 2)
        ret = -ECANCELED; /* still cancelled (s was not the cause): an echo */
    me->result = ret;
    return ret;
}

static int stress_main(void *arg)
{
    (void)arg;
    uint64_t rng = weft_seed() ^ 0x5eed;
    while (atomic_load(&g_budget) > 0) {
        weft_nursery *top;
        CHECK_OK(weft_nursery_open(&top));
        node *roots[TREES_AT_ONCE];
        int nr = 0;
        for (int i = 0; i < TREES_AT_ONCE && take_budget(); i++) {
            node *r = calloc(1, sizeof *r);
            CHECK(r);
            r->depth = 0;
            r->max_depth = 1 + (int)(next_rand(&rng) % MAX_DEPTH);
            r->seed = next_rand(&rng);
            r->result = 12345;
            int rc = weft_spawn(top, node_body, r);
            /* A root that already failed cancelled top. */
            CHECK(rc == 0 || (rc == -ECANCELED && nr > 0));
            if (rc != 0) {
                free(r);
                atomic_fetch_add(&g_budget, 1);
                break;
            }
            atomic_fetch_add(&g_spawned, 1);
            roots[nr++] = r;
        }
        int c = weft_nursery_close(top);
        bool any_failed = false, any_cancelled = false;
        for (int i = 0; i < nr; i++) {
            CHECK_EQ(atomic_load(&roots[i]->runs), 1);
            int r = roots[i]->result;
            CHECK(r == 0 || r == -EPIPE || r == -ECANCELED);
            any_failed |= r == -EPIPE;
            any_cancelled |= r == -ECANCELED;
            free(roots[i]);
        }
        /* Only a failure cancels the top nursery. */
        if (any_cancelled)
            CHECK(any_failed);
        CHECK_EQ(c, any_failed ? -EPIPE : 0);
        CHECK_EQ(atomic_load(&g_spawned), atomic_load(&g_ran));
    }
    return 0;
}

int main(void)
{
    test_watchdog(120);
    unsigned workers[] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        long total = test_scale(200000);
        atomic_store(&g_spawned, 0);
        atomic_store(&g_ran, 0);
        atomic_store(&g_budget, total);
        for (int k = 0; k < 4; k++)
            atomic_store(&g_closes[k], 0);
        int64_t t0 = weft_now();
        CHECK_OK(test_run(workers[i], stress_main, NULL));
        CHECK_EQ(atomic_load(&g_spawned), atomic_load(&g_ran));
        /* Spawns that failed gave their budget back, maybe after the loop
         * above saw it empty: nearly all of it was spent. */
        CHECK(atomic_load(&g_spawned) >= total - total / 10);
        fprintf(stderr,
                "workers=%u: %ld tasks, closes: %ld ok, %ld cancelled, %ld timed out, %ld failed; "
                "%.2f s\n",
                workers[i], atomic_load(&g_ran), atomic_load(&g_closes[0]),
                atomic_load(&g_closes[1]), atomic_load(&g_closes[2]), atomic_load(&g_closes[3]),
                (double)(weft_now() - t0) / 1e9);
    }
    return 0;
}
