/*
 * weft.hpp - the C++17 interface of weft: RAII nurseries and cancel scopes,
 * spawning any callable with a typed result, exceptions that leave a
 * nursery as in Trio, channels of any movable type, and a mutex and a
 * condition variable that work with the standard lock types.
 *
 * Header-only, in namespace weft, over the C API of weft.h, which stays the
 * reference for what each call does ("may park", "context" and the time
 * conventions are the same: int64_t nanoseconds on CLOCK_MONOTONIC, which is
 * std::chrono::steady_clock's clock on Linux; WEFT_FOREVER is no deadline).
 *
 *     int rc = weft::run([] {
 *         weft::nursery n;                          // opens; the dtor closes
 *         auto sum = n.spawn([] { return 1 + 1; }); // weft::task<int>
 *         n.spawn([] { throw std::runtime_error("x"); }); // cancels sum's siblings
 *         n.close();                                // waits, rethrows "x"
 *     });
 *
 * Errors: cancellation is an error code, never an exception
 * -----------------------------------------------------------
 * Every wrapper that may park returns what its C call returns: 0, or
 * -ECANCELED, -ETIMEDOUT, -EPIPE, ... Why codes and not a weft::cancelled
 * exception:
 *  - Cancellation is the expected way a nursery ends: when one child fails or
 *    a deadline passes, every blocking call of every task in it reports it.
 *    The natural reaction is to return, and weft already counts a cancelled
 *    task that returns as no failure. An exception per cancelled call would
 *    make the normal shutdown path the exceptional one (an unwind per task).
 *  - The nursery's destructor must park (it waits for the children), also
 *    while an exception unwinds the stack, and must not throw then. With
 *    codes, the same calls are safe in destructors, catch-free cleanup code
 *    and noexcept functions.
 *  - The codes are weft.h's, so code that mixes the two APIs sees one
 *    convention, and -ETIMEDOUT stays distinct from -ECANCELED.
 * Exceptions are used for what C++ code expects them for:
 *  - an exception escaping a child: the child's wrapper catches it, the child
 *    fails (so its nursery cancels the siblings, as for any failing child)
 *    and the nursery's close() rethrows the first one, as Trio does (see
 *    weft::nursery for the later ones);
 *  - std::bad_alloc when memory runs out (also for -ENOMEM from weft);
 *  - std::system_error for misuse that weft reports as -EINVAL or -EPERM
 *    (e.g. a nursery opened outside a task, a bad stack size).
 *
 * Parking inside a catch block, or while unwinding
 * ------------------------------------------------
 * The C++ ABI keeps the exception being handled (and the count that
 * std::uncaught_exceptions() returns) per OS thread; weft saves and
 * restores that state with each task at every switch. So a task may park
 * inside a catch block and `throw;` afterwards, on whatever thread it
 * resumes, and a destructor may park while an exception unwinds (a nursery
 * closing during unwinding does): std::uncaught_exceptions() stays the
 * task's own.
 */
#ifndef WEFT_HPP
#define WEFT_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "weft.hpp needs C++17 (use weft.h from C)"
#endif

#include <weft.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ratio>
#include <system_error>
#include <type_traits>
#include <utility>

namespace weft
{

/* The result a child (and the root task of weft::run) reports to weft when
 * its callable threw: what dumps and weft's own failure messages show for it
 * ("failed with -131 (State not recoverable)"). */
inline constexpr int threw = -ENOTRECOVERABLE;

namespace detail
{

[[noreturn]] inline void throw_code(int rc, const char *what)
{
    if (rc == -ENOMEM)
        throw std::bad_alloc();
    throw std::system_error(-rc, std::generic_category(), what);
}

/* d in nanoseconds, saturated to the int64_t range. */
template <class Rep, class Period>
constexpr int64_t to_ns(const std::chrono::duration<Rep, Period> &d) noexcept
{
    using r = std::ratio_divide<Period, std::nano>;
    if constexpr (std::is_integral_v<Rep> && r::den == 1) {
        constexpr int64_t f = r::num;
        if constexpr (std::is_signed_v<Rep>) {
            if (d.count() < INT64_MIN / f)
                return INT64_MIN;
        }
        if (d.count() > static_cast<Rep>(0) && static_cast<std::make_unsigned_t<Rep>>(d.count()) >
                                                   static_cast<uint64_t>(INT64_MAX / f))
            return INT64_MAX;
        return static_cast<int64_t>(d.count()) * f;
    } else {
        long double x = std::chrono::duration<long double, std::nano>(d).count();
        if (!(x < 9.2233720368547758e18L))
            return x != x ? 0 : INT64_MAX;
        if (x <= -9.2233720368547758e18L)
            return INT64_MIN;
        return static_cast<int64_t>(x);
    }
}

constexpr int64_t add_sat(int64_t a, int64_t b) noexcept
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* Prints "weft.hpp: task <id> "<name>": <msg>: <what()>" on stderr. Never
 * parks; the catch blocks here only format. */
inline void report(const std::exception_ptr &ep, const char *msg) noexcept
{
    const char *name = weft_task_name();
    unsigned long long id = static_cast<unsigned long long>(weft_task_id());
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "weft.hpp: task %llu \"%s\": %s: %s\n", id, name ? name : "", msg,
                     e.what());
    } catch (...) {
        std::fprintf(stderr, "weft.hpp: task %llu \"%s\": %s: (not a std::exception)\n", id,
                     name ? name : "", msg);
    }
}

/* What a child shares with its weft::task handle (and, if it threw first,
 * with its nursery): the result or the exception, and a one-shot event set
 * when the child finished. Reference counted: freed by the last of child,
 * handle and nursery. */
struct task_state_base {
    std::atomic<int> refs{2};          /* the child and the handle */
    std::atomic<bool> observed{false}; /* the exception was rethrown by get() */
    weft_event done{};
    std::exception_ptr error;

    task_state_base() = default;
    task_state_base(const task_state_base &) = delete;
    task_state_base &operator=(const task_state_base &) = delete;
    virtual ~task_state_base() { weft_event_destroy(&done); }

    void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept
    {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
            delete this;
    }
};

template <class T> struct task_state : task_state_base {
    std::optional<T> value;
    template <class F> void invoke(F &f) { value.emplace(std::invoke(f)); }
};

template <> struct task_state<void> : task_state_base {
    template <class F> void invoke(F &f) { std::invoke(f); }
};

/* Collects the exceptions of a nursery's children. */
struct nursery_sink {
    weft_mutex lock{};
    task_state_base *first = nullptr; /* holds a reference */
    std::size_t later = 0;

    nursery_sink() = default;
    nursery_sink(const nursery_sink &) = delete;
    nursery_sink &operator=(const nursery_sink &) = delete;
    ~nursery_sink()
    {
        if (first)
            first->release();
        weft_mutex_destroy(&lock);
    }

    /* Called by a child whose callable threw (outside the catch block):
     * keeps the first exception; reports later ones. Returns the child's
     * result for weft. */
    int record(task_state_base *st) noexcept
    {
        weft_mutex_lock(&lock);
        bool is_first = first == nullptr;
        if (is_first) {
            st->add_ref();
            first = st;
        } else {
            later++;
        }
        std::size_t n = later;
        weft_mutex_unlock(&lock);
        if (is_first)
            return threw;
        if (n <= 3)
            report(st->error, "exception after an earlier one in its nursery (not rethrown)");
        /* Cancelled by the first failure already: weft need not report it
         * a second time. */
        return weft_cancelled() ? -ECANCELED : threw;
    }

    /* After the close: the first exception (a copy: the child's task handle
     * keeps it for get()), reporting the later ones that were not shown. */
    std::exception_ptr take() noexcept
    {
        if (later > 3)
            std::fprintf(stderr, "weft.hpp: %zu more later child exceptions not shown\n",
                         later - 3);
        if (!first)
            return nullptr;
        std::exception_ptr ep = first->error;
        first->release();
        first = nullptr;
        return ep;
    }
};

/* A child: its state, the callable (destroyed as soon as it returned) and
 * the nursery's sink. One allocation per spawn. */
template <class F, class T> struct task_block final : task_state<T> {
    std::optional<F> fn;
    nursery_sink *sink;
    template <class G>
    task_block(G &&g, nursery_sink *s) : fn(std::in_place, std::forward<G>(g)), sink(s)
    {
    }
};

/* The child's body as weft sees it. noexcept: nothing escapes into weft
 * (which would terminate), also when close() runs the child inline on the
 * parent's stack. */
template <class F, class T> int child_main(void *arg) noexcept
{
    auto *b = static_cast<task_block<F, T> *>(arg);
    std::exception_ptr ep;
    try {
        b->invoke(*b->fn);
    } catch (...) {
        ep = std::current_exception();
    }
    /* Outside the catch block from here on: these may park. */
    b->fn.reset();
    int rc = 0;
    if (ep) {
        b->error = std::move(ep);
        rc = b->sink->record(b);
    }
    weft_event_set(&b->done);
    b->release();
    return rc;
}

/* For a cond: the weft_mutex under a lock. */
template <class L> struct lock_traits {
    static constexpr bool ok = false;
};

} // namespace detail

/* ------------------------------------------------------------------------ */
/* Time and small task calls                                                */
/* ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds (weft_now). Context: both. */
inline int64_t now() noexcept { return weft_now(); }

/* The weft deadline (int64_t ns) d from now, saturated (a huge d is
 * WEFT_FOREVER). Context: both. */
template <class Rep, class Period>
int64_t after(const std::chrono::duration<Rep, Period> &d) noexcept
{
    return detail::add_sat(weft_now(), detail::to_ns(d));
}

/* The weft deadline of a time point: exact for steady_clock (the same clock),
 * converted through Clock::now() for other clocks; saturated. Context: both. */
template <class Clock, class Dur>
int64_t deadline_of(const std::chrono::time_point<Clock, Dur> &tp) noexcept
{
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>)
        return detail::to_ns(tp.time_since_epoch());
    else
        return detail::add_sat(weft_now(), detail::to_ns(tp - Clock::now()));
}

/* Parks until the deadline (weft_sleep_until). May park: yes. Context: both
 * (a plain thread sleeps). Returns 0 or -ECANCELED. */
inline int sleep_until(int64_t deadline) noexcept { return weft_sleep_until(deadline); }

/* As sleep_until(int64_t), with a std::chrono time point. */
template <class Clock, class Dur>
int sleep_until(const std::chrono::time_point<Clock, Dur> &tp) noexcept
{
    return weft_sleep_until(deadline_of(tp));
}

/* Parks for d (weft_sleep). May park: yes. Context: both. Returns 0 or
 * -ECANCELED. */
template <class Rep, class Period>
int sleep_for(const std::chrono::duration<Rep, Period> &d) noexcept
{
    return weft_sleep(detail::to_ns(d));
}

/* Lets other tasks run (weft_yield). May park: yes. Returns 0 or -ECANCELED. */
inline int yield() noexcept { return weft_yield(); }

/* -ECANCELED if the task is cancelled, else 0; yields when its budget is
 * spent (weft_checkpoint). Call it in long loops. May park: yes. */
inline int checkpoint() noexcept { return weft_checkpoint(); }

/* Would a cancellation point fail now? (weft_cancelled). Never parks. */
inline bool cancelled() noexcept { return weft_cancelled(); }

/* True in a weft task. */
inline bool in_task() noexcept { return weft_in_task(); }

/* Runs f() on weft's blocking-thread pool and parks until it returned
 * (weft_blocking): for calls that block their thread. f returns void (0) or
 * something convertible to int (a result code). An exception escaping f is
 * caught on the pool's thread and rethrown here.
 * May park: yes. Context: both (outside a task f runs inline).
 * Returns f's result, or -ECANCELED if the task was cancelled before f
 * started (f then never runs); throws std::bad_alloc (-ENOMEM). */
template <class F> int blocking(F &&f)
{
    using R = std::invoke_result_t<F &>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                  "weft::blocking: the callable returns void or an int result code");
    struct ctx {
        F &f;
        std::exception_ptr ep;
    } c{f, nullptr};
    int rc = weft_blocking(
        [](void *p) noexcept -> int {
            auto *cp = static_cast<ctx *>(p);
            try {
                if constexpr (std::is_void_v<R>) {
                    std::invoke(cp->f);
                    return 0;
                } else {
                    return static_cast<int>(std::invoke(cp->f));
                }
            } catch (...) {
                cp->ep = std::current_exception();
            }
            return threw;
        },
        &c);
    if (c.ep)
        std::rethrow_exception(c.ep);
    if (rc == -ENOMEM)
        throw std::bad_alloc();
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

/* Options of nursery::spawn (weft_spawn_attr). An aggregate:
 * n.spawn(f, {"name"}) or n.spawn(f, {"name", 256 * 1024, true}). */
struct spawn_options {
    const char *name = nullptr; /* the task's name in dumps (copied, 31 bytes) */
    std::size_t stack_size = 0; /* 0: the runtime's default; 16 KiB .. 1 GiB */
    bool pinned = false;        /* start pinned to the spawning task's worker */
};

class nursery;

/* The handle of a child spawned by nursery::spawn, with its typed result:
 * a future that the nursery also joins. Movable, not copyable; dropping it
 * does not affect the child (the nursery still waits for it).
 *
 * Joining: get() parks until the child finished, whether or not the nursery
 * closed, and is not a cancellation point (like weft_nursery_close: it always
 * waits, so it cannot lose the child's result). The child's nursery is
 * cancelled when the caller's is (if it is the same one or inside it), so
 * the wait ends as soon as the child reacts to the cancel. wait() is the
 * cancellable join. After close() returned, every task of that nursery is
 * done and get() returns at once. */
template <class T> class task;

namespace detail
{
class task_base
{
  public:
    task_base() noexcept = default;
    task_base(task_base &&o) noexcept
        : st_(std::exchange(o.st_, nullptr)), rc_(std::exchange(o.rc_, -EINVAL))
    {
    }
    task_base &operator=(task_base &&o) noexcept
    {
        if (this != &o) {
            if (st_)
                st_->release();
            st_ = std::exchange(o.st_, nullptr);
            rc_ = std::exchange(o.rc_, -EINVAL);
        }
        return *this;
    }
    task_base(const task_base &) = delete;
    task_base &operator=(const task_base &) = delete;
    ~task_base()
    {
        if (st_)
            st_->release();
    }

    /* True if the spawn succeeded (the callable runs or ran). */
    explicit operator bool() const noexcept { return st_ != nullptr; }

    /* 0 if spawned; else why the spawn did not happen: -ECANCELED (the
     * nursery was cancelled: the callable was destroyed without running),
     * or -EINVAL for an empty (default-constructed or moved-from) handle. */
    int spawn_result() const noexcept { return st_ ? 0 : rc_; }

    /* Has the child finished (returned or thrown)? Never parks. */
    bool done() const noexcept { return st_ && weft_event_is_set(&st_->done); }

    /* Parks until the child finished. Cancellation point. May park: yes.
     * Context: both. Returns 0, -ECANCELED, or spawn_result() when not
     * spawned. Never throws (the child's exception is get()'s). */
    [[nodiscard]] int wait() noexcept { return st_ ? weft_event_wait(&st_->done) : rc_; }

    /* As wait(), until a deadline: -ETIMEDOUT when it passes. */
    [[nodiscard]] int wait_until(int64_t deadline) noexcept
    {
        return st_ ? weft_event_wait_until(&st_->done, deadline) : rc_;
    }

  protected:
    explicit task_base(int rc) noexcept : rc_(rc) {}
    explicit task_base(task_state_base *st) noexcept : st_(st), rc_(0) {}

    /* get()'s join: waits, shielded from cancels, then rethrows the
     * child's exception. Throws std::future_error(no_state) when empty. */
    void join()
    {
        if (!st_)
            throw std::future_error(std::future_errc::no_state);
        if (!weft_event_is_set(&st_->done)) {
            if (weft_in_task()) {
                weft_scope s;
                weft_scope_enter(&s, WEFT_FOREVER);
                weft_scope_shield(&s, true);
                while (weft_event_wait(&st_->done) != 0) {
                }
                weft_scope_exit(&s);
            } else {
                while (weft_event_wait(&st_->done) != 0) {
                }
            }
        }
        if (st_->error) {
            st_->observed.store(true, std::memory_order_relaxed);
            std::rethrow_exception(st_->error);
        }
    }

    task_state_base *st_ = nullptr;
    int rc_ = -EINVAL;
};
} // namespace detail

template <class T> class task : public detail::task_base
{
    static_assert(
        !std::is_reference_v<T>,
        "weft::task: a child returns a value (use std::reference_wrapper for a reference)");

  public:
    task() noexcept = default;

    /* Joins (see the class comment), then returns the child's value; a later
     * get() returns the same object. Rethrows the exception the child threw
     * (the nursery's close rethrows it as well: it failed the nursery).
     * May park: yes (not a cancellation point). Context: both.
     * Throws: the child's exception; std::future_error(no_state) if the
     * spawn did not happen (spawn_result() says why). */
    T &get() &
    {
        join();
        return *static_cast<detail::task_state<T> *>(st_)->value;
    }

    /* As get() &, moving the value out. */
    T get() &&
    {
        join();
        return std::move(*static_cast<detail::task_state<T> *>(st_)->value);
    }

  private:
    friend class nursery;
    using task_base::task_base;
};

template <> class task<void> : public detail::task_base
{
  public:
    task() noexcept = default;

    /* Joins (see the class comment); rethrows the child's exception.
     * May park: yes (not a cancellation point). Context: both. Throws: the
     * child's exception; std::future_error(no_state) if not spawned. */
    void get() { join(); }

  private:
    friend class nursery;
    using task_base::task_base;
};

/* ------------------------------------------------------------------------ */
/* Nursery and cancel scope                                                 */
/* ------------------------------------------------------------------------ */

/* An RAII nursery: opens (weft_nursery_init) in the constructor; close()
 * or the destructor waits for every child. Not copyable, not movable: its
 * cancel scope sits on the opening task's scope stack, so nurseries and
 * scopes close in reverse order of opening (block scope does that).
 *
 * Exceptions, as in Trio: an exception escaping a child fails the child, so
 * weft cancels the nursery (every sibling and the opener's code between open
 * and close see -ECANCELED); close() waits for the children and rethrows the
 * first one. Each later exception (usually a reaction to that cancel) is
 * printed on stderr with its what() (the first three; then a count) and
 * counted in suppressed_exceptions(); none is lost silently.
 *
 * The destructor closes a nursery not closed explicitly:
 *  - on a normal exit from the block, it waits and rethrows the first child
 *    exception (it is noexcept(false)); close()'s result code (-ETIMEDOUT,
 *    -ECANCELED, a failure of a child spawned through native_handle()) is
 *    dropped: call close() to see it;
 *  - while an exception leaves the block (std::uncaught_exceptions() grew
 *    since the constructor), it cancels the nursery first (the children
 *    stop, as Trio does when a nursery's body raises), waits, and never
 *    throws: a child's exception is then printed on stderr and dropped,
 *    unless get() already rethrew it (it is likely the one propagating).
 * Context: the task that constructed it, for close() and the destructor. */
class nursery
{
  public:
    /* Opens a nursery (in the object itself: weft_nursery_init, no
     * allocation). May park: no. Context: task. Throws
     * std::system_error(EPERM) outside a task. */
    nursery() : uncaught_(std::uncaught_exceptions())
    {
        int rc = weft_nursery_init(&storage_);
        if (rc)
            detail::throw_code(rc, "weft::nursery");
        n_ = &storage_;
    }

    /* Opens a nursery with a deadline (WEFT_FOREVER: none). */
    explicit nursery(int64_t deadline) : nursery() { weft_nursery_set_deadline(n_, deadline); }

    /* Opens a nursery with a std::chrono deadline. */
    template <class Clock, class Dur>
    explicit nursery(const std::chrono::time_point<Clock, Dur> &deadline)
        : nursery(deadline_of(deadline))
    {
    }

    nursery(const nursery &) = delete;
    nursery &operator=(const nursery &) = delete;

    /* Closes if not closed: see the class comment. May park: yes. */
    ~nursery() noexcept(false)
    {
        if (!n_)
            return;
        /* n_ stays valid while close waits: children may still spawn. */
        if (std::uncaught_exceptions() > uncaught_) {
            weft_nursery_cancel(n_);
            weft_nursery_close(n_);
            n_ = nullptr;
            bool observed = sink_.first && sink_.first->observed.load(std::memory_order_relaxed);
            std::exception_ptr ep = sink_.take();
            if (ep && !observed)
                detail::report(ep, "a child's exception, dropped: the nursery closed while "
                                   "another exception propagated");
            return;
        }
        weft_nursery_close(n_);
        n_ = nullptr;
        std::exception_ptr ep = sink_.take();
        if (ep)
            std::rethrow_exception(ep);
    }

    /* Spawns f() (any callable; moved or copied into a heap block the child
     * owns and destroys when it returns) as a child, named and sized by opt,
     * recording the caller's file and line for weft_dump
     * (weft_spawn_ex_at). Any task may spawn into an open nursery, also
     * while close() waits.
     * May park: no. Context: task.
     * Returns the child's weft::task<R> (R: what f returns). If the nursery
     * is cancelled, f is destroyed without running and the handle is empty
     * with spawn_result() == -ECANCELED (f would have started cancelled).
     * Throws std::bad_alloc; std::system_error(EINVAL) for a closed nursery
     * or a bad stack size, (EPERM) outside a task. */
    template <class F>
    task<std::invoke_result_t<std::decay_t<F> &>> spawn(F &&f, const spawn_options &opt = {},
                                                        const char *file = __builtin_FILE(),
                                                        int line = __builtin_LINE())
    {
        using D = std::decay_t<F>;
        using R = std::invoke_result_t<D &>;
        static_assert(!std::is_reference_v<R>, "weft::nursery::spawn: the callable must return a "
                                               "value (std::reference_wrapper for a reference)");
        if (!n_)
            detail::throw_code(-EINVAL, "weft::nursery::spawn: closed nursery");
        auto *b = new detail::task_block<D, R>(std::forward<F>(f), &sink_);
        weft_spawn_attr a{};
        a.name = opt.name;
        a.stack_size = opt.stack_size;
        a.pinned = opt.pinned;
        int rc = weft_spawn_ex_at(n_, &detail::child_main<D, R>, b, &a, file, line);
        if (rc) {
            delete static_cast<detail::task_state_base *>(b);
            if (rc != -ECANCELED)
                detail::throw_code(rc, "weft::nursery::spawn");
            return task<R>(rc);
        }
        return task<R>(static_cast<detail::task_state_base *>(b));
    }

    /* Cancels the nursery (weft_nursery_cancel): the children and the
     * opener's code up to close() see -ECANCELED. May park: no. Context: any
     * task or thread, while the nursery is open. */
    void cancel() noexcept { weft_nursery_cancel(n_); }

    /* Sets the nursery's deadline (WEFT_FOREVER: none); a passed deadline
     * stays passed. May park: no. Context: as cancel(). */
    void set_deadline(int64_t deadline) noexcept { weft_nursery_set_deadline(n_, deadline); }

    /* As set_deadline(int64_t), with a std::chrono time point. */
    template <class Clock, class Dur>
    void set_deadline(const std::chrono::time_point<Clock, Dur> &deadline) noexcept
    {
        weft_nursery_set_deadline(n_, deadline_of(deadline));
    }

    /* Waits for every child (not a cancellation point), pops the nursery's
     * scope and frees it (weft_nursery_close).
     * May park: yes. Context: the opening task.
     * Throws the first exception a child threw, if any. Else returns: a
     * failure of a child spawned through native_handle(); else -ECANCELED
     * if the task is cancelled from outside the nursery; else -ETIMEDOUT if
     * the nursery's deadline fired; else 0. A cancel() alone is not an
     * error. Throws std::system_error(EINVAL) if already closed. */
    int close()
    {
        if (!n_)
            detail::throw_code(-EINVAL, "weft::nursery::close: already closed");
        int rc = weft_nursery_close(n_); /* n_ stays valid meanwhile: children may spawn */
        n_ = nullptr;
        std::exception_ptr ep = sink_.take();
        if (ep)
            std::rethrow_exception(ep);
        return rc;
    }

    /* Child exceptions after the first (not rethrown, each reported on
     * stderr). Complete after close(). May park: yes (briefly). */
    std::size_t suppressed_exceptions() noexcept
    {
        weft_mutex_lock(&sink_.lock);
        std::size_t n = sink_.later;
        weft_mutex_unlock(&sink_.lock);
        return n;
    }

    /* The C nursery, for the C API (NULL once closed). */
    weft_nursery *native_handle() const noexcept { return n_; }

  private:
    weft_nursery storage_;
    weft_nursery *n_ = nullptr; /* &storage_ while open */
    int uncaught_;
    detail::nursery_sink sink_;
};

/* An RAII cancel scope: entered (weft_scope_enter) in the constructor,
 * exited in exit() or the destructor. Not copyable, not movable (it sits on
 * the task's scope stack). A cancelled or expired scope makes the
 * cancellation points inside it return -ECANCELED; code inside sees the
 * codes and returns, and exit() tells whether this scope did it (Trio's
 * move_on_after):
 *
 *     weft::scope s(weft::after(std::chrono::milliseconds(100)));
 *     int rc = ch.recv(v);      // -ECANCELED after 100 ms
 *     if (s.exit()) ...         // it was this scope's deadline
 *
 * Context: the task that constructed it (cancel() and set_deadline() also
 * from other tasks and threads while it is entered). Never parks. */
class scope
{
  public:
    /* Enters a scope with a deadline (WEFT_FOREVER: none). Context: task. */
    explicit scope(int64_t deadline = WEFT_FOREVER) noexcept { weft_scope_enter(&s_, deadline); }

    /* Enters a scope with a std::chrono deadline. */
    template <class Clock, class Dur>
    explicit scope(const std::chrono::time_point<Clock, Dur> &deadline) noexcept
        : scope(deadline_of(deadline))
    {
    }

    scope(const scope &) = delete;
    scope &operator=(const scope &) = delete;

    /* Exits, if exit() was not called. */
    ~scope()
    {
        if (!exited_)
            weft_scope_exit(&s_);
    }

    /* Cancels the scope (weft_scope_cancel). */
    void cancel() noexcept { weft_scope_cancel(&s_); }

    /* Moves the deadline; a passed deadline stays passed. */
    void set_deadline(int64_t deadline) noexcept { weft_scope_set_deadline(&s_, deadline); }

    /* As set_deadline(int64_t), with a std::chrono time point. */
    template <class Clock, class Dur>
    void set_deadline(const std::chrono::time_point<Clock, Dur> &deadline) noexcept
    {
        weft_scope_set_deadline(&s_, deadline_of(deadline));
    }

    /* Shields the code inside from cancels of outer scopes (this scope's own
     * deadline and cancel still count). Only the entering task. */
    void shield(bool on = true) noexcept { weft_scope_shield(&s_, on); }

    /* Exits now (weft_scope_exit); later calls only return the same answer.
     * Returns cancelled_itself(). */
    bool exit() noexcept
    {
        if (!exited_) {
            exited_ = true;
            cancelled_ = weft_scope_exit(&s_);
        }
        return cancelled_;
    }

    /* After exit(): was this scope itself cancelled (cancel() or its
     * deadline)? False before exit(). */
    bool cancelled_itself() const noexcept { return cancelled_; }

    /* The C scope, for the C API. */
    weft_scope *native_handle() noexcept { return &s_; }

  private:
    weft_scope s_;
    bool exited_ = false;
    bool cancelled_ = false;
};

/* ------------------------------------------------------------------------ */
/* Running                                                                  */
/* ------------------------------------------------------------------------ */

/* Runs f() as the root task (weft_run) and returns when it and every task it
 * spawned finished. f returns void (0) or an int result code (0 or -errno,
 * like a weft_fn). An exception escaping f is caught in the root task and
 * rethrown from run() after weft_run returned.
 * May park: no (blocks the calling thread). Context: a plain thread.
 * Returns weft_run's result (-EINTR after SIGINT/SIGTERM, f's code, -EBUSY
 * if a runtime runs, -EINVAL for a bad cfg, ...); throws what f threw. */
template <class F> int run(F &&f, const weft_config &cfg)
{
    using R = std::invoke_result_t<F &>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                  "weft::run: the callable returns void or an int result code");
    struct ctx {
        F &f;
        std::exception_ptr ep;
    } c{f, nullptr};
    int rc = weft_run(
        &cfg,
        [](void *p) noexcept -> int {
            auto *cp = static_cast<ctx *>(p);
            try {
                if constexpr (std::is_void_v<R>) {
                    std::invoke(cp->f);
                    return 0;
                } else {
                    return static_cast<int>(std::invoke(cp->f));
                }
            } catch (...) {
                cp->ep = std::current_exception();
            }
            return threw;
        },
        &c);
    if (c.ep)
        std::rethrow_exception(c.ep);
    return rc;
}

/* run() with the default configuration. */
template <class F> int run(F &&f) { return run(std::forward<F>(f), weft_config{}); }

/* ------------------------------------------------------------------------ */
/* Mutex and condition variable                                             */
/* ------------------------------------------------------------------------ */

/* A mutex (weft_mutex) meeting the standard Lockable requirements, for
 * std::lock_guard, std::unique_lock, std::scoped_lock. The owner may park
 * and migrate while it holds it. Constant-initialized: fine as a global.
 * Not copyable, not movable. Context: both (a plain thread blocks). */
class mutex
{
  public:
    constexpr mutex() noexcept = default;
    mutex(const mutex &) = delete;
    mutex &operator=(const mutex &) = delete;
    /* Destroying a locked or waited-on mutex is misuse (reported). */
    ~mutex() { weft_mutex_destroy(&m_); }

    /* Locks, parking while another task holds it. Not a cancellation point
     * (always acquires). May park: yes. */
    void lock() noexcept { weft_mutex_lock(&m_); }

    /* Locks if free; false if held (also by the caller). Never parks. */
    bool try_lock() noexcept { return weft_mutex_trylock(&m_) == 0; }

    /* Unlocks; by a non-owner: misuse, reported and ignored. Never parks. */
    void unlock() noexcept { weft_mutex_unlock(&m_); }

    /* The C mutex, for weft_cond_wait and the C API. */
    weft_mutex *native_handle() noexcept { return &m_; }

  private:
    weft_mutex m_{};
};

namespace detail
{
template <> struct lock_traits<weft::mutex> {
    static constexpr bool ok = true;
    static weft_mutex *get(weft::mutex &m) noexcept { return m.native_handle(); }
};
template <> struct lock_traits<std::unique_lock<weft::mutex>> {
    static constexpr bool ok = true;
    static weft_mutex *get(std::unique_lock<weft::mutex> &l) noexcept
    {
        return l.mutex()->native_handle();
    }
};
} // namespace detail

/* A condition variable (weft_cond) shaped like std::condition_variable_any
 * for Lock = std::unique_lock<weft::mutex> (or a weft::mutex held
 * directly): the caller holds the lock; waits release it while parked and
 * hold it again on every return, cancelled or not; wakeups may be spurious.
 *
 * Differences from std::condition_variable_any, all because a task can be
 * cancelled: wait(lk) and wait(lk, pred) return int (0, or -ECANCELED);
 * weft-deadline waits return 0, -ETIMEDOUT or -ECANCELED; the std::chrono
 * waits keep the standard results and report a cancel as a timeout
 * (std::cv_status::timeout, or pred()'s false), as if the deadline came
 * early: a standard loop `while (!pred()) if (cv.wait_until(lk, tp) ==
 * std::cv_status::timeout) break;` ends. A hand-written loop around
 * wait(lk) must check its result, or it spins while cancelled.
 * May park: yes (waits). Context: both. Not copyable, not movable. */
class cond
{
  public:
    constexpr cond() noexcept = default;
    cond(const cond &) = delete;
    cond &operator=(const cond &) = delete;
    /* Destroying a cond with parked waiters is misuse (reported). */
    ~cond() { weft_cond_destroy(&c_); }

    /* Wakes one waiter. Never parks; the lock need not be held. */
    void notify_one() noexcept { weft_cond_signal(&c_); }

    /* Wakes every waiter. Never parks. */
    void notify_all() noexcept { weft_cond_broadcast(&c_); }

    /* Releases lk, parks until notified, re-acquires. Cancellation point.
     * Returns 0 (notified or spurious) or -ECANCELED. */
    template <class Lock> int wait(Lock &lk) noexcept { return weft_cond_wait(&c_, native(lk)); }

    /* Waits until pred() (called with the lock held) is true: 0; or
     * -ECANCELED, pred() still false. */
    template <class Lock, class Pred> int wait(Lock &lk, Pred pred)
    {
        while (!pred()) {
            int rc = weft_cond_wait(&c_, native(lk));
            if (rc)
                return pred() ? 0 : rc;
        }
        return 0;
    }

    /* As wait(lk) with a weft deadline: 0, -ETIMEDOUT or -ECANCELED. */
    template <class Lock> int wait_until(Lock &lk, int64_t deadline) noexcept
    {
        return weft_cond_wait_until(&c_, native(lk), deadline);
    }

    /* As wait(lk, pred) with a weft deadline: 0 once pred() is true; or
     * -ETIMEDOUT or -ECANCELED with pred() false. */
    template <class Lock, class Pred> int wait_until(Lock &lk, int64_t deadline, Pred pred)
    {
        while (!pred()) {
            int rc = weft_cond_wait_until(&c_, native(lk), deadline);
            if (rc)
                return pred() ? 0 : rc;
        }
        return 0;
    }

    /* std::condition_variable_any::wait_until: no_timeout, or timeout at
     * the deadline or on a cancel. */
    template <class Lock, class Clock, class Dur>
    std::cv_status wait_until(Lock &lk, const std::chrono::time_point<Clock, Dur> &tp) noexcept
    {
        return weft_cond_wait_until(&c_, native(lk), deadline_of(tp)) == 0
                   ? std::cv_status::no_timeout
                   : std::cv_status::timeout;
    }

    /* std::condition_variable_any::wait_until with a predicate: pred()'s
     * value at the return (false: the deadline passed or a cancel). */
    template <class Lock, class Clock, class Dur, class Pred>
    bool wait_until(Lock &lk, const std::chrono::time_point<Clock, Dur> &tp, Pred pred)
    {
        return wait_until(lk, deadline_of(tp), std::move(pred)) == 0;
    }

    /* std::condition_variable_any::wait_for: as wait_until(now + d). */
    template <class Lock, class Rep, class Period>
    std::cv_status wait_for(Lock &lk, const std::chrono::duration<Rep, Period> &d) noexcept
    {
        return weft_cond_wait_until(&c_, native(lk), after(d)) == 0 ? std::cv_status::no_timeout
                                                                    : std::cv_status::timeout;
    }

    /* std::condition_variable_any::wait_for with a predicate. */
    template <class Lock, class Rep, class Period, class Pred>
    bool wait_for(Lock &lk, const std::chrono::duration<Rep, Period> &d, Pred pred)
    {
        return wait_until(lk, after(d), std::move(pred)) == 0;
    }

    /* The C cond, for the C API. */
    weft_cond *native_handle() noexcept { return &c_; }

  private:
    template <class Lock> static weft_mutex *native(Lock &lk) noexcept
    {
        static_assert(detail::lock_traits<Lock>::ok,
                      "weft::cond waits with a std::unique_lock<weft::mutex> or a weft::mutex");
        return detail::lock_traits<Lock>::get(lk);
    }

    weft_cond c_{};
};

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */
/* ------------------------------------------------------------------------ */

/* A channel of T with Go's semantics (weft_chan): unbuffered (capacity 0, a
 * rendezvous) or buffered; close() wakes everyone; buffered elements stay
 * receivable after close; a send on a closed channel fails with -EPIPE.
 *
 * T is any move-constructible type. The C channel copies bytes, which not
 * every C++ type survives (libstdc++'s std::string points into itself), so
 * each element travels boxed: a send moves it into a new T on the heap and
 * sends the pointer; a receive moves it out and deletes the box (one
 * allocation per element). Trivial types (int, a POD struct) travel by
 * value, with no box. Elements still buffered when the channel is destroyed
 * are destroyed with it.
 *
 * An element whose send fails (-EPIPE, -ECANCELED, -EAGAIN) was not
 * delivered and is the caller's again: send(T&&) moves it back into the
 * argument (if T is move-assignable; else the refused element is destroyed
 * and the argument stays moved-from); send(const T&) never touched it.
 * Every element sent is received exactly once or destroyed with the
 * channel.
 *
 * Not copyable, not movable: share it by reference or pointer. Waits park the
 * task (context: both; a plain thread blocks). */
template <class T> class channel
{
    static_assert(!std::is_reference_v<T> && std::is_move_constructible_v<T>,
                  "weft::channel<T>: T is a move-constructible object type");
    static constexpr bool by_value = std::is_trivially_copyable_v<T> &&
                                     std::is_trivially_default_constructible_v<T>;
    using slot = std::conditional_t<by_value, T, T *>;

  public:
    /* Opens a channel with room for capacity elements (0: unbuffered).
     * Throws std::bad_alloc; std::system_error(EINVAL) if the buffer's size
     * overflows. Context: both. */
    explicit channel(std::size_t capacity = 0)
    {
        int rc = weft_chan_open(&c_, sizeof(slot), capacity);
        if (rc)
            detail::throw_code(rc, "weft::channel");
    }

    channel(const channel &) = delete;
    channel &operator=(const channel &) = delete;

    /* Destroys the buffered elements and frees the channel. Only when no
     * task or thread can still use it. Never parks. */
    ~channel()
    {
        if constexpr (!by_value) {
            T *p;
            while (weft_chan_try_recv(c_, &p) == 0)
                delete p;
        }
        weft_chan_free(c_);
    }

    /* Sends v, moving it; parks until a receiver takes it (unbuffered) or
     * there is room. Cancellation point. May park: yes.
     * Returns 0 (v is moved-from), or -EPIPE (closed) or -ECANCELED with v
     * holding the element again (see the class comment). Throws std::bad_alloc (the box; v intact)
     * or what T's move constructor throws. */
    [[nodiscard]] int send(T &&v) { return put(std::move(v), false); }

    /* Sends a copy of v: 0, -EPIPE or -ECANCELED. v is never touched. */
    [[nodiscard]] int send(const T &v) { return put_copy(v, false); }

    /* As send(T&&) without parking: -EAGAIN if it would park. */
    [[nodiscard]] int try_send(T &&v) { return put(std::move(v), true); }

    /* As send(const T&) without parking: -EAGAIN if it would park. */
    [[nodiscard]] int try_send(const T &v) { return put_copy(v, true); }

    /* Receives into out (move-assigned). Cancellation point. May park: yes.
     * Returns 0; -EPIPE (closed and drained) or -ECANCELED, having consumed
     * nothing (out untouched). If T's move assignment throws, the element
     * is destroyed and the exception propagates. */
    [[nodiscard]] int recv(T &out) { return take(out, false); }

    /* Receives an element; std::nullopt when closed and drained or
     * cancelled (nothing consumed; recv(T&) tells which). May park: yes. */
    std::optional<T> recv() { return take_opt(false); }

    /* As recv(T&) without parking: -EAGAIN if it would park. */
    [[nodiscard]] int try_recv(T &out) { return take(out, true); }

    /* As recv() without parking: std::nullopt if nothing is ready now. */
    std::optional<T> try_recv() { return take_opt(true); }

    /* Closes (idempotent): wakes every waiter; buffered elements stay
     * receivable; later sends fail with -EPIPE. Never parks. */
    void close() noexcept { weft_chan_close(c_); }

    /* Elements buffered now (a snapshot), and the capacity. */
    std::size_t size() const noexcept { return weft_chan_len(c_); }
    std::size_t capacity() const noexcept { return weft_chan_cap(c_); }

    /* The C channel. Its elements are T (trivial T) or T* boxes owned by
     * whoever receives them (allocated with new). */
    weft_chan *native_handle() const noexcept { return c_; }

  private:
    int xfer_send(const slot &s, bool try_only) noexcept
    {
        return try_only ? weft_chan_try_send(c_, &s) : weft_chan_send(c_, &s);
    }
    int xfer_recv(slot &s, bool try_only) noexcept
    {
        return try_only ? weft_chan_try_recv(c_, &s) : weft_chan_recv(c_, &s);
    }

    int put(T &&v, bool try_only)
    {
        if constexpr (by_value) {
            return xfer_send(v, try_only);
        } else {
            std::unique_ptr<T> box(new T(std::move(v)));
            T *p = box.get();
            int rc = xfer_send(p, try_only);
            if (rc == 0) {
                box.release();
            } else {
                if constexpr (std::is_move_assignable_v<T>)
                    v = std::move(*box);
            }
            return rc;
        }
    }

    int put_copy(const T &v, bool try_only)
    {
        if constexpr (by_value) {
            return xfer_send(v, try_only);
        } else {
            std::unique_ptr<T> box(new T(v));
            T *p = box.get();
            int rc = xfer_send(p, try_only);
            if (rc == 0)
                box.release();
            return rc;
        }
    }

    int take(T &out, bool try_only)
    {
        if constexpr (by_value) {
            return xfer_recv(out, try_only);
        } else {
            T *p = nullptr;
            int rc = xfer_recv(p, try_only);
            if (rc == 0) {
                std::unique_ptr<T> box(p);
                out = std::move(*box);
            }
            return rc;
        }
    }

    std::optional<T> take_opt(bool try_only)
    {
        slot s{};
        if (xfer_recv(s, try_only) != 0)
            return std::nullopt;
        if constexpr (by_value) {
            return s;
        } else {
            std::unique_ptr<T> box(s);
            return std::optional<T>(std::move(*box));
        }
    }

    weft_chan *c_ = nullptr;
};

} // namespace weft

#endif /* WEFT_HPP */
