/*
 * trace.c - the scheduler trace: WEFT_TRACE=path.json (or
 * weft_config.trace_path) writes a Chrome/Perfetto trace-event file when
 * weft_run returns.
 *
 * Recording. Each worker owns a bounded array of fixed-size binary events
 * (w->trace): only its own thread appends, so there is no lock and no
 * allocation on the hot path; when the array is full, further events are
 * dropped and counted (the count goes into the file). Threads that are not
 * workers (the monitor, the blocking pool, foreign threads waking a task)
 * append to one shared array under a spin lock: they are never on a hot
 * path. With tracing off, every hook is one relaxed load of weft__trace_on
 * and a predicted branch (internal.h).
 *
 * Writing. After the workers and the monitor have stopped, all events are
 * merged by time and turned into trace events: per worker a track (tid =
 * worker id) with a complete slice per run of a task ("name #id") and per
 * idle period; instants for parks (with the wait reason), steals (with the
 * victim), spawns and wakes; flow arrows parent -> child from each spawn to
 * the child's first run slice, and waker -> woken from each wake to the
 * woken task's next run slice; the monitor's actions on a track of their
 * own. Slices still open at the end are closed at the last event's time.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

enum {
    EV_RUN = 1, /* a: task id, name */
    EV_STOP,    /* a: task id, arg: PREV_*, what: wait reason (park) */
    EV_SPAWN,   /* a: parent id (0: none), b: child id */
    EV_WAKE,    /* a: waker task id (0: not a task), b: woken id, what: reason */
    EV_STEAL,   /* arg: victim worker, a: task id taken */
    EV_IDLE_BEGIN,
    EV_IDLE_END,
    EV_STUCK,      /* arg: worker, a: task id, b: ns stuck */
    EV_MON_TIMERS, /* arg: worker, a: timers fired */
    EV_MON_WAKE,   /* arg: worker whose queue an idle worker was woken for */
};

typedef struct {
    int64_t ts;
    uint32_t kind;
    int32_t arg;
    uint64_t a, b;
    const char *what;
    char name[WEFT__NAME_MAX];
} tev;

typedef struct {
    tev *ev;
    size_t n, cap;
    uint64_t dropped;
} ring;

atomic_bool weft__trace_on;
static int trace_fd = -1;
static char *trace_path;
static size_t ring_cap;
static ring other; /* non-worker threads, under other_lock */
static weft__spin other_lock;

#define DEFAULT_EVENTS (1u << 19) /* per worker; about 40 MB at most, committed as used */
#define OTHER_TRACK 100000

static inline tev *slot(ring *r)
{
    if (WEFT__UNLIKELY(r->n == r->cap)) {
        r->dropped++;
        return NULL;
    }
    return &r->ev[r->n++];
}

/* Appends to the calling worker's ring, or the shared one. */
static void emit(uint32_t kind, int32_t arg, uint64_t a, uint64_t b, const char *what,
                 const char *name)
{
    weft__worker *w = weft__self();
    ring *r = w ? w->trace : NULL;
    if (!r) {
        weft__spin_lock(&other_lock);
        r = &other;
    }
    tev *e = slot(r);
    if (e) {
        /* Ticks, not a clock read: a third of the cost; converted to
         * CLOCK_MONOTONIC ns when the file is written. */
        e->ts = (int64_t)weft__ticks();
        e->kind = kind;
        e->arg = arg;
        e->a = a;
        e->b = b;
        e->what = what;
        if (name)
            memcpy(e->name, name, WEFT__NAME_MAX);
        else
            e->name[0] = 0;
    }
    if (r == &other)
        weft__spin_unlock(&other_lock);
}

void weft__trace_run(weft__task *t) { emit(EV_RUN, 0, t->id, 0, NULL, t->name); }

void weft__trace_stop(weft__task *t, int reason)
{
    const char *what = NULL;
    if (reason == PREV_PARK) {
        what = atomic_load_explicit(&t->wait_what, memory_order_relaxed);
        if (!what)
            what = "a wait";
    }
    emit(EV_STOP, reason, t->id, 0, what, NULL);
}

void weft__trace_switch(weft__task *t, int reason, weft__task *next)
{
    weft__trace_stop(t, reason);
    if (next)
        weft__trace_run(next);
}

void weft__trace_spawn(weft__task *parent, weft__task *child)
{
    emit(EV_SPAWN, 0, parent ? parent->id : 0, child->id, NULL, NULL);
}

void weft__trace_wake(weft__task *t, int reason)
{
    weft__task *self = weft__current();
    static const char *const why[] = {"idle", "waiting", "woken", "timer", "cancel"};
    emit(EV_WAKE, reason, self ? self->id : 0, t->id,
         reason >= 0 && reason <= W_CANCEL ? why[reason] : "?", NULL);
}

void weft__trace_steal(int victim, weft__task *t) { emit(EV_STEAL, victim, t->id, 0, NULL, NULL); }

void weft__trace_idle(bool begin)
{
    emit(begin ? EV_IDLE_BEGIN : EV_IDLE_END, 0, 0, 0, NULL, NULL);
}

void weft__trace_monitor(int kind, weft__worker *w, uint64_t a)
{
    if (!atomic_load_explicit(&weft__trace_on, memory_order_relaxed))
        return;
    emit(kind == 0 ? EV_MON_TIMERS : EV_MON_WAKE, w->id, a, 0, NULL, NULL);
}

void weft__trace_stuck(weft__worker *w, uint64_t task_id, int64_t stuck_ns)
{
    if (!atomic_load_explicit(&weft__trace_on, memory_order_relaxed))
        return;
    emit(EV_STUCK, w->id, task_id, (uint64_t)stuck_ns, NULL, NULL);
}

/* ---- start and finish ------------------------------------------------------ */

int weft__trace_start(weft__rt *rt, const char *path)
{
    if (!path || !*path)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "weft: weft_run: cannot open the trace file \"%s\": %s\n", path,
                strerror(e));
        return -e;
    }
    ring_cap = DEFAULT_EVENTS;
    const char *s = getenv("WEFT_TRACE_EVENTS");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end || v < 1024 || v > (1ull << 28)) {
            fprintf(stderr, "weft: weft_run: WEFT_TRACE_EVENTS must be a number of events per "
                            "worker from 1024 to 2^28\n");
            close(fd);
            return -EINVAL;
        }
        ring_cap = (size_t)v;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring *r = calloc(1, sizeof *r);
        /* calloc of a large block maps fresh pages: committed only as the
         * worker writes them. */
        tev *ev = r ? calloc(ring_cap, sizeof *ev) : NULL;
        if (!ev) {
            free(r);
            for (unsigned k = 0; k < i; k++) {
                ring *q = rt->workers[k].trace;
                free(q->ev);
                free(q);
                rt->workers[k].trace = NULL;
            }
            close(fd);
            return -ENOMEM;
        }
        r->ev = ev;
        r->cap = ring_cap;
        rt->workers[i].trace = r;
    }
    other.ev = calloc(ring_cap, sizeof *other.ev);
    other.cap = other.ev ? ring_cap : 0;
    other.n = 0;
    other.dropped = 0;
    trace_fd = fd;
    trace_path = strdup(path);
    atomic_store_explicit(&weft__trace_on, true, memory_order_relaxed);
    return 0;
}

typedef struct {
    tev e;
    int track; /* worker id, or OTHER_TRACK */
    size_t seq;
} mev;

static int cmp_mev(const void *x, const void *y)
{
    const mev *a = x, *b = y;
    if (a->e.ts != b->e.ts)
        return a->e.ts < b->e.ts ? -1 : 1;
    if (a->track != b->track)
        return a->track < b->track ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Buffered output to the trace file. */
typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
    bool failed;
} wbuf;

static void wflush(wbuf *o)
{
    size_t off = 0;
    while (off < o->len && !o->failed) {
        ssize_t n = write(o->fd, o->buf + off, o->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            o->failed = true;
        else
            off += (size_t)n;
    }
    o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void wout(wbuf *o, const char *fmt, ...)
{
    if (sizeof o->buf - o->len < 1024)
        wflush(o);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void wstr(wbuf *o, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            wout(o, "\\%c", c);
        else if (c < 0x20)
            wout(o, "\\u%04x", c);
        else
            wout(o, "%c", c);
    }
}

static double us(int64_t ns, int64_t t0) { return (double)(ns - t0) / 1000.0; }

/* Flow arrows waiting for the next run slice of a task (spawn or wake). */
typedef struct {
    uint64_t task;
    uint64_t flow;
} pending;

typedef struct {
    pending *v;
    size_t n, cap;
} pendings;

static void pend(pendings *p, uint64_t task, uint64_t flow)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        pending *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv)
            return;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = (pending){task, flow};
}

typedef struct {
    bool open;
    int64_t ts;
    uint64_t task;
    char name[WEFT__NAME_MAX];
    bool idle;
    int64_t idle_ts;
} track_state;

static void write_json(weft__rt *rt, mev *all, size_t n, uint64_t dropped, int fd)
{
    wbuf *o = malloc(sizeof *o);
    if (!o)
        return;
    o->fd = fd;
    o->len = 0;
    o->failed = false;
    int64_t t0 = n ? all[0].e.ts : 0, tend = n ? all[n - 1].e.ts : 0;
    unsigned nw = rt->nworkers;
    track_state *ts = calloc(nw, sizeof *ts);
    pendings pend_v = {NULL, 0, 0};
    uint64_t flow_next = 1;
    wout(o,
         "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"weft\",\"workers\":%u,"
         "\"dropped_events\":%llu,\"events_per_worker\":%zu},\n\"traceEvents\":[\n",
         nw, (unsigned long long)dropped, ring_cap);
    wout(o, "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"weft\"}}");
    for (unsigned i = 0; i < nw; i++)
        wout(o,
             ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%u,\"name\":\"thread_name\",\"args\":{\"name\":"
             "\"worker %u\"}}",
             i, i);
    wout(o,
         ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":"
         "\"monitor and other threads\"}}",
         OTHER_TRACK);
    for (size_t k = 0; k < n && ts; k++) {
        tev *e = &all[k].e;
        int tr = all[k].track;
        track_state *s = tr < (int)nw ? &ts[tr] : NULL;
        double t = us(e->ts, t0);
        switch (e->kind) {
        case EV_RUN:
            if (!s)
                break;
            s->open = true;
            s->ts = e->ts;
            s->task = e->a;
            memcpy(s->name, e->name, sizeof s->name);
            s->name[sizeof s->name - 1] = 0;
            /* Flows that end at this task's next run start here. */
            for (size_t i = 0; i < pend_v.n;) {
                if (pend_v.v[i].task == e->a) {
                    wout(o,
                         ",\n{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"flow\",\"name\":\"flow\","
                         "\"id\":%llu,\"pid\":1,\"tid\":%d,\"ts\":%.3f}",
                         (unsigned long long)pend_v.v[i].flow, tr, t);
                    pend_v.v[i] = pend_v.v[--pend_v.n];
                } else {
                    i++;
                }
            }
            break;
        case EV_STOP:
            if (!s || !s->open || s->task != e->a)
                break;
            wout(o, ",\n{\"ph\":\"X\",\"cat\":\"run\",\"name\":\"");
            wstr(o, s->name[0] ? s->name : "task");
            wout(o,
                 " #%llu\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"task\":%llu,"
                 "\"end\":\"%s\"}}",
                 (unsigned long long)s->task, tr, us(s->ts, t0), (double)(e->ts - s->ts) / 1000.0,
                 (unsigned long long)s->task,
                 e->arg == PREV_PARK           ? "park"
                 : e->arg == PREV_YIELD        ? "yield"
                 : e->arg == WEFT__STOP_INLINE ? "runs a child inline"
                                               : "done");
            s->open = false;
            if (e->arg == PREV_PARK) {
                wout(o,
                     ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"park\",\"name\":\"park\",\"pid\":1,"
                     "\"tid\":%d,\"ts\":%.3f,\"args\":{\"task\":%llu,\"reason\":\"",
                     tr, t, (unsigned long long)e->a);
                wstr(o, e->what);
                wout(o, "\"}}");
            }
            break;
        case EV_SPAWN:
        case EV_WAKE: {
            bool spawn = e->kind == EV_SPAWN;
            uint64_t f = flow_next++;
            wout(o,
                 ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"%s\",\"name\":\"%s\",\"pid\":1,\"tid\":%d,"
                 "\"ts\":%.3f,\"args\":{\"from\":%llu,\"task\":%llu,\"flow\":%llu",
                 spawn ? "spawn" : "wake", spawn ? "spawn" : "wake", tr, t,
                 (unsigned long long)e->a, (unsigned long long)e->b, (unsigned long long)f);
            if (!spawn) {
                wout(o, ",\"reason\":\"");
                wstr(o, e->what);
                wout(o, "\"");
            }
            wout(o, "}}");
            wout(o,
                 ",\n{\"ph\":\"s\",\"cat\":\"flow\",\"name\":\"flow\",\"id\":%llu,\"pid\":1,"
                 "\"tid\":%d,\"ts\":%.3f}",
                 (unsigned long long)f, tr, t);
            pend(&pend_v, e->b, f);
            break;
        }
        case EV_STEAL:
            wout(o,
                 ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"steal\",\"name\":\"steal\",\"pid\":1,"
                 "\"tid\":%d,\"ts\":%.3f,\"args\":{\"victim\":%d,\"task\":%llu}}",
                 tr, t, e->arg, (unsigned long long)e->a);
            break;
        case EV_IDLE_BEGIN:
            if (s) {
                s->idle = true;
                s->idle_ts = e->ts;
            }
            break;
        case EV_IDLE_END:
            if (s && s->idle) {
                wout(o,
                     ",\n{\"ph\":\"X\",\"cat\":\"idle\",\"name\":\"idle\",\"pid\":1,\"tid\":%d,"
                     "\"ts\":%.3f,\"dur\":%.3f}",
                     tr, us(s->idle_ts, t0), (double)(e->ts - s->idle_ts) / 1000.0);
                s->idle = false;
            }
            break;
        case EV_STUCK:
        case EV_MON_TIMERS:
        case EV_MON_WAKE:
            wout(o,
                 ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"monitor\",\"name\":\"%s\",\"pid\":1,"
                 "\"tid\":%d,\"ts\":%.3f,\"args\":{\"worker\":%d,\"%s\":%llu}}",
                 e->kind == EV_STUCK        ? "stuck task"
                 : e->kind == EV_MON_TIMERS ? "timers fired for a stuck worker"
                                            : "idle worker woken for a stuck worker",
                 OTHER_TRACK, t, e->arg, e->kind == EV_MON_TIMERS ? "timers" : "task",
                 (unsigned long long)e->a);
            break;
        default:
            break;
        }
    }
    /* Slices still open at the end close at the last event. */
    for (unsigned i = 0; ts && i < nw; i++) {
        if (ts[i].open) {
            wout(o, ",\n{\"ph\":\"X\",\"cat\":\"run\",\"name\":\"");
            wstr(o, ts[i].name[0] ? ts[i].name : "task");
            wout(o,
                 " #%llu\",\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"task\":%llu,"
                 "\"end\":\"trace end\"}}",
                 (unsigned long long)ts[i].task, i, us(ts[i].ts, t0),
                 (double)(tend - ts[i].ts) / 1000.0, (unsigned long long)ts[i].task);
        }
        if (ts[i].idle)
            wout(o,
                 ",\n{\"ph\":\"X\",\"cat\":\"idle\",\"name\":\"idle\",\"pid\":1,\"tid\":%u,"
                 "\"ts\":%.3f,\"dur\":%.3f}",
                 i, us(ts[i].idle_ts, t0), (double)(tend - ts[i].idle_ts) / 1000.0);
    }
    wout(o, "\n]}\n");
    wflush(o);
    if (o->failed)
        fprintf(stderr, "weft: trace: writing \"%s\" failed: %s\n", trace_path, strerror(errno));
    free(pend_v.v);
    free(ts);
    free(o);
}

void weft__trace_finish(weft__rt *rt)
{
    if (trace_fd < 0)
        return;
    atomic_store_explicit(&weft__trace_on, false, memory_order_relaxed);
    size_t n = other.n;
    uint64_t dropped = other.dropped;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring *r = rt->workers[i].trace;
        n += r->n;
        dropped += r->dropped;
    }
    mev *all = malloc((n ? n : 1) * sizeof *all);
    if (all) {
        size_t k = 0;
        for (unsigned i = 0; i < rt->nworkers; i++) {
            ring *r = rt->workers[i].trace;
            for (size_t j = 0; j < r->n; j++)
                all[k++] = (mev){r->ev[j], (int)i, j};
        }
        for (size_t j = 0; j < other.n; j++)
            all[k++] = (mev){other.ev[j], OTHER_TRACK, j};
        /* Ticks to ns at the rate measured over the whole run. */
        uint64_t dt = weft__ticks() - rt->ticks0;
        int64_t dns = weft__now() - rt->ns0;
        long double rate = dt ? (long double)dns / (long double)dt : 1.0L;
        for (size_t j = 0; j < n; j++)
            all[j].e.ts = rt->ns0 +
                          (int64_t)((long double)((uint64_t)all[j].e.ts - rt->ticks0) * rate);
        qsort(all, n, sizeof *all, cmp_mev);
        write_json(rt, all, n, dropped, trace_fd);
        free(all);
    } else {
        fprintf(stderr, "weft: trace: out of memory writing \"%s\"\n", trace_path);
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ring *r = rt->workers[i].trace;
        free(r->ev);
        free(r);
        rt->workers[i].trace = NULL;
    }
    free(other.ev);
    memset(&other, 0, sizeof other);
    close(trace_fd);
    trace_fd = -1;
    free(trace_path);
    trace_path = NULL;
}
