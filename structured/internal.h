/*
 * structured/internal.h - nurseries, the cancel walk, the root.
 *
 * Locks and their order. Three kinds of lock guard the task tree:
 *   t->lock   a task's own scope chain (push/pop) and its "starting" list
 *   n->lock   a nursery's children lists and counters
 *   timer and queue locks (sched), never held while taking the two above.
 * Everyone but a cancel walk takes at most one of them at a time. A
 * task's first wait lists it on its nursery (weft__task_list), so n->lock
 * may be taken while the task holds a sync or io lock (a channel's, a
 * ring's); nobody takes one of those while holding n->lock. A walk
 * (scope.c) descends the tree holding the locks along its path, always in
 * tree order: a task before the nurseries it opened, a nursery before its
 * children. Tree order is a partial order that every walker follows, so
 * walks cannot deadlock with each other or with anyone else.
 */
#ifndef WEFT_STRUCTURED_INTERNAL_H
#define WEFT_STRUCTURED_INTERNAL_H

#include "../sched/internal.h"

/* The children count is split in two, so that a spawn and a child's end
 * touch different cache lines: a spawn adds to `spawned` (the spawning
 * side), a child's end to `left` (the finishing side, at least a line
 * away). Until close, left counts the children that finished. Close sets
 * N_CLOSING in spawned and takes the count from left (under a bias, so
 * that left cannot pass 0 in between). From then on left is minus the
 * children still alive; a spawn that finds N_CLOSING set takes one from
 * left itself (the single word spawned orders it against the close), and
 * the child whose end brings left from -1 to 0 wakes the closer. The root
 * nursery counts that way from the start.
 *
 * The opener's side of the count needs no atomic: own_net counts the
 * opener's own spawns (fork-join's every spawn) up, and the ends of the
 * children that close runs inline down, with a relaxed load and store.
 * Only the opener's thread writes it: the opener cannot spawn while it
 * closes (close is its own call), and close goes on only after an inline
 * child ended, on the thread where it ended. Close adds it to the count
 * it takes from spawned. (An inline child may have been spawned by
 * another task: own_net can go below 0; the sum is what counts.) */
#define N_CLOSING (1ull << 63)
#define N_BIAS (1ll << 62) /* on left while close counts over (nursery.c) */
/* Laid out for a nursery that is only 16-byte aligned (the public
 * weft_nursery: a cache line may start at any multiple of 16 bytes in it)
 * so that the spawning side's count shares a line with nothing the
 * children's workers touch per child:
 *   - the scope, read by each child's first look at its cancel state;
 *   - then what is touched about once per close (what close leaves for the
 *     last child) or per failure (under the lock), and what a spawn only
 *     reads, as padding;
 *   - the spawning side: `spawned` and own_net;
 *   - the finishing side: `left`, and what each child's end reads or
 *     writes (is_root, the running list and its lock). */
struct weft__nursery {
    weft__scope scope;  /* S_NURSERY; owner = the opener */
    weft__task *closer; /* parked in close, or NULL; written before close counts over */
    uint64_t close_token;
    int first_failure; /* 0 until a child fails (under the lock) */
    unsigned failures_reported;
    unsigned failures_dropped;
    uint32_t magic;
    bool caller_storage;      /* from weft_nursery_init: never goes to the pool */
    weft__nursery *free_next; /* in the pool (nursery.c) */
    char pad0_[96 - sizeof(weft__scope) - 48];
    /* The spawning side. */
    _Atomic uint64_t spawned; /* spawns by others than the opener, and N_CLOSING */
    _Atomic int64_t own_net;  /* the opener's spawns less inline ends (atomic for weft_dump) */
    char pad1_[168 - 112];
    /* The finishing side. */
    _Atomic int64_t left; /* finished children; after close, minus those alive */
    weft__task *running;  /* children weft__task_list listed (sib list) */
    weft__spin lock;      /* running and the failures */
    bool is_root;
};
_Static_assert(sizeof(weft__nursery) <= sizeof(weft_nursery), "weft_nursery too small");
_Static_assert(_Alignof(weft__nursery) <= _Alignof(weft_nursery), "weft_nursery misaligned");
/* With lines starting at any multiple of 16: 48 bytes between the scope
 * and `spawned`, and 56 after own_net, keep them on different lines. */
_Static_assert(offsetof(weft__nursery, spawned) >= sizeof(weft__scope) + 48,
               "the spawn count must not share a line with the scope");
_Static_assert(offsetof(weft__nursery, own_net) == offsetof(weft__nursery, spawned) + 8,
               "the spawning side is spawned and own_net");
_Static_assert(offsetof(weft__nursery, left) >= offsetof(weft__nursery, own_net) + 8 + 56,
               "a nursery's two sides must sit on different cache lines");
#define WEFT__NURSERY_MAGIC 0x6e757273u

/* Frees the nursery pool when a runtime ends (nursery.c). */
WEFT__HIDDEN void weft__nursery_pool_fini(void);

/* Cancels s (sticky) and wakes every task it reaches. Any thread. */
WEFT__HIDDEN void weft__scope_cancel(weft__scope *s);
/* Moves s's deadline, re-arming the timers of parked tasks under it. */
WEFT__HIDDEN void weft__scope_set_deadline(weft__scope *s, int64_t deadline);
/* Pushes / pops a scope on the current task (under t->lock). */
WEFT__HIDDEN void weft__scope_push(weft__task *t, weft__scope *s, int64_t deadline, unsigned flags);
WEFT__HIDDEN void weft__scope_pop(weft__task *t, weft__scope *s);
/* Is s one of the scopes t has entered and not yet left? (t = the caller) */
WEFT__HIDDEN bool weft__scope_is_own(weft__task *t, const weft__scope *s);

WEFT__HIDDEN weft__nursery *weft__nursery_new_root(weft__rt *rt);
WEFT__HIDDEN int weft__spawn(weft__nursery *n, weft_fn fn, void *arg, const weft_spawn_attr *attr,
                             const char *file, int line, weft__task **out);
WEFT__HIDDEN void weft__structured_install(void);
/* A walk of the task tree below a scope (scope.c), in tree order, holding
 * the locks along the path. task() runs with t->lock held for every task
 * the walk reaches (with `all` false, shields stop it: a cancel's reach);
 * nursery() with n->lock held. */
typedef struct weft__walker {
    bool all;
    void (*task)(struct weft__walker *w, weft__task *t, int depth);
    void (*nursery)(struct weft__walker *w, weft__nursery *n, int depth);
    bool watch; /* the cancel walk's result (see weft__scope_walk) */
    void *ctx;
} weft__walker;
WEFT__HIDDEN void weft__tree_walk(weft__scope *s, weft__walker *w);
WEFT__HIDDEN bool weft__scope_walk(weft__scope *s);
/* t's chain was relinked (weft_task_started): invalidate every cached
 * verdict and poke the tasks below t's own scopes. */
WEFT__HIDDEN void weft__scope_reparented(weft__task *t);
/* Prints the task tree of rt to fd (dump.c). */
WEFT__HIDDEN void weft__dump_rt(weft__rt *rt, int fd);
/* Closes (nurseries) or exits (scopes) everything the task entered above
 * `keep` (NULL: everything), innermost first, reporting each as misuse
 * with `why`; scopes in frames that returned are dropped unread. Returns
 * the first failure of a nursery closed here, or 0. */
WEFT__HIDDEN int weft__scope_unwind(weft__task *t, weft__scope *keep, const char *why,
                                    const char *boundary);
/* The monitor's deadline watch: walks s when `deadline` passes (for parked
 * tasks that carry no timer of their own). Removed when s is popped. */
WEFT__HIDDEN void weft__watch_add(weft__scope *s, int64_t deadline);
WEFT__HIDDEN void weft__watch_remove(weft__scope *s);

typedef struct {
    uint64_t last_progress;
    int strikes;
    bool reported;
} weft__deadlock_state;
/* 0: fine; 1: a deadlock, first time (cancel the root); 2: still stuck. */
WEFT__HIDDEN int weft__deadlock_check(weft__rt *rt, weft__deadlock_state *st);
/* boundary: the frame address of the public call; scopes below it lived in
 * frames that have returned (see weft__scope_unwind). */
WEFT__HIDDEN int weft__nursery_close_internal(weft__task *t, weft__nursery *n,
                                              const char *boundary);

#endif
