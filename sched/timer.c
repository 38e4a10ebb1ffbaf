/*
 * timer.c - per-worker timer heaps.
 *
 * A parked task with a deadline sits in the binary min-heap of the worker it
 * parked on, keyed by t->timer.deadline. Each heap has a spin lock because
 * other threads touch it: the task itself disarms its timer after it was
 * woken by something else (it may have migrated), and a cancel walk moves a
 * timer earlier when a scope's deadline moves. The owner fires expired
 * timers from its scheduling loop; a parked worker sleeps no longer than its
 * earliest deadline (timer_next, readable without the lock).
 *
 * A fired timer only tries weft__wake with the token it was armed with, so a
 * timer that loses to another waker, or that belongs to an old wait of a
 * reused task block, does nothing.
 */
#include "internal.h"

static inline bool before(weft__task *a, weft__task *b)
{
    return a->timer.deadline < b->timer.deadline;
}

static void place(weft__worker *w, int i, weft__task *t)
{
    w->heap[i] = t;
    t->timer.index = i;
}

static void sift_up(weft__worker *w, int i)
{
    weft__task *t = w->heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(t, w->heap[p]))
            break;
        place(w, i, w->heap[p]);
        i = p;
    }
    place(w, i, t);
}

static void sift_down(weft__worker *w, int i)
{
    weft__task *t = w->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= w->heap_n)
            break;
        if (c + 1 < w->heap_n && before(w->heap[c + 1], w->heap[c]))
            c++;
        if (!before(w->heap[c], t))
            break;
        place(w, i, w->heap[c]);
        i = c;
    }
    place(w, i, t);
}

static void remove_at(weft__worker *w, int i)
{
    weft__task *t = w->heap[i];
    t->timer.index = -1;
    w->heap_n--;
    if (i == w->heap_n)
        return;
    place(w, i, w->heap[w->heap_n]);
    sift_down(w, i);
    sift_up(w, w->heap[i]->timer.index);
}

static void publish_next(weft__worker *w)
{
    int64_t next = w->heap_n ? w->heap[0]->timer.deadline : WEFT_FOREVER;
    atomic_store_explicit(&w->timer_next, next, memory_order_release);
}

void weft__timer_arm(weft__worker *w, weft__task *t, int64_t deadline, uint64_t token)
{
    weft__spin_lock(&w->timer_lock);
    if (w->heap_n == w->heap_cap) {
        int nc = w->heap_cap ? w->heap_cap * 2 : 256;
        weft__task **nh = realloc(w->heap, (size_t)nc * sizeof *nh);
        if (!nh)
            weft__panic("timer heap: out of memory growing to %d entries", nc);
        w->heap = nh;
        w->heap_cap = nc;
    }
    t->timer.deadline = deadline;
    t->timer.token = token;
    atomic_store_explicit(&t->timer.owner, w, memory_order_relaxed);
    place(w, w->heap_n++, t);
    sift_up(w, t->timer.index);
    publish_next(w);
    weft__spin_unlock(&w->timer_lock);
}

void weft__timer_disarm(weft__task *t)
{
    weft__worker *w = atomic_load_explicit(&t->timer.owner, memory_order_relaxed);
    if (!w)
        return;
    weft__spin_lock(&w->timer_lock);
    if (t->timer.index >= 0) {
        remove_at(w, t->timer.index);
        publish_next(w);
    }
    atomic_store_explicit(&t->timer.owner, NULL, memory_order_relaxed);
    weft__spin_unlock(&w->timer_lock);
}

bool weft__timer_retarget(weft__task *t, uint64_t token, int64_t chain_deadline)
{
    weft__worker *w = atomic_load_explicit(&t->timer.owner, memory_order_acquire);
    if (!w)
        return false;
    bool armed = false, first = false;
    weft__spin_lock(&w->timer_lock);
    if (atomic_load_explicit(&t->timer.owner, memory_order_relaxed) == w && t->timer.index >= 0 &&
        t->timer.token == token) {
        armed = true;
        /* wait_deadline was written before the timer was armed (under this
         * lock), so it is stable here. */
        int64_t want = chain_deadline < t->wait_deadline ? chain_deadline : t->wait_deadline;
        if (want != t->timer.deadline) {
            t->timer.deadline = want;
            sift_up(w, t->timer.index);
            sift_down(w, t->timer.index);
            first = t->timer.index == 0;
            publish_next(w);
        }
    }
    weft__spin_unlock(&w->timer_lock);
    if (first && w != weft__self())
        weft__idle_unpark(w); /* a parked worker must recompute its sleep */
    return armed;
}

unsigned weft__timers_run(weft__worker *w, int64_t now)
{
    unsigned fired = 0;
    /* On its own worker, fire no more than the run queue has room for:
     * past that, a push would move the older half of the queue to the
     * inject queue, and later deadlines would run first. The rest stay due
     * in the heap and fire at the next scheduling tick, still in order.
     * (From another thread the woken go to the inject queue, a FIFO.) */
    weft__worker *self = weft__self();
    unsigned room = self == w ? WEFT__RUNQ_SIZE - weft__runq_len(&w->runq) : ~0u;
    for (;;) {
        weft__task *due[32];
        uint64_t tok[32];
        int n = 0;
        weft__spin_lock(&w->timer_lock);
        while (n < 32 && room > 0 && w->heap_n && w->heap[0]->timer.deadline <= now) {
            room--;
            weft__task *t = w->heap[0];
            due[n] = t;
            tok[n] = t->timer.token;
            n++;
            remove_at(w, 0);
        }
        publish_next(w);
        weft__spin_unlock(&w->timer_lock);
        for (int i = 0; i < n; i++)
            if (weft__wake(due[i], tok[i], W_TIMER))
                fired++;
        if (n < 32 || room == 0)
            break;
    }
    /* timers_fired is counted by each woken task itself (wait.c), so that
     * the count is visible to it by the time it runs. */
    return fired;
}

void weft__timers_fini(weft__worker *w)
{
    free(w->heap);
    w->heap = NULL;
    w->heap_n = w->heap_cap = 0;
}
