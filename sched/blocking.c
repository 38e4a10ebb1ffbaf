/*
 * blocking.c - weft_blocking: run known-blocking work off the workers.
 *
 * A bounded pool of plain threads (rt->blocking_cap, 64 by default), started
 * on demand and kept until the runtime ends. Jobs live on the calling task's
 * stack: the task always waits for a job that has started, so the job (and
 * the arg it points to) stays valid. Job states move QUEUED -> RUNNING ->
 * DONE under the pool mutex; a cancel that wins while the job is QUEUED
 * removes it, so fn never runs.
 */
#include "internal.h"

#include <signal.h>

WEFT__TLS weft__task *weft__tls_blocking_for;

enum { J_QUEUED, J_RUNNING, J_DONE };

typedef struct job {
    weft_fn fn;
    void *arg;
    weft__task *task;
    uint64_t token;
    int state;
    int result;
    struct job *next;
} job;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    unsigned nthreads, idle, cap;
    bool stop;
    pthread_t *threads;
} pool;

static void *pool_thread(void *arg)
{
    pool *p = arg;
    weft__thread_block_sigpipe();
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (!p->head)
            break;
        job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        j->state = J_RUNNING;
        pthread_mutex_unlock(&p->mu);
        weft__tls_blocking_for = j->task;
        int r = weft__call_fenced(j->fn, j->arg);
        weft__tls_blocking_for = NULL;
        pthread_mutex_lock(&p->mu);
        j->result = r;
        j->state = J_DONE;
        /* Copy before unlocking: once DONE is visible the job may be gone. */
        weft__task *t = j->task;
        uint64_t tok = j->token;
        pthread_mutex_unlock(&p->mu);
        weft__wake(t, tok, W_WOKEN);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int weft__blocking_init(weft__rt *rt)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->cap = rt->blocking_cap;
    p->threads = calloc(p->cap, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    rt->blocking = p;
    return 0;
}

bool weft__blocking_busy(weft__rt *rt, unsigned *threads)
{
    pool *p = rt->blocking;
    pthread_mutex_lock(&p->mu);
    bool busy = p->head != NULL || p->idle < p->nthreads;
    *threads = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return busy;
}

void weft__blocking_fini(weft__rt *rt)
{
    pool *p = rt->blocking;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
    rt->blocking = NULL;
}

int weft_blocking(weft_fn fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    weft__task *t = weft__current();
    if (!t)
        return fn(arg);
    if (weft__task_cancelled(t))
        return -ECANCELED;
    weft__rt *rt = atomic_load_explicit(&weft__g_rt, memory_order_acquire);
    pool *p = rt->blocking;
    job j = {.fn = fn, .arg = arg, .task = t, .state = J_QUEUED};
    weft__wait_note("weft_blocking", (const void *)fn);
    pthread_mutex_lock(&p->mu);
    if (p->idle == 0 && p->nthreads < p->cap) {
        pthread_t th;
        int rc = weft__test_fail_threads ? EAGAIN : pthread_create(&th, NULL, pool_thread, p);
        if (rc == 0) {
            p->threads[p->nthreads++] = th;
        } else if (p->nthreads == 0) {
            /* No thread to run it, and no wait begun yet: nothing for a
             * canceller to claim (a wait retired by our own wake could be
             * claimed by a cancel whose hand-off then landed in the task's
             * next wait). */
            pthread_mutex_unlock(&p->mu);
            return -rc;
        }
    }
    /* The wait begins only once the job will run; a cancel from here on is
     * handled below. */
    j.token = weft__wait_begin(t, WAIT_CANCELLABLE);
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);

    int r = weft__wait_park(t, j.token, WEFT_FOREVER, WAIT_CANCELLABLE);
    if (r == W_WOKEN)
        return j.result;
    /* Cancelled. If fn has not started, take the job back. */
    pthread_mutex_lock(&p->mu);
    if (j.state == J_QUEUED) {
        job **pp = &p->head, *prev = NULL;
        while (*pp != &j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = j.next;
        if (p->tail == &j)
            p->tail = prev;
        pthread_mutex_unlock(&p->mu);
        return -ECANCELED;
    }
    if (j.state == J_DONE) {
        pthread_mutex_unlock(&p->mu);
        return j.result;
    }
    /* Running: wait for it, not cancellable (its arg is on our stack). */
    j.token = weft__wait_begin(t, 0);
    pthread_mutex_unlock(&p->mu);
    weft__wait_park(t, j.token, WEFT_FOREVER, 0);
    return j.result;
}
