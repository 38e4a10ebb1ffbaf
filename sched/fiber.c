/*
 * fiber.c - what the context switch owes to sanitizers and debuggers.
 *
 * ASan must be told before and after every stack switch, or it reports
 * stack-buffer errors on perfectly good frames and leaks its fake stacks;
 * TSan must be told which fiber runs, or it mixes the shadow state of
 * unrelated tasks. The hooks are weak references: in a
 * plain Release build they resolve to NULL and cost one predictable branch,
 * and the installed library still works inside a user's own ASan/TSan build,
 * where the sanitizer runtime defines them.
 *
 * TSan fibers: in a user's TSan build against the uninstrumented library,
 * and in weft's own TSan build (which leaves the library uninstrumented in
 * the same way, see CMakeLists.txt), they switch with no_sync, and weft gives TSan the
 * edges it guarantees explicitly (internal.h, weft__hb_*). Only the
 * WEFT_TSAN_RUNTIME=full build, which instruments the runtime's own
 * accesses, switches with sync (see weft__fiber_before).
 */
#include "internal.h"

#include <stdint.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT__HAVE_VALGRIND 1
#endif
#endif

extern void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size)
    __attribute__((weak));
extern void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                            size_t *size_old) __attribute__((weak));
extern void *__tsan_get_current_fiber(void) __attribute__((weak));
extern void *__tsan_create_fiber(unsigned flags) __attribute__((weak));
extern void __tsan_destroy_fiber(void *fiber) __attribute__((weak));
extern void __tsan_switch_to_fiber(void *fiber, unsigned flags) __attribute__((weak));

extern void weft__ctx_trampoline(void);

bool weft__asan_fibers, weft__cxx_eh, weft__tsan_hb, weft__fiber_hooks;

extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));

/* At load time, so that the sync calls made before any runtime starts (or
 * from plain threads) are annotated too. */
__attribute__((constructor)) static void hb_init(void)
{
#if !defined(WEFT__TSAN) || !defined(WEFT_TSAN_FULL)
    weft__tsan_hb = __tsan_acquire != NULL && __tsan_release != NULL;
#endif
}

extern void AnnotateBenignRaceSized(const char *file, int line, const volatile void *mem, long size,
                                    const char *description) __attribute__((weak));

/* A worker thread's errno is shared by every task that runs on it, one
 * after another; no_sync switches leave those tasks unordered, so TSan
 * would report a task's `errno = 0` (or libstdc++'s errno save in
 * std::stol) against the previous task's. Thread-local storage has no
 * other user on a worker, and TSan has no call that resets a range's
 * history, so the worker's errno is declared benign. */
void weft__hb_worker_start(void)
{
    if (weft__tsan_hb && AnnotateBenignRaceSized)
        AnnotateBenignRaceSized(__FILE__, __LINE__, &errno, sizeof errno,
                                "errno: shared by the tasks of one weft worker");
}

void weft__hb_release_slow(const void *addr) { __tsan_release((void *)addr); }
void weft__hb_acquire_slow(const void *addr) { __tsan_acquire((void *)addr); }

/* The C++ ABI's per-thread exception globals (libstdc++ and libc++abi
 * share this layout on the targets weft supports). A weak reference: in a
 * process without a C++ runtime it is NULL and a switch pays one branch. */
typedef struct {
    void *caught;
    unsigned int uncaught;
} cxa_eh_globals;
extern cxa_eh_globals *__cxa_get_globals(void) __attribute__((weak));

/* This thread's globals: their address never changes for a thread, and
 * __cxa_get_globals goes through the PLT and the C++ runtime's TLS, which
 * measured a sixth of a yield; one initial-exec TLS load instead. */
static WEFT__TLS cxa_eh_globals *eh_mine;

static inline cxa_eh_globals *eh_globals(void)
{
    cxa_eh_globals *g = eh_mine;
    if (WEFT__UNLIKELY(!g))
        g = eh_mine = __cxa_get_globals();
    return g;
}

/* The hooks that switch TSan's fiber must not be instrumented themselves: an
 * instrumented function would push its entry on the old fiber's shadow call
 * stack and pop its exit from the new one's. */
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define NO_SANITIZE __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef NO_SANITIZE
#define NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread))
#endif

void weft__ctx_init(weft__ctx *ctx, void *top, void (*entry)(void))
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* See switch_x86_64.S for the frame. After its ret, rsp = t - 16,
     * 16-byte aligned as the trampoline's call requires. */
    uint64_t *sp = (uint64_t *)(t - 80);
    uint32_t *fp = (uint32_t *)sp;
    fp[0] = 0x1F80;                     /* MXCSR: all exceptions masked, round to nearest */
    fp[1] = 0x037F;                     /* x87 control word: the ABI's default */
    sp[1] = 0;                          /* r15 */
    sp[2] = 0;                          /* r14 */
    sp[3] = 0;                          /* r13 */
    sp[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    sp[5] = 0;                          /* rbx */
    sp[6] = 0;                          /* rbp */
    sp[7] = (uint64_t)(uintptr_t)weft__ctx_trampoline;
    sp[8] = 0;
    sp[9] = 0;
    ctx->sp = sp;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(t - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)entry;                 /* x19 */
    sp[11] = (uint64_t)(uintptr_t)weft__ctx_trampoline; /* x30 */
    ctx->sp = sp;
#else
#error "weft: no context switch for this architecture"
#endif
}

void weft__fiber_system_init(void)
{
    weft__asan_fibers = __sanitizer_start_switch_fiber != NULL;
    weft__cxx_eh = __cxa_get_globals != NULL;
    weft__fiber_hooks = weft__asan_fibers || weft__cxx_eh || __tsan_switch_to_fiber != NULL;
}

void *weft__fiber_create(void) { return __tsan_create_fiber ? __tsan_create_fiber(0) : NULL; }

void weft__fiber_destroy(void *f)
{
    if (f && __tsan_destroy_fiber)
        __tsan_destroy_fiber(f);
}

/* Called right before weft__ctx_switch from `from_task` (NULL: the worker's
 * scheduler context) to `to_task` (NULL: the scheduler context). A dying
 * task hands ASan a NULL save slot so its fake stack is released. */
NO_SANITIZE void weft__fiber_before_slow(weft__worker *w, weft__task *from_task,
                                         weft__task *to_task, bool from_dying)
{
    if (weft__cxx_eh) {
        /* The thread that switches now is the thread to_task runs on next. */
        cxa_eh_globals *g = eh_globals();
        weft__eh_state *save = from_task ? &from_task->eh : &weft__tls_thr.sched_eh;
        const weft__eh_state *load = to_task ? &to_task->eh : &weft__tls_thr.sched_eh;
        save->caught = g->caught;
        save->uncaught = g->uncaught;
        g->caught = load->caught;
        g->uncaught = load->uncaught;
    }
    if (__sanitizer_start_switch_fiber) {
        void **save = from_dying
                          ? NULL
                          : (from_task ? &from_task->asan_fake : &weft__tls_thr.sched_asan_fake);
        const void *bottom = to_task ? (const void *)to_task->stk_lo : weft__tls_thr.sched_stack_lo;
        size_t size = to_task ? to_task->stk_size : weft__tls_thr.sched_stack_size;
        __sanitizer_start_switch_fiber(save, bottom, size);
    }
    if (from_dying && weft__tsan_hb) {
        /* The last thing a finished task's fiber does: everything it did,
         * including the runtime's own calls on its stack (clock_gettime's
         * result, a stack descriptor's calloc), happens-before the stack's
         * and the task record's reuse (acquired in after_switch's PREV_DONE
         * and weft__stack_get) and the runtime's teardown (acquired at the
         * end of weft__worker_loop). */
        __tsan_release(from_task);
        if (from_task->stack)
            __tsan_release(from_task->stack);
        __tsan_release(w->rt);
    }
    if (__tsan_switch_to_fiber) {
        void *f = to_task ? to_task->tsan_fiber : weft__tls_thr.sched_tsan_fiber;
        /* Where the library's accesses are not instrumented, switch
         * without synchronising (flag 1, no_sync): tasks that merely ran one
         * after another on a worker are not ordered, so races between them
         * are found, and the edges weft does guarantee are given explicitly
         * (weft__hb_*). The WEFT_TSAN_RUNTIME=full build keeps the sync
         * switch: there every worker-private field (caches, queue ends, the
         * previous task) is touched by whichever fiber runs on the worker,
         * and the only edge TSan could take for them is this one. */
        __tsan_switch_to_fiber(f, weft__tsan_hb ? 1u : 0u);
    }
}

/* Called first thing after a switch lands in a context. */
NO_SANITIZE void weft__fiber_after_slow(weft__worker *w, weft__task *now_task)
{
    if (__sanitizer_finish_switch_fiber) {
        void *fake = now_task ? now_task->asan_fake : weft__tls_thr.sched_asan_fake;
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
    }
}

NO_SANITIZE void weft__fiber_inline_enter(weft__task *host, weft__task *c)
{
    if (__sanitizer_start_switch_fiber)
        __sanitizer_start_switch_fiber(&host->asan_fake, c->stk_lo, c->stk_size);
}

NO_SANITIZE void weft__fiber_inline_entered(void)
{
    if (__sanitizer_finish_switch_fiber)
        __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
}

NO_SANITIZE void weft__fiber_native_enter(weft__task *t)
{
    if (__sanitizer_start_switch_fiber)
        __sanitizer_start_switch_fiber(&t->asan_fake, weft__tls_thr.sched_stack_lo,
                                       weft__tls_thr.sched_stack_size);
}

NO_SANITIZE void weft__fiber_native_entered(void)
{
    if (__sanitizer_finish_switch_fiber)
        __sanitizer_finish_switch_fiber(weft__tls_thr.sched_asan_fake, NULL, NULL);
}

NO_SANITIZE void weft__fiber_native_leave(weft__task *t)
{
    if (__sanitizer_start_switch_fiber)
        __sanitizer_start_switch_fiber(&weft__tls_thr.sched_asan_fake, t->stk_lo, t->stk_size);
}

NO_SANITIZE void weft__fiber_native_left(weft__task *t)
{
    if (__sanitizer_finish_switch_fiber)
        __sanitizer_finish_switch_fiber(t->asan_fake, NULL, NULL);
}

NO_SANITIZE void weft__fiber_inline_leave(weft__task *host)
{
    /* NULL save slot: the child's stack is done (its fake frames go). */
    if (__sanitizer_start_switch_fiber)
        __sanitizer_start_switch_fiber(NULL, host->stk_lo, host->stk_size);
}

NO_SANITIZE void weft__fiber_inline_left(weft__task *host)
{
    if (__sanitizer_finish_switch_fiber)
        __sanitizer_finish_switch_fiber(host->asan_fake, NULL, NULL);
}

void weft__eh_inline_begin(weft__task *host)
{
    if (!__cxa_get_globals)
        return;
    cxa_eh_globals *g = eh_globals();
    host->eh.caught = g->caught;
    host->eh.uncaught = g->uncaught;
    g->caught = NULL;
    g->uncaught = 0;
}

void weft__eh_inline_end(weft__task *host)
{
    if (!__cxa_get_globals)
        return;
    cxa_eh_globals *g = eh_globals();
    g->caught = host->eh.caught;
    g->uncaught = host->eh.uncaught;
}

void weft__stack_register_debugger(weft__stack *s)
{
#ifdef WEFT__HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
#else
    (void)s;
#endif
}

void weft__stack_deregister_debugger(weft__stack *s)
{
#ifdef WEFT__HAVE_VALGRIND
    if (s->vg_id)
        VALGRIND_STACK_DEREGISTER(s->vg_id);
    s->vg_id = 0;
#else
    (void)s;
#endif
}

void *weft__fiber_current(void)
{
    return __tsan_get_current_fiber ? __tsan_get_current_fiber() : NULL;
}
