/*
 * run.c - weft_run: configuration, the root nursery, signals, the monitor.
 *
 * The calling thread becomes worker 0. A monitor thread ("weft-mon") turns
 * signals and weft_run_cancel into runtime events: a signal handler may
 * only write to an eventfd (async-signal-safe), and the monitor does the
 * rest (cancel the root scope, which takes locks) on a normal thread.
 */
#include "internal.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#define DEFAULT_STACK (64 * 1024)
#define DEADLOCK_TICK_MS 250             /* two quiet ticks in a row: reported within 1 s */
#define SYSMON_TICK_NS (2 * 1000 * 1000) /* stuck-worker look while any worker is busy */
#define SYSMON_CALL_TICK_NS (50 * 1000)  /* ... and while a weft_blocking call holds up work */
#define TRIM_TICK_NS (250 * 1000 * 1000) /* idle pooled stacks back to the OS (stack.c) */
#define MAX_WORKERS 1024
#define DEFAULT_STUCK_MS 100 /* WEFT_STUCK_MS: a task running this long unparked is reported */

static atomic_bool running;
static atomic_int mon_efd = -1;
static atomic_int sig_count;
static atomic_bool sig_seen;
static atomic_bool cancel_requested;
static atomic_bool quit_seen;
static struct sigaction old_int, old_term, old_quit;
static bool installed_int, installed_term, installed_quit;

typedef struct {
    weft_fn fn;
    void *arg;
} root_arg;

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || s[0] == '-')
        return -EINVAL;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ull * 1024 * 1024, end++;
    if (*end)
        return -EINVAL;
    if (v > UINT64_MAX / mul)
        return -EINVAL;
    *out = v * mul;
    return 0;
}

/* CPUs this process may use: the affinity mask, capped by a cgroup v2
 * cpu.max quota. */
static unsigned default_workers(void)
{
    unsigned n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    else {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char q[32];
        unsigned long long period;
        if (fscanf(f, "%31s %llu", q, &period) == 2 && strcmp(q, "max") != 0 && period) {
            unsigned long long quota = strtoull(q, NULL, 10);
            unsigned lim = (unsigned)((quota + period - 1) / period);
            if (lim >= 1 && lim < n)
                n = lim;
        }
        fclose(f);
    }
    return n ? n : 1;
}

static int bad(const char *what)
{
    fprintf(stderr, "weft: weft_run: %s\n", what);
    return -EINVAL;
}

typedef struct {
    unsigned workers;
    size_t stack;
    unsigned blocking;
    bool no_signals;
    uint64_t seed;
    bool seeded;
    int64_t stuck_ns;
    uint32_t coop_refill;
    const char *trace_path;
    bool ignore_foreign;
    int io; /* weft_io_backend; AUTO resolved from WEFT_IO here */
} settings;

/* The fields carved from reserved_ kept the struct's size and layout. */
_Static_assert(sizeof(void *) != 8 || sizeof(weft_config) == 96, "weft_config changed size");
_Static_assert(sizeof(void *) != 8 || sizeof(weft_stats) == 216, "weft_stats changed size");

static int configure(const weft_config *cfg, settings *st)
{
    weft_config zero = {0};
    if (!cfg)
        cfg = &zero;
    for (size_t i = 0; i < sizeof cfg->reserved_ / sizeof cfg->reserved_[0]; i++)
        if (cfg->reserved_[i])
            return bad("weft_config.reserved_ must be zero");
    if ((unsigned)cfg->io > WEFT_IO_EPOLL)
        return bad("weft_config.io is not a weft_io_backend value");
    if (cfg->stack_size && (cfg->stack_size < 16 * 1024 || cfg->stack_size > (1u << 30)))
        return bad("weft_config.stack_size must be 0 or between 16 KiB and 1 GiB");
    if (cfg->workers > MAX_WORKERS)
        return bad("weft_config.workers is above 1024");
    st->workers = cfg->workers;
    st->stack = cfg->stack_size;
    st->blocking = cfg->blocking_threads ? cfg->blocking_threads : 64;
    st->no_signals = cfg->no_signals;
    st->ignore_foreign = cfg->ignore_foreign_threads;
    st->trace_path = cfg->trace_path ? cfg->trace_path : getenv("WEFT_TRACE");
    uint64_t v;
    const char *e;
    if (!st->ignore_foreign && (e = getenv("WEFT_IGNORE_FOREIGN_THREADS")) && *e) {
        if (strcmp(e, "0") != 0 && strcmp(e, "1") != 0)
            return bad("WEFT_IGNORE_FOREIGN_THREADS must be 0 or 1");
        st->ignore_foreign = e[0] == '1';
    }
    if (!st->workers && (e = getenv("WEFT_WORKERS")) && *e) {
        /* 0 means what workers = 0 means in the config: one per CPU. */
        if (parse_u64(e, &v) || v > MAX_WORKERS)
            return bad("WEFT_WORKERS must be a number from 0 (one per CPU) to 1024");
        st->workers = (unsigned)v;
    }
    if (!st->stack && (e = getenv("WEFT_STACK_SIZE")) && *e) {
        if (parse_u64(e, &v) || v < 16 * 1024 || v > (1u << 30))
            return bad("WEFT_STACK_SIZE must be a size between 16K and 1G");
        st->stack = (size_t)v;
    }
    if (cfg->io == WEFT_IO_AUTO && (e = getenv("WEFT_IO")) && *e) {
        if (strcmp(e, "uring") != 0 && strcmp(e, "epoll") != 0)
            return bad("WEFT_IO must be \"uring\" or \"epoll\"");
        st->io = strcmp(e, "uring") == 0 ? WEFT_IO_URING : WEFT_IO_EPOLL;
    } else {
        st->io = cfg->io;
    }
    st->stuck_ns = DEFAULT_STUCK_MS * 1000000LL;
    if ((e = getenv("WEFT_STUCK_MS")) && *e) {
        if (parse_u64(e, &v) || v > 86400000)
            return bad("WEFT_STUCK_MS must be a number of milliseconds (0: no stuck-task "
                       "reports)");
        st->stuck_ns = (int64_t)v * 1000000LL;
    }
    st->coop_refill = WEFT__COOP_DEFAULT;
    if ((e = getenv("WEFT_COOP_BUDGET")) && *e) {
        if (parse_u64(e, &v) || v > (1u << 30))
            return bad("WEFT_COOP_BUDGET must be a number of operations up to 2^30 (0: no "
                       "cooperative budget)");
        st->coop_refill = v ? (uint32_t)v : UINT32_MAX;
    }
    if ((e = getenv("WEFT_SEED")) && *e) {
        if (parse_u64(e, &v))
            return bad("WEFT_SEED must be an unsigned number");
        st->seed = v;
        st->seeded = true;
    } else {
        st->seed = (uint64_t)weft__now() ^ ((uint64_t)getpid() << 32);
    }
    if (!st->workers)
        st->workers = default_workers();
    if (!st->stack)
        st->stack = DEFAULT_STACK;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    st->stack = (st->stack + ps - 1) & ~(ps - 1);
    return 0;
}

/* ---- signals ------------------------------------------------------------- */

static void poke_monitor(void)
{
    uint64_t one = 1;
    int fd = atomic_load(&mon_efd);
    if (fd >= 0) {
        ssize_t r = write(fd, &one, sizeof one);
        (void)r;
    }
}

/* SIGQUIT: the monitor prints the dump; the run goes on. */
static void on_quit(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_store(&quit_seen, true);
    poke_monitor();
    errno = saved;
}

static void on_signal(int sig)
{
    int saved = errno;
    if (atomic_fetch_add(&sig_count, 1) >= 1) {
        /* Second signal: the user means it. */
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        atomic_store(&sig_seen, true);
        poke_monitor();
    }
    errno = saved;
}

static bool install_one(int sig, struct sigaction *old, void (*handler)(int))
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return false;
    /* Respect SIG_IGN and handlers the application installed. */
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler != SIG_DFL)
        return false;
    if (cur.sa_flags & SA_SIGINFO)
        return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, old) != 0)
        return false;
    return true;
}

static void signals_install(void)
{
    atomic_store(&sig_count, 0);
    atomic_store(&sig_seen, false);
    installed_int = install_one(SIGINT, &old_int, on_signal);
    installed_term = install_one(SIGTERM, &old_term, on_signal);
    installed_quit = install_one(SIGQUIT, &old_quit, on_quit);
}

static void signals_restore(void)
{
    if (installed_int)
        sigaction(SIGINT, &old_int, NULL);
    if (installed_term)
        sigaction(SIGTERM, &old_term, NULL);
    if (installed_quit)
        sigaction(SIGQUIT, &old_quit, NULL);
    installed_int = installed_term = installed_quit = false;
}

void weft_run_cancel(void)
{
    int fd = atomic_load(&mon_efd);
    if (fd < 0)
        return;
    atomic_store(&cancel_requested, true);
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r;
}

typedef struct {
    weft__rt *rt;
    int efd;
    atomic_bool stop;
} monitor;

/* ---- the deadline watch ---------------------------------------------------- */

/* Scopes whose deadline some parked task needs but no timer carries (a task
 * parked with no timer of its own: weft__wait_poke). A min-heap on the
 * deadline, one entry per scope at most (its index lives in the scope), so
 * moving a watched deadline again and again (a keep-alive) costs O(log n)
 * and memory stays bounded by the scopes alive. The monitor pops what is
 * due and walks it; a scope popped by its owner leaves the heap first. */

typedef struct {
    int64_t deadline;
    weft__scope *s;
} watch_ent;

static struct {
    pthread_mutex_t mu;
    watch_ent *v;
    size_t n, cap;
} watch = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void heap_set(size_t i, watch_ent e)
{
    watch.v[i] = e;
    e.s->watch_slot = (uint32_t)i + 1;
}

static void heap_up(size_t i)
{
    watch_ent e = watch.v[i];
    while (i > 0 && watch.v[(i - 1) / 2].deadline > e.deadline) {
        heap_set(i, watch.v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, e);
}

static void heap_down(size_t i)
{
    watch_ent e = watch.v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= watch.n)
            break;
        if (c + 1 < watch.n && watch.v[c + 1].deadline < watch.v[c].deadline)
            c++;
        if (watch.v[c].deadline >= e.deadline)
            break;
        heap_set(i, watch.v[c]);
        i = c;
    }
    heap_set(i, e);
}

/* Removes the entry at i (watch.mu held). */
static void heap_del(size_t i)
{
    watch.v[i].s->watch_slot = 0;
    watch_ent last = watch.v[--watch.n];
    if (i == watch.n)
        return;
    heap_set(i, last);
    heap_up(i);
    heap_down(watch.v[i].s->watch_slot - 1);
}

void weft__watch_add(weft__scope *s, int64_t deadline)
{
    pthread_mutex_lock(&watch.mu);
    /* Flag first: a pop that sees it takes the lock and removes the
     * entry. */
    atomic_fetch_or_explicit(&s->flags, S_WATCHED, memory_order_seq_cst);
    if (s->watch_slot) {
        size_t i = s->watch_slot - 1;
        watch.v[i].deadline = deadline;
        heap_up(i);
        heap_down(s->watch_slot - 1);
    } else {
        if (watch.n == watch.cap) {
            size_t nc = watch.cap ? watch.cap * 2 : 16;
            watch_ent *nv = realloc(watch.v, nc * sizeof *nv);
            if (!nv)
                weft__panic("deadline watch: out of memory");
            watch.v = nv;
            watch.cap = nc;
        }
        heap_set(watch.n++, (watch_ent){deadline, s});
        heap_up(watch.n - 1);
    }
    bool earliest = watch.v[0].s == s;
    pthread_mutex_unlock(&watch.mu);
    /* Only a new earliest deadline changes the monitor's sleep. */
    int fd = atomic_load(&mon_efd);
    if (earliest && fd >= 0) {
        uint64_t one = 1;
        ssize_t r = write(fd, &one, sizeof one);
        (void)r;
    }
}

void weft__watch_remove(weft__scope *s)
{
    pthread_mutex_lock(&watch.mu);
    if (s->watch_slot)
        heap_del(s->watch_slot - 1);
    atomic_fetch_and_explicit(&s->flags, ~S_WATCHED, memory_order_relaxed);
    pthread_mutex_unlock(&watch.mu);
}

/* Walks every watched scope whose deadline passed; returns the next
 * deadline still watched. The walk runs under the watch lock, so a scope
 * cannot be popped (and freed) under it. */
static int64_t watch_run(void)
{
    int64_t now = weft__now();
    pthread_mutex_lock(&watch.mu);
    while (watch.n && watch.v[0].deadline <= now) {
        weft__scope *s = watch.v[0].s;
        heap_del(0);
        /* The deadline as it is now decides (it may have moved). */
        int64_t d = atomic_load_explicit(&s->deadline, memory_order_acquire);
        if (d <= now) {
            weft__scope_walk(s);
        } else if (d != WEFT_FOREVER) {
            heap_set(watch.n++, (watch_ent){d, s});
            heap_up(watch.n - 1);
        }
    }
    int64_t next = watch.n ? watch.v[0].deadline : WEFT_FOREVER;
    pthread_mutex_unlock(&watch.mu);
    return next;
}

static void watch_reset(void)
{
    pthread_mutex_lock(&watch.mu);
    free(watch.v);
    watch.v = NULL;
    watch.n = watch.cap = 0;
    pthread_mutex_unlock(&watch.mu);
}

static void *monitor_main(void *arg)
{
    monitor *m = arg;
    sigset_t set;
    sigfillset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Its short sleeps (a weft_blocking call to watch) must end on time:
     * no 50 us default timer slack. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    weft__deadlock_state dl = {0, 0, false};
    int64_t next_tick = weft__now() + DEADLOCK_TICK_MS * 1000000LL;
    /* Per worker: context switches, then weft_blocking call words, as seen
     * at the last look. */
    uint64_t *last = calloc(2 * (size_t)m->rt->nworkers, sizeof *last);
    int64_t next_sysmon = weft__now() + SYSMON_TICK_NS;
    int64_t next_trim = weft__now() + TRIM_TICK_NS;
    bool busy = true, in_call = false;
    for (;;) {
        int64_t now = weft__now();
        if (last && now >= next_sysmon) {
            busy = weft__sysmon(m->rt, last, &in_call);
            weft__stuck_check(m->rt, now);
            /* A weft_blocking call holds up work: look again soon, so that
             * the work moves to another thread within about 2 x
             * SYSMON_CALL_TICK_NS (Go's sysmon looks every 20 us at first).
             * Only while work waits behind a call: the cost of looking is
             * paid when a hand-off is worth it. */
            next_sysmon = now + (in_call ? SYSMON_CALL_TICK_NS : SYSMON_TICK_NS);
        }
        if (now >= next_trim) {
            /* Off the hot path: the workers never wait for this. */
            weft__stack_trim(m->rt, now);
            next_trim = now + TRIM_TICK_NS;
        }
        int64_t next_watch = watch_run();
        int64_t wake = next_watch < next_tick ? next_watch : next_tick;
        if (busy && next_sysmon < wake)
            wake = next_sysmon; /* idle runtime: no need to look every 2 ms */
        int64_t left = wake - weft__now();
        struct timespec ts = {left > 0 ? left / 1000000000 : 0, left > 0 ? left % 1000000000 : 0};
        struct pollfd p = {.fd = m->efd, .events = POLLIN};
        /* Longer than a fast look: a weft_blocking call that starts with
         * work waiting behind it pokes (once per sleep). */
        bool nap = left > SYSMON_CALL_TICK_NS;
        if (nap)
            atomic_store(&weft__monitor_napping, true);
        /* Sleeping through the stuck-worker looks: the first worker out of
         * its park ends the sleep (weft__monitor_idle). */
        bool idle_nap = !busy && left > SYSMON_TICK_NS;
        if (idle_nap)
            atomic_store(&weft__monitor_idle, true);
        int r = ppoll(&p, 1, &ts, NULL);
        if (nap && !atomic_exchange(&weft__monitor_napping, false))
            next_sysmon = 0; /* poked by a call: look at the workers now */
        if (idle_nap && !atomic_exchange(&weft__monitor_idle, false)) {
            /* A worker woke: a look now notes each worker's switch count,
             * the next one (SYSMON_TICK_NS on) finds one stuck. */
            busy = true;
            next_sysmon = 0;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            if (weft__now() < next_tick)
                continue; /* a watch or a sysmon look: handled at the loop top */
            busy = true;  /* look at the workers again at the next turn */
            next_tick = weft__now() + DEADLOCK_TICK_MS * 1000000LL;
            int verdict = weft__deadlock_check(m->rt, &dl);
            if (verdict == 1) {
                atomic_store(&m->rt->deadlocked, true);
                weft__scope_cancel(&m->rt->root_nursery->scope);
            } else if (verdict == 2) {
                abort();
            }
            continue;
        }
        uint64_t v;
        ssize_t rr = read(m->efd, &v, sizeof v);
        (void)rr;
        if (atomic_load(&m->stop))
            break;
        if (atomic_exchange(&quit_seen, false))
            weft__dump_rt(m->rt, 2);
        bool sig = atomic_exchange(&sig_seen, false);
        bool req = atomic_exchange(&cancel_requested, false);
        if (sig)
            atomic_store(&m->rt->sig_cancelled, true);
        if (sig || req)
            weft__scope_cancel(&m->rt->root_nursery->scope);
    }
    free(last);
    return NULL;
}

/* ---- weft_run ------------------------------------------------------------ */

int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg)
{
    if (!main_fn)
        return bad("main_fn is NULL");
    settings st = {0};
    int rc = configure(cfg, &st);
    if (rc)
        return rc;
    bool no = false;
    if (!atomic_compare_exchange_strong(&running, &no, true))
        return -EBUSY;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    weft__rt *rt;
    rc = weft__rt_create(&rt, st.workers, st.stack, st.blocking, st.seed, st.seeded);
    if (rc)
        goto out_running;
    rt->no_signals = st.no_signals;
    rt->ignore_foreign = st.ignore_foreign;
    rt->stuck_ns = st.stuck_ns;
    /* Only tasks read it, and none runs yet. */
    weft__coop_refill = st.coop_refill;
    weft__structured_install();
    rt->root_nursery = weft__nursery_new_root(rt);
    if (!rt->root_nursery) {
        rc = -ENOMEM;
        goto out_rt;
    }
    /* Before any worker or the monitor runs: they read the flag. */
    rc = weft__trace_start(rt, st.trace_path);
    if (rc)
        goto out_root;
    /* The I/O layer before the monitor thread exists: the monitor serves
     * rings, and pthread_create is then the edge that publishes them (also
     * to a ThreadSanitizer, which does not see the library's atomics). */
    rc = weft__io_start(rt, st.io);
    if (rc)
        goto out_trace;
    monitor mon = {.rt = rt};
    mon.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (mon.efd < 0) {
        rc = -errno;
        goto out_trace;
    }
    atomic_store(&mon.stop, false);
    pthread_t mon_thread;
    rc = -pthread_create(&mon_thread, NULL, monitor_main, &mon);
    if (rc)
        goto out_efd;
    atomic_store(&mon_efd, mon.efd);
    weft__monitor_poke = poke_monitor;
    weft__rt_publish(rt);
    if (!st.no_signals)
        signals_install();
    weft__fault_install();

    /* The calling thread is worker 0; spawn the root task from it. */
    weft__worker *w0 = &rt->workers[0];
    weft__tls_worker = w0;
    weft_spawn_attr attr = {.name = "main"};
    rc = weft__spawn(rt->root_nursery, main_fn, arg, &attr, NULL, 0, NULL);
    if (rc == 0) {
        rc = weft__workers_start(rt);
        if (rc == 0) {
            /* Worker 0 may move to another thread while this one is in a
             * weft_blocking call: this thread then serves as a spare until
             * the run ends. */
            if (weft__worker_loop(w0))
                weft__spare_serve(rt);
            weft__workers_stop(rt);
            weft__thread_release();
        }
    }
    weft__tls_worker = NULL;
    /* Every task's return happens-before weft_run returns: the root task
     * released the root nursery as it finished, after closing its own. */
    weft__hb_acquire(rt->root_nursery);

    weft__fault_uninstall();
    if (!st.no_signals)
        signals_restore();
    atomic_store(&mon_efd, -1);
    atomic_store(&mon.stop, true);
    uint64_t one = 1;
    ssize_t wr = write(mon.efd, &one, sizeof one);
    (void)wr;
    pthread_join(mon_thread, NULL);
    watch_reset();
    weft__trace_finish(rt);
    if (rc == 0) {
        int root_result = atomic_load(&rt->root_result);
        int nres = atomic_load(&rt->nursery_result);
        if (atomic_load(&rt->sig_cancelled))
            rc = -EINTR;
        else if (atomic_load(&rt->deadlocked))
            rc = -EDEADLK;
        else if (root_result)
            rc = root_result;
        else
            rc = nres;
    }
out_efd:
    close(mon.efd);
out_trace:
    weft__trace_finish(rt);
out_root:
    free(rt->root_nursery);
    weft__nursery_pool_fini();
out_rt:
    weft__rt_destroy(rt);
out_running:
    atomic_store(&running, false);
    return rc;
}
