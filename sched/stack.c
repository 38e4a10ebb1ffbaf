/*
 * stack.c - task stacks: mmap'd, lazily committed, pooled per worker, and
 * given back to the OS when a burst is over.
 *
 * Layout. Stacks of the runtime's default size are carved from chunks of
 * CHUNK_STACKS slots. A slot is one dead page followed by the usable stack.
 *
 * Guards. The dead page becomes a guard, by the cheapest means the running
 * kernel offers (probed once per runtime):
 *   1. MADV_GUARD_INSTALL (Linux 6.13+): a guard marker in the page tables.
 *      It costs no VMA, so every stack is guarded however many there are.
 *      The markers of a whole chunk go in with one process_madvise call
 *      where the kernel takes that advice from it, else one madvise each.
 *   2. Otherwise mprotect(PROT_NONE) while the VMA budget lasts (a guarded
 *      stack splits its chunk into two more VMAs; a quarter of
 *      vm.max_map_count is spent on that). Past the budget a stack has no
 *      guard page.
 * A task that runs into a guard faults there; fault.c names the task.
 *
 * Unguarded stacks (case 2, past the budget): the scheduler checks the
 * task's saved stack pointer against the stack's limit at every switch-out
 * (weft__stack_check), so a task that parks, yields or is switched out
 * while deeper than its stack is caught, naming it, before anything else
 * runs on that worker. A task that overflows and returns above the limit
 * before its next switch is not caught; it has written into its own slot's
 * dead page (one page of slack below every stack), so a single-page
 * overflow corrupts no other stack.
 *
 * What the check must not do: read the stack. On some kernels a read fault
 * on untouched anonymous memory commits a page (no shared zero page), so a
 * read of the limit word would cost every task a second page of RSS and a
 * second page fault. The check compares addresses only. Nothing in this
 * file reads or writes a stack page the task did not touch itself, except
 * the top page, which every task touches first (its initial frame).
 *
 * First touch. Page faults are expensive on virtual machines (about 30 us
 * each on the development VM); populating many pages with one
 * process_madvise(MADV_POPULATE_WRITE) call halves that. A new chunk gets
 * the top page of each of its stacks populated that way, where the kernel
 * allows it; otherwise the first touch faults as usual.
 *
 * Pools: each worker keeps a LIFO cache of CACHE_MAX stacks (warm pages
 * first). The surplus goes to the shared warm list under rt->pool_lock,
 * stamped with the time it went there. The monitor calls weft__stack_trim
 * a few times a second: warm-list stacks unused for TRIM_AGE_NS get their
 * pages dropped with MADV_DONTNEED (never MADV_FREE, whose pages stay in
 * RSS until memory pressure) and move to the cold list. A cold stack is
 * still mapped and reusable; its pages are committed again when a task
 * touches them. Chunks are unmapped only when the runtime ends. Stacks of
 * other sizes (weft_spawn_attr) get a mapping of their own, guarded, and
 * are unmapped when their task ends.
 */
#include "internal.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK_STACKS 64
#define CACHE_MAX WEFT__STACK_CACHE_MAX
#define TRIM_AGE_NS (1000LL * 1000 * 1000)
#define IOV_BATCH 512

/* Advice values newer than some libc headers. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

typedef struct chunk {
    char *base;
    size_t len;
    weft__stack slot[CHUNK_STACKS];
} chunk;

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

/* ---- kernel features ------------------------------------------------------ */

/* Applies advice to n ranges: one process_madvise call per batch where the
 * kernel takes it, else one madvise per range. Returns 0 if every range
 * took the advice. */
static int advise_ranges(weft__rt *rt, struct iovec *iov, size_t n, int advice, bool batched)
{
    size_t done = 0;
    if (batched && rt->self_pidfd >= 0) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += iov[i].iov_len;
        long r = syscall(SYS_process_madvise, rt->self_pidfd, iov, n, advice, 0);
        if (r == (long)bytes)
            return 0;
        if (r > 0) {
            /* Partial: skip the ranges it finished, do the rest one by one. */
            for (size_t got = (size_t)r; done < n && got >= iov[done].iov_len; done++)
                got -= iov[done].iov_len;
        }
    }
    int rc = 0;
    for (size_t i = done; i < n; i++)
        if (madvise(iov[i].iov_base, iov[i].iov_len, advice) != 0)
            rc = -errno;
    return rc;
}

/* Probes, on a scratch mapping, which of the advice this file uses the
 * kernel takes, and from process_madvise too. */
static void probe_kernel(weft__rt *rt)
{
    size_t ps = page_size();
    rt->self_pidfd = -1;
    rt->stk_guard_install = rt->stk_pm_guard = rt->stk_pm_populate = rt->stk_pm_dontneed = false;
    if (getenv("WEFT_TEST_NO_GUARD_INSTALL")) /* tests of the fallback paths */
        return;
    char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    rt->stk_guard_install = madvise(p, ps, MADV_GUARD_INSTALL) == 0;
    int fd = (int)syscall(SYS_pidfd_open, (long)getpid(), 0L);
    if (fd >= 0) {
        struct iovec iov = {p + ps, ps};
        rt->stk_pm_populate = syscall(SYS_process_madvise, fd, &iov, 1, MADV_POPULATE_WRITE, 0) ==
                              (long)ps;
        rt->stk_pm_dontneed = syscall(SYS_process_madvise, fd, &iov, 1, MADV_DONTNEED, 0) ==
                              (long)ps;
        iov.iov_base = p + ps;
        rt->stk_pm_guard = rt->stk_guard_install && syscall(SYS_process_madvise, fd, &iov, 1,
                                                            MADV_GUARD_INSTALL, 0) == (long)ps;
        if (rt->stk_pm_populate || rt->stk_pm_dontneed || rt->stk_pm_guard)
            rt->self_pidfd = fd;
        else
            close(fd);
    }
    munmap(p, 2 * ps);
}

int weft__stack_system_init(weft__rt *rt)
{
    long max_maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 65530;
        fclose(f);
    }
    /* Spend at most a quarter of the map budget on mprotect guards (two
     * VMAs per guarded stack), leaving the rest to the application. */
    long budget = max_maps / 8;
    atomic_store_explicit(&rt->guard_budget, budget, memory_order_relaxed);
    probe_kernel(rt);
    return 0;
}

static bool take_guard(weft__rt *rt)
{
    if (atomic_load_explicit(&rt->guard_budget, memory_order_relaxed) <= 0)
        return false;
    return atomic_fetch_sub_explicit(&rt->guard_budget, 1, memory_order_relaxed) > 0;
}

static int remember(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* Guards every slot of a new chunk and populates the top page of each. */
static void chunk_prepare(weft__rt *rt, chunk *c, size_t slot)
{
    size_t ps = page_size();
    struct iovec iov[CHUNK_STACKS];
    if (rt->stk_guard_install) {
        for (int i = 0; i < CHUNK_STACKS; i++)
            iov[i] = (struct iovec){c->base + (size_t)i * slot, ps};
        if (advise_ranges(rt, iov, CHUNK_STACKS, MADV_GUARD_INSTALL, rt->stk_pm_guard) == 0)
            for (int i = 0; i < CHUNK_STACKS; i++)
                c->slot[i].guarded = true;
    }
    for (int i = 0; i < CHUNK_STACKS; i++) {
        weft__stack *s = &c->slot[i];
        if (!s->guarded && take_guard(rt) && mprotect(s->lo - ps, ps, PROT_NONE) == 0)
            s->guarded = true;
    }
    if (rt->stk_pm_populate) {
        for (int i = 0; i < CHUNK_STACKS; i++)
            iov[i] = (struct iovec){c->slot[i].lo + c->slot[i].size - ps, ps};
        /* Best effort: what it does not populate faults in on first use. */
        (void)advise_ranges(rt, iov, CHUNK_STACKS, MADV_POPULATE_WRITE, true);
    }
}

/* Maps a new chunk and returns its stacks linked through ->next. */
static weft__stack *chunk_new(weft__rt *rt)
{
    size_t ps = page_size();
    size_t slot = rt->stack_size + ps;
    size_t len = slot * CHUNK_STACKS;
    chunk *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        free(c);
        return NULL;
    }
#ifdef MADV_NOHUGEPAGE
    /* A transparent huge page would make a parked task cost 2 MiB. */
    madvise(base, len, MADV_NOHUGEPAGE);
#endif
    c->base = base;
    c->len = len;
    pthread_mutex_lock(&rt->pool_lock);
    int rc = remember(&rt->chunks, &rt->nchunks, &rt->chunks_cap, c);
    pthread_mutex_unlock(&rt->pool_lock);
    if (rc) {
        munmap(base, len);
        free(c);
        return NULL;
    }
    for (int i = 0; i < CHUNK_STACKS; i++) {
        weft__stack *s = &c->slot[i];
        s->lo = c->base + (size_t)i * slot + ps;
        s->size = rt->stack_size;
        s->chunked = true;
    }
    chunk_prepare(rt, c, slot);
    weft__stack *head = NULL;
    for (int i = CHUNK_STACKS - 1; i >= 0; i--) {
        weft__stack *s = &c->slot[i];
        weft__stack_register_debugger(s);
        s->next = head;
        head = s;
    }
    return head;
}

static weft__stack *odd_size_new(weft__rt *rt, size_t size)
{
    size_t ps = page_size();
    size = (size + ps - 1) & ~(ps - 1);
    weft__stack *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    char *base = mmap(NULL, size + ps, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        free(s);
        return NULL;
    }
#ifdef MADV_NOHUGEPAGE
    madvise(base, size + ps, MADV_NOHUGEPAGE);
#endif
    /* A mapping of its own: a guard marker keeps it one VMA; mprotect
     * makes it two, which a rare odd-sized stack can afford. */
    s->guarded = (rt->stk_guard_install && madvise(base, ps, MADV_GUARD_INSTALL) == 0) ||
                 mprotect(base, ps, PROT_NONE) == 0;
    s->lo = base + ps;
    s->size = size;
    weft__stack_register_debugger(s);
    return s;
}

/* rt->pool_lock taken by a worker for its stack cache, counted for
 * weft_stats: stack_pool_locks always, lock_contended and lock_wait_ns when
 * it was held. The trylock costs what the lock itself costs when it is free;
 * the clock is read only when it was not. */
static void pool_lock_for(weft__worker *w)
{
    WEFT__COUNT(w, stack_pool_locks, 1);
    if (WEFT__LIKELY(pthread_mutex_trylock(&w->rt->pool_lock) == 0))
        return;
    WEFT__COUNT(w, lock_contended, 1);
    uint64_t t0 = weft__ticks();
    pthread_mutex_lock(&w->rt->pool_lock);
    WEFT__COUNT(w, lock_wait, weft__ticks() - t0);
}

/* Moves up to `max` stacks from *list to the worker's cache (pool_lock). */
static unsigned move_to_cache(weft__worker *w, weft__stack **list, unsigned *list_n, unsigned max)
{
    unsigned moved = 0;
    while (*list && moved < max) {
        weft__stack *g = *list;
        *list = g->next;
        (*list_n)--;
        g->next = w->stack_cache;
        w->stack_cache = g;
        moved++;
    }
    return moved;
}

weft__stack *weft__stack_get_slow(weft__worker *w, size_t size)
{
    weft__rt *rt = w->rt;
    if (size != rt->stack_size)
        return odd_size_new(rt, size);
    weft__stack *s;
    /* Refill from the warm list, then the cold one, else map a new chunk. */
    pool_lock_for(w);
    unsigned moved = move_to_cache(w, &rt->stack_global, &rt->stack_global_n, CACHE_MAX / 2);
    if (!moved)
        moved = move_to_cache(w, &rt->stack_cold, &rt->stack_cold_n, CACHE_MAX / 2);
    pthread_mutex_unlock(&rt->pool_lock);
    w->stack_cache_n += moved;
    if (!moved) {
        weft__stack *list = chunk_new(rt);
        if (!list)
            return NULL;
        for (weft__stack *p = list; p; p = p->next)
            w->stack_cache_n++;
        w->stack_cache = list;
    }
    s = w->stack_cache;
    w->stack_cache = s->next;
    w->stack_cache_n--;
    return s;
}

void weft__stack_put_slow(weft__worker *w, weft__stack *s)
{
    if (!s->chunked) {
        weft__stack_deregister_debugger(s);
        munmap(s->lo - page_size(), s->size + page_size());
        free(s);
        return;
    }
    s->next = w->stack_cache;
    w->stack_cache = s;
    if (WEFT__LIKELY(++w->stack_cache_n <= CACHE_MAX))
        return;
    /* Move the colder half to the warm list, stamped for the trimmer. */
    weft__stack *keep = w->stack_cache;
    for (unsigned i = 1; i < CACHE_MAX / 2; i++)
        keep = keep->next;
    weft__stack *surplus = keep->next;
    keep->next = NULL;
    unsigned n = w->stack_cache_n - CACHE_MAX / 2;
    w->stack_cache_n = CACHE_MAX / 2;
    int64_t now = weft__now();
    weft__stack *last = surplus;
    for (;;) {
        last->freed_at = now;
        if (!last->next)
            break;
        last = last->next;
    }
    weft__rt *rt = w->rt;
    pool_lock_for(w);
    last->next = rt->stack_global;
    rt->stack_global = surplus;
    rt->stack_global_n += n;
    pthread_mutex_unlock(&rt->pool_lock);
}

/* Drops the pages of a list of stacks (no lock held). */
static void drop_pages(weft__rt *rt, weft__stack *list)
{
    struct iovec iov[IOV_BATCH];
    size_t n = 0;
    for (weft__stack *s = list; s; s = s->next) {
        iov[n++] = (struct iovec){s->lo, s->size};
        if (n == IOV_BATCH || !s->next) {
            /* Errors cannot happen on our own anonymous mapping short of a
             * bug; the stacks stay usable either way. */
            (void)advise_ranges(rt, iov, n, MADV_DONTNEED, rt->stk_pm_dontneed);
            n = 0;
        }
    }
}

unsigned weft__stack_trim(weft__rt *rt, int64_t now)
{
    /* The warm list is newest first (surplus batches go on at the head,
     * refills take from the head), so the stacks old enough to trim are
     * its tail: cut it off under the lock, drop the pages outside it. */
    pthread_mutex_lock(&rt->pool_lock);
    weft__stack **pp = &rt->stack_global;
    unsigned young = 0;
    while (*pp && (*pp)->freed_at > now - TRIM_AGE_NS) {
        pp = &(*pp)->next;
        young++;
    }
    weft__stack *old = *pp;
    *pp = NULL;
    unsigned n = rt->stack_global_n - young;
    rt->stack_global_n = young;
    pthread_mutex_unlock(&rt->pool_lock);
    if (!old)
        return 0;
    drop_pages(rt, old);
    weft__stack *last = old;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&rt->pool_lock);
    last->next = rt->stack_cold;
    rt->stack_cold = old;
    rt->stack_cold_n += n;
    pthread_mutex_unlock(&rt->pool_lock);
    atomic_fetch_add_explicit(&rt->stacks_returned, n, memory_order_relaxed);
    return n;
}

/* weft__stack_check (internal.h) compares addresses only: reading the
 * stack could commit a page (see the top). */
void weft__stack_overflow(weft__task *t)
{
    weft__panic("stack overflow in task %llu \"%s\" (stack of %zu bytes; raise "
                "weft_config.stack_size or weft_spawn_attr.stack_size, and build with "
                "-fstack-clash-protection)",
                (unsigned long long)t->id, t->name, t->stk_size);
}

void weft__stack_system_fini(weft__rt *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        rt->workers[i].stack_cache = NULL;
        rt->workers[i].stack_cache_n = 0;
    }
    rt->stack_global = rt->stack_cold = NULL;
    rt->stack_global_n = rt->stack_cold_n = 0;
    for (size_t i = 0; i < rt->nchunks; i++) {
        chunk *c = rt->chunks[i];
        for (int k = 0; k < CHUNK_STACKS; k++)
            weft__stack_deregister_debugger(&c->slot[k]);
        munmap(c->base, c->len);
        free(c);
    }
    free(rt->chunks);
    rt->chunks = NULL;
    rt->nchunks = rt->chunks_cap = 0;
    if (rt->self_pidfd >= 0)
        close(rt->self_pidfd);
    rt->self_pidfd = -1;
}

size_t weft__stack_remaining(weft__task *t)
{
    char here;
    char *sp = &here;
    if (!t->stk_lo || sp < t->stk_lo)
        return 0;
    return (size_t)(sp - t->stk_lo);
}
