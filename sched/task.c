/*
 * task.c - task control blocks, inline runs, task exit, and the small
 * per-task calls (ids, names, pinning, task locals, yield, checkpoint).
 *
 * Control blocks are type-stable: they come from slabs that live until the
 * runtime ends and are recycled through per-worker caches. A stale pointer
 * held by a timer or a losing waker therefore always points at some task
 * block, and the generation in t->wstate makes its CAS fail. A block is
 * recycled when the task finishes: its one spawn entry was consumed before
 * it started (weft__task_release).
 */
#include "internal.h"

#include <sched.h>

#define SLAB_TASKS 64
#define TCB_CACHE_MAX 512
#define KEYS_MAX 1024
#define ID_BLOCK 1024

static _Atomic uint64_t next_id = 1;
static atomic_uint nkeys;
static void (*key_dtor[KEYS_MAX])(void *);

static void slab_new(weft__worker *w)
{
    weft__rt *rt = w->rt;
    weft__task *slab = aligned_alloc(WEFT__CACHELINE, SLAB_TASKS * sizeof(weft__task));
    if (!slab)
        return;
    /* Only the fields before ctx: other threads may read them at any time
     * (stale wakers, the stuck report), so they must hold defined values
     * before the block is first handed out. weft__task_alloc clears the
     * rest at every allocation; clearing it here too wrote every new block
     * twice. weft__task_free_all frees keys_ext and own of every block,
     * so those start NULL too. */
    for (int i = 0; i < SLAB_TASKS; i++) {
        memset(&slab[i], 0, offsetof(weft__task, ctx));
        slab[i].keys_ext = NULL;
        slab[i].own = NULL;
    }
    pthread_mutex_lock(&rt->pool_lock);
    if (rt->nslabs == rt->slabs_cap) {
        size_t nc = rt->slabs_cap ? rt->slabs_cap * 2 : 64;
        void **na = realloc(rt->slabs, nc * sizeof *na);
        if (!na) {
            pthread_mutex_unlock(&rt->pool_lock);
            free(slab);
            return;
        }
        rt->slabs = na;
        rt->slabs_cap = nc;
    }
    rt->slabs[rt->nslabs++] = slab;
    pthread_mutex_unlock(&rt->pool_lock);
    for (int i = SLAB_TASKS - 1; i >= 0; i--) {
        weft__hb_release(&slab[i]); /* TSan: the memset before any use */
        slab[i].next = w->tcb_cache;
        w->tcb_cache = &slab[i];
    }
    w->tcb_cache_n += SLAB_TASKS;
}

/* The shared free list (rt->tcb_global) is a list of batches: the blocks
 * of a batch are linked through t->next, and its first block holds the
 * link to the next batch and the batch's length. Free blocks are scratch
 * from ctx on (weft__task_alloc clears it), so two fields there serve. */
#define BATCH_NEXT(t) ((t)->sib_prev)
#define BATCH_N(t) ((t)->result)

static void batch_push(weft__rt *rt, weft__task *head, int n)
{
    BATCH_N(head) = n;
    pthread_mutex_lock(&rt->pool_lock);
    BATCH_NEXT(head) = rt->tcb_global;
    rt->tcb_global = head;
    pthread_mutex_unlock(&rt->pool_lock);
}

/* Asks for the lines of a free block that weft__task_alloc writes. */
static inline void prefetch_block(const weft__task *t)
{
    const char *p = (const char *)t;
    for (size_t off = 0; off < sizeof *t; off += WEFT__CACHELINE)
        __builtin_prefetch(p + off, 1);
}

/* Gives the fields from ctx on the values a new task starts with. Field by
 * field, not a memset of the 530 bytes: the fields that every path writes
 * before it reads them keep their old contents (ctx, fn and arg, result,
 * the wait and timer records, the queue links, id, the scope slots in
 * own_inline, the rest of name), and the fields spawn sets anyway are set
 * there. A memset took 12% of fork-join's cost per task (the `rep stos` and
 * the lines it writes; fib30c12_cost A/B, 8 rounds: 0.88). own and
 * keys_ext are NULL on every free block (tcb_free, slab_new). A checked
 * build first fills the block with a pattern, so that a field left off
 * this list reads as garbage in the sanitizer tests instead of as the last
 * task's value. */
static void task_reset(weft__task *t)
{
#ifdef WEFT__CHECKED
    void *own = t->own, **keys_ext = t->keys_ext;
    memset(&t->ctx, 0xa5, sizeof *t - offsetof(weft__task, ctx));
    t->own = own;
    t->keys_ext = keys_ext;
#endif
    t->stack = NULL;
    t->stack_host = NULL;
    t->stk_lo = NULL;
    t->stk_size = 0;
    t->asan_fake = NULL;
    t->tsan_fiber = NULL;
    t->eh.caught = NULL;
    t->eh.uncaught = 0;
    t->stack_req = 0;
    t->pin_home = NULL;
    atomic_store_explicit(&t->wait_what, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->wait_obj, NULL, memory_order_relaxed);
    t->wait_dl_scope = NULL;
    t->timer.index = -1;
    atomic_store_explicit(&t->timer.owner, NULL, memory_order_relaxed);
    t->worker = NULL;
    t->pinned_to = NULL;
    t->pin_count = 0;
    t->locks_held = 0;
    t->budget = weft__coop_refill;
    t->cgen = 0;
    t->c_cancelled = false;
    t->c_deadline = WEFT_FOREVER;
    t->c_dl_scope = NULL;
    atomic_store_explicit(&t->lock.v, 0, memory_order_relaxed);
    t->cs_nurseries = 0;
    t->own_n = 0;
    t->own_cap = 0;
    t->entry_frame = NULL;
    t->sib_prev = t->sib_next = NULL;
    t->start_prev = t->start_next = NULL;
    t->starter = NULL;
    t->started_called = false;
    t->starting_head = NULL;
    t->arg_start_rec = NULL;
    t->spawn_file = NULL;
    t->spawn_line = 0;
    for (int i = 0; i < WEFT__INLINE_KEYS; i++)
        t->keys_inline[i] = NULL;
    t->keys_ext_n = 0;
    t->name[0] = 0;
}

weft__task *weft__task_alloc(weft__worker *w)
{
    if (WEFT__UNLIKELY(!w->tcb_cache)) {
        /* One batch of the shared list, taken whole: no walk of its blocks
         * under the lock. They were mostly freed on another worker, so
         * each would be a cache miss there, one after another. */
        weft__rt *rt = w->rt;
        pthread_mutex_lock(&rt->pool_lock);
        weft__task *b = rt->tcb_global;
        if (b) {
            rt->tcb_global = BATCH_NEXT(b);
            w->tcb_cache = b;
            w->tcb_cache_n = (unsigned)BATCH_N(b);
        }
        pthread_mutex_unlock(&rt->pool_lock);
        if (!w->tcb_cache)
            slab_new(w);
        if (!w->tcb_cache)
            return NULL;
    }
    weft__task *t = w->tcb_cache;
    w->tcb_cache = t->next;
    w->tcb_cache_n--;
    /* The next block's lines are coming while this spawn goes on: after a
     * refill they are on the worker that freed them. */
    if (w->tcb_cache)
        prefetch_block(w->tcb_cache);
    /* TSan: the record's last user happens-before its reuse (tcb_free). */
    weft__hb_acquire(t);
    /* The atomics at the front are reset one by one (other threads may read
     * them: a stale waker, a mutex's spin check); wstate keeps its
     * generation so that stale tokens never match. */
    task_reset(t);
    atomic_store_explicit(&t->state, T_NEW, memory_order_relaxed);
    atomic_store_explicit(&t->life, 0, memory_order_relaxed);
    atomic_store_explicit(&t->handoff, 0, memory_order_relaxed);
    uint64_t ws = atomic_load_explicit(&t->wstate, memory_order_relaxed);
    atomic_store_explicit(&t->wstate, ws & ~(uint64_t)0xff, memory_order_relaxed);
    /* Ids come from a per-worker block: one shared fetch_add per spawn
     * took about 30% of all cycles of fine-grained fork-join on 2 cores
     * (the line bounces between them). Unique for the life of the
     * process; increasing per worker, not globally. */
    if (WEFT__UNLIKELY(w->id_next == w->id_end)) {
        w->id_next = atomic_fetch_add_explicit(&next_id, ID_BLOCK, memory_order_relaxed);
        w->id_end = w->id_next + ID_BLOCK;
    }
    t->id = w->id_next++;
    return t;
}

static void tcb_free(weft__task *t)
{
    weft__worker *w = weft__self();
    weft__hb_acquire(t); /* the task's last step happens-before its reuse */
    if (t->keys_ext) {
        free(t->keys_ext);
        t->keys_ext = NULL;
    }
    if (t->own) {
        free(t->own);
        t->own = NULL;
    }
    if (w) {
        t->next = w->tcb_cache;
        w->tcb_cache = t;
        if (++w->tcb_cache_n <= TCB_CACHE_MAX)
            return;
        /* Hand half back to the shared list, as one batch (this worker's
         * own recent frees: the walk stays in its cache). */
        weft__task *head = w->tcb_cache, *p = head;
        for (int i = 1; i < TCB_CACHE_MAX / 2; i++)
            p = p->next;
        w->tcb_cache = p->next;
        w->tcb_cache_n -= TCB_CACHE_MAX / 2;
        p->next = NULL;
        batch_push(w->rt, head, TCB_CACHE_MAX / 2);
        return;
    }
    t->next = NULL;
    batch_push(atomic_load_explicit(&weft__g_rt, memory_order_acquire), t, 1);
}

/* A finished task's block goes back to the cache of the worker that ends
 * it. Nothing else holds it: its spawn entry was consumed before it ran
 * (the only entry a spawn makes, and the closer takes its children back
 * from the deque, never past it), and stale pointers (a late waker, the
 * stuck report) only ever read it, which type-stable blocks allow. No
 * atomic: until 2a0a8fe a closer could run a child inline while its entry
 * stayed queued, and the last of the two to let go freed the block (an
 * acq_rel fetch_or on each side, two locked instructions per task). */
void weft__task_release(weft__task *t)
{
    tcb_free(t);
    weft__hb_release(t); /* paired in weft__task_alloc */
}

void weft__task_free_all(weft__rt *rt)
{
    for (size_t i = 0; i < rt->nslabs; i++) {
        weft__task *slab = rt->slabs[i];
        for (int k = 0; k < SLAB_TASKS; k++) {
            free(slab[k].keys_ext);
            free(slab[k].own);
        }
        free(slab);
    }
    free(rt->slabs);
    rt->slabs = NULL;
    rt->nslabs = rt->slabs_cap = 0;
    rt->tcb_global = NULL;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        rt->workers[i].tcb_cache = NULL;
        rt->workers[i].tcb_cache_n = 0;
    }
}

static void run_key_dtors(weft__task *t)
{
    unsigned n = atomic_load_explicit(&nkeys, memory_order_acquire);
    /* Destructors may set keys again (as with pthreads): a few rounds. */
    for (int round = 0; round < 4; round++) {
        bool any = false;
        for (unsigned k = 0; k < n; k++) {
            void **slot = k < WEFT__INLINE_KEYS ? &t->keys_inline[k]
                          : (k - WEFT__INLINE_KEYS < t->keys_ext_n)
                              ? &t->keys_ext[k - WEFT__INLINE_KEYS]
                              : NULL;
            if (!slot || !*slot)
                continue;
            void *v = *slot;
            *slot = NULL;
            if (key_dtor[k]) {
                key_dtor[k](v);
                any = true;
            }
        }
        if (!any)
            break;
    }
}

void weft__task_finish(weft__task *t, int result)
{
    if (result > 0) {
        weft__misuse("task body returned %d; a task returns 0 or -errno (treated as -EINVAL)",
                     result);
        result = -EINVAL;
    }
    if (weft__hook_task_exit)
        weft__hook_task_exit(t);
    run_key_dtors(t);
    if (t->locks_held)
        weft__misuse("task returned while holding %d weft_mutex lock(s)", t->locks_held);
    if (t->pinned_to)
        atomic_fetch_sub_explicit(&t->pinned_to->npinned, 1, memory_order_relaxed);
    t->pin_count = 0;
    t->pinned_to = NULL;
    t->result = result;
    atomic_store_explicit(&t->state, T_DONE, memory_order_relaxed);
    weft__worker *w = weft__self();
    WEFT__COUNT(w, tasks_done, 1);
    /* The task's return happens-before its nursery's close returns (and,
     * for the root's, before weft_run returns). */
    weft__hb_release(t->nursery);
    if (weft__hook_task_done)
        weft__hook_task_done(t, result);
}

/* The first frame on an inline child's own stack. */
static void inline_entry(void *arg)
{
    weft__task *c = arg;
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_inline_entered();
    weft__hb_acquire(c);
    c->entry_frame = __builtin_frame_address(0);
    /* Fenced: an exception escaping c terminates naming c, as on a stack
     * reached by a switch; it must not unwind into the host's frames. */
    int r = weft__call_fenced(c->fn, c->arg);
    weft__task_finish(c, r);
    weft__hb_release(c->stack); /* see weft__task_entry */
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_inline_leave(c->stack_host);
}

void weft__task_run_inline(weft__task *c)
{
    weft__worker *w = weft__self();
    weft__task *host = w->current;
    size_t sz = c->stack_req ? c->stack_req : w->rt->stack_size;
    weft__stack *s = weft__stack_get(w, sz);
    if (!s)
        weft__panic("out of memory for the stack of task %llu \"%s\" (%zu bytes); a spawn "
                    "that returned 0 must run",
                    (unsigned long long)c->id, c->name, sz);
    c->stack = s;
    c->stack_host = host;
    c->stk_lo = s->lo;
    c->stk_size = s->size;
    c->tsan_fiber = host->tsan_fiber;
    if (weft__hook_task_started_running)
        weft__hook_task_started_running(c);
    /* For weft_dump: the host waits while the child runs in its place. */
    atomic_store_explicit(&host->wait_what, "weft_nursery_close, running a child inline",
                          memory_order_relaxed);
    atomic_store_explicit(&host->wait_obj, c->nursery, memory_order_relaxed);
    atomic_store_explicit(&host->state, T_PARKED, memory_order_relaxed);
    if (WEFT__TRACING()) {
        weft__trace_stop(host, WEFT__STOP_INLINE);
        weft__trace_run(c);
    }
    w->current = c;
    c->worker = w;
    atomic_store_explicit(&w->running, c, memory_order_release);
    atomic_store_explicit(&c->state, T_RUNNING, memory_order_relaxed);
    if (weft__cxx_eh)
        weft__eh_inline_begin(host);
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_inline_enter(host, c);
    weft__call_on_stack(inline_entry, c, s->lo + s->size);
    if (WEFT__UNLIKELY(weft__asan_fibers))
        weft__fiber_inline_left(host);
    /* c may have parked and resumed elsewhere: the host continues where c
     * finished. */
    if (weft__cxx_eh)
        weft__eh_inline_end(host);
    w = weft__self_fresh();
    w->current = host;
    host->worker = w;
    atomic_store_explicit(&w->running, host, memory_order_release);
    if (WEFT__TRACING()) {
        weft__trace_stop(c, PREV_DONE);
        weft__trace_run(host);
    }
    atomic_store_explicit(&host->state, T_RUNNING, memory_order_relaxed);
    weft__stack_put(w, c->stack);
    c->stack = NULL;
    c->tsan_fiber = NULL;
    weft__task_release(c);
}

/* ---- small public calls -------------------------------------------------- */

bool weft_in_task(void) { return weft__current() != NULL; }

uint64_t weft_task_id(void)
{
    weft__task *t = weft__current();
    return t ? t->id : 0;
}

int weft_worker_id(void)
{
    weft__worker *w = weft__self();
    return w && w->current ? w->id : -1;
}

void weft_task_set_name(const char *name)
{
    weft__task *t = weft__current();
    if (!t)
        return;
    /* Under t->lock: weft_dump reads the name while holding it. */
    weft__spin_lock(&t->lock);
    if (!name) {
        t->name[0] = 0;
    } else {
        strncpy(t->name, name, WEFT__NAME_MAX - 1);
        t->name[WEFT__NAME_MAX - 1] = 0;
    }
    weft__spin_unlock(&t->lock);
}

const char *weft_task_name(void)
{
    weft__task *t = weft__current();
    return t ? t->name : NULL;
}

void weft_pin(void)
{
    weft__worker *w = weft__self();
    weft__task *t = w ? w->current : NULL;
    if (!t)
        return;
    if (t->pin_count++ == 0) {
        t->pinned_to = w;
        atomic_fetch_add_explicit(&w->npinned, 1, memory_order_relaxed);
    }
}

void weft_unpin(void)
{
    weft__task *t = weft__current();
    if (!t)
        return;
    if (t->pin_count == 0) {
        weft__misuse("weft_unpin without a matching weft_pin");
        return;
    }
    if (--t->pin_count == 0) {
        atomic_fetch_sub_explicit(&t->pinned_to->npinned, 1, memory_order_relaxed);
        t->pinned_to = NULL;
    }
}

int weft_key_create(weft_key *key, void (*dtor)(void *))
{
    if (!key)
        return -EINVAL;
    unsigned k = atomic_load_explicit(&nkeys, memory_order_relaxed);
    do {
        if (k >= KEYS_MAX)
            return -EAGAIN;
    } while (!atomic_compare_exchange_weak_explicit(&nkeys, &k, k + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    key_dtor[k] = dtor;
    key->id_ = k + 1; /* 0 stays "never created" */
    return 0;
}

void *weft_task_get(weft_key key)
{
    weft__task *t = weft__current();
    if (!t || key.id_ == 0)
        return NULL;
    unsigned k = key.id_ - 1;
    if (k < WEFT__INLINE_KEYS)
        return t->keys_inline[k];
    k -= WEFT__INLINE_KEYS;
    return k < t->keys_ext_n ? t->keys_ext[k] : NULL;
}

int weft_task_set(weft_key key, void *value)
{
    weft__task *t = weft__current();
    if (!t)
        return -EPERM;
    if (key.id_ == 0 || key.id_ > atomic_load_explicit(&nkeys, memory_order_acquire))
        return -EINVAL;
    unsigned k = key.id_ - 1;
    if (k < WEFT__INLINE_KEYS) {
        t->keys_inline[k] = value;
        return 0;
    }
    k -= WEFT__INLINE_KEYS;
    if (k >= t->keys_ext_n) {
        if (!value)
            return 0;
        uint32_t n = k + 8;
        void **na = realloc(t->keys_ext, n * sizeof *na);
        if (!na)
            return -ENOMEM;
        memset(na + t->keys_ext_n, 0, (n - t->keys_ext_n) * sizeof *na);
        t->keys_ext = na;
        t->keys_ext_n = n;
    }
    t->keys_ext[k] = value;
    return 0;
}

/* A timer due? The clock is read only when one is armed. */
static bool timer_due(weft__worker *w)
{
    int64_t next = atomic_load_explicit(&w->timer_next, memory_order_relaxed);
    return next != WEFT_FOREVER && next <= weft__now();
}

/* Something else could run here now? (cheap, local view only) */
static bool others_runnable(weft__worker *w)
{
    return atomic_load_explicit(&w->runnext, memory_order_relaxed) || weft__runq_len(&w->runq) ||
           weft__deque_len(&w->spawnq) || w->pinned_head || !weft__inbox_empty(&w->inbox) ||
           atomic_load_explicit(&w->rt->inject_n, memory_order_relaxed);
}

int weft_yield(void)
{
    weft__worker *w = weft__self();
    weft__task *t = w ? w->current : NULL;
    if (!t) {
        sched_yield();
        return 0;
    }
    if (weft__task_cancelled(t))
        return -ECANCELED;
    t->budget = weft__coop_refill;
    if (timer_due(w))
        weft__timers_run(w, weft__now());
    if (others_runnable(w))
        weft__switch_out(t, PREV_YIELD);
    return weft__task_cancelled(t) ? -ECANCELED : 0;
}

uint32_t weft__coop_refill = WEFT__COOP_DEFAULT;

void weft__coop_yield(weft__task *t)
{
    weft__worker *w = weft__self();
    t->budget = weft__coop_refill;
    /* Not a cancellation point (a lock is not): just let the others run,
     * the timers that are due included. */
    if (timer_due(w))
        weft__timers_run(w, weft__now());
    if (others_runnable(w))
        weft__switch_out(t, PREV_YIELD);
}

int weft_checkpoint(void)
{
    weft__task *t = weft__current();
    if (!t)
        return 0;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    if (--t->budget == 0)
        return weft_yield();
    return 0;
}
