/*
 * fault.c - naming the task whose stack overflowed into its guard page.
 *
 * A guarded stack that overflows faults on the PROT_NONE page below it. The
 * SIGSEGV handler (on an alternate signal stack per worker, since the task's
 * own stack is what ran out) checks whether the fault address lies in the
 * guard page of the task running on this worker; if so it writes
 * "weft: panic: stack overflow in task N "name"" and aborts. Any other fault
 * goes to the previous disposition by restoring it and returning, so the
 * instruction faults again there. The handler is installed only if the
 * application left SIGSEGV at SIG_DFL, and removed when weft_run returns.
 */
#include "internal.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv;
static bool installed;

static size_t fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    weft__worker *w = weft__tls_worker;
    weft__task *t = w ? w->current : NULL;
    char *addr = si->si_addr;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    if (t && t->stk_lo && addr < t->stk_lo && addr >= t->stk_lo - ps) {
        char msg[160];
        size_t n = 0;
        const char *a = "weft: panic: stack overflow in task ";
        while (*a)
            msg[n++] = *a++;
        n += fmt_u64(msg + n, t->id);
        msg[n++] = ' ';
        msg[n++] = '"';
        for (const char *s = t->name; *s && n < 120; s++)
            msg[n++] = *s;
        const char *b = "\" (hit its guard page; raise the stack size)\n";
        while (*b && n < sizeof msg - 1)
            msg[n++] = *b++;
        ssize_t r = write(2, msg, n);
        (void)r;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: let the previous disposition handle the re-executed fault. */
    sigaction(sig, &old_segv, NULL);
}

/* A C++ exception that escapes a task body finds no handler (the unwinder
 * stops at the task's first frame) and the C++ runtime calls
 * std::terminate. When libstdc++ is in the process, weft installs a
 * terminate handler through dlsym (the library itself stays C) that names
 * the task, then chains to the previous handler, which reports the
 * exception's type and aborts. */
typedef void (*terminate_fn)(void);
static terminate_fn (*set_terminate_p)(terminate_fn);
static terminate_fn old_terminate;

static void on_terminate(void)
{
    weft__worker *w = weft__tls_worker;
    weft__task *t = w ? w->current : NULL;
    weft__task *b = weft__tls_blocking_for;
    if (t)
        fprintf(stderr,
                "weft: panic: a C++ exception escaped task %llu \"%s\" (or terminate "
                "was called in it)\n",
                (unsigned long long)t->id, t->name);
    else if (b)
        fprintf(stderr,
                "weft: panic: a C++ exception escaped a weft_blocking body called by task "
                "%llu \"%s\" (or terminate was called in it)\n",
                (unsigned long long)b->id, b->name);
    if (old_terminate)
        old_terminate();
    abort();
}

static void terminate_install(void)
{
    set_terminate_p = (terminate_fn(*)(terminate_fn))dlsym(RTLD_DEFAULT,
                                                           "_ZSt13set_terminatePFvvE");
    if (set_terminate_p)
        old_terminate = set_terminate_p(on_terminate);
}

static void terminate_uninstall(void)
{
    if (set_terminate_p)
        set_terminate_p(old_terminate);
    set_terminate_p = NULL;
}

void weft__fault_install(void)
{
    terminate_install();
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) != 0)
        return;
    if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
        return; /* the application handles SIGSEGV itself */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    installed = sigaction(SIGSEGV, &sa, &old_segv) == 0;
}

void weft__fault_uninstall(void)
{
    terminate_uninstall();
    if (installed)
        sigaction(SIGSEGV, &old_segv, NULL);
    installed = false;
}

/* Per worker thread: the handler needs a stack that is not the task's. */
void *weft__fault_thread_init(void)
{
    stack_t ss;
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                     0);
    if (mem == MAP_FAILED)
        return NULL;
    ss.ss_sp = mem;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALTSTACK_SIZE);
        return NULL;
    }
    return mem;
}

void weft__fault_thread_fini(void *mem)
{
    if (!mem)
        return;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(mem, ALTSTACK_SIZE);
}
