/* Mutex, cond, semaphore, waitgroup. Mutual exclusion of a plain counter
 * (holders park and migrate while holding), trylock, the starvation guard,
 * unlock by a non-owner (reported, ignored), a bounded buffer on cond +
 * mutex without lost wakeups, broadcast, cond_wait_until timeouts, a
 * semaphore as a counting limiter, waitgroups (and their negative-counter
 * misuse), and the OS-thread bridge: plain pthreads and weft_blocking bodies
 * sharing a mutex with tasks, a semaphore ping-pong between a thread and a
 * task. On 1, 2 and 4 workers.
 * TIMEOUT: 120
 * LABELS: unit
 */
#include "test.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

static const unsigned worker_counts[] = {1, 2, 4};

/* ---- stderr capture (misuse reports) ----------------------------------------- */

typedef struct {
    int saved;
    FILE *f;
} capture;

static void capture_begin(capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    CHECK(c->f != NULL);
    c->saved = dup(2);
    CHECK(c->saved >= 0);
    CHECK(dup2(fileno(c->f), 2) == 2);
}

/* Restores stderr, echoes what was captured, and returns it in buf. */
static void capture_end(capture *c, char *buf, size_t n)
{
    fflush(stderr);
    CHECK(dup2(c->saved, 2) == 2);
    close(c->saved);
    rewind(c->f);
    size_t got = fread(buf, 1, n - 1, c->f);
    buf[got] = 0;
    fclose(c->f);
    fprintf(stderr, "(expected) %s", buf);
}

/* ---- 1. mutual exclusion ------------------------------------------------------- */

typedef struct {
    weft_mutex m;
    long counter; /* plain: guarded by m */
    int inside;   /* plain: guarded by m */
    long iters;
    atomic_long migrations;
    atomic_int next;
} excl;

static void critical(excl *e)
{
    CHECK_EQ(e->inside, 0);
    e->inside = 1;
    long c = e->counter;
    e->counter = c + 1;
    e->inside = 0;
}

static int excl_task(void *arg)
{
    excl *e = arg;
    int me = atomic_fetch_add(&e->next, 1);
    for (long i = 0; i < e->iters; i++) {
        if (me % 3 == 1 && (i & 1)) {
            /* trylock first, then the blocking lock */
            if (weft_mutex_trylock(&e->m) != 0)
                CHECK_OK(weft_mutex_lock(&e->m));
        } else {
            CHECK_OK(weft_mutex_lock(&e->m));
        }
        critical(e);
        if (i % 64 == 0) {
            /* Park while holding it; may resume on another worker. */
            int before = weft_worker_id();
            long held = e->counter;
            CHECK_OK(i % 128 ? weft_yield() : weft_sleep(0));
            CHECK_EQ(e->inside, 0);
            CHECK_EQ(e->counter, held); /* nobody got in meanwhile */
            if (weft_worker_id() != before)
                atomic_fetch_add(&e->migrations, 1);
        }
        weft_mutex_unlock(&e->m);
        if (i % 16 == 0)
            CHECK_OK(weft_checkpoint());
    }
    return 0;
}

static int excl_root(void *arg)
{
    excl *e = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 8; i++)
        CHECK_OK(weft_spawn(n, excl_task, e));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static void test_exclusion(unsigned workers)
{
    excl *e = calloc(1, sizeof *e);
    CHECK(e != NULL);
    weft_mutex_init(&e->m);
    e->iters = test_scale(40000);
    int64_t t0 = weft_now();
    CHECK_OK(test_run(workers, excl_root, e));
    double secs = (double)(weft_now() - t0) / 1e9;
    CHECK_EQ(e->counter, 8 * e->iters);
    CHECK_OK(weft_mutex_trylock(&e->m)); /* left unlocked */
    weft_mutex_unlock(&e->m);
    weft_mutex_destroy(&e->m);
    printf("sync_mutex: exclusion, %u workers: %.2f s, %ld migrations while holding\n", workers,
           secs, atomic_load(&e->migrations));
    free(e);
}

/* ---- 2. trylock, non-owner unlock ----------------------------------------------- */

typedef struct {
    weft_mutex *m;
    int result;
    int step;
} other_arg;

static int other_trylock(void *arg)
{
    other_arg *o = arg;
    o->result = weft_mutex_trylock(o->m);
    return 0;
}

static int other_unlock(void *arg)
{
    other_arg *o = arg;
    weft_mutex_unlock(o->m); /* not the owner */
    o->result = weft_mutex_trylock(o->m);
    return 0;
}

static void run_child(weft_fn fn, void *arg)
{
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, fn, arg));
    CHECK_OK(weft_nursery_close(n));
}

static int trylock_root(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    other_arg o = {&m, 1, 0};
    CHECK_OK(weft_mutex_trylock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY); /* the caller holds it */
    run_child(other_trylock, &o);
    CHECK_EQ(o.result, -EBUSY); /* another task */
    weft_mutex_unlock(&m);
    capture cap;
    char buf[2048];
    capture_begin(&cap);
    run_child(other_trylock, &o);
    capture_end(&cap, buf, sizeof buf);
    CHECK_EQ(o.result, 0);
    /* The child returned holding it: reported as misuse; the mutex stays
     * held by it, so nobody else can take it. */
    CHECK(strstr(buf, "misuse") != NULL);
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_init(&m);

    /* Unlock by a non-owner: reported, and ignored. */
    CHECK_OK(weft_mutex_lock(&m));
    capture_begin(&cap);
    run_child(other_unlock, &o);
    capture_end(&cap, buf, sizeof buf);
    CHECK(strstr(buf, "misuse") != NULL);
    CHECK_EQ(o.result, -EBUSY); /* still held by us */
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_unlock(&m);
    CHECK_OK(weft_mutex_trylock(&m));
    weft_mutex_unlock(&m);
    /* Unlock of an unlocked mutex: reported, ignored; still usable. */
    capture_begin(&cap);
    weft_mutex_unlock(&m);
    capture_end(&cap, buf, sizeof buf);
    CHECK(strstr(buf, "misuse") != NULL);
    CHECK_OK(weft_mutex_lock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_unlock(&m);
    weft_mutex_destroy(&m);
    return 0;
}

/* ---- 3. starvation guard ---------------------------------------------------------- */

/* Hammer modes: 0 a task that re-locks at once but passes a checkpoint while
 * holding the mutex (so its worker can run the waiter, which always finds
 * the mutex held: only the hand-off mode lets it in); 1 a plain thread in a
 * tight loop; 2 a task in a tight loop that never parks or yields. */
enum { HAMMER_TASK_CHECKPOINT, HAMMER_THREAD, HAMMER_TASK_TIGHT };

typedef struct {
    weft_mutex m;
    int mode;
    atomic_int b_done;
    atomic_long a_progress; /* rounds so far, for the waiter to start mid-flight */
    long a_rounds;
    int64_t b_latency;
    long plain;
} starve;

static void hammer(starve *s)
{
    /* Gives up after a while so that a failure is a clean CHECK below: well
     * after the waiter's liveness bound, so that a starved waiter shows. */
    int64_t give_up = weft_now() + 2 * PROMPT_NS;
    while (!atomic_load_explicit(&s->b_done, memory_order_relaxed)) {
        CHECK_OK(weft_mutex_lock(&s->m));
        s->plain++;
        for (volatile int i = 0; i < 200; i++) {
        }
        if (s->mode == HAMMER_TASK_CHECKPOINT)
            CHECK_OK(weft_checkpoint());
        weft_mutex_unlock(&s->m);
        s->a_rounds++;
        atomic_store_explicit(&s->a_progress, s->a_rounds, memory_order_relaxed);
        if ((s->a_rounds & 1023) == 0 && weft_now() > give_up)
            break;
    }
}

static int hammer_task(void *arg)
{
    hammer(arg);
    return 0;
}

static void *hammer_thread(void *arg)
{
    hammer(arg);
    return NULL;
}

static int starve_waiter(void *arg)
{
    starve *s = arg;
    while (atomic_load_explicit(&s->a_progress, memory_order_relaxed) < 1000)
        CHECK_OK(weft_yield());
    int64_t t0 = weft_now();
    CHECK_OK(weft_mutex_lock(&s->m));
    s->b_latency = weft_now() - t0;
    s->plain++;
    weft_mutex_unlock(&s->m);
    atomic_store(&s->b_done, 1);
    return 0;
}

static int join_fn(void *arg)
{
    CHECK_OK(pthread_join(*(pthread_t *)arg, NULL));
    return 0;
}

static const char *const hammer_names[] = {"a task with checkpoints", "a thread",
                                           "a task, tight loop"};

static int starve_root(void *arg)
{
    starve *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->mode = (int)(intptr_t)arg;
    weft_mutex_init(&s->m);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    pthread_t th;
    if (s->mode == HAMMER_THREAD)
        CHECK_OK(pthread_create(&th, NULL, hammer_thread, s));
    else
        CHECK_OK(weft_spawn(n, hammer_task, s));
    CHECK_OK(weft_spawn(n, starve_waiter, s));
    CHECK_OK(weft_nursery_close(n));
    if (s->mode == HAMMER_THREAD)
        CHECK_OK(weft_blocking(join_fn, &th));
    printf("sync_mutex: starvation, %s hammers: the waiter got the mutex after %.3f ms, "
           "%ld hammer rounds\n",
           hammer_names[s->mode], (double)s->b_latency / 1e6, s->a_rounds);
    fflush(stdout);
    CHECK(s->b_latency < PROMPT_NS); /* liveness: not starved until the hammer gave up */
    CHECK_EQ(s->plain, s->a_rounds + 1);
    weft_mutex_destroy(&s->m);
    free(s);
    return 0;
}

/* ---- 4. cond: bounded buffer, broadcast, timeouts ---------------------------------- */

enum { BB_CAP = 8 };

typedef struct {
    weft_mutex m;
    weft_cond not_full, not_empty;
    long buf[BB_CAP];
    int head, len;
    int producers_left;
    long per, total;
    atomic_int next;
    atomic_uchar *seen;
    atomic_long got;
    atomic_ullong sum;
} bbuf;

static void bb_produce(bbuf *b, int p)
{
    for (long i = 0; i < b->per; i++) {
        long v = p * b->per + i;
        CHECK_OK(weft_mutex_lock(&b->m));
        while (b->len == BB_CAP)
            CHECK_OK(weft_cond_wait(&b->not_full, &b->m));
        b->buf[(b->head + b->len) % BB_CAP] = v;
        b->len++;
        /* Alternate signal and broadcast. */
        if (i & 1)
            weft_cond_signal(&b->not_empty);
        else
            weft_cond_broadcast(&b->not_empty);
        weft_mutex_unlock(&b->m);
    }
    CHECK_OK(weft_mutex_lock(&b->m));
    if (--b->producers_left == 0)
        weft_cond_broadcast(&b->not_empty);
    weft_mutex_unlock(&b->m);
}

static void bb_consume(bbuf *b)
{
    for (;;) {
        CHECK_OK(weft_mutex_lock(&b->m));
        while (b->len == 0 && b->producers_left > 0)
            CHECK_OK(weft_cond_wait(&b->not_empty, &b->m));
        if (b->len == 0) {
            weft_mutex_unlock(&b->m);
            return;
        }
        long v = b->buf[b->head];
        b->head = (b->head + 1) % BB_CAP;
        b->len--;
        weft_cond_signal(&b->not_full);
        weft_mutex_unlock(&b->m);
        CHECK(v >= 0 && v < b->total);
        CHECK_EQ(atomic_fetch_add(&b->seen[v], 1), 0);
        atomic_fetch_add(&b->got, 1);
        atomic_fetch_add(&b->sum, (unsigned long long)v);
    }
}

static int bb_producer(void *arg)
{
    bbuf *b = arg;
    bb_produce(b, atomic_fetch_add(&b->next, 1));
    return 0;
}

static int bb_consumer(void *arg)
{
    bb_consume(arg);
    return 0;
}

static void *bb_consumer_thread(void *arg)
{
    bb_consume(arg);
    return NULL;
}

static int bb_root(void *arg)
{
    bbuf *b = arg;
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, bb_consumer_thread, b)); /* a plain thread too */
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_spawn(n, bb_consumer, b));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, bb_producer, b));
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_blocking(join_fn, &th));
    return 0;
}

static void test_bounded_buffer(unsigned workers)
{
    bbuf *b = calloc(1, sizeof *b);
    CHECK(b != NULL);
    weft_mutex_init(&b->m);
    weft_cond_init(&b->not_full);
    weft_cond_init(&b->not_empty);
    b->producers_left = 4;
    b->per = test_scale(25000);
    b->total = 4 * b->per;
    b->seen = calloc((size_t)b->total, 1);
    CHECK(b->seen != NULL);
    CHECK_OK(test_run(workers, bb_root, b));
    CHECK_EQ(atomic_load(&b->got), b->total);
    CHECK_EQ(atomic_load(&b->sum),
             (unsigned long long)(b->total - 1) * (unsigned long long)b->total / 2);
    for (long i = 0; i < b->total; i++)
        CHECK_EQ(atomic_load(&b->seen[i]), 1);
    CHECK_EQ(b->len, 0);
    weft_cond_destroy(&b->not_full);
    weft_cond_destroy(&b->not_empty);
    weft_mutex_destroy(&b->m);
    free(b->seen);
    free(b);
}

enum { BC_N = 24 };

typedef struct {
    weft_mutex m;
    weft_cond c;
    int waiting, woke; /* guarded by m */
    bool go;           /* guarded by m */
} bcast;

static int bc_waiter(void *arg)
{
    bcast *b = arg;
    CHECK_OK(weft_mutex_lock(&b->m));
    b->waiting++;
    int64_t dl = weft_now() + PROMPT_NS; /* liveness */
    while (!b->go) {
        int r = weft_cond_wait_until(&b->c, &b->m, dl);
        CHECK(r != -ETIMEDOUT); /* the broadcast missed this waiter */
        CHECK_OK(r);
    }
    b->woke++;
    weft_mutex_unlock(&b->m);
    return 0;
}

static void *bc_waiter_thread(void *arg)
{
    bc_waiter(arg);
    return NULL;
}

static int broadcast_root(void *arg)
{
    (void)arg;
    bcast b;
    memset(&b, 0, sizeof b);
    weft_mutex_init(&b.m);
    weft_cond_init(&b.c);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, bc_waiter_thread, &b));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < BC_N - 1; i++)
        CHECK_OK(weft_spawn(n, bc_waiter, &b));
    for (int64_t give_up = weft_now() + PROMPT_NS;;) {
        CHECK(weft_now() < give_up); /* liveness: every waiter gets there */
        CHECK_OK(weft_mutex_lock(&b.m));
        if (b.waiting == BC_N)
            break; /* all of them are in cond_wait: queued before unlocking */
        weft_mutex_unlock(&b.m);
        CHECK_OK(weft_sleep(test_ms(1)));
    }
    b.go = true;
    weft_cond_broadcast(&b.c); /* one broadcast wakes every waiter */
    weft_mutex_unlock(&b.m);
    CHECK_OK(weft_nursery_close(n));
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK_EQ(b.woke, BC_N);
    weft_cond_destroy(&b.c);
    weft_mutex_destroy(&b.m);
    return 0;
}

typedef struct {
    weft_mutex *m;
    atomic_int tried;
    int64_t got_at;
} locker_arg;

static int late_locker(void *arg)
{
    locker_arg *l = arg;
    atomic_store(&l->tried, 1);
    CHECK_OK(weft_mutex_lock(l->m));
    l->got_at = weft_now();
    weft_mutex_unlock(l->m);
    return 0;
}

static int cond_timeout_root(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    CHECK_OK(weft_mutex_lock(&m));
    int64_t dl = weft_now() + test_ms(20);
    CHECK_EQ(weft_cond_wait_until(&c, &m, dl), -ETIMEDOUT);
    CHECK(weft_now() >= dl);
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY); /* held again */
    /* Another task cannot get in until we unlock. */
    locker_arg l = {&m, 0, 0};
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, late_locker, &l));
    CHECK_SOON(atomic_load(&l.tried));
    CHECK_OK(weft_sleep(test_ms(5))); /* it is most likely parked in lock by now */
    int64_t unlocked_at = weft_now();
    weft_mutex_unlock(&m);
    CHECK_OK(weft_nursery_close(n));
    CHECK(l.got_at >= unlocked_at);
    /* A past deadline: -ETIMEDOUT at once, holding the mutex. */
    CHECK_OK(weft_mutex_lock(&m));
    int64_t t0 = weft_now();
    CHECK_EQ(weft_cond_wait_until(&c, &m, t0 - 1), -ETIMEDOUT);
    CHECK_EQ(weft_cond_wait_until(&c, &m, 0), -ETIMEDOUT);
    CHECK(weft_now() - t0 < PROMPT_NS); /* at once: not at some later wakeup */
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_unlock(&m);
    weft_cond_destroy(&c);
    weft_mutex_destroy(&m);
    return 0;
}

/* ---- 5. semaphore ------------------------------------------------------------------ */

enum { SEM_K = 3, SEM_TASKS = 16 };

typedef struct {
    weft_sem s;
    atomic_int inside, max_inside;
    long rounds;
    atomic_long entries;
    weft_waitgroup started;
} limiter;

static int limited(void *arg)
{
    limiter *l = arg;
    /* Everybody starts before anybody loops: tasks that keep yielding would
     * otherwise keep unstarted siblings queued behind them. */
    weft_waitgroup_done(&l->started);
    CHECK_OK(weft_waitgroup_wait(&l->started));
    for (long i = 0; i < l->rounds; i++) {
        if (i % 4 == 3) {
            if (weft_sem_tryacquire(&l->s) != 0)
                CHECK_OK(weft_sem_acquire(&l->s));
        } else {
            CHECK_OK(weft_sem_acquire(&l->s));
        }
        int now = atomic_fetch_add(&l->inside, 1) + 1;
        CHECK(now <= SEM_K);
        int mx = atomic_load(&l->max_inside);
        while (now > mx && !atomic_compare_exchange_weak(&l->max_inside, &mx, now)) {
        }
        atomic_fetch_add(&l->entries, 1);
        CHECK_OK(i % 8 ? weft_yield() : weft_sleep(0));
        atomic_fetch_sub(&l->inside, 1);
        weft_sem_release(&l->s);
    }
    return 0;
}

static int limiter_root(void *arg)
{
    limiter *l = arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < SEM_TASKS; i++)
        CHECK_OK(weft_spawn(n, limited, l));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

static void test_limiter(unsigned workers)
{
    limiter *l = calloc(1, sizeof *l);
    CHECK(l != NULL);
    weft_sem_init(&l->s, SEM_K);
    weft_waitgroup_init(&l->started);
    weft_waitgroup_add(&l->started, SEM_TASKS);
    l->rounds = test_scale(4000);
    CHECK_OK(test_run(workers, limiter_root, l));
    CHECK_EQ(atomic_load(&l->entries), SEM_TASKS * l->rounds);
    CHECK_EQ(atomic_load(&l->inside), 0);
    /* How many were inside at once depends on timing: a permit handed to a
     * woken waiter is in transit until that waiter runs. Only the bound is
     * asserted here; all_holders_root shows all K permits held at once, and
     * the count check below shows no permit was lost. */
    CHECK(atomic_load(&l->max_inside) >= 1 && atomic_load(&l->max_inside) <= SEM_K);
    /* The count is back at its initial value. */
    for (int i = 0; i < SEM_K; i++)
        CHECK_OK(weft_sem_tryacquire(&l->s));
    CHECK_EQ(weft_sem_tryacquire(&l->s), -EAGAIN);
    weft_sem_destroy(&l->s);
    free(l);
}

/* K tasks hold the K permits at the same time: each acquires, then waits
 * for all K to have acquired. One more acquirer cannot get in meanwhile. */
typedef struct {
    weft_sem s;
    weft_waitgroup holding, checked;
} all_holders;

static int all_holder(void *arg)
{
    all_holders *a = arg;
    CHECK_OK(weft_sem_acquire(&a->s));
    weft_waitgroup_done(&a->holding);
    CHECK_OK(weft_waitgroup_wait(&a->checked));
    weft_sem_release(&a->s);
    return 0;
}

static int all_holders_root(void *arg)
{
    (void)arg;
    all_holders a;
    weft_sem_init(&a.s, SEM_K);
    weft_waitgroup_init(&a.holding);
    weft_waitgroup_init(&a.checked);
    weft_waitgroup_add(&a.holding, SEM_K);
    weft_waitgroup_add(&a.checked, 1);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < SEM_K; i++)
        CHECK_OK(weft_spawn(n, all_holder, &a));
    CHECK_OK(weft_waitgroup_wait(&a.holding));
    CHECK_EQ(weft_sem_tryacquire(&a.s), -EAGAIN);
    weft_waitgroup_done(&a.checked);
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < SEM_K; i++)
        CHECK_OK(weft_sem_tryacquire(&a.s));
    CHECK_EQ(weft_sem_tryacquire(&a.s), -EAGAIN);
    weft_sem_destroy(&a.s);
    weft_waitgroup_destroy(&a.holding);
    weft_waitgroup_destroy(&a.checked);
    return 0;
}

/* Release happens-before the acquire it satisfies: plain data handed over. */
typedef struct {
    weft_sem full, empty;
    long slot; /* plain */
    long n;
} handoff;

static int ho_producer(void *arg)
{
    handoff *h = arg;
    for (long i = 0; i < h->n; i++) {
        CHECK_OK(weft_sem_acquire(&h->empty));
        h->slot = i * 7;
        weft_sem_release(&h->full);
    }
    return 0;
}

static int ho_consumer(void *arg)
{
    handoff *h = arg;
    for (long i = 0; i < h->n; i++) {
        CHECK_OK(weft_sem_acquire(&h->full));
        CHECK_EQ(h->slot, i * 7);
        weft_sem_release(&h->empty);
    }
    return 0;
}

static int handoff_root(void *arg)
{
    (void)arg;
    handoff h;
    weft_sem_init(&h.full, 0);
    weft_sem_init(&h.empty, 1);
    h.slot = -1;
    h.n = test_scale(50000);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ho_consumer, &h));
    CHECK_OK(weft_spawn(n, ho_producer, &h));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(weft_sem_tryacquire(&h.full), -EAGAIN);
    CHECK_OK(weft_sem_tryacquire(&h.empty));
    return 0;
}

/* ---- 6. waitgroup ------------------------------------------------------------------- */

enum { WG_WORKERS = 32, WG_WAITERS = 4 };

typedef struct {
    weft_waitgroup wg;
    long results[WG_WORKERS]; /* plain: written before done */
    atomic_int next;
    atomic_int waiters_ok;
} wgset;

static int wg_worker(void *arg)
{
    wgset *w = arg;
    int i = atomic_fetch_add(&w->next, 1);
    CHECK_OK(weft_sleep(i % 3 ? 0 : 100000));
    w->results[i] = 1000 + i;
    weft_waitgroup_done(&w->wg);
    return 0;
}

static int wg_waiter(void *arg)
{
    wgset *w = arg;
    CHECK_OK(weft_waitgroup_wait(&w->wg));
    for (int i = 0; i < WG_WORKERS; i++)
        CHECK_EQ(w->results[i], 1000 + i); /* done happens-before the wait's end */
    atomic_fetch_add(&w->waiters_ok, 1);
    return 0;
}

static int waitgroup_root(void *arg)
{
    (void)arg;
    wgset *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    weft_waitgroup_init(&w->wg);
    CHECK_OK(weft_waitgroup_wait(&w->wg)); /* zero: at once */
    for (int round = 0; round < 3; round++) {
        memset(w->results, 0, sizeof w->results);
        atomic_store(&w->next, 0);
        atomic_store(&w->waiters_ok, 0);
        weft_waitgroup_add(&w->wg, WG_WORKERS / 2);
        weft_waitgroup_add(&w->wg, WG_WORKERS - WG_WORKERS / 2);
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        for (int i = 0; i < WG_WAITERS; i++)
            CHECK_OK(weft_spawn(n, wg_waiter, w));
        for (int i = 0; i < WG_WORKERS; i++)
            CHECK_OK(weft_spawn(n, wg_worker, w));
        CHECK_OK(weft_waitgroup_wait(&w->wg));
        for (int i = 0; i < WG_WORKERS; i++)
            CHECK_EQ(w->results[i], 1000 + i);
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&w->waiters_ok), WG_WAITERS);
        CHECK_OK(weft_waitgroup_wait(&w->wg)); /* still zero */
    }
    /* A negative counter: reported, reset to 0; the group stays usable. */
    capture cap;
    char buf[2048];
    capture_begin(&cap);
    weft_waitgroup_done(&w->wg);
    capture_end(&cap, buf, sizeof buf);
    CHECK(strstr(buf, "misuse") != NULL);
    CHECK_OK(weft_waitgroup_wait(&w->wg));
    weft_waitgroup_add(&w->wg, 1);
    atomic_store(&w->next, 0);
    atomic_store(&w->waiters_ok, 0);
    for (int i = 0; i < WG_WORKERS; i++)
        w->results[i] = 1000 + i;
    w->results[0] = 0;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, wg_waiter, w));
    CHECK_OK(weft_sleep(test_ms(5)));
    CHECK_EQ(atomic_load(&w->waiters_ok), 0); /* 1, not 2: still waiting */
    CHECK_OK(weft_spawn(n, wg_worker, w));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&w->waiters_ok), 1);
    capture_begin(&cap);
    weft_waitgroup_add(&w->wg, -5);
    capture_end(&cap, buf, sizeof buf);
    CHECK(strstr(buf, "misuse") != NULL);
    CHECK_OK(weft_waitgroup_wait(&w->wg));
    weft_waitgroup_destroy(&w->wg);
    free(w);
    return 0;
}

/* ---- 7. the OS-thread bridge --------------------------------------------------------- */

typedef struct {
    excl e;
    long thread_iters;
} mixed;

static void *excl_thread(void *arg)
{
    mixed *x = arg;
    CHECK(!weft_in_task());
    for (long i = 0; i < x->thread_iters; i++) {
        CHECK_OK(weft_mutex_lock(&x->e.m));
        critical(&x->e);
        if (i % 256 == 0)
            sched_yield(); /* a thread holding it while descheduled */
        weft_mutex_unlock(&x->e.m);
    }
    return NULL;
}

static int excl_blocking_body(void *arg)
{
    excl_thread(arg);
    return 0;
}

static int excl_blocking_task(void *arg) { return weft_blocking(excl_blocking_body, arg); }

static int mixed_root(void *arg)
{
    mixed *x = arg;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(pthread_create(&th[i], NULL, excl_thread, x));
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, excl_blocking_task, x));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn(n, excl_task, &x->e));
    CHECK_OK(weft_nursery_close(n));
    for (int i = 0; i < 2; i++)
        CHECK_OK(weft_blocking(join_fn, &th[i]));
    return 0;
}

static void test_mixed(unsigned workers)
{
    mixed *x = calloc(1, sizeof *x);
    CHECK(x != NULL);
    weft_mutex_init(&x->e.m);
    x->e.iters = test_scale(20000);
    x->thread_iters = test_scale(20000);
    CHECK_OK(test_run(workers, mixed_root, x));
    CHECK_EQ(x->e.counter, 4 * x->e.iters + 3 * x->thread_iters);
    weft_mutex_destroy(&x->e.m);
    free(x);
}

typedef struct {
    weft_sem to_thread, to_task;
    long n;
    long plain; /* handed back and forth */
} pingpong;

static void *pp_thread(void *arg)
{
    pingpong *p = arg;
    for (long i = 0; i < p->n; i++) {
        CHECK_OK(weft_sem_acquire(&p->to_thread)); /* released by the task */
        CHECK_EQ(p->plain, 2 * i + 1);
        p->plain++;
        weft_sem_release(&p->to_task);
    }
    return NULL;
}

static int pingpong_root(void *arg)
{
    (void)arg;
    pingpong p;
    memset(&p, 0, sizeof p);
    weft_sem_init(&p.to_thread, 0);
    weft_sem_init(&p.to_task, 0);
    p.n = test_scale(20000);
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, pp_thread, &p));
    for (long i = 0; i < p.n; i++) {
        CHECK_EQ(p.plain, 2 * i);
        p.plain++;
        weft_sem_release(&p.to_thread);
        CHECK_OK(weft_sem_acquire(&p.to_task)); /* released by the thread */
    }
    CHECK_OK(weft_blocking(join_fn, &th));
    CHECK_EQ(p.plain, 2 * p.n);
    CHECK_EQ(weft_sem_tryacquire(&p.to_task), -EAGAIN);
    CHECK_EQ(weft_sem_tryacquire(&p.to_thread), -EAGAIN);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static double now_s(void) { return (double)weft_now() / 1e9; }

#define PHASE(name, ...)                                                                           \
    do {                                                                                           \
        double t0_ = now_s();                                                                      \
        __VA_ARGS__;                                                                               \
        printf("sync_mutex: %-18s %.2f s\n", name, now_s() - t0_);                                 \
        fflush(stdout);                                                                            \
    } while (0)

int main(void)
{
    test_watchdog(115);
    /* No runtime: the objects work on the main thread. */
    weft_mutex m = WEFT_MUTEX_INIT;
    CHECK_OK(weft_mutex_lock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
    weft_mutex_unlock(&m);
    weft_sem s = WEFT_SEM_INIT;
    CHECK_EQ(weft_sem_tryacquire(&s), -EAGAIN);
    weft_sem_release(&s);
    CHECK_OK(weft_sem_acquire(&s));

    PHASE("exclusion", {
        for (size_t w = 0; w < 3; w++)
            test_exclusion(worker_counts[w]);
    });
    PHASE("trylock, non-owner", CHECK_OK(test_run(2, trylock_root, NULL)));
    PHASE("starvation", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(
                test_run(worker_counts[w], starve_root, (void *)(intptr_t)HAMMER_TASK_CHECKPOINT));
            CHECK_OK(test_run(worker_counts[w], starve_root, (void *)(intptr_t)HAMMER_THREAD));
        }
    });
    PHASE("bounded buffer", {
        for (size_t w = 0; w < 3; w++)
            test_bounded_buffer(worker_counts[w]);
    });
    PHASE("broadcast, timeout", {
        for (size_t w = 0; w < 3; w++) {
            CHECK_OK(test_run(worker_counts[w], broadcast_root, NULL));
            CHECK_OK(test_run(worker_counts[w], cond_timeout_root, NULL));
        }
    });
    PHASE("semaphore", {
        for (size_t w = 0; w < 3; w++) {
            test_limiter(worker_counts[w]);
            CHECK_OK(test_run(worker_counts[w], all_holders_root, NULL));
            CHECK_OK(test_run(worker_counts[w], handoff_root, NULL));
        }
    });
    PHASE("waitgroup", {
        for (size_t w = 0; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], waitgroup_root, NULL));
    });
    PHASE("thread bridge", {
        for (size_t w = 0; w < 3; w++) {
            test_mixed(worker_counts[w]);
            CHECK_OK(test_run(worker_counts[w], pingpong_root, NULL));
        }
    });
    /* Last: a task that never parks hammers one worker; the waiter runs on
     * another one (1 worker would leave it none). */
    PHASE("starvation, tight", {
        for (size_t w = 1; w < 3; w++)
            CHECK_OK(test_run(worker_counts[w], starve_root, (void *)(intptr_t)HAMMER_TASK_TIGHT));
    });
    printf("sync_mutex: ok\n");
    return 0;
}
