/*
 * stuck.c - the monitor's report of a task that hogs its worker.
 *
 * A task that runs longer than WEFT_STUCK_MS (default 100 ms) without
 * switching out (no park, no yield) keeps everything queued on its worker
 * waiting; Go's sysmon and libgo's detector name such a task, and so does
 * this. The monitor looks every few milliseconds while any worker is busy:
 * a worker whose switch count has not moved since the last look, and that
 * runs a task, has been in that task at least since the look at which the
 * count last changed. Past the threshold the task is reported on stderr
 * (and in the trace) once, with its name, id, spawn site and worker; the
 * report repeats only when the task has stayed stuck ten times longer than
 * at the previous report (100 ms, 1 s, 10 s, ...).
 *
 * "Run" means CPU time: from the look that first finds the count unmoved,
 * the monitor reads the CPU clock of the thread driving the worker (the
 * Linux per-thread clock of w->tid). Wall time alone would call a task stuck
 * whenever the whole process stalled between two looks (a loaded or
 * preempted machine, a sanitizer's pause): the worker then neither switched
 * nor ran. Where that clock cannot be read, wall time stands in.
 *
 * Time inside weft_blocking never counts: the call runs on the worker's
 * thread, and the worker moves to another thread if work waits behind it
 * (blocking.c); the count starts afresh when the call returns.
 *
 * Races. The monitor reads w->running (stored with release at every
 * switch-in, loaded with acquire: the task's spawn happens-before the
 * monitor's reads) and the task's fields while the task runs. It trusts them only if the worker's
 * switch count is the same before and after the reads: the task was on
 * the worker the whole time, so its block cannot have been recycled. The
 * id and spawn site never change after the spawn; the name is copied
 * without the task's lock (see snapshot).
 */
#include "internal.h"

/* The most wall time before the first unmoved look that counts as run. */
#define STUCK_LEAD_MAX_NS (10 * 1000000LL)

typedef struct {
    uint64_t sw;          /* the switch count at the last look */
    int64_t since;        /* when that count was first seen */
    int64_t cpu_mark;     /* the thread's CPU clock at the first look that
                           * found the count unmoved; -1: not read yet */
    int64_t cpu_lead;     /* wall time from `since` to that look, capped */
    int tid;              /* the thread that clock belongs to */
    int64_t next_report;  /* stuck time of the next report; 0: none made */
    const void *reported; /* the task reported last (not dereferenced) */
} stuck_w;

static uint64_t switches(weft__worker *w)
{
    return atomic_load_explicit(&w->ctr.v[WEFT__CTR_INDEX(context_switches)], memory_order_relaxed);
}

/* The reads of a seqlock-style snapshot: the task may finish and its block
 * be reused (task.c's memset) while we read, and report() then throws the
 * copy away (the switch count moved). Control blocks are type-stable, never
 * unmapped during a run, so the reads are safe; a ThreadSanitizer build that
 * instruments the runtime would still call them a race, so they are left
 * uninstrumented, and the name is copied byte by byte (memcpy would go
 * through TSan's interceptor). */
#if defined(__clang__) || defined(__SANITIZE_THREAD__)
#define SNAPSHOT_READS __attribute__((no_sanitize("thread"), noinline))
#else
#define SNAPSHOT_READS __attribute__((noinline))
#endif
SNAPSHOT_READS void weft__task_snapshot(weft__task *t, char *name, uint64_t *id, const char **file,
                                        int *line)
{
    const volatile char *src = t->name;
    for (size_t i = 0; i < WEFT__NAME_MAX; i++)
        name[i] = src[i];
    name[WEFT__NAME_MAX - 1] = 0;
    *id = t->id;
    *file = t->spawn_file;
    *line = t->spawn_line;
}

/* The CPU time of thread `tid` of this process (Linux encodes a thread's
 * CPU clock id as (~tid << 3) | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED, the
 * id pthread_getcpuclockid gives); -1 if it cannot be read. */
static int64_t thread_cpu_ns(int tid)
{
    if (tid <= 0)
        return -1;
    clockid_t id = (clockid_t)((~(unsigned)tid << 3) | 6u);
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(weft__rt *rt, weft__worker *w, stuck_w *s, int64_t stuck_for)
{
    /* acquire: pairs with the release store at switch-in, so the task's
     * spawn (its block's initialisation) happens-before these reads. */
    weft__task *t = atomic_load_explicit(&w->running, memory_order_acquire);
    if (!t)
        return;
    char name[WEFT__NAME_MAX];
    uint64_t id;
    const char *file;
    int line;
    /* No lock: the block may be reused under us (its lock word with it).
     * A name the task renames meanwhile may come out torn; the copy is
     * NUL-terminated and only printed. */
    weft__task_snapshot(t, name, &id, &file, &line);
    if (switches(w) != s->sw || !atomic_load_explicit(&w->running_task, memory_order_relaxed))
        return; /* it switched out meanwhile: not stuck after all */
    char site[300] = "";
    if (file)
        snprintf(site, sizeof site, " [spawned at %s:%d]", file, line);
    fprintf(stderr,
            "weft: stuck: task %llu \"%s\" has run %lld ms on worker %d without parking%s; "
            "tasks queued on that worker wait (WEFT_STUCK_MS=%lld)\n",
            (unsigned long long)id, name, (long long)(stuck_for / 1000000), w->id, site,
            (long long)(rt->stuck_ns / 1000000));
    atomic_fetch_add_explicit(&rt->tasks_stuck, 1, memory_order_relaxed);
    weft__trace_stuck(w, id, stuck_for);
    s->reported = t;
}

void weft__stuck_check(weft__rt *rt, int64_t now)
{
    if (rt->stuck_ns <= 0)
        return;
    stuck_w *st = rt->stuck;
    if (!st) {
        st = calloc(rt->nworkers, sizeof *st);
        if (!st)
            return;
        rt->stuck = st;
        for (unsigned i = 0; i < rt->nworkers; i++) {
            st[i].sw = switches(&rt->workers[i]);
            st[i].since = now;
            st[i].cpu_mark = -1;
        }
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *w = &rt->workers[i];
        stuck_w *s = &st[i];
        uint64_t sw = switches(w);
        bool running = atomic_load_explicit(&w->running_task, memory_order_relaxed);
        /* Time inside weft_blocking does not count (the call's worker is
         * handed to another thread if work waits behind it). */
        bool in_call = (atomic_load_explicit(&w->bcall, memory_order_relaxed) & 3) ==
                       WEFT__BC_IN_CALL;
        int tid = atomic_load_explicit(&w->tid, memory_order_relaxed);
        if (sw != s->sw || !running || in_call || (s->cpu_mark >= 0 && tid != s->tid)) {
            s->sw = sw;
            s->since = now;
            s->cpu_mark = -1;
            s->next_report = 0;
            continue;
        }
        int64_t stuck_for = now - s->since;
        int64_t due = s->next_report ? s->next_report : rt->stuck_ns;
        if (stuck_for < due && s->cpu_mark >= 0)
            continue; /* not due even by the wall clock */
        int64_t cpu = thread_cpu_ns(tid);
        if (cpu >= 0) {
            if (s->cpu_mark < 0) {
                /* The first look that finds it unmoved: from here on, its
                 * thread's CPU time. The lead before it is at most a look
                 * or two, unless the process stalled: capped. */
                s->cpu_mark = cpu;
                s->tid = tid;
                s->cpu_lead = stuck_for < STUCK_LEAD_MAX_NS ? stuck_for : STUCK_LEAD_MAX_NS;
            }
            stuck_for = s->cpu_lead + (cpu - s->cpu_mark);
        }
        if (stuck_for < due)
            continue;
        report(rt, w, s, stuck_for);
        s->next_report = (due > INT64_MAX / 10) ? INT64_MAX : due * 10;
    }
}

void weft__stuck_fini(weft__rt *rt)
{
    free(rt->stuck);
    rt->stuck = NULL;
}
