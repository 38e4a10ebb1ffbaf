/*
 * dump.c - weft_dump: the task tree, what every task waits on.
 *
 * One walk of the whole tree (every shield ignored) from the root nursery,
 * in tree order, printing each nursery and task while holding its lock (see
 * the lock order in internal.h); it reads only what the lock protects, what
 * never changes after spawn, and atomics (a snapshot). Writes go straight to the fd with dprintf
 * (no stdio buffer).
 */
#include "internal.h"

#include <stdarg.h>

static const char *state_name(unsigned s)
{
    switch (s) {
    case T_NEW:
        return "unstarted";
    case T_RUNNING:
        return "running";
    case T_READY:
        return "runnable";
    case T_PARKED:
        return "parked";
    case T_DONE:
        return "done";
    default:
        return "?";
    }
}

static void indent(int fd, int depth)
{
    for (int i = 0; i < depth && i < 40; i++)
        dprintf(fd, "  ");
}

static void dump_task(weft__walker *w, weft__task *t, int depth)
{
    int fd = *(int *)w->ctx;
    indent(fd, depth);
    unsigned st = atomic_load_explicit(&t->state, memory_order_relaxed);
    /* Only what cannot race: the id and spawn site (fixed at spawn), the
     * name (written under t->lock, which the walk holds), atomics. */
    dprintf(fd, "task %llu \"%s\" %s", (unsigned long long)t->id, t->name, state_name(st));
    if (st == T_PARKED) {
        const char *what = atomic_load_explicit(&t->wait_what, memory_order_relaxed);
        const void *obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
        dprintf(fd, " in %s", what ? what : "a wait");
        if (obj)
            dprintf(fd, " %p", obj);
    }
    if (t->pin_home)
        dprintf(fd, " (spawned pinned to worker %d)", t->pin_home->id);
    if (t->spawn_file)
        dprintf(fd, " [spawned at %s:%d]", t->spawn_file, t->spawn_line);
    dprintf(fd, "\n");
}

static void dump_nursery(weft__walker *w, weft__nursery *n, int depth)
{
    int fd = *(int *)w->ctx;
    unsigned unstarted = 0;
    for (weft__task *c = n->unstarted; c; c = c->sib_next)
        unstarted++;
    indent(fd, depth);
    dprintf(fd, "%s %p: %u children (%u not started yet)%s%s\n",
            n->is_root ? "root nursery" : "nursery", (void *)n, n->nchildren, unstarted,
            (atomic_load_explicit(&n->scope.flags, memory_order_relaxed) & S_CANCELLED)
                ? ", cancelled"
                : "",
            n->closer ? ", its opener waits in close" : "");
}

void weft__dump_rt(weft__rt *rt, int fd)
{
    dprintf(fd, "weft: dump: %u workers, %llu live tasks\n", rt->nworkers,
            (unsigned long long)weft__tasks_live(rt));
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        dprintf(fd, "  worker %u: %s, %u queued, %u spawns queued, %s\n", i,
                atomic_load_explicit(&w->idle, memory_order_relaxed) == IDLE_PARKED ? "parked"
                : atomic_load_explicit(&w->running_task, memory_order_relaxed) ? "running a task"
                                                                               : "scheduling",
                weft__runq_len(&w->runq), weft__deque_len(&w->spawnq),
                atomic_load_explicit(&w->timer_next, memory_order_relaxed) == WEFT_FOREVER
                    ? "no timer"
                    : "a timer armed");
    }
    weft__walker v = {.all = true, .task = dump_task, .nursery = dump_nursery, .ctx = &fd};
    weft__tree_walk(&rt->root_nursery->scope, &v);
}

void weft_dump(int fd)
{
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_acquire);
    if (!rt) {
        dprintf(fd, "weft: dump: no runtime is running\n");
        return;
    }
    weft__dump_rt(rt, fd);
}
