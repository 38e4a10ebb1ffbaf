/*
 * threads.c - the foreign threads weft knows of, for the deadlock detector.
 *
 * Two small tables, both off every hot path:
 *  - threads that declared, with weft_thread_never_wakes, that they will
 *    never wake a task: the detector stops waiting for them;
 *  - plain threads parked in a weft wait (sync/waitq.c notes them, with
 *    what they wait on), so that the deadlock report can name them.
 * A thread's slot is found by its kernel thread id. A declared thread that
 * exits without withdrawing is noticed by its /proc/self/task entry being
 * gone; a new thread that reuses its id would inherit the declaration
 * (thread ids are recycled only after the id space wraps).
 */
#include "internal.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DECLARED_MAX 256
#define PARKED_MAX 64
#define LABEL_MAX 32

WEFT__TLS bool weft__tls_never_wakes;
WEFT__TLS const char *weft__tls_thread_wait_what;
WEFT__TLS const void *weft__tls_thread_wait_obj;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pid_t tid;
    char label[LABEL_MAX];
} declared[DECLARED_MAX];
static unsigned ndeclared;
static struct {
    pid_t tid;
    const char *what;
    const void *obj;
} parked[PARKED_MAX];

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

int weft_thread_never_wakes(const char *label)
{
    if (weft__current() || weft__tls_blocking_for) {
        weft__misuse("weft_thread_never_wakes from a task or a weft_blocking body (it declares "
                     "a plain thread)");
        return -EPERM;
    }
    pid_t tid = my_tid();
    char name[LABEL_MAX] = "";
    if (label)
        snprintf(name, sizeof name, "%s", label);
    else
        pthread_getname_np(pthread_self(), name, sizeof name);
    pthread_mutex_lock(&mu);
    unsigned i = 0;
    while (i < ndeclared && declared[i].tid != tid)
        i++;
    if (i == ndeclared) {
        if (ndeclared == DECLARED_MAX) {
            pthread_mutex_unlock(&mu);
            return -ENOSPC;
        }
        ndeclared++;
    }
    declared[i].tid = tid;
    memcpy(declared[i].label, name, sizeof name);
    pthread_mutex_unlock(&mu);
    weft__tls_never_wakes = true;
    return 0;
}

void weft_thread_may_wake(void)
{
    pid_t tid = my_tid();
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < ndeclared; i++)
        if (declared[i].tid == tid) {
            declared[i] = declared[--ndeclared];
            break;
        }
    pthread_mutex_unlock(&mu);
    weft__tls_never_wakes = false;
}

void weft__thread_wait_note(bool is_parked)
{
    pid_t tid = my_tid();
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < PARKED_MAX; i++) {
        if (is_parked && parked[i].tid == 0) {
            parked[i].tid = tid;
            parked[i].what = weft__tls_thread_wait_what;
            parked[i].obj = weft__tls_thread_wait_obj;
            break;
        }
        if (!is_parked && parked[i].tid == tid) {
            parked[i].tid = 0;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (!is_parked)
        weft__tls_thread_wait_what = NULL;
}

static bool alive(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
    return access(path, F_OK) == 0;
}

unsigned weft__threads_declared_alive(void)
{
    unsigned n = 0;
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < ndeclared;) {
        if (alive(declared[i].tid)) {
            n++;
            i++;
        } else {
            declared[i] = declared[--ndeclared]; /* exited without withdrawing */
        }
    }
    pthread_mutex_unlock(&mu);
    return n;
}

/* "S (sleeping) in futex_wait_queue": the kernel's view of a thread. */
static void kernel_state(pid_t tid, char *out, size_t n)
{
    char path[96], st[256] = "", wchan[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    char state = '?';
    if (f) {
        if (fgets(st, sizeof st, f)) {
            char *p = strrchr(st, ')'); /* the name may hold spaces */
            if (p && p[1] == ' ')
                state = p[2];
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/self/task/%d/wchan", (int)tid);
    f = fopen(path, "r");
    if (f) {
        if (!fgets(wchan, sizeof wchan, f))
            wchan[0] = 0;
        fclose(f);
    }
    const char *sname = state == 'R'   ? "running"
                        : state == 'S' ? "sleeping"
                        : state == 'D' ? "in uninterruptible sleep"
                        : state == 'T' ? "stopped"
                                       : "state ?";
    if (wchan[0] && strcmp(wchan, "0") != 0)
        snprintf(out, n, "%s in %s", sname, wchan);
    else
        snprintf(out, n, "%s", sname);
}

void weft__threads_report(FILE *f, bool ignoring)
{
    pthread_mutex_lock(&mu);
    unsigned nparked = 0;
    for (unsigned i = 0; i < PARKED_MAX; i++)
        nparked += parked[i].tid != 0;
    if (ndeclared == 0 && nparked == 0) {
        pthread_mutex_unlock(&mu);
        if (ignoring)
            fprintf(f, "weft: deadlock: foreign threads ignored (ignore_foreign_threads)\n");
        return;
    }
    fprintf(f, "weft: deadlock: foreign threads weft knows of%s:\n",
            ignoring ? " (foreign threads ignored: ignore_foreign_threads)" : "");
    char ks[128];
    for (unsigned i = 0; i < ndeclared; i++) {
        kernel_state(declared[i].tid, ks, sizeof ks);
        fprintf(f,
                "  thread %d \"%s\": declared never to wake weft (weft_thread_never_wakes); %s\n",
                (int)declared[i].tid, declared[i].label, ks);
    }
    for (unsigned i = 0; i < PARKED_MAX; i++) {
        if (!parked[i].tid)
            continue;
        char name[32] = "";
        char path[96];
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)parked[i].tid);
        FILE *c = fopen(path, "r");
        if (c) {
            if (fgets(name, sizeof name, c))
                name[strcspn(name, "\n")] = 0;
            fclose(c);
        }
        fprintf(f, "  thread %d \"%s\": parked in a weft wait: %s %p\n", (int)parked[i].tid, name,
                parked[i].what ? parked[i].what : "a wait", parked[i].obj);
    }
    pthread_mutex_unlock(&mu);
}
