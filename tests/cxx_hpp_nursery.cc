// cxx_hpp_nursery.cc - weft.hpp: the RAII nursery and scope, spawn of any
// callable with typed results (weft::task<T>), spawn options and the call
// site in dumps, deadlines and cancels, get() vs wait(), chrono conversions.
/* LABELS: unit */
#include <weft.hpp>

#include "test.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;

template <class F> static void run_case(const char *name, F f)
{
    if (!test_case_selected(name))
        return;
    weft_config cfg{};
    CHECK_OK(weft::run(f, cfg));
}
#define RUNX(fn) run_case(#fn, fn)

/* Counts live instances: captures must be destroyed exactly once. */
struct probe {
    static std::atomic<long> live;
    probe() { live++; }
    probe(const probe &) { live++; }
    probe(probe &&) noexcept { live++; }
    ~probe() { live--; }
};
std::atomic<long> probe::live{0};

static void typed_results()
{
    weft::nursery n;
    auto a = n.spawn([] { return 40 + 2; });
    auto b = n.spawn([] { return std::string(100, 'x'); });
    auto c = n.spawn([] { return std::make_unique<int>(7); });
    std::atomic<int> ran{0};
    auto d = n.spawn([&] { ran++; });
    static_assert(std::is_same_v<decltype(a), weft::task<int>>);
    static_assert(std::is_same_v<decltype(d), weft::task<void>>);
    CHECK(a && b && c && d);
    CHECK_EQ(a.spawn_result(), 0);
    CHECK_OK(n.close());
    CHECK(a.done() && b.done() && c.done() && d.done());
    CHECK_EQ(a.get(), 42);
    CHECK_EQ(a.get(), 42); // repeatable on an lvalue
    CHECK(std::move(b).get() == std::string(100, 'x'));
    std::unique_ptr<int> p = std::move(c).get();
    CHECK(p && *p == 7);
    d.get();
    CHECK_EQ(ran.load(), 1);
}

/* get() inside the body parks until the child finished. */
static void get_joins()
{
    weft::nursery n;
    auto t = n.spawn([] {
        weft::sleep_for(5ms);
        return 5;
    });
    CHECK(!t.done() || t.get() == 5);
    CHECK_EQ(t.get(), 5);
    CHECK(t.done());
    CHECK_OK(n.close());
}

/* Many children (most run inline by close on the parent's stack). */
static void many_children()
{
    long count = test_scale(20000);
    std::vector<weft::task<long>> ts;
    ts.reserve((size_t)count);
    {
        weft::nursery n;
        for (long i = 0; i < count; i++)
            ts.push_back(n.spawn([i] { return i * 3; }));
    } // the destructor closes
    long sum = 0;
    for (auto &t : ts) {
        CHECK(t.done());
        sum += t.get();
    }
    CHECK_EQ(sum, 3 * count * (count - 1) / 2);
}

/* The callable is moved into the child and destroyed when it returns. */
static void callable_lifetime()
{
    CHECK_EQ(probe::live.load(), 0);
    {
        weft::nursery n;
        probe p;
        for (int i = 0; i < 100; i++)
            n.spawn([p] { (void)p; }); // copied
        n.spawn([q = std::move(p)] { (void)q; });
        std::unique_ptr<int> up(new int(3));
        auto t = n.spawn([u = std::move(up)] { return *u; }); // move-only callable
        CHECK_OK(n.close());
        CHECK_EQ(t.get(), 3);
        CHECK_EQ(probe::live.load(), 1); // only p (moved-from) is left
    }
    CHECK_EQ(probe::live.load(), 0);
}

/* The destructor waits for the children. */
static void dtor_closes()
{
    std::atomic<int> finished{0};
    {
        weft::nursery n;
        for (int i = 0; i < 10; i++)
            n.spawn([&finished] {
                weft::sleep_for(2ms);
                finished++;
            });
    }
    CHECK_EQ(finished.load(), 10);
}

static void spawn_options()
{
    weft::nursery n;
    auto name = n.spawn([] { return std::string(weft_task_name()); }, {"worker-7"});
    /* 1 MiB stack: a 256 KiB frame fits (the default 64 KiB would not). */
    auto big = n.spawn(
        [] {
            volatile char buf[256 * 1024];
            buf[0] = 1;
            buf[sizeof buf - 1] = 2;
            return buf[0] + buf[sizeof buf - 1];
        },
        {nullptr, 1024 * 1024});
    int home = weft_worker_id();
    auto pinned = n.spawn(
        [home] {
            bool same = weft_worker_id() == home;
            for (int i = 0; i < 20; i++) {
                weft::yield();
                same = same && weft_worker_id() == home;
            }
            return same;
        },
        {"pinned", 0, true});
    CHECK_OK(n.close());
    CHECK(name.get() == "worker-7");
    CHECK_EQ(big.get(), 3);
    CHECK(pinned.get());

    weft::nursery n2;
    bool threw = false;
    try {
        n2.spawn([] {}, {nullptr, 1024}); // below 16 KiB
    } catch (const std::system_error &e) {
        threw = e.code().value() == EINVAL;
    }
    CHECK(threw);
    CHECK_OK(n2.close());
}

/* weft_dump shows the line of the n.spawn call (weft_spawn_ex_at with
 * __builtin_FILE/__builtin_LINE), not a line of weft.hpp. */
static void call_site_in_dump()
{
    weft_event ev = WEFT_EVENT_INIT, started = WEFT_EVENT_INIT;
    weft::nursery n;
    auto probe_fn = [&] {
        weft_event_set(&started);
        (void)weft_event_wait(&ev);
    };
    int line = __LINE__ + 1;
    n.spawn(probe_fn, {"site-probe"});
    CHECK_OK(weft_event_wait(&started)); // unstarted children are only counted in dumps
    FILE *f = tmpfile();
    CHECK(f != nullptr);
    weft_dump(fileno(f));
    weft_event_set(&ev);
    CHECK_OK(n.close());
    std::string text;
    rewind(f);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        text.append(buf, k);
    fclose(f);
    std::string want = "cxx_hpp_nursery.cc:" + std::to_string(line) + "]";
    if (text.find(want) == std::string::npos || text.find("site-probe") == std::string::npos) {
        fprintf(stderr, "dump lacks '%s':\n%s\n", want.c_str(), text.c_str());
        CHECK(false);
    }
    CHECK(text.find("weft.hpp:") == std::string::npos);
}

static void deadline_times_out()
{
    int64_t t0 = weft::now();
    std::atomic<int> cancelled{0};
    int spawned = 0;
    weft::nursery n(weft::after(20ms));
    for (int i = 0; i < 5; i++)
        spawned += (bool)n.spawn([&cancelled] {
            if (weft::sleep_for(std::chrono::nanoseconds(LONG_NS)) == -ECANCELED)
                cancelled++;
        }); // a spawn after the deadline is refused (a loaded machine)
    CHECK_EQ(n.close(), -ETIMEDOUT);
    CHECK_EQ(cancelled.load(), spawned);
    CHECK(weft::now() - t0 < PROMPT_NS);

    weft::nursery n2(std::chrono::steady_clock::now() + 10ms);
    CHECK_EQ(weft::sleep_for(std::chrono::nanoseconds(LONG_NS)), -ECANCELED);
    CHECK_EQ(n2.close(), -ETIMEDOUT);
}

/* A cancelled nursery refuses spawns: the callable is destroyed unrun. */
static void cancel_refuses_spawn()
{
    weft::nursery n;
    n.cancel();
    bool ran = false;
    {
        probe p;
        auto t = n.spawn([p, &ran] { ran = true; });
        CHECK(!t);
        CHECK_EQ(t.spawn_result(), -ECANCELED);
        CHECK_EQ(t.wait(), -ECANCELED);
        bool no_state = false;
        try {
            t.get();
        } catch (const std::future_error &e) {
            no_state = e.code() == std::future_errc::no_state;
        }
        CHECK(no_state);
        CHECK_EQ(probe::live.load(), 1);
    }
    CHECK(!ran);
    CHECK_EQ(n.close(), 0); // a cancel alone is no error
    weft::task<int> empty;
    CHECK_EQ(empty.spawn_result(), -EINVAL);
    CHECK(!empty.done());
    weft::nursery n2;
    auto a = n2.spawn([] { return 1; });
    auto b = std::move(a);
    CHECK(!a && a.spawn_result() == -EINVAL);
    CHECK(b && b.spawn_result() == 0);
    CHECK_OK(n2.close());
    a = std::move(b);
    CHECK_EQ(a.get(), 1);
}

/* wait() is a cancellation point; get() is not. */
static void wait_vs_get()
{
    weft_event go = WEFT_EVENT_INIT;
    weft::nursery n;
    auto t = n.spawn([&go] {
        (void)weft_event_wait(&go);
        return 11;
    });
    {
        weft::scope s(weft::after(1ms));
        CHECK_EQ(t.wait(), -ECANCELED);
        CHECK(s.exit());
    }
    CHECK_EQ(t.wait_until(weft::now() + 1000), -ETIMEDOUT);
    CHECK(!t.done());
    n.spawn([&go] {
        weft::sleep_for(2ms);
        weft_event_set(&go);
    });
    {
        weft::scope s;
        s.cancel();
        CHECK_EQ(t.get(), 11); // joins although the caller is cancelled
        CHECK(s.exit());
    }
    CHECK_OK(n.close());
}

/* Children may spawn siblings into a nursery they hold. */
static void spawn_from_child()
{
    std::atomic<int> count{0};
    weft::nursery n;
    n.spawn([&] {
        for (int i = 0; i < 50; i++)
            n.spawn([&count] { count++; });
    });
    CHECK_OK(n.close());
    CHECK_EQ(count.load(), 50);
}

static void scope_deadline_and_cancel()
{
    {
        weft::scope s(weft::after(5ms));
        CHECK_EQ(weft::sleep_for(std::chrono::nanoseconds(LONG_NS)), -ECANCELED);
        CHECK(weft::cancelled());
        CHECK(!s.cancelled_itself()); // only known after exit
        CHECK(s.exit());
        CHECK(s.cancelled_itself());
        CHECK(s.exit()); // idempotent
    }
    CHECK(!weft::cancelled());
    {
        weft::scope s;
        CHECK_OK(weft::sleep_for(1ms));
        CHECK(!s.exit());
    }
    {
        /* cancel() from another task */
        weft::nursery n;
        weft::scope s;
        n.spawn([&s] {
            weft::sleep_for(2ms);
            s.cancel();
        });
        int64_t t0 = weft::now();
        CHECK_EQ(weft::sleep_for(std::chrono::nanoseconds(LONG_NS)), -ECANCELED);
        CHECK(weft::now() - t0 < PROMPT_NS);
        CHECK(s.exit());
        CHECK_OK(n.close());
    }
    {
        /* the destructor exits */
        weft::scope s(std::chrono::steady_clock::now() - 1s);
    }
    CHECK(!weft::cancelled());
}

static void scope_shield()
{
    weft::scope outer;
    outer.cancel();
    {
        weft::scope inner;
        inner.shield();
        CHECK(!weft::cancelled());
        CHECK_OK(weft::sleep_for(1ms));
        inner.shield(false);
        CHECK(weft::cancelled());
        CHECK(!inner.exit()); // cancelled from outside, not by itself
    }
    {
        weft::scope inner(weft::after(1ms));
        inner.shield();
        /* its own deadline counts */
        CHECK_EQ(weft::sleep_for(std::chrono::nanoseconds(LONG_NS)), -ECANCELED);
        CHECK(inner.exit());
    }
    CHECK(outer.exit());
}

/* A parent's exit of the block with a cancelled nursery and a child that
 * returned -ECANCELED: no error. */
static void nursery_cancel_from_child()
{
    weft::nursery n;
    n.spawn([&n] { n.cancel(); });
    n.spawn([] { weft::sleep_for(std::chrono::nanoseconds(LONG_NS)); });
    CHECK_EQ(weft::sleep_for(std::chrono::nanoseconds(LONG_NS)), -ECANCELED);
    CHECK_EQ(n.close(), 0);
}

/* Time conversions: saturation and the shared clock. */
static void chrono_conversions()
{
    using namespace std::chrono;
    CHECK_EQ(weft::after(hours::max()), WEFT_FOREVER);
    CHECK_EQ(weft::after(nanoseconds::max()), WEFT_FOREVER);
    CHECK_EQ(weft::deadline_of(steady_clock::time_point::max()), WEFT_FOREVER);
    CHECK_EQ(weft::deadline_of(steady_clock::time_point(5ms)), 5000000);
    CHECK_EQ(weft::deadline_of(time_point<steady_clock, duration<double>>(duration<double>(1.5))),
             1500000000);
    int64_t d = weft::after(duration<double, std::milli>(2.5)) - weft::now();
    CHECK(d > 0 && d <= 2500000);
    int64_t skew = weft::deadline_of(steady_clock::now()) - weft::now();
    CHECK(skew < 1000000000 && skew > -1000000000); // steady_clock is CLOCK_MONOTONIC
    int64_t sys = weft::deadline_of(system_clock::now() + 1s) - weft::now();
    CHECK(sys > 500000000 && sys <= 1000000000);
    CHECK_OK(weft::sleep_until(steady_clock::now() + 1ms));
}

int main()
{
    test_watchdog(60);
    RUNX(typed_results);
    RUNX(get_joins);
    RUNX(many_children);
    RUNX(callable_lifetime);
    RUNX(dtor_closes);
    RUNX(spawn_options);
    RUNX(call_site_in_dump);
    RUNX(deadline_times_out);
    RUNX(cancel_refuses_spawn);
    RUNX(wait_vs_get);
    RUNX(spawn_from_child);
    RUNX(scope_deadline_and_cancel);
    RUNX(scope_shield);
    RUNX(nursery_cancel_from_child);
    RUNX(chrono_conversions);
    CHECK_EQ(probe::live.load(), 0);
    puts("cxx_hpp_nursery: ok");
    return 0;
}
