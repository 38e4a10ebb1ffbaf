/*
 * nursery.c - nurseries: open, spawn, start, close; children's results.
 *
 * A nursery is a cancel scope (the first member) plus its children. A
 * spawn counts the child (structured/internal.h: two counts on two cache
 * lines, no lock) and queues it in the spawning worker's deque. A child
 * goes on the `running` list (under n->lock) only once the cancel walk
 * may need to find it: before its first wait, its first nursery or a
 * weft_blocking call (weft__task_list); it leaves the list when it ends.
 * A child that only runs and ends never takes n->lock.
 * close first takes its newest children back from its worker's deque (no
 * entry left behind) and runs them inline: as part of itself, with no
 * queue trip and no context switch, on a warm stack of the child's
 * promised size from the worker's cache (sched/task.c). Fork-join then
 * costs a cache pop and a stack-pointer move per child. Then close counts
 * the children over and parks until the last one ends.
 */
#include "internal.h"

/* An inline child runs on a stack of its own (sched/task.c); the parent
 * only needs room for the few frames that switch to it. */
#define INLINE_MIN_STACK (4 * 1024)
#define FAILURES_SHOWN 3

static weft__rt *rt_of(void) { return atomic_load_explicit(&weft__g_rt, memory_order_acquire); }

/* ---- sibling lists (under n->lock) -------------------------------------- */

static void list_add(weft__task **head, weft__task *t)
{
    t->sib_prev = NULL;
    t->sib_next = *head;
    if (*head)
        (*head)->sib_prev = t;
    *head = t;
}

static void list_del(weft__task **head, weft__task *t)
{
    if (t->sib_prev)
        t->sib_prev->sib_next = t->sib_next;
    else
        *head = t->sib_next;
    if (t->sib_next)
        t->sib_next->sib_prev = t->sib_prev;
    t->sib_prev = t->sib_next = NULL;
}

/* ---- hooks called by sched --------------------------------------------- */

static void on_started_running(weft__task *t)
{
    weft__nursery *n = t->nursery;
    if (!n)
        return;
    if (t->starter) {
        /* Being started: it hangs off its starter until weft_task_started. */
        weft__task *s = t->starter;
        weft__spin_lock(&s->lock);
        t->start_prev = NULL;
        t->start_next = s->starting_head;
        if (s->starting_head)
            s->starting_head->start_prev = t;
        s->starting_head = t;
        weft__spin_unlock(&s->lock);
    }
}

/* weft__task_list's hook: t (the caller) goes on its nursery's running
 * list, under the lock of the finishing side, on the worker that runs t
 * (which usually ends it too). A task being started is on its starter's
 * list until weft_task_started lists it. */
static void list_self(weft__task *t)
{
    weft__nursery *n = t->nursery;
    if (n) {
        if (t->starter)
            return;
        weft__spin_lock(&n->lock);
        list_add(&n->running, t);
        weft__spin_unlock(&n->lock);
    }
    weft__task_set_listed(t);
}

static void starting_del(weft__task *s, weft__task *t)
{
    weft__spin_lock(&s->lock);
    if (t->start_prev)
        t->start_prev->start_next = t->start_next;
    else
        s->starting_head = t->start_next;
    if (t->start_next)
        t->start_next->start_prev = t->start_prev;
    t->start_prev = t->start_next = NULL;
    weft__spin_unlock(&s->lock);
}

typedef struct start_rec {
    int result;
    bool done;
} start_rec;

/* A child being started finished without calling weft_task_started. */
static void start_finished(weft__task *t, int result, bool was_cancelled)
{
    weft__task *s = t->starter;
    starting_del(s, t);
    start_rec *rec = (start_rec *)(void *)t->arg_start_rec;
    if (result == 0)
        rec->result = -ECHILD;
    else if (result == -ECANCELED && was_cancelled)
        rec->result = -ECANCELED;
    else
        rec->result = result;
    rec->done = true;
    t->starter = NULL;
    weft__wake(s, t->starter_token, W_WOKEN);
}

static void report_failure(weft__nursery *n, weft__task *t, int result)
{
    if (n->failures_reported < FAILURES_SHOWN) {
        n->failures_reported++;
        fprintf(stderr,
                "weft: nursery: task %llu \"%s\" failed with %d (%s) after an earlier failure\n",
                (unsigned long long)t->id, t->name, result, strerror(-result));
    } else {
        n->failures_dropped++;
    }
    weft__worker *w = weft__self();
    if (w)
        WEFT__COUNT(w, failures_dropped, 1);
}

/* A child of n ended. After the fetch_add, n may be gone (its closer saw
 * the count reach zero), unless this was the end that reached it. */
/* The opener's side of the count: only the opener's thread writes it
 * (structured/internal.h), so a relaxed load and store, no locked add. */
static inline void own_net_add(weft__nursery *n, int64_t d)
{
    atomic_store_explicit(&n->own_net, atomic_load_explicit(&n->own_net, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static void child_done(weft__nursery *n)
{
    /* acq_rel: the child's writes, and everything before its end, happen
     * before close returns (the closer acquires left). */
    if (atomic_fetch_add_explicit(&n->left, 1, memory_order_acq_rel) != -1)
        return;
    /* The last child of a closing nursery. */
    if (n->is_root) {
        weft__rt_shutdown(rt_of());
        return;
    }
    weft__wake(n->closer, n->close_token, W_WOKEN);
}

static void on_task_done(weft__task *t, int result)
{
    weft__nursery *n = t->nursery;
    if (t->starter) {
        start_finished(t, result, weft__task_cancelled(t));
        child_done(n);
        return;
    }
    /* Only a failure asks whether t was cancelled: a child that returns 0
     * and never looked (its cached verdict is cleared at spawn) would
     * otherwise read its nursery's scope here, for every child. */
    bool failed = result != 0 && !(result == -ECANCELED && weft__task_cancelled(t));
    if (n->is_root) {
        atomic_store_explicit(&rt_of()->root_result, result, memory_order_relaxed);
        failed = false;
    }
    if (failed) {
        weft__spin_lock(&n->lock);
        bool first = n->first_failure == 0;
        if (first)
            n->first_failure = result;
        else
            report_failure(n, t, result);
        weft__spin_unlock(&n->lock);
        /* The first failure cancels the nursery, while t still counts (so n
         * cannot be closed and freed under the walk). */
        if (first)
            weft__scope_cancel(&n->scope);
    }
    if (weft__task_listed(t)) {
        weft__spin_lock(&n->lock);
        list_del(&n->running, t);
        weft__spin_unlock(&n->lock);
    }
    if (t->stack_host)
        /* Run inline by n's closer, which reads this after t's end on this
         * thread (structured/internal.h): no locked add on left. */
        own_net_add(n, -1);
    else
        child_done(n);
}

/* ---- spawning ------------------------------------------------------------ */

/*
 * The nursery pool. Nurseries are type-stable while a runtime runs: a
 * closed one goes back to a per-thread cache (then a shared list), never to
 * malloc, and its magic is cleared. So a spawn into a nursery after its
 * close, or a second close, reads a cleared magic and is reported by name
 * (-EINVAL) instead of touching freed memory. (Once the memory is reused by
 * a newer nursery, a stale handle aims at that one: the check catches the
 * common mistakes, not every one.) The slabs are freed when the runtime
 * ends; the epoch tells a thread's cache that its entries are gone.
 */
#define NURSERY_SLAB 64
#define NURSERY_CACHE_MAX 128

static pthread_mutex_t npool_mu = PTHREAD_MUTEX_INITIALIZER;
static weft__nursery *npool_free;
static void **nslabs;
static size_t nslabs_n, nslabs_cap;
static atomic_uint npool_epoch = 1;
static WEFT__TLS weft__nursery *ncache;
static WEFT__TLS unsigned ncache_n, ncache_epoch;

/* Refills this thread's cache from the shared list or a new slab. */
static void npool_refill(void)
{
    pthread_mutex_lock(&npool_mu);
    for (int i = 0; i < NURSERY_CACHE_MAX / 2 && npool_free; i++) {
        weft__nursery *n = npool_free;
        npool_free = n->free_next;
        n->free_next = ncache;
        ncache = n;
        ncache_n++;
    }
    if (!ncache) {
        weft__nursery *slab = calloc(NURSERY_SLAB, sizeof *slab);
        if (slab && nslabs_n == nslabs_cap) {
            size_t nc = nslabs_cap ? nslabs_cap * 2 : 64;
            void **nv = realloc(nslabs, nc * sizeof *nv);
            if (nv) {
                nslabs = nv;
                nslabs_cap = nc;
            }
        }
        if (slab && nslabs_n < nslabs_cap) {
            nslabs[nslabs_n++] = slab;
            for (int i = NURSERY_SLAB - 1; i >= 0; i--) {
                slab[i].free_next = ncache;
                ncache = &slab[i];
            }
            ncache_n += NURSERY_SLAB;
        } else {
            free(slab);
        }
    }
    pthread_mutex_unlock(&npool_mu);
}

static weft__nursery *nursery_alloc(void)
{
    unsigned epoch = atomic_load_explicit(&npool_epoch, memory_order_acquire);
    if (WEFT__UNLIKELY(ncache_epoch != epoch)) {
        ncache = NULL; /* freed with the last runtime's slabs */
        ncache_n = 0;
        ncache_epoch = epoch;
    }
    if (WEFT__UNLIKELY(!ncache))
        npool_refill();
    weft__nursery *n = ncache;
    if (!n)
        return NULL;
    ncache = n->free_next;
    ncache_n--;
    memset(n, 0, sizeof *n);
    n->magic = WEFT__NURSERY_MAGIC;
    n->scope.nursery = n;
    return n;
}

static void nursery_free(weft__nursery *n)
{
    n->magic = 0;
    n->scope.magic = 0;
    if (n->caller_storage)
        return; /* the caller's again */
    if (ncache_epoch != atomic_load_explicit(&npool_epoch, memory_order_relaxed)) {
        ncache = NULL;
        ncache_n = 0;
        ncache_epoch = atomic_load_explicit(&npool_epoch, memory_order_relaxed);
    }
    n->free_next = ncache;
    ncache = n;
    if (++ncache_n <= NURSERY_CACHE_MAX)
        return;
    /* Half back to the shared list. */
    weft__nursery *head = ncache, *p = head;
    for (int i = 1; i < NURSERY_CACHE_MAX / 2; i++)
        p = p->free_next;
    ncache = p->free_next;
    ncache_n -= NURSERY_CACHE_MAX / 2;
    pthread_mutex_lock(&npool_mu);
    p->free_next = npool_free;
    npool_free = head;
    pthread_mutex_unlock(&npool_mu);
}

void weft__nursery_pool_fini(void)
{
    pthread_mutex_lock(&npool_mu);
    for (size_t i = 0; i < nslabs_n; i++)
        free(nslabs[i]);
    free(nslabs);
    nslabs = NULL;
    nslabs_n = nslabs_cap = 0;
    npool_free = NULL;
    atomic_fetch_add_explicit(&npool_epoch, 1, memory_order_release);
    pthread_mutex_unlock(&npool_mu);
}

weft__nursery *weft__nursery_new_root(weft__rt *rt)
{
    (void)rt;
    /* Plain malloc: run.c frees it when the runtime ends. */
    weft__nursery *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->magic = WEFT__NURSERY_MAGIC;
    n->scope.nursery = n;
    n->is_root = true;
    /* Nobody closes the root: it counts down from the start, and the end
     * of its last child ends the runtime (child_done). */
    atomic_store_explicit(&n->spawned, N_CLOSING, memory_order_relaxed);
    atomic_store_explicit(&n->scope.deadline, WEFT_FOREVER, memory_order_relaxed);
    atomic_store_explicit(&n->scope.flags, S_NURSERY, memory_order_relaxed);
    n->scope.magic = WEFT__SCOPE_MAGIC;
    return n;
}

static bool valid_nursery(weft__nursery *n) { return n && n->magic == WEFT__NURSERY_MAGIC; }

int weft__spawn(weft__nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr,
                const char *file, int line, weft__task **out)
{
    weft__worker *w = weft__self();
    weft__task *self = w ? w->current : NULL;
    if (!w || (!self && !(n && n->is_root)))
        return -EPERM;
    if (!valid_nursery(n)) {
        weft__misuse("weft_spawn into a nursery that is not open (closed already, or not a "
                     "nursery)");
        return -EINVAL;
    }
    if (!fn) {
        weft__misuse("weft_spawn with a NULL task function");
        return -EINVAL;
    }
    size_t stack_size = 0;
    if (attr) {
        for (size_t i = 0; i < sizeof attr->reserved_ / sizeof attr->reserved_[0]; i++)
            if (attr->reserved_[i]) {
                weft__misuse("weft_spawn_ex: weft_spawn_attr.reserved_ must be zero");
                return -EINVAL;
            }
        if (attr->stack_size && (attr->stack_size < 16 * 1024 || attr->stack_size > (1u << 30))) {
            weft__misuse("weft_spawn_ex: stack_size %zu outside 16 KiB .. 1 GiB", attr->stack_size);
            return -EINVAL;
        }
        stack_size = attr->stack_size;
    }
    /* Spawning from the task that has n innermost (the usual case): the
     * child's chain is the spawner's, so is its verdict. */
    bool same_chain = self && self->scope_top == &n->scope;
    if (!out && (same_chain ? weft__task_cancelled(self) : weft__chain_cancelled(&n->scope, NULL)))
        return -ECANCELED;
    weft__task *t = weft__task_alloc(w);
    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->nursery = n;
    t->scope_top = t->scope_base = &n->scope;
    if (same_chain) {
        t->cgen = self->cgen;
        t->c_cancelled = self->c_cancelled;
        t->c_deadline = self->c_deadline;
        t->c_dl_scope = self->c_dl_scope;
    }
    t->spawn_file = file;
    t->spawn_line = line;
    if (stack_size) {
        size_t ps = 4096;
        t->stack_req = (stack_size + ps - 1) & ~(ps - 1);
    }
    if (attr && attr->name) {
        strncpy(t->name, attr->name, WEFT__NAME_MAX - 1);
        t->name[WEFT__NAME_MAX - 1] = 0;
    }
    if (attr && attr->pinned) {
        t->pin_count = 1;
        t->pinned_to = w;
        t->pin_home = w;
        if (w)
            atomic_fetch_add_explicit(&w->npinned, 1, memory_order_relaxed);
    }
    /* Counted before it can run (so before it can end), on the spawning
     * side's line: the opener's spawns with a plain increment (it cannot
     * be closing: structured/internal.h), anyone else's with an atomic
     * one; a spawn by a child while n closes also takes itself from left,
     * as close has counted it over without it. */
    if (self && self == n->scope.owner)
        own_net_add(n, 1);
    else if (atomic_fetch_add_explicit(&n->spawned, 1, memory_order_relaxed) & N_CLOSING)
        atomic_fetch_sub_explicit(&n->left, 1, memory_order_relaxed);
    WEFT__COUNT(w, tasks_spawned, 1);
    if (WEFT__TRACING())
        weft__trace_spawn(self, t);
    weft__hb_release(t); /* spawn happens-before the child starts */
    if (out) {
        *out = t;
        return 0;
    }
    weft__ready_spawn(t);
    return 0;
}

int weft_spawn_at(weft_nursery *n, weft_fn fn, void *arg, const char *file, int line)
{
    return weft__spawn((weft__nursery *)n, fn, arg, NULL, file, line, NULL);
}

#undef weft_spawn
int weft_spawn(weft_nursery *n, weft_fn fn, void *arg)
{
    return weft__spawn((weft__nursery *)n, fn, arg, NULL, NULL, 0, NULL);
}

int weft_spawn_ex(weft_nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr)
{
    return weft__spawn((weft__nursery *)n, fn, arg, attr, NULL, 0, NULL);
}

int weft_spawn_ex_at(weft_nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr,
                     const char *file, int line)
{
    return weft__spawn((weft__nursery *)n, fn, arg, attr, file, line, NULL);
}

/* ---- start ---------------------------------------------------------------- */

int weft_nursery_start(weft_nursery *pub, weft_fn fn, void *arg)
{
    weft__nursery *n = (weft__nursery *)pub;
    weft__task *self = weft__current();
    if (!self)
        return -EPERM;
    if (!valid_nursery(n) || !fn) {
        weft__misuse("weft_nursery_start with %s",
                     fn ? "a nursery that is not open (closed already, or not a nursery)"
                        : "a NULL task function");
        return -EINVAL;
    }
    if (weft__task_cancelled(self))
        return -ECANCELED;
    weft__task *t;
    int rc = weft__spawn(n, fn, arg, NULL, NULL, 0, &t);
    if (rc)
        return rc;
    /* Until weft_task_started the child runs under our scopes. */
    start_rec rec = {0, false};
    t->scope_top = t->scope_base = self->scope_top;
    t->starter = self;
    t->arg_start_rec = &rec;
    weft__wait_note("weft_nursery_start", n);
    uint64_t tok = weft__wait_begin(self, 0);
    t->starter_token = tok;
    weft__ready_spawn(t);
    /* Not t->starter_token: once queued, t may run, end and be reused. */
    weft__wait_park(self, tok, WEFT_FOREVER, 0);
    return rec.result;
}

void weft_task_started(void)
{
    weft__task *t = weft__current();
    if (!t || !t->starter) {
        weft__misuse("weft_task_started called by a task that is not being started");
        return;
    }
    weft__task *s = t->starter;
    weft__nursery *n = t->nursery;
    /* The move from the starter's scopes to n's, with t on some list that
     * a cancel walk visits at every moment: on n's running list first (a
     * walk of n skips t until the relink below, while t is still on the
     * starter's list), then relinked, then off the starter's list. A cancel
     * of n that passed t by meanwhile is caught by the walk at the end. */
    weft__spin_lock(&n->lock);
    list_add(&n->running, t);
    weft__spin_unlock(&n->lock);
    weft__task_set_listed(t);
    weft__test_delay(WEFT__DELAY_TASK_STARTED);
    /* Re-parent: the outermost of t's own scopes now sits on n's scope. */
    weft__spin_lock(&t->lock);
    weft__scope *own_last = t->own_n ? (t->own ? t->own[0] : t->own_inline[0]) : NULL;
    if (own_last)
        /* release: pairs with the acquire in weft__chain_eval. */
        atomic_store_explicit(&own_last->parent, &n->scope, memory_order_release);
    else
        t->scope_top = &n->scope;
    t->scope_base = &n->scope;
    weft__spin_unlock(&t->lock);
    starting_del(s, t);
    weft__task_cancel_cache_reset(t);
    /* Verdicts cached below t, and timers armed for the starter's
     * deadlines, go before the starter (and its scopes) may go. */
    weft__scope_reparented(t);
    start_rec *rec = t->arg_start_rec;
    rec->result = 0;
    rec->done = true;
    t->starter = NULL;
    t->arg_start_rec = NULL;
    weft__wake(s, t->starter_token, W_WOKEN);
}

/* ---- open / cancel / deadline / close ------------------------------------ */

int weft_nursery_open(weft_nursery **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    weft__task *t = weft__current();
    if (!t)
        return -EPERM;
    weft__nursery *n = nursery_alloc();
    if (!n)
        return -ENOMEM;
    weft__task_list(t); /* a cancel walk reaches n's children through t */
    weft__scope_push(t, &n->scope, WEFT_FOREVER, S_NURSERY);
    *out = (weft_nursery *)n;
    return 0;
}

int weft_nursery_init(weft_nursery *pub)
{
    weft__nursery *n = (weft__nursery *)pub;
    if (!n) {
        weft__misuse("weft_nursery_init with a NULL nursery");
        return -EINVAL;
    }
    weft__task *t = weft__current();
    if (!t)
        return -EPERM;
    /* The magic alone could be left over in reused storage; a nursery
     * that is on this task's scope stack is certainly open. */
    if (WEFT__UNLIKELY(n->magic == WEFT__NURSERY_MAGIC) && weft__scope_is_own(t, &n->scope)) {
        weft__misuse("weft_nursery_init on a nursery that is open (close it first)");
        return -EINVAL;
    }
    memset(n, 0, sizeof *n);
    n->magic = WEFT__NURSERY_MAGIC;
    n->scope.nursery = n;
    n->caller_storage = true;
    t->cs_nurseries++;
    weft__task_list(t); /* a cancel walk reaches n's children through t */
    weft__scope_push(t, &n->scope, WEFT_FOREVER, S_NURSERY);
    return 0;
}

void weft_nursery_cancel(weft_nursery *pub)
{
    weft__nursery *n = (weft__nursery *)pub;
    if (!valid_nursery(n)) {
        weft__misuse("weft_nursery_cancel on an invalid or closed nursery");
        return;
    }
    weft__scope_cancel(&n->scope);
}

void weft_nursery_set_deadline(weft_nursery *pub, int64_t deadline)
{
    weft__nursery *n = (weft__nursery *)pub;
    if (!valid_nursery(n)) {
        weft__misuse("weft_nursery_set_deadline on an invalid or closed nursery");
        return;
    }
    weft__scope_set_deadline(&n->scope, deadline);
}

int weft__nursery_close_internal(weft__task *t, weft__nursery *n, const char *boundary)
{
    /* Scopes and nurseries opened after n and still open were left behind
     * by returned frames, or are closed out of order: close them first. */
    if (t->scope_top != &n->scope)
        weft__scope_unwind(t, &n->scope, "weft_nursery_close", boundary);
    /* Our newest spawns, still in this worker's deque: take them back
     * (no tombstone) and run them inline. */
    if (t->pin_count == 0) {
        weft__task *c;
        while (weft__stack_remaining(t) > INLINE_MIN_STACK &&
               (c = weft__spawn_take_back(n)) != NULL)
            weft__task_run_inline(c);
    }
    /* Every child ended already (fork-join's usual case): no write to n.
     * left first (acquire: every end so far, and the spawns before them,
     * happen-before), then spawned; equal, nobody is left to spawn. */
    int64_t ended = atomic_load_explicit(&n->left, memory_order_acquire);
    int64_t own = atomic_load_explicit(&n->own_net, memory_order_relaxed);
    if (ended != (int64_t)atomic_load_explicit(&n->spawned, memory_order_relaxed) + own) {
        /* Count them over and wait for the last: the closer is written
         * before the fetch_sub that the last end reads after (atomic only
         * for weft_dump, which reads it without the lock or an order). */
        __atomic_store_n(&n->closer, t, __ATOMIC_RELAXED);
        weft__wait_note("weft_nursery_close", n);
        uint64_t tok = weft__wait_begin(t, 0);
        n->close_token = tok;
        /* Three steps. Between setting N_CLOSING and taking the count from
         * left, children go on spawning (each takes one from left) and
         * ending: left must not pass from -1 to 0 then, so it is first
         * pushed far below any count (N_BIAS), and the bias comes back
         * with the count. */
        atomic_fetch_sub_explicit(&n->left, N_BIAS, memory_order_relaxed);
        uint64_t sp = atomic_fetch_or_explicit(&n->spawned, N_CLOSING, memory_order_acq_rel);
        int64_t x = (int64_t)(sp & ~N_CLOSING) + own;
        if (atomic_fetch_add_explicit(&n->left, N_BIAS - x, memory_order_acq_rel) + N_BIAS - x == 0)
            weft__wake_claim(t, tok, W_WOKEN); /* they all ended meanwhile */
        else
            weft__wait_park(t, tok, WEFT_FOREVER, 0);
        if (atomic_load_explicit(&n->left, memory_order_acquire) != 0)
            weft__panic("nursery %p closed with children alive", (void *)n);
    }
    /* Every child's return happens-before close returns (each released n
     * as it finished: sched/task.c). */
    weft__hb_acquire(n);
    /* All children are gone; nobody else can touch n now but cancellers
     * that hold our lock (they cannot, once the scope is popped). */
    weft__scope_pop(t, &n->scope);
    int result = n->first_failure;
    if (!result && weft__task_cancelled(t))
        result = -ECANCELED;
    if (!result) {
        unsigned f = atomic_load_explicit(&n->scope.flags, memory_order_acquire);
        int64_t dl = atomic_load_explicit(&n->scope.deadline, memory_order_relaxed);
        if ((f & S_DEADLINE_HIT) || (dl != WEFT_FOREVER && dl <= weft__now()))
            result = -ETIMEDOUT;
    }
    if (n->failures_dropped)
        fprintf(stderr, "weft: nursery: %u more child failures not shown\n", n->failures_dropped);
    if (n->caller_storage)
        t->cs_nurseries--;
    nursery_free(n);
    return result;
}

static int close_checked(weft__nursery *n, const char *call, const char *boundary)
{
    weft__task *t = weft__current();
    if (!t)
        return -EPERM;
    if (!valid_nursery(n) || n->is_root) {
        weft__misuse("%s on an invalid or already closed nursery", call);
        return -EINVAL;
    }
    if (n->scope.owner != t) {
        weft__misuse("%s by a task that did not open the nursery", call);
        return -EINVAL;
    }
    return weft__nursery_close_internal(t, n, boundary);
}

int weft_nursery_close(weft_nursery *pub)
{
    return close_checked((weft__nursery *)pub, "weft_nursery_close", __builtin_frame_address(0));
}

int weft_nursery_fini(weft_nursery *pub)
{
    return close_checked((weft__nursery *)pub, "weft_nursery_fini", __builtin_frame_address(0));
}

/* A task returned: close what it left open (never leak a child). */
static void on_task_exit(weft__task *t)
{
    if (t->own_n == 0)
        return;
    int r = weft__scope_unwind(t, NULL, "task returned with scopes open", t->entry_frame);
    if (r && t->nursery && t->nursery->is_root) {
        weft__rt *rt = rt_of();
        int zero = 0;
        atomic_compare_exchange_strong_explicit(&rt->nursery_result, &zero, r, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

void weft__structured_install(void)
{
    weft__hook_task_exit = on_task_exit;
    weft__hook_task_done = on_task_done;
    weft__hook_task_started_running = on_started_running;
    weft__hook_task_list = list_self;
}
