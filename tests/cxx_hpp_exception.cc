// cxx_hpp_exception.cc - weft.hpp: an exception escaping a child cancels its
// siblings and is rethrown by close() or the nursery's destructor (Trio);
// later ones are counted and reported; a nursery's body unwinding cancels the
// children and never throws from the destructor; task::get() rethrows; nested
// nurseries; children that close() runs inline; weft::run and weft::blocking
// rethrow.
/* LABELS: unit */
#include <weft.hpp>

#include "test.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
static const std::chrono::nanoseconds forever(LONG_NS);

template <class F> static void run_case(const char *name, F f)
{
    if (!test_case_selected(name))
        return;
    weft_config cfg{};
    CHECK_OK(weft::run(f, cfg));
}
#define RUNX(fn) run_case(#fn, fn)

/* Collects what is written to stderr (fd 2) between construction and
 * text(), and shows it afterwards. */
struct stderr_capture {
    FILE *f;
    int saved;
    stderr_capture()
    {
        fflush(stderr);
        f = tmpfile();
        CHECK(f != nullptr);
        saved = dup(2);
        dup2(fileno(f), 2);
    }
    std::string text()
    {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        std::string s;
        rewind(f);
        char buf[4096];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0)
            s.append(buf, k);
        fclose(f);
        fputs(s.c_str(), stderr); // still shown in the test's log
        return s;
    }
};

static void child_exception_cancels_siblings()
{
    std::atomic<int> cancelled{0};
    int64_t t0 = weft::now();
    weft::nursery n;
    for (int i = 0; i < 10; i++)
        n.spawn([&cancelled] {
            if (weft::sleep_for(forever) == -ECANCELED)
                cancelled++;
        });
    n.spawn([] {
        weft::sleep_for(1ms);
        throw std::runtime_error("boom");
    });
    /* The opener's code between open and close is cancelled too. */
    CHECK_EQ(weft::sleep_for(forever), -ECANCELED);
    std::string what;
    try {
        n.close();
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    CHECK(what == "boom");
    CHECK_EQ(cancelled.load(), 10);
    CHECK_EQ(n.suppressed_exceptions(), 0);
    CHECK(weft::now() - t0 < PROMPT_NS);
}

static void destructor_rethrows()
{
    std::string what;
    std::atomic<int> cancelled{0};
    try {
        weft::nursery n;
        n.spawn([&cancelled] {
            if (weft::sleep_for(forever) == -ECANCELED)
                cancelled++;
        });
        n.spawn([] { throw std::invalid_argument("from child"); });
    } catch (const std::invalid_argument &e) {
        what = e.what();
    }
    CHECK(what == "from child");
    CHECK_EQ(cancelled.load(), 1);
}

/* Every child throws: close rethrows one, the others are counted. */
static void later_exceptions_counted()
{
    const int k = 20;
    weft_event go = WEFT_EVENT_INIT;
    weft::nursery n;
    for (int i = 0; i < k; i++)
        n.spawn([&go, i] {
            (void)weft_event_wait(&go); // may be cancelled: throw anyway
            throw std::runtime_error("thrower " + std::to_string(i));
        });
    weft::sleep_for(1ms);
    weft_event_set(&go);
    bool caught = false;
    try {
        n.close();
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()).rfind("thrower ", 0) == 0;
    }
    CHECK(caught);
    CHECK_EQ(n.suppressed_exceptions(), k - 1);
}

/* The body throws while children wait: the destructor cancels them, waits,
 * and lets the body's exception through (it must not throw itself). */
static void body_exception_cancels_children()
{
    std::atomic<int> cancelled{0};
    weft::channel<int> ch;
    std::string what;
    try {
        weft::nursery n;
        for (int i = 0; i < 5; i++)
            n.spawn([&] {
                int v;
                if (ch.recv(v) == -ECANCELED)
                    cancelled++;
            });
        weft::sleep_for(1ms);
        throw std::logic_error("body");
    } catch (const std::logic_error &e) {
        what = e.what();
    }
    CHECK(what == "body");
    CHECK_EQ(cancelled.load(), 5);
}

/* A child's exception that the unwinding destructor cannot rethrow is
 * reported on stderr, not lost silently. */
static void dropped_exception_reported()
{
    std::string what;
    stderr_capture cap;
    try {
        weft::nursery n;
        n.spawn([] { throw std::runtime_error("the child's"); });
        weft::scope s; // a second scope: unwinding pops it first
        CHECK_EQ(weft::sleep_for(forever), -ECANCELED);
        throw std::logic_error("the body's");
    } catch (const std::logic_error &e) {
        what = e.what();
    }
    std::string err = cap.text();
    CHECK(what == "the body's");
    CHECK(err.find("dropped") != std::string::npos);
    CHECK(err.find("the child's") != std::string::npos);
}

/* get() rethrows the child's exception; when it propagates out of the
 * body, the destructor does not report it as dropped; close() rethrows it
 * as well (it failed the nursery). */
static void get_rethrows()
{
    std::string what;
    stderr_capture cap;
    try {
        weft::nursery n;
        auto t = n.spawn([]() -> int { throw std::out_of_range("no value"); });
        t.get();
    } catch (const std::out_of_range &e) {
        what = e.what();
    }
    std::string err = cap.text();
    CHECK(what == "no value");
    CHECK(err.find("dropped") == std::string::npos);

    weft::nursery n;
    auto t = n.spawn([]() -> std::string { throw std::out_of_range("twice"); });
    std::string first, second;
    try {
        t.get();
    } catch (const std::exception &e) {
        first = e.what();
    }
    CHECK(t.done());
    try {
        n.close();
    } catch (const std::exception &e) {
        second = e.what();
    }
    CHECK(first == "twice" && second == "twice");

    /* get() after close() rethrew: the handle still has the exception */
    weft::nursery n2;
    auto t2 = n2.spawn([]() -> std::string { throw std::out_of_range("after close"); });
    first.clear();
    second.clear();
    try {
        n2.close();
    } catch (const std::exception &e) {
        first = e.what();
    }
    try {
        t2.get();
    } catch (const std::exception &e) {
        second = e.what();
    }
    CHECK(first == "after close" && second == "after close");
}

/* An exception crosses an inner nursery inside a child: the inner
 * destructor rethrows it in the child, the child's wrapper catches it, the
 * outer close rethrows it. And a child's body unwinding through its own
 * nursery (the destructor cancels and waits while unwinding). */
static void nested_nurseries()
{
    std::atomic<int> cancelled{0};
    weft::nursery outer;
    outer.spawn([&cancelled] {
        weft::nursery inner;
        inner.spawn([&cancelled] {
            if (weft::sleep_for(forever) == -ECANCELED)
                cancelled++;
        });
        inner.spawn([] {
            weft::sleep_for(1ms);
            throw std::out_of_range("grandchild");
        });
    });
    std::string what;
    try {
        outer.close();
    } catch (const std::out_of_range &e) {
        what = e.what();
    }
    CHECK(what == "grandchild");
    CHECK_EQ(cancelled.load(), 1);

    /* (once one child threw, the others' spawns may be refused) */
    cancelled = 0;
    std::atomic<int> spawned{0};
    weft::nursery outer2;
    for (int c = 0; c < 4; c++)
        outer2.spawn([&cancelled, &spawned] {
            weft::nursery inner;
            for (int i = 0; i < 3; i++)
                spawned += (bool)inner.spawn([&cancelled] {
                    if (weft::sleep_for(forever) == -ECANCELED)
                        cancelled++;
                });
            weft::sleep_for(1ms);
            throw std::length_error("child body");
        });
    what.clear();
    try {
        outer2.close();
    } catch (const std::length_error &e) {
        what = e.what();
    }
    CHECK(what == "child body");
    CHECK(spawned.load() >= 3);
    CHECK_EQ(cancelled.load(), spawned.load());
    CHECK(outer2.suppressed_exceptions() <= 3);
}

/* close() may run a child that has not started inline, on the closer's
 * stack: its exception must still stay in its wrapper and come out of
 * close(), not unwind into the closer's frames. */
static void inline_children_throw()
{
    long rounds = test_scale(2000), caught = 0, ran = 0;
    for (long r = 0; r < rounds; r++) {
        weft::nursery n;
        auto t = n.spawn([r]() -> long {
            if (r % 2 == 0)
                throw std::runtime_error("inline");
            return r;
        });
        try {
            n.close();
            ran += t.get() == r;
        } catch (const std::runtime_error &) {
            caught++;
        }
    }
    CHECK_EQ(caught, (rounds + 1) / 2);
    CHECK_EQ(ran, rounds / 2);
}

/* Many children, every 7th throws: close rethrows one and counts the rest;
 * nothing leaks (checked by ASan's leak checker). */
static void many_throwers()
{
    long count = test_scale(5000);
    std::atomic<long> thrown{0};
    weft::nursery n;
    for (long i = 0; i < count; i++)
        n.spawn([&thrown, i] {
            weft::yield();
            if (i % 7 == 0) {
                thrown++;
                throw std::runtime_error("many");
            }
        });
    bool caught = false;
    try {
        n.close();
    } catch (const std::runtime_error &) {
        caught = true;
    }
    CHECK(caught);
    CHECK(thrown.load() >= 1);
    CHECK_EQ((long)n.suppressed_exceptions(), thrown.load() - 1);
}

/* Exceptions that are not std::exception travel the same way. */
static void non_std_exception()
{
    int value = 0;
    try {
        weft::nursery n;
        n.spawn([] { throw 42; });
    } catch (int v) {
        value = v;
    }
    CHECK_EQ(value, 42);
}

static void blocking_rethrows()
{
    std::string what;
    try {
        weft::blocking([] { throw std::runtime_error("on a pool thread"); });
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    CHECK(what == "on a pool thread");
    CHECK_EQ(weft::blocking([] { return 5; }), 5);
    CHECK_EQ(weft::blocking([] {}), 0);
}

/* weft::run rethrows what escaped the root task (also through a nursery's
 * destructor), after the runtime stopped. */
static void run_rethrows()
{
    std::string what;
    try {
        weft::run([] { throw std::runtime_error("root"); });
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    CHECK(what == "root");
    CHECK(!weft::in_task());

    what.clear();
    try {
        weft::run([] {
            weft::nursery n;
            n.spawn([] { throw std::domain_error("child of root"); });
        });
    } catch (const std::domain_error &e) {
        what = e.what();
    }
    CHECK(what == "child of root");

    CHECK_EQ(weft::run([] { return -EIO; }), -EIO);
    weft_config cfg{};
    cfg.workers = 1;
    CHECK_EQ(weft::run([] { return weft_worker_id(); }, cfg), 0);
}

int main()
{
    test_watchdog(60);
    RUNX(child_exception_cancels_siblings);
    RUNX(destructor_rethrows);
    RUNX(later_exceptions_counted);
    RUNX(body_exception_cancels_children);
    RUNX(dropped_exception_reported);
    RUNX(get_rethrows);
    RUNX(nested_nurseries);
    RUNX(inline_children_throw);
    RUNX(many_throwers);
    RUNX(non_std_exception);
    RUNX(blocking_rethrows);
    CASE(run_rethrows);
    puts("cxx_hpp_exception: ok");
    return 0;
}
