/*
 * scope.c - cancel scopes: enter, exit, cancel, deadlines, shields, and the
 * cancel walk that wakes the tasks a cancel reaches.
 *
 * The cancellation rule itself (which scopes count for a task) is evaluated
 * in sched/wait.c; this file changes scope state only through flags and
 * deadlines there, then bumps rt->cancel_gen and walks.
 *
 * The walk. cancel(s): set S_CANCELLED, bump the generation, then visit
 * the tree below s: s's owner task, the nurseries on its chain from s
 * inward (stopping at the first shielded scope inside s), their children,
 * and so on down the tree, and tasks being started under those scopes. Each parked task
 * visited is poked (wait.c): it re-evaluates the rule and, if it now counts
 * as cancelled, its wait fires with W_CANCEL. Tasks that are running will see
 * the new generation at their next cancellation point; tasks that park later
 * see it by the Dekker pair described in wait.c.
 */
#include "internal.h"

static weft__rt *rt_of(void) { return atomic_load_explicit(&weft__g_rt, memory_order_acquire); }

static void bump(void)
{
    weft__rt *rt = rt_of();
    if (rt)
        atomic_fetch_add_explicit(&rt->cancel_gen, 1, memory_order_seq_cst);
}

/*
 * The walk keeps its path in an explicit stack of frames rather than the C
 * stack: a chain of nested tasks can be far deeper than a task's stack
 * allows recursion. A frame holds the lock of its task or nursery for as
 * long as it is on the stack, so the lists it iterates cannot change under
 * it, and locks are always taken in tree order (see internal.h).
 */
typedef struct {
    weft__task *t;     /* a task frame, or NULL for a nursery frame */
    weft__nursery *n;  /* the nursery of a nursery frame */
    weft__scope *from; /* task: the scope through which the cancel reaches it */
    weft__scope *cur;  /* task: next scope of its chain to look at */
    weft__scope *shield;
    weft__task *child; /* next running child (nursery) or starting child (task) */
    int phase;
} walk_frame;

typedef struct {
    walk_frame *v;
    size_t n, cap;
    walk_frame inline_v[32];
    weft__walker *w;
} walk_stack;

static walk_frame *frame_push(walk_stack *ws)
{
    if (ws->n == ws->cap) {
        size_t nc = ws->cap * 2;
        walk_frame *nv = malloc(nc * sizeof *nv);
        if (!nv)
            weft__panic("cancel walk: out of memory at depth %zu", ws->n);
        memcpy(nv, ws->v, ws->n * sizeof *nv);
        if (ws->v != ws->inline_v)
            free(ws->v);
        ws->v = nv;
        ws->cap = nc;
    }
    walk_frame *f = &ws->v[ws->n++];
    memset(f, 0, sizeof *f);
    return f;
}

static void push_nursery(walk_stack *ws, weft__nursery *n)
{
    weft__spin_lock(&n->lock);
    walk_frame *f = frame_push(ws);
    f->n = n;
    f->child = n->running;
    if (ws->w->nursery)
        ws->w->nursery(ws->w, n, (int)ws->n - 1);
}

/* t's chain reaches `from` (a scope the cancel affects). The frame visits
 * the nurseries t opened inside `from` up to the outermost shield inside it,
 * then, if no shield stands between, pokes t and visits the tasks t is
 * starting (they run under t's scopes). */
static void push_task(walk_stack *ws, weft__task *t, weft__scope *from)
{
    weft__spin_lock(&t->lock);
    weft__scope *shield = NULL, *s = t->scope_top;
    for (; s && s != from; s = atomic_load_explicit(&s->parent, memory_order_acquire))
        if (!ws->w->all && (atomic_load_explicit(&s->flags, memory_order_relaxed) & S_SHIELDED))
            shield = s;
    if (!s) { /* `from` is not on t's chain any more: t moved on */
        weft__spin_unlock(&t->lock);
        return;
    }
    walk_frame *f = frame_push(ws);
    f->t = t;
    f->from = from;
    f->shield = shield;
    f->cur = shield ? atomic_load_explicit(&shield->parent, memory_order_acquire) : t->scope_top;
    if (!shield) {
        ws->w->task(ws->w, t, (int)ws->n - 1);
        f->child = t->starting_head;
    }
}

static bool is_nursery(weft__scope *s)
{
    return (atomic_load_explicit(&s->flags, memory_order_relaxed) & S_NURSERY) != 0;
}

/* One step of the frame on top: push a child frame, or finish and pop. */
static void walk_step(walk_stack *ws)
{
    walk_frame *f = &ws->v[ws->n - 1];
    if (!f->t) { /* nursery: each running child */
        weft__task *c = f->child;
        if (c) {
            f->child = c->sib_next;
            push_task(ws, c, &f->n->scope);
            return;
        }
        weft__spin_unlock(&f->n->lock);
        ws->n--;
        return;
    }
    weft__task *t = f->t;
    switch (f->phase) {
    case 0: /* the nursery `from` itself, when t opened it */
        f->phase = 1;
        if (f->from->owner == t && is_nursery(f->from)) {
            push_nursery(ws, f->from->nursery);
            return;
        }
        /* fall through */
    case 1: /* nurseries between the shield and `from` */
        while (f->cur != f->from) {
            weft__scope *s = f->cur;
            f->cur = atomic_load_explicit(&s->parent, memory_order_acquire);
            if (is_nursery(s)) {
                push_nursery(ws, s->nursery);
                return;
            }
        }
        f->phase = 2;
        /* fall through */
    default: /* the tasks t is starting */
        if (f->child) {
            weft__task *c = f->child;
            f->child = c->start_next;
            push_task(ws, c, t->scope_top);
            return;
        }
        weft__spin_unlock(&t->lock);
        ws->n--;
    }
}

void weft__tree_walk(weft__scope *s, weft__walker *w)
{
    walk_stack ws;
    ws.v = ws.inline_v;
    ws.n = 0;
    ws.cap = sizeof ws.inline_v / sizeof ws.inline_v[0];
    ws.w = w;
    if (s->owner)
        push_task(&ws, s->owner, s);
    else if (is_nursery(s))
        push_nursery(&ws, s->nursery); /* the root nursery has no opener */
    while (ws.n)
        walk_step(&ws);
    if (ws.v != ws.inline_v)
        free(ws.v);
}

static void poke(weft__walker *w, weft__task *t, int depth)
{
    (void)depth;
    if (weft__wait_poke(t))
        w->watch = true;
}

/* Pokes every task s reaches; true if one of them has a deadline that no
 * timer carries (see weft__wait_poke). */
bool weft__scope_walk(weft__scope *s)
{
    weft__walker w = {.all = false, .task = poke};
    weft__tree_walk(s, &w);
    return w.watch;
}

static void walk(weft__scope *s) { (void)weft__scope_walk(s); }

void weft__scope_reparented(weft__task *t)
{
    /* Every cached verdict may have been computed through the old links. */
    bump();
    /* t's own scopes and everything below them: parked tasks re-evaluate
     * and re-aim timers armed for a deadline of the old chain (the scopes
     * they came from may die as soon as the caller wakes the starter). */
    weft__spin_lock(&t->lock);
    weft__scope *outer = t->own_n ? (t->own ? t->own[0] : t->own_inline[0]) : NULL;
    weft__spin_unlock(&t->lock);
    if (outer && weft__scope_walk(outer)) {
        int64_t dl = weft__task_deadline(t, NULL);
        if (dl != WEFT_FOREVER)
            weft__watch_add(outer, dl);
    }
}

void weft__scope_cancel(weft__scope *s)
{
    unsigned prev = atomic_fetch_or_explicit(&s->flags, S_CANCELLED, memory_order_seq_cst);
    if (prev & S_CANCELLED)
        return;
    weft__test_delay(WEFT__DELAY_CANCEL_BUMP);
    bump();
    walk(s);
}

void weft__scope_set_deadline(weft__scope *s, int64_t deadline)
{
    int64_t old = atomic_load_explicit(&s->deadline, memory_order_relaxed);
    if (old != WEFT_FOREVER && old <= weft__now()) {
        /* It already fired: cancellation is sticky. */
        weft__scope_cancel(s);
        return;
    }
    atomic_store_explicit(&s->deadline, deadline, memory_order_seq_cst);
    bump();
    /* Parked tasks re-aim their timers (earlier or later). One parked with
     * no timer at all cannot: the monitor then watches this deadline and
     * walks the scope again when it passes. */
    if (weft__scope_walk(s) && deadline != WEFT_FOREVER)
        weft__watch_add(s, deadline);
}

/* ---- the task's own scope stack ------------------------------------------ */

static weft__scope **own_slots(weft__task *t) { return t->own ? t->own : t->own_inline; }

static void own_push(weft__task *t, weft__scope *s)
{
    uint32_t cap = t->own ? t->own_cap : 8;
    if (t->own_n == cap) {
        uint32_t nc = cap * 2;
        weft__scope **na = malloc(nc * sizeof *na);
        if (!na)
            weft__panic("out of memory recording a cancel scope (depth %u)", t->own_n);
        memcpy(na, own_slots(t), t->own_n * sizeof *na);
        free(t->own);
        t->own = na;
        t->own_cap = nc;
    }
    own_slots(t)[t->own_n++] = s;
}

static void own_pop(weft__task *t, weft__scope *s)
{
    weft__scope **v = own_slots(t);
    for (uint32_t i = t->own_n; i-- > 0;)
        if (v[i] == s) {
            memmove(&v[i], &v[i + 1], (t->own_n - i - 1) * sizeof *v);
            t->own_n--;
            return;
        }
}

/* A scope on this task's stack below `boundary` (the frame of the call
 * that is cleaning up: frames below it have returned) lived in a frame that
 * has returned: its memory may hold anything now. */
static bool dead(weft__task *t, const void *s, const char *boundary)
{
    const char *p = s;
    return t->stk_lo && p >= t->stk_lo && p < t->stk_lo + t->stk_size && p < boundary;
}

int weft__scope_unwind(weft__task *t, weft__scope *keep, const char *why, const char *boundary)
{
    /* Drop dead scopes without reading them, relink the chain of the live
     * ones (innermost last) onto the task's base. */
    weft__spin_lock(&t->lock);
    weft__scope **v = own_slots(t);
    uint32_t k = 0, dropped = 0;
    weft__scope *prev = t->scope_base;
    for (uint32_t i = 0; i < t->own_n; i++) {
        if (dead(t, v[i], boundary)) {
            dropped++;
            continue;
        }
        /* release: pairs with the acquire in weft__chain_eval. */
        atomic_store_explicit(&v[i]->parent, prev, memory_order_release);
        prev = v[k++] = v[i];
    }
    t->own_n = k;
    t->scope_top = prev;
    /* A nursery in caller storage cannot be dropped like a scope: its
     * children point at it. The live ones can be read; if fewer are left
     * than are open, a dropped one was such a nursery. */
    uint32_t cs_live = 0;
    for (uint32_t i = 0; i < k && dropped && t->cs_nurseries; i++)
        if ((atomic_load_explicit(&v[i]->flags, memory_order_relaxed) & S_NURSERY) &&
            v[i]->nursery->caller_storage)
            cs_live++;
    weft__spin_unlock(&t->lock);
    if (dropped && cs_live < t->cs_nurseries)
        weft__panic("%s: a nursery in caller storage (weft_nursery_init) was still open when "
                    "the frame holding it returned; its children would outlive it (close it "
                    "with weft_nursery_fini before its storage goes away)",
                    why);
    weft__task_cancel_cache_reset(t);
    if (dropped)
        weft__misuse("%s: %u cancel scope(s) entered in frames that have returned; dropped", why,
                     dropped);
    int first = 0;
    while (t->own_n > 0) {
        weft__scope *s = own_slots(t)[t->own_n - 1];
        if (s == keep)
            break;
        if (atomic_load_explicit(&s->flags, memory_order_relaxed) & S_NURSERY) {
            weft__misuse("%s: a nursery opened later is still open; closing it", why);
            int r = weft__nursery_close_internal(t, s->nursery, boundary);
            if (r && r != -ECANCELED && !first)
                first = r;
        } else {
            weft__misuse("%s: a cancel scope entered later is still entered; exiting it", why);
            weft__scope_pop(t, s);
        }
    }
    return first;
}

/* ---- push and pop ----------------------------------------------------------- */

bool weft__scope_is_own(weft__task *t, const weft__scope *s)
{
    weft__scope **v = own_slots(t);
    for (uint32_t i = 0; i < t->own_n; i++)
        if (v[i] == s)
            return true;
    return false;
}

void weft__scope_push(weft__task *t, weft__scope *s, int64_t deadline, unsigned flags)
{
    s->owner = t;
    s->magic = WEFT__SCOPE_MAGIC;
    s->watch_slot = 0;
    atomic_store_explicit(&s->deadline, deadline, memory_order_relaxed);
    atomic_store_explicit(&s->flags, flags, memory_order_relaxed);
    weft__spin_lock(&t->lock);
    /* release: s's fields before a reader that follows the link. */
    atomic_store_explicit(&s->parent, t->scope_top, memory_order_release);
    t->scope_top = s;
    own_push(t, s);
    weft__spin_unlock(&t->lock);
    /* A fresh scope is neither cancelled nor shielded: the cached verdict
     * stays valid, and only the deadline may move earlier. */
    if (deadline < t->c_deadline) {
        t->c_deadline = deadline;
        t->c_dl_scope = s;
    }
}

void weft__scope_pop(weft__task *t, weft__scope *s)
{
    /* Before t->lock: the monitor may hold the watch lock while it walks
     * (taking task locks). */
    if (atomic_load_explicit(&s->flags, memory_order_acquire) & S_WATCHED)
        weft__watch_remove(s);
    weft__spin_lock(&t->lock);
    t->scope_top = atomic_load_explicit(&s->parent, memory_order_relaxed);
    own_pop(t, s);
    weft__spin_unlock(&t->lock);
    s->magic = 0;
    /* The verdict survives unless s contributed to it: its cancel, its
     * deadline, or a shield that hid the scopes outside it. (A concurrent
     * change to s bumps the generation, which invalidates it anyway.) */
    if ((atomic_load_explicit(&s->flags, memory_order_relaxed) & (S_CANCELLED | S_SHIELDED)) ||
        t->c_dl_scope == s)
        weft__task_cancel_cache_reset(t);
}

/* ---- public -------------------------------------------------------------- */

static weft__scope *priv(weft_scope *s) { return (weft__scope *)(void *)s; }

void weft_scope_enter(weft_scope *s, int64_t deadline)
{
    weft__task *t = weft__current();
    if (!s) {
        weft__misuse("weft_scope_enter(NULL)");
        return;
    }
    memset(s, 0, sizeof *s);
    if (!t) {
        weft__misuse("weft_scope_enter outside a task");
        return;
    }
    weft__scope_push(t, priv(s), deadline, 0);
}

void weft_scope_cancel(weft_scope *s)
{
    if (!s || priv(s)->magic != WEFT__SCOPE_MAGIC) {
        weft__misuse("weft_scope_cancel on a scope that is not entered");
        return;
    }
    weft__scope_cancel(priv(s));
}

void weft_scope_set_deadline(weft_scope *s, int64_t deadline)
{
    if (!s || priv(s)->magic != WEFT__SCOPE_MAGIC) {
        weft__misuse("weft_scope_set_deadline on a scope that is not entered");
        return;
    }
    weft__scope_set_deadline(priv(s), deadline);
}

void weft_scope_shield(weft_scope *s, bool on)
{
    weft__task *t = weft__current();
    if (!s || priv(s)->magic != WEFT__SCOPE_MAGIC || priv(s)->owner != t) {
        weft__misuse("weft_scope_shield: only the task that entered the scope may shield it");
        return;
    }
    if (on)
        atomic_fetch_or_explicit(&priv(s)->flags, S_SHIELDED, memory_order_seq_cst);
    else
        atomic_fetch_and_explicit(&priv(s)->flags, ~S_SHIELDED, memory_order_seq_cst);
    bump();
    /* Dropping a shield can expose a cancel that happened behind it: the
     * tasks inside (children of nurseries in s) must hear about it. */
    if (!on)
        walk(priv(s));
}

bool weft_scope_exit(weft_scope *s)
{
    weft__task *t = weft__current();
    weft__scope *p = priv(s);
    if (!s || p->magic != WEFT__SCOPE_MAGIC || !t || p->owner != t) {
        weft__misuse("weft_scope_exit on a scope this task has not entered");
        return false;
    }
    if (p->flags & S_NURSERY) {
        weft__misuse("weft_scope_exit on a nursery's scope; use weft_nursery_close");
        return false;
    }
    /* Anything entered after s and still open was left by a returned frame
     * (or closed out of order): close it now, innermost first. */
    if (t->scope_top != p)
        weft__scope_unwind(t, p, "weft_scope_exit", __builtin_frame_address(0));
    if (t->scope_top != p) {
        weft__misuse("weft_scope_exit: scope is not on this task's stack");
        return false;
    }
    unsigned f = atomic_load_explicit(&p->flags, memory_order_acquire);
    int64_t dl = atomic_load_explicit(&p->deadline, memory_order_relaxed);
    bool cancelled = (f & (S_CANCELLED | S_DEADLINE_HIT)) ||
                     (dl != WEFT_FOREVER && dl <= weft__now());
    weft__scope_pop(t, p);
    return cancelled;
}
