/* Spawning: 1M tasks into one nursery; a 10-ary tree of 1M leaves where each
 * node sums what its children wrote; ids, names, worker ids, pinning and
 * task-local keys.
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>

static atomic_long counter;

static int leaf(void *arg)
{
    atomic_fetch_add_explicit(&counter, (long)(intptr_t)arg, memory_order_relaxed);
    return 0;
}

static int spawn_many(void *arg)
{
    long n = (long)(intptr_t)arg;
    weft_nursery *nu;
    CHECK_OK(weft_nursery_open(&nu));
    for (long i = 1; i <= n; i++)
        CHECK_OK(weft_spawn(nu, leaf, (void *)(intptr_t)i));
    CHECK_OK(weft_nursery_close(nu));
    CHECK_EQ(atomic_load(&counter), n * (n + 1) / 2);
    return 0;
}

/* The tree: a node with `leaves` leaves below it spawns 10 children (or is
 * a leaf), each child writes its total into the parent's array slot; the
 * parent sums after close. Plain ints: close gives the happens-before. */
typedef struct node {
    long leaves;
    long *out;
} node;

static int tree(void *arg)
{
    node *me = arg;
    if (me->leaves == 1) {
        *me->out = 1;
        return 0;
    }
    long got[10] = {0};
    node kids[10];
    weft_nursery *nu;
    CHECK_OK(weft_nursery_open(&nu));
    long per = me->leaves / 10, extra = me->leaves % 10;
    int k = 0;
    for (int i = 0; i < 10; i++) {
        long l = per + (i < extra ? 1 : 0);
        if (!l)
            continue;
        kids[k].leaves = l;
        kids[k].out = &got[k];
        CHECK_OK(weft_spawn(nu, tree, &kids[k]));
        k++;
    }
    CHECK_OK(weft_nursery_close(nu));
    long sum = 0;
    for (int i = 0; i < k; i++)
        sum += got[i];
    *me->out = sum;
    return 0;
}

static int tree_root(void *arg)
{
    long total = 0;
    node root = {(long)(intptr_t)arg, &total};
    CHECK_OK(tree(&root));
    CHECK_EQ(total, (long)(intptr_t)arg);
    return 0;
}

static weft_key key;
static atomic_int dtor_calls;
static void key_dtor(void *p)
{
    CHECK(p != NULL);
    atomic_fetch_add(&dtor_calls, 1);
}

static int ident_child(void *arg)
{
    uint64_t *ids = arg;
    uint64_t id = weft_task_id();
    CHECK(id != 0);
    CHECK(weft_in_task());
    CHECK(weft_worker_id() >= 0);
    CHECK(strcmp(weft_task_name(), "kid") == 0);
    weft_task_set_name("renamed-child-with-a-very-long-name-that-is-cut");
    CHECK_EQ(strlen(weft_task_name()), 31);
    CHECK(weft_task_get(key) == NULL);
    CHECK_OK(weft_task_set(key, &ids[0]));
    CHECK(weft_task_get(key) == &ids[0]);
    ids[1] = id;
    return 0;
}

static int pinned_child(void *arg)
{
    int w = weft_worker_id();
    for (int i = 0; i < 200; i++) {
        CHECK_OK(weft_yield());
        CHECK_OK(weft_sleep(1000));
        CHECK_EQ(weft_worker_id(), w);
    }
    (void)arg;
    return 0;
}

static int busy(void *arg)
{
    atomic_bool *stop = arg;
    while (!atomic_load(stop))
        CHECK_OK(weft_yield());
    return 0;
}

static int identity(void *arg)
{
    (void)arg;
    atomic_store(&dtor_calls, 0);
    CHECK(weft_task_id() != 0);
    CHECK_EQ(weft_task_set(key, NULL), 0);
    uint64_t ids[2] = {0, 0};
    weft_nursery *nu;
    CHECK_OK(weft_nursery_open(&nu));
    weft_spawn_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.name = "kid";
    CHECK_OK(weft_spawn_ex(nu, ident_child, ids, &attr));
    CHECK_OK(weft_nursery_close(nu));
    CHECK(ids[1] != 0 && ids[1] != weft_task_id());
    CHECK_EQ(atomic_load(&dtor_calls), 1);

    /* Pinned tasks stay on their worker while others keep it busy. */
    atomic_bool stop = false;
    CHECK_OK(weft_nursery_open(&nu));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(nu, busy, &stop));
    weft_nursery *pn;
    CHECK_OK(weft_nursery_open(&pn));
    memset(&attr, 0, sizeof attr);
    attr.pinned = true;
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn_ex(pn, pinned_child, NULL, &attr));
    CHECK_OK(weft_nursery_close(pn));
    atomic_store(&stop, true);
    CHECK_OK(weft_nursery_close(nu));

    /* weft_pin on the calling task. */
    weft_pin();
    weft_pin();
    int w = weft_worker_id();
    for (int i = 0; i < 100; i++) {
        CHECK_OK(weft_sleep(2000));
        CHECK_EQ(weft_worker_id(), w);
    }
    weft_unpin();
    weft_unpin();
    return 0;
}

static void *plain_thread(void *arg)
{
    (void)arg;
    CHECK(!weft_in_task());
    CHECK_EQ(weft_task_id(), 0);
    CHECK_EQ(weft_worker_id(), -1);
    CHECK(weft_task_name() == NULL);
    CHECK(weft_task_get(key) == NULL);
    CHECK_EQ(weft_task_set(key, &key), -EPERM);
    return NULL;
}

int main(void)
{
    test_watchdog(110);
    CHECK_OK(weft_key_create(&key, key_dtor));
    CHECK_EQ(weft_key_create(NULL, NULL), -EINVAL);
    pthread_t th;
    pthread_create(&th, NULL, plain_thread, NULL);
    pthread_join(th, NULL);

    long n = test_scale(1000000);
    for (unsigned w = 1; w <= 2; w++) {
        atomic_store(&counter, 0);
        CHECK_OK(test_run(w, spawn_many, (void *)(intptr_t)n));
        CHECK_OK(test_run(w, tree_root, (void *)(intptr_t)n));
        weft_stats st;
        weft_stats_get(&st);
        CHECK(st.tasks_spawned >= (uint64_t)n);
        CHECK_EQ(st.tasks_live, 0);
    }
    CHECK_OK(test_run(2, identity, NULL));
    CHECK_OK(test_run(4, identity, NULL));
    printf("sched_spawn: ok (%ld tasks)\n", n);
    return 0;
}
