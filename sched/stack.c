/*
 * stack.c - task stacks: mmap'd, lazily committed, pooled per worker.
 *
 * Stacks of the runtime's default size are carved from chunks of
 * CHUNK_STACKS slots. A slot is one "dead" page followed by the usable
 * stack. While the VMA budget lasts the dead page is made PROT_NONE (a guard
 * page: two VMAs per stack); past it the page stays untouched and only the
 * zero word at the stack's limit is left to catch an overflow. That is what
 * lets a million parked tasks exist under the default vm.max_map_count of
 * 65530: unguarded chunks are plain anonymous memory and merge into few VMAs,
 * and nothing is committed until a task touches it (a parked task usually
 * holds one or two pages).
 *
 * The limit word is read, never written, by the check (weft__stack_check),
 * so an untouched page stays the shared zero page and costs no RSS.
 *
 * Pools: each worker keeps a LIFO cache (warm pages first); beyond
 * CACHE_MAX the surplus goes to a global list under rt->pool_lock. Stacks
 * are unmapped only when the runtime ends. Other sizes (weft_spawn_attr)
 * get an mmap of their own, always with a guard, and are unmapped on return.
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_STACKS 64
#define CACHE_MAX 256

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

int weft__stack_system_init(weft__rt *rt)
{
    long max_maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 65530;
        fclose(f);
    }
    /* Spend at most a quarter of the map budget on guard pages (two VMAs
     * per guarded stack), leaving the rest to the application. */
    long budget = max_maps / 8;
    atomic_store_explicit(&rt->guard_budget, budget, memory_order_relaxed);
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
    weft__stack *head = NULL;
    for (int i = CHUNK_STACKS - 1; i >= 0; i--) {
        weft__stack *s = &c->slot[i];
        char *sb = c->base + (size_t)i * slot;
        s->lo = sb + ps;
        s->size = rt->stack_size;
        s->chunked = true;
        if (take_guard(rt) && mprotect(sb, ps, PROT_NONE) == 0)
            s->guarded = true;
        weft__stack_register_debugger(s);
        s->next = head;
        head = s;
    }
    return head;
}

static weft__stack *odd_size_new(size_t size)
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
    s->guarded = mprotect(base, ps, PROT_NONE) == 0;
    s->lo = base + ps;
    s->size = size;
    weft__stack_register_debugger(s);
    return s;
}

weft__stack *weft__stack_get(weft__worker *w, size_t size)
{
    weft__rt *rt = w->rt;
    if (WEFT__UNLIKELY(size != rt->stack_size))
        return odd_size_new(size);
    weft__stack *s = w->stack_cache;
    if (WEFT__LIKELY(s != NULL)) {
        w->stack_cache = s->next;
        w->stack_cache_n--;
        return s;
    }
    /* Refill from the global list, else map a new chunk. */
    pthread_mutex_lock(&rt->pool_lock);
    unsigned moved = 0;
    while (rt->stack_global && moved < CACHE_MAX / 2) {
        weft__stack *g = rt->stack_global;
        rt->stack_global = g->next;
        rt->stack_global_n--;
        g->next = w->stack_cache;
        w->stack_cache = g;
        moved++;
    }
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

void weft__stack_put(weft__worker *w, weft__stack *s)
{
    if (WEFT__UNLIKELY(!s->chunked)) {
        weft__stack_deregister_debugger(s);
        munmap(s->lo - page_size(), s->size + page_size());
        free(s);
        return;
    }
    s->next = w->stack_cache;
    w->stack_cache = s;
    if (WEFT__LIKELY(++w->stack_cache_n <= CACHE_MAX))
        return;
    /* Move the colder half to the global list. */
    weft__stack *keep = w->stack_cache;
    for (unsigned i = 1; i < CACHE_MAX / 2; i++)
        keep = keep->next;
    weft__stack *surplus = keep->next;
    keep->next = NULL;
    unsigned n = w->stack_cache_n - CACHE_MAX / 2;
    w->stack_cache_n = CACHE_MAX / 2;
    weft__stack *last = surplus;
    while (last->next)
        last = last->next;
    weft__rt *rt = w->rt;
    pthread_mutex_lock(&rt->pool_lock);
    last->next = rt->stack_global;
    rt->stack_global = surplus;
    rt->stack_global_n += n;
    pthread_mutex_unlock(&rt->pool_lock);
}

void weft__stack_check(weft__task *t, const void *sp)
{
    const char *lo = t->stk_lo;
    if (!lo)
        return;
    /* The limit word is the last one a correct task may never write. */
    if ((const char *)sp < lo + 64 || *(const volatile uint64_t *)(const void *)lo != 0)
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
    rt->stack_global = NULL;
    rt->stack_global_n = 0;
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
}

size_t weft__stack_remaining(weft__task *t)
{
    char here;
    char *sp = &here;
    if (!t->stk_lo || sp < t->stk_lo)
        return 0;
    return (size_t)(sp - t->stk_lo);
}
