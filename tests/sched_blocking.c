/* weft_blocking: other tasks keep running while fn blocks (on one worker:
 * the worker is handed to another thread); a caller already cancelled
 * gets -ECANCELED and fn never runs; once started the call waits for fn;
 * inside fn weft_in_task() is false and weft_cancelled() reports the
 * waiting task; fn has a thread's stack, not a task's: a 1 MiB local array
 * (every page written and summed) and getaddrinfo("localhost") (libc's
 * resolver, /etc/hosts, loopback only) run in it, from several tasks at
 * once on 1 and 2 workers.
 * TIMEOUT: 60
 * LABELS: unit
 */
#include "test.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>

static atomic_long ticks;
static atomic_bool stop_ticker;
static weft_event ticked; /* set by the ticker after 20 ticks */

static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticker)) {
        if (atomic_fetch_add(&ticks, 1) + 1 == 20)
            weft_event_set(&ticked);
        CHECK_OK(weft_sleep(100000));
    }
    return 0;
}

/* Blocks its thread until the ticker, a task on the only worker, has
 * ticked 20 times: it can only do so if the worker's queue moves to
 * another thread meanwhile. */
static int block_until_ticked(void *arg)
{
    CHECK(!weft_in_task());
    int r = weft_event_wait_until(&ticked, weft_now() + PROMPT_NS);
    if (r != 0) {
        fprintf(stderr, "the ticker did not tick while fn blocked: %d\n", r);
        return -EIO;
    }
    return (int)(intptr_t)arg;
}

static int keeps_workers_free(void *arg)
{
    (void)arg;
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticker, false);
    weft_event_init(&ticked);
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    /* One worker: the ticker runs (and its timers fire) while fn blocks
     * this thread: the worker moved to another one. */
    CHECK_EQ(weft_blocking(block_until_ticked, (void *)(intptr_t)-42), -42);
    CHECK(atomic_load(&ticks) >= 20);
    atomic_store(&stop_ticker, true);
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&ticked);
    return 0;
}

static int long_caller(void *arg)
{
    CHECK_EQ(weft_blocking(block_until_ticked, arg), (int)(intptr_t)arg);
    return 0;
}

/* Every worker in a long call at once (2 workers, 2 callers): the ticker
 * still runs, on a thread the hand-off adds. */
static int all_workers_in_calls(void *arg)
{
    (void)arg;
    atomic_store(&ticks, 0);
    atomic_store(&stop_ticker, false);
    weft_event_init(&ticked);
    weft_nursery *n, *callers;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, ticker, NULL));
    CHECK_OK(weft_nursery_open(&callers));
    CHECK_OK(weft_spawn(callers, long_caller, (void *)(intptr_t)3));
    CHECK_OK(weft_spawn(callers, long_caller, (void *)(intptr_t)3));
    CHECK_OK(weft_nursery_close(callers));
    CHECK(atomic_load(&ticks) >= 20);
    atomic_store(&stop_ticker, true);
    CHECK_OK(weft_nursery_close(n));
    weft_event_destroy(&ticked);
    return 0;
}

/* Hand-offs in a row, 1 worker: each round queues a child behind a call
 * that lasts until the child has run, then sleeps (so the monitor naps and
 * the next call asks a spare to watch it, blocking.c). Conservation: every
 * child runs exactly once, inside its own call; liveness: no call waits
 * out its 10 s bound. The rounds alternate the threads that drive the
 * worker, the spares that watch and the monitor's own hand-offs. */
#define HANDOFF_ROUNDS 200
static atomic_int child_runs, calls_seen_child;

static int handoff_child(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    atomic_fetch_add(&child_runs, 1);
    return 0;
}

static int wait_for_child(void *arg)
{
    int64_t give_up = weft_now() + 10 * (int64_t)1000000000;
    while (!atomic_load((atomic_int *)arg) && weft_now() < give_up) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load((atomic_int *)arg))
        atomic_fetch_add(&calls_seen_child, 1);
    return 0;
}

static int handoffs_in_a_row(void *arg)
{
    (void)arg;
    atomic_store(&child_runs, 0);
    atomic_store(&calls_seen_child, 0);
    for (int i = 0; i < HANDOFF_ROUNDS; i++) {
        atomic_int ran = 0;
        weft_nursery *n;
        CHECK_OK(weft_nursery_open(&n));
        CHECK_OK(weft_spawn(n, handoff_child, &ran));
        CHECK_OK(weft_blocking(wait_for_child, &ran));
        CHECK_OK(weft_nursery_close(n));
        CHECK_EQ(atomic_load(&ran), 1);
        CHECK_OK(weft_sleep((i % 4) * 1000000)); /* 0-3 ms: naps of every length */
    }
    CHECK_EQ(atomic_load(&child_runs), HANDOFF_ROUNDS);
    CHECK_EQ(atomic_load(&calls_seen_child), HANDOFF_ROUNDS);
    return 0;
}

/* A pinned task's worker is never handed off: its call runs on its own
 * thread, it resumes there, and the task queued behind it on its only
 * worker waits for the call (API.md). */
static atomic_int behind_ran, behind_ran_during_call;
static atomic_bool in_pinned_call;
static pthread_t fn_thread;

static int behind(void *arg)
{
    (void)arg;
    if (atomic_load(&in_pinned_call))
        atomic_store(&behind_ran_during_call, 1);
    atomic_store(&behind_ran, 1);
    return 0;
}

static int pinned_body(void *arg)
{
    (void)arg;
    fn_thread = pthread_self();
    atomic_store(&in_pinned_call, true);
    /* Long enough for the monitor to look many times. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&in_pinned_call, false);
    return 0;
}

static int pinned_caller(void *arg)
{
    (void)arg;
    weft_pin();
    pthread_t before = pthread_self();
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, behind, NULL));
    CHECK_OK(weft_blocking(pinned_body, NULL));
    CHECK(pthread_equal(before, fn_thread));
    CHECK(pthread_equal(before, pthread_self()));
    CHECK_OK(weft_nursery_close(n));
    weft_unpin();
    CHECK_EQ(atomic_load(&behind_ran), 1);
    CHECK_EQ(atomic_load(&behind_ran_during_call), 0);
    return 0;
}

static atomic_int ran;
static weft_event first_started = WEFT_EVENT_INIT;
static weft_event release_first = WEFT_EVENT_INIT;

static int first_job(void *arg)
{
    (void)arg;
    weft_event_set(&first_started);
    /* A plain thread waiting on an event set by a task. */
    CHECK_OK(weft_event_wait(&release_first));
    return 7;
}

static int second_job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static int holder(void *arg)
{
    *(int *)arg = weft_blocking(first_job, NULL);
    return 0;
}

/* Called with its scope's deadline already passed: fn never runs. */
static int already_cancelled(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, weft_now() - 1);
    *res = weft_blocking(second_job, NULL);
    CHECK(weft_scope_exit(&sc));
    return 0;
}

static weft_event checker_started = WEFT_EVENT_INIT;
static weft_event deadline_set = WEFT_EVENT_INIT;
static weft_scope *_Atomic waiting_scope;

static int slow_checker(void *arg)
{
    (void)arg;
    CHECK(!weft_cancelled());
    weft_event_set(&checker_started);
    /* Runs until the waiting task is cancelled, then reports it. */
    int64_t give_up = weft_now() + PROMPT_NS;
    while (!weft_cancelled() && weft_now() < give_up) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return weft_cancelled() ? 1 : 0;
}

static int started_waits(void *arg)
{
    int *res = arg;
    weft_scope sc;
    weft_scope_enter(&sc, WEFT_FOREVER);
    atomic_store(&waiting_scope, &sc);
    *res = weft_blocking(slow_checker, NULL);
    /* Keep sc entered until the other task is done with it (shielded: we
     * are cancelled). */
    weft_scope sh;
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_shield(&sh, true);
    CHECK_OK(weft_event_wait(&deadline_set));
    CHECK(!weft_scope_exit(&sh));
    CHECK(weft_scope_exit(&sc));
    return 0;
}

/* Gives the waiting task's scope a deadline once fn has started (a deadline
 * set earlier could pass while the job is still queued: then fn would
 * never run). */
static int deadline_once_started(void *arg)
{
    (void)arg;
    CHECK_OK(weft_event_wait(&checker_started));
    weft_scope_set_deadline(atomic_load(&waiting_scope), weft_now() + test_ms(20));
    weft_event_set(&deadline_set);
    return 0;
}

static int cancellation(void *arg)
{
    (void)arg;
    int r1 = -1, r2 = -1, r3 = -1;
    weft_nursery *n, *m;
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, holder, &r1));
    CHECK_OK(weft_event_wait(&first_started)); /* first_job holds its thread */
    /* A call made with the caller already cancelled: fn never runs. */
    CHECK_OK(weft_nursery_open(&m));
    CHECK_OK(weft_spawn(m, already_cancelled, &r2));
    CHECK_OK(weft_nursery_close(m));
    CHECK_EQ(r2, -ECANCELED);
    weft_event_set(&release_first);
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r1, 7);
    CHECK_EQ(atomic_load(&ran), 0); /* the cancelled call's fn never ran */
    CHECK_OK(weft_nursery_open(&n));
    CHECK_OK(weft_spawn(n, started_waits, &r3));
    CHECK_OK(weft_spawn(n, deadline_once_started, NULL));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(r3, 1); /* fn saw the cancel and the call waited for it */
    return 0;
}

/* fn runs on a thread's own stack (a task's is 64 KiB): a 1 MiB local
 * array, every page written, then summed. The asm barrier makes the
 * compiler keep the stores and the loads. */
#define BIG_BYTES (1 << 20)
#define PAGE_BYTES 4096

static long big_expected(unsigned seed)
{
    long sum = 0;
    for (long p = 0; p < BIG_BYTES / PAGE_BYTES; p++)
        sum += (long)(unsigned char)(p + seed) - (long)(unsigned char)seed;
    return sum + (long)BIG_BYTES * (unsigned char)seed;
}

static int big_local_body(void *arg)
{
    CHECK(!weft_in_task());
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned char buf[BIG_BYTES];
    memset(buf, (int)(unsigned char)seed, sizeof buf);
    for (long p = 0; p < BIG_BYTES / PAGE_BYTES; p++)
        buf[p * PAGE_BYTES + p % 97] = (unsigned char)(p + seed);
    __asm__ volatile("" : : "r"(buf) : "memory");
    long sum = 0;
    for (long i = 0; i < BIG_BYTES; i++)
        sum += buf[i];
    __asm__ volatile("" : : "r"(buf) : "memory");
    /* The sum fits an int: at most 255 * 1 MiB. */
    return sum == big_expected(seed) ? (int)(sum & 0x7fffffff) : -EIO;
}

/* getaddrinfo in fn: libc's resolver (NSS, /etc/hosts) with its deep
 * stack. Returns getaddrinfo's result; on success each address must be
 * loopback and port 80. */
static int resolve_localhost(void *arg)
{
    (void)arg;
    CHECK(!weft_in_task());
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo("localhost", "80", &hints, &res);
    if (rc != 0)
        return rc; /* an EAI_* code (negative; none is -ECANCELED) */
    int n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next, n++) {
        if (a->ai_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)a->ai_addr;
            CHECK_EQ(ntohl(in->sin_addr.s_addr) >> 24, 127);
            CHECK_EQ(ntohs(in->sin_port), 80);
        } else {
            CHECK_EQ(a->ai_family, AF_INET6);
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a->ai_addr;
            CHECK(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
            CHECK_EQ(ntohs(in6->sin6_port), 80);
        }
    }
    freeaddrinfo(res);
    CHECK(n > 0);
    return 0;
}

/* What getaddrinfo("localhost") gives on a plain thread, to compare with
 * (a machine whose /etc/hosts lacks localhost fails the same way in both). */
static int resolve_plain_rc;

enum { STACK_CALLERS = 4, STACK_ROUNDS = 5 };

static int stack_caller(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned r = 0; r < STACK_ROUNDS; r++) {
        unsigned seed = id * 31 + r * 7 + 1;
        int got = weft_blocking(big_local_body, (void *)(uintptr_t)seed);
        CHECK_EQ(got, big_expected(seed) & 0x7fffffff);
        CHECK_EQ(weft_blocking(resolve_localhost, NULL), resolve_plain_rc);
        CHECK_OK(weft_yield());
    }
    return 0;
}

/* Several callers at once, so that calls may be handed off (other work
 * waits on the worker) and run on a spare thread's stack. */
static int big_stack_calls(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (unsigned i = 0; i < STACK_CALLERS; i++)
        CHECK_OK(weft_spawn(n, stack_caller, (void *)(uintptr_t)i));
    CHECK_OK(weft_nursery_close(n));
    return 0;
}

/* The cap: with W workers and blocking_threads = B, at most W + B calls
 * run at once (each worker's own thread, plus the threads hand-offs may
 * add); the rest of the callers wait for a thread, and every call ends. */
enum { CAP_WORKERS = 2, CAP_THREADS = 2, CAP_CALLERS = 12 };
static atomic_int in_calls, max_in_calls, calls_done;

static int capped_body(void *arg)
{
    int now = atomic_fetch_add(&in_calls, 1) + 1;
    int m = atomic_load(&max_in_calls);
    while (now > m && !atomic_compare_exchange_weak(&max_in_calls, &m, now)) {
    }
    usleep(20000); /* long enough for a hand-off to add a thread */
    atomic_fetch_sub(&in_calls, 1);
    return *(int *)arg;
}

static int capped_caller(void *arg)
{
    int v = (int)(intptr_t)arg;
    CHECK_EQ(weft_blocking(capped_body, &v), v);
    atomic_fetch_add(&calls_done, 1);
    return 0;
}

static int capped_calls(void *arg)
{
    (void)arg;
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < CAP_CALLERS; i++)
        CHECK_OK(weft_spawn(n, capped_caller, (void *)(intptr_t)(i + 1)));
    CHECK_OK(weft_nursery_close(n));
    CHECK_EQ(atomic_load(&calls_done), CAP_CALLERS);
    CHECK(atomic_load(&max_in_calls) >= 1);
    CHECK(atomic_load(&max_in_calls) <= CAP_WORKERS + CAP_THREADS);
    return 0;
}

static int inline_fn(void *arg) { return *(int *)arg; }

int main(void)
{
    test_watchdog(50);
    int v = 5;
    CHECK_EQ(weft_blocking(inline_fn, &v), 5); /* outside a task: inline */
    CHECK_EQ(weft_blocking(NULL, NULL), -EINVAL);
    CHECK_OK(test_run(1, keeps_workers_free, NULL));
    CHECK_OK(test_run(2, all_workers_in_calls, NULL));
    CHECK_OK(test_run(1, handoffs_in_a_row, NULL));
    CHECK_OK(test_run(1, pinned_caller, NULL));
    resolve_plain_rc = resolve_localhost(NULL);
    if (resolve_plain_rc != 0)
        fprintf(stderr, "sched_blocking: getaddrinfo(\"localhost\") fails here too: %s\n",
                gai_strerror(resolve_plain_rc));
    CHECK_OK(test_run(1, big_stack_calls, NULL));
    CHECK_OK(test_run(2, big_stack_calls, NULL));
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    cfg.blocking_threads = 1;
    CHECK_OK(weft_run(&cfg, cancellation, NULL));
    cfg.workers = CAP_WORKERS;
    cfg.blocking_threads = CAP_THREADS;
    CHECK_OK(weft_run(&cfg, capped_calls, NULL));
    fprintf(stderr, "sched_blocking: at most %d calls at once (cap %d)\n",
            atomic_load(&max_in_calls), CAP_WORKERS + CAP_THREADS);
    printf("sched_blocking: ok\n");
    return 0;
}
