/*
 * dump.c - weft_dump: the task tree, what every task waits on.
 *
 * One walk of the whole tree (every shield ignored) from the root nursery,
 * in tree order, printing each nursery and task while holding its lock (see
 * the lock order in internal.h); it reads only what the lock protects, what
 * never changes after spawn, and atomics (a snapshot). The snapshot goes
 * into a memory buffer while the locks are held; the fd is written only
 * after the walk has let go of them, so a slow pipe or terminal never
 * stalls the spawns and exits of the nurseries it shows.
 */
#include "internal.h"

#include <stdarg.h>
#include <unistd.h>

/* The text of a dump, built in memory. On allocation failure it keeps what
 * it has and notes the truncation. */
typedef struct {
    char *p;
    size_t len, cap;
    bool truncated;
} dbuf;

__attribute__((format(printf, 2, 3))) static void out(dbuf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 16384;
        while (nc - b->len <= (size_t)n)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->truncated = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

static void flush_to(dbuf *b, int fd)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->p + off, b->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (b->truncated)
        dprintf(fd, "weft: dump: truncated (out of memory)\n");
    free(b->p);
}

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

static void indent(dbuf *b, int depth) { out(b, "%*s", 2 * (depth < 40 ? depth : 40), ""); }

static void dump_task(weft__walker *w, weft__task *t, int depth)
{
    dbuf *b = w->ctx;
    indent(b, depth);
    unsigned st = atomic_load_explicit(&t->state, memory_order_relaxed);
    /* Only what cannot race: the id and spawn site (fixed at spawn), the
     * name (written under t->lock, which the walk holds), atomics. */
    out(b, "task %llu \"%s\" %s", (unsigned long long)t->id, t->name, state_name(st));
    if (st == T_PARKED) {
        const char *what = atomic_load_explicit(&t->wait_what, memory_order_relaxed);
        const void *obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
        out(b, " in %s", what ? what : "a wait");
        if (obj)
            out(b, " %p", obj);
    }
    if (t->pin_home)
        out(b, " (spawned pinned to worker %d)", t->pin_home->id);
    if (t->spawn_file)
        out(b, " [spawned at %s:%d]", t->spawn_file, t->spawn_line);
    out(b, "\n");
}

static void dump_nursery(weft__walker *w, weft__nursery *n, int depth)
{
    dbuf *b = w->ctx;
    unsigned unstarted = 0;
    for (weft__task *c = n->unstarted; c; c = c->sib_next)
        unstarted++;
    indent(b, depth);
    out(b, "%s %p: %u children (%u not started yet)%s%s\n", n->is_root ? "root nursery" : "nursery",
        (void *)n, n->nchildren, unstarted,
        (atomic_load_explicit(&n->scope.flags, memory_order_relaxed) & S_CANCELLED) ? ", cancelled"
                                                                                    : "",
        n->closer ? ", its opener waits in close" : "");
}

void weft__dump_rt(weft__rt *rt, int fd)
{
    dbuf buf = {NULL, 0, 0, false}, *b = &buf;
    out(b, "weft: dump: %u workers, %llu live tasks\n", rt->nworkers,
        (unsigned long long)weft__tasks_live(rt));
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        out(b, "  worker %u: %s, %u queued, %u spawns queued, %s\n", i,
            atomic_load_explicit(&w->idle, memory_order_relaxed) == IDLE_PARKED ? "parked"
            : atomic_load_explicit(&w->running_task, memory_order_relaxed)      ? "running a task"
                                                                                : "scheduling",
            weft__runq_len(&w->runq), weft__deque_len(&w->spawnq),
            atomic_load_explicit(&w->timer_next, memory_order_relaxed) == WEFT_FOREVER
                ? "no timer"
                : "a timer armed");
    }
    weft__walker v = {.all = true, .task = dump_task, .nursery = dump_nursery, .ctx = b};
    weft__tree_walk(&rt->root_nursery->scope, &v);
    /* Every lock of the walk is released: now the fd may take its time. */
    flush_to(b, fd);
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
