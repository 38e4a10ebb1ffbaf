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
 *
 * At scale (tens of thousands of tasks) the text is built with a handful of
 * reallocations and leaves in one or two writes; the totals by state and by
 * wait reason are counted during the walk and go out first, ahead of the
 * tree, so an operator reads the shape of the run before its details.
 */
#include "internal.h"

#include "../sync/internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <sys/uio.h>
#include <unistd.h>

#define REASONS_MAX 24

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

/* Writes head then body, as few write calls as the fd accepts. */
static void flush_to(dbuf *head, dbuf *body, int fd)
{
    struct iovec iov[2] = {{head->p, head->len}, {body->p, body->len}};
    int i = 0;
    while (i < 2) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        ssize_t w = writev(fd, &iov[i], 2 - i);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        size_t left = (size_t)w;
        while (i < 2 && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            iov[i].iov_len = 0;
            i++;
        }
        if (i < 2) {
            iov[i].iov_base = (char *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    if (head->truncated || body->truncated)
        dprintf(fd, "weft: dump: truncated (out of memory)\n");
    free(head->p);
    free(body->p);
}

/* What the walk counts for the totals at the top. */
typedef struct {
    dbuf *b;
    weft__rt *rt;
    uint64_t now_ticks;
    unsigned long by_state[T_DONE + 1];
    unsigned long tasks, nurseries;
    struct {
        const char *what;
        unsigned long n;
        int64_t longest_ns;
    } reasons[REASONS_MAX];
    unsigned nreasons;
    unsigned long reasons_other;
} dctx;

static void count_reason(dctx *c, const char *what, int64_t waited)
{
    for (unsigned i = 0; i < c->nreasons; i++)
        if (c->reasons[i].what == what || strcmp(c->reasons[i].what, what) == 0) {
            c->reasons[i].n++;
            if (waited > c->reasons[i].longest_ns)
                c->reasons[i].longest_ns = waited;
            return;
        }
    if (c->nreasons == REASONS_MAX) {
        c->reasons_other++;
        return;
    }
    c->reasons[c->nreasons].what = what;
    c->reasons[c->nreasons].n = 1;
    c->reasons[c->nreasons].longest_ns = waited;
    c->nreasons++;
}

/* "1.234 s", "12.3 ms", "45 us" */
static void out_duration(dbuf *b, int64_t ns)
{
    if (ns >= 1000000000)
        out(b, "%.3f s", (double)ns / 1e9);
    else if (ns >= 1000000)
        out(b, "%.1f ms", (double)ns / 1e6);
    else
        out(b, "%lld us", (long long)(ns / 1000));
}

static void out_owner(dbuf *b, uint64_t owner)
{
    if (owner == 0)
        out(b, ", free now");
    else if (owner >> 63)
        out(b, ", held by thread %llu", (unsigned long long)(owner & ~(1ull << 63)));
    else
        out(b, ", held by task %llu", (unsigned long long)owner);
}

/* A function address as a name: dladdr finds exported symbols (an
 * executable's own functions need -rdynamic), else the module and offset. */
static void out_function(dbuf *b, const void *fn)
{
    Dl_info info;
    if (fn && dladdr(fn, &info) && info.dli_fname) {
        if (info.dli_sname && info.dli_saddr == fn) {
            out(b, " %s()", info.dli_sname);
            return;
        }
        if (info.dli_sname && info.dli_saddr)
            out(b, " %s+0x%tx", info.dli_sname, (const char *)fn - (const char *)info.dli_saddr);
        else
            out(b, " %p", fn);
        const char *base = strrchr(info.dli_fname, '/');
        out(b, " in %s", base ? base + 1 : info.dli_fname);
        return;
    }
    out(b, " %p", fn);
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

static void dump_wait(dctx *c, weft__task *t)
{
    dbuf *b = c->b;
    const char *what = atomic_load_explicit(&t->wait_what, memory_order_relaxed);
    const void *obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
    uint64_t since = atomic_load_explicit(&t->wait_since, memory_order_relaxed);
    /* A host running a child inline began no wait (task.c): no stamp. */
    if (what && strstr(what, "running a child inline"))
        since = 0;
    int64_t waited = since && c->now_ticks > since ? weft__ticks_to_ns(c->rt, c->now_ticks - since)
                                                   : 0;
    if (!what)
        what = "a wait";
    count_reason(c, what, waited);
    out(b, " in %s", what);
    if (strcmp(what, "select") == 0) {
        unsigned k = atomic_load_explicit(&t->wait_nchans, memory_order_relaxed);
        out(b, " on channel %p", obj);
        if (k > 1)
            out(b, ", channel %p", atomic_load_explicit(&t->wait_chan2, memory_order_relaxed));
        if (k > 2)
            out(b, " and %u more", k - 2);
    } else if (strcmp(what, "weft_blocking") == 0) {
        out(b, " running");
        out_function(b, obj);
    } else if (weft__io_is_fd_wait(what)) {
        /* "in weft_recv on fd 7 (io_uring)": the fd is the wait object. */
        int fd = (int)(intptr_t)obj;
        const char *backend = weft_io_backend_name();
        if (fd >= 0)
            out(b, " on fd %d", fd);
        out(b, " (%s)", backend ? backend : "no I/O backend");
    } else if (obj) {
        out(b, " %p", obj);
    }
    if (strcmp(what, "mutex") == 0 && obj)
        out_owner(b, weft__mutex_owner(obj));
    if (since) {
        out(b, " for ");
        out_duration(b, waited);
    }
}

static void dump_task(weft__walker *w, weft__task *t, int depth)
{
    dctx *c = w->ctx;
    dbuf *b = c->b;
    indent(b, depth);
    unsigned st = atomic_load_explicit(&t->state, memory_order_relaxed);
    c->tasks++;
    c->by_state[st <= T_DONE ? st : T_DONE]++;
    /* Only what cannot race: the id and spawn site (fixed at spawn), the
     * name (written under t->lock, which the walk holds), atomics. */
    out(b, "task %llu \"%s\" %s", (unsigned long long)t->id, t->name, state_name(st));
    if (st == T_PARKED)
        dump_wait(c, t);
    if (t->pin_home)
        out(b, " (spawned pinned to worker %d)", t->pin_home->id);
    if (t->spawn_file)
        out(b, " [spawned at %s:%d]", t->spawn_file, t->spawn_line);
    out(b, "\n");
}

static void dump_nursery(weft__walker *w, weft__nursery *n, int depth)
{
    dctx *c = w->ctx;
    dbuf *b = c->b;
    c->nurseries++;
    /* A snapshot of the counts (structured/internal.h); the running list
     * under n->lock, which the walk holds. */
    uint64_t sp = atomic_load_explicit(&n->spawned, memory_order_relaxed);
    int64_t left = atomic_load_explicit(&n->left, memory_order_relaxed);
    if (left < -N_BIAS / 2)
        left += N_BIAS; /* its closer is counting over: roughly */
    int64_t own = atomic_load_explicit(&n->own_net, memory_order_relaxed);
    int64_t alive = (sp & N_CLOSING) ? -left : (int64_t)sp + own - left;
    int64_t running = 0;
    for (weft__task *u = n->running; u; u = u->sib_next)
        running++;
    int64_t unstarted = alive > running ? alive - running : 0;
    indent(b, depth);
    out(b, "%s %p: %lld children (%lld not shown: not started, or never waited)%s%s\n",
        n->is_root ? "root nursery" : "nursery", (void *)n, (long long)(alive > 0 ? alive : 0),
        (long long)unstarted,
        (atomic_load_explicit(&n->scope.flags, memory_order_relaxed) & S_CANCELLED) ? ", cancelled"
                                                                                    : "",
        /* Written by close without the lock (nursery.c): a racy flag. */
        __atomic_load_n(&n->closer, __ATOMIC_RELAXED) ? ", its opener waits in close" : "");
}

static void out_totals(dbuf *b, dctx *c)
{
    out(b, "  totals: %lu tasks in %lu nurseries:", c->tasks, c->nurseries);
    for (unsigned s = 0; s <= T_DONE; s++)
        if (c->by_state[s])
            out(b, " %lu %s", c->by_state[s], state_name(s));
    out(b, "\n");
    for (unsigned i = 0; i < c->nreasons; i++) {
        out(b, "  parked in %s: %lu (longest ", c->reasons[i].what, c->reasons[i].n);
        out_duration(b, c->reasons[i].longest_ns);
        out(b, ")\n");
    }
    if (c->reasons_other)
        out(b, "  parked in other waits: %lu\n", c->reasons_other);
}

void weft__dump_rt(weft__rt *rt, int fd)
{
    dbuf head = {NULL, 0, 0, false}, buf = {NULL, 0, 0, false}, *b = &buf;
    dctx c;
    memset(&c, 0, sizeof c);
    c.b = b;
    c.rt = rt;
    c.now_ticks = weft__ticks();
    out(&head, "weft: dump: %u workers, %llu live tasks\n", rt->nworkers,
        (unsigned long long)weft__tasks_live(rt));
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        /* The task it runs, by name: one that never waited is not in the
         * tree below. acquire: pairs with the store at switch-in. */
        char running[WEFT__NAME_MAX + 48] = "running a task";
        weft__task *rt_task = atomic_load_explicit(&w->running, memory_order_acquire);
        if (rt_task && atomic_load_explicit(&w->running_task, memory_order_relaxed)) {
            char name[WEFT__NAME_MAX];
            uint64_t id;
            const char *file;
            int line;
            weft__task_snapshot(rt_task, name, &id, &file, &line);
            if (atomic_load_explicit(&w->running, memory_order_acquire) == rt_task)
                snprintf(running, sizeof running, "running task %llu \"%s\"",
                         (unsigned long long)id, name);
        }
        out(b, "  worker %u: %s, %u queued, %u spawns queued, %s\n", i,
            atomic_load_explicit(&w->idle, memory_order_relaxed) == IDLE_PARKED ? "parked"
            : atomic_load_explicit(&w->running_task, memory_order_relaxed)      ? running
                                                                                : "scheduling",
            weft__runq_len(&w->runq), weft__deque_len(&w->spawnq),
            atomic_load_explicit(&w->timer_next, memory_order_relaxed) == WEFT_FOREVER
                ? "no timer"
                : "a timer armed");
    }
    out(b, "  tree:\n");
    weft__walker v = {.all = true, .task = dump_task, .nursery = dump_nursery, .ctx = &c};
    weft__tree_walk(&rt->root_nursery->scope, &v);
    out_totals(&head, &c);
    /* Every lock of the walk is released: now the fd may take its time. */
    flush_to(&head, b, fd);
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
