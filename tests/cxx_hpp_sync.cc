// cxx_hpp_sync.cc - weft.hpp: weft::mutex with std::lock_guard /
// std::unique_lock / std::scoped_lock under contention (a counter with a
// park inside the critical section: conservation), a plain thread taking
// the same mutex; weft::cond with std::unique_lock and predicates (a bounded
// queue: conservation), notify_all, deadlines as weft time and as
// std::chrono, and cancellation of a waiter (the lock is held again).
/* LABELS: unit */
#include <weft.hpp>

#include "test.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;

template <class F> static void run_case(const char *name, F f)
{
    if (!test_case_selected(name))
        return;
    weft_config cfg{};
    CHECK_OK(weft::run(f, cfg));
}
#define RUNX(fn) run_case(#fn, fn)

static weft::mutex global_mutex; // constant-initialized

static void mutex_lock_guard_counter()
{
    const int tasks = 8;
    long iters = test_scale(20000);
    weft::mutex m;
    long counter = 0; // plain: the mutex is all that protects it
    int inside = 0;
    {
        weft::nursery n;
        for (int t = 0; t < tasks; t++)
            n.spawn([&, t] {
                for (long i = 0; i < iters; i++) {
                    std::lock_guard<weft::mutex> g(m);
                    CHECK_EQ(++inside, 1);
                    long v = counter;
                    if ((i + t) % 64 == 0)
                        weft::yield(); // park (and maybe migrate) holding it
                    counter = v + 1;
                    --inside;
                }
            });
    }
    CHECK_EQ(counter, tasks * iters);

    /* unique_lock, try_lock, scoped_lock (std::lock's try_lock/back-off) */
    weft::mutex a, b;
    long both = 0;
    {
        weft::nursery n;
        for (int t = 0; t < 4; t++)
            n.spawn([&, t] {
                for (long i = 0; i < iters / 4; i++) {
                    if (t % 2) {
                        std::scoped_lock lk(a, b);
                        both++;
                    } else {
                        std::scoped_lock lk(b, a);
                        both++;
                    }
                }
            });
    }
    CHECK_EQ(both, 4 * (iters / 4));
    std::unique_lock<weft::mutex> lk(a);
    CHECK(!a.try_lock());
    lk.unlock();
    CHECK(lk.try_lock());
    CHECK(lk.owns_lock());
    lk.unlock();
    std::lock_guard<weft::mutex> g(global_mutex);
}

/* A plain OS thread and tasks contend for one weft::mutex. */
static void mutex_plain_thread()
{
    long iters = test_scale(20000);
    weft::mutex m;
    long counter = 0;
    std::thread th([&] {
        for (long i = 0; i < iters; i++) {
            std::lock_guard<weft::mutex> g(m);
            counter++;
        }
    });
    {
        weft::nursery n;
        for (int t = 0; t < 2; t++)
            n.spawn([&] {
                for (long i = 0; i < iters; i++) {
                    std::lock_guard<weft::mutex> g(m);
                    counter++;
                }
            });
    }
    weft::blocking([&] { th.join(); });
    CHECK_EQ(counter, 3 * iters);
}

/* A bounded queue with two conds and predicates: every item is consumed
 * exactly once. */
static void cond_bounded_queue()
{
    const int producers = 3, consumers = 3;
    const size_t cap = 4;
    long per = test_scale(10000);
    weft::mutex m;
    weft::cond not_empty, not_full;
    std::deque<long> q;
    bool closed = false;
    long sum = 0, count = 0;
    weft::nursery n;
    for (int c = 0; c < consumers; c++)
        n.spawn([&] {
            std::unique_lock<weft::mutex> lk(m);
            for (;;) {
                CHECK_OK(not_empty.wait(lk, [&] { return !q.empty() || closed; }));
                CHECK(lk.owns_lock());
                if (q.empty())
                    return;
                sum += q.front();
                count++;
                q.pop_front();
                not_full.notify_one();
            }
        });
    n.spawn([&] {
        {
            weft::nursery prod;
            for (int p = 0; p < producers; p++)
                prod.spawn([&, p] {
                    for (long i = 0; i < per; i++) {
                        std::unique_lock<weft::mutex> lk(m);
                        CHECK_OK(not_full.wait(lk, [&] { return q.size() < cap; }));
                        q.push_back(p * per + i);
                        lk.unlock();
                        not_empty.notify_one();
                    }
                });
        }
        std::lock_guard<weft::mutex> g(m);
        closed = true;
        not_empty.notify_all();
    });
    CHECK_OK(n.close());
    long total = producers * per;
    CHECK_EQ(count, total);
    CHECK_EQ(sum, total * (total - 1) / 2);
}

static void cond_notify_all()
{
    const int waiters = 10;
    weft::mutex m;
    weft::cond cv;
    int ready = 0;
    bool go = false;
    std::atomic<int> woke{0};
    weft::nursery n;
    for (int i = 0; i < waiters; i++)
        n.spawn([&] {
            std::unique_lock<weft::mutex> lk(m);
            ready++;
            cv.notify_all();
            CHECK_OK(cv.wait(lk, [&] { return go; }));
            woke++;
        });
    {
        std::unique_lock<weft::mutex> lk(m);
        CHECK(
            cv.wait_for(lk, std::chrono::nanoseconds(PROMPT_NS), [&] { return ready == waiters; }));
        go = true;
    }
    cv.notify_all();
    CHECK_OK(n.close());
    CHECK_EQ(woke.load(), waiters);
}

/* Deadlines: weft time (codes) and std::chrono (std results); the lock is
 * held on every return. */
static void cond_deadlines()
{
    weft::mutex m;
    weft::cond cv;
    std::unique_lock<weft::mutex> lk(m);
    int64_t t0 = weft::now();
    CHECK_EQ(cv.wait_until(lk, weft::after(2ms)), -ETIMEDOUT);
    CHECK(weft::now() - t0 >= 2000000);
    CHECK(!m.try_lock()); // still held by us
    CHECK_EQ(cv.wait_until(lk, weft::after(1ms), [] { return false; }), -ETIMEDOUT);
    CHECK_OK(cv.wait_until(lk, weft::after(1ms), [] { return true; }));
    CHECK(cv.wait_for(lk, 1ms) == std::cv_status::timeout);
    CHECK(cv.wait_until(lk, std::chrono::steady_clock::now() + 1ms) == std::cv_status::timeout);
    CHECK(cv.wait_until(lk, std::chrono::system_clock::now() + 1ms) == std::cv_status::timeout);
    CHECK(!cv.wait_for(lk, 1ms, [] { return false; }));
    CHECK(cv.wait_until(lk, std::chrono::steady_clock::now() + 1ms, [] { return true; }));
    CHECK(!m.try_lock());
    lk.unlock();

    /* a weft::mutex held directly is a lock too (BasicLockable) */
    m.lock();
    CHECK_EQ(cv.wait_until(m, weft::after(1ms)), -ETIMEDOUT);
    CHECK(!cv.wait_for(m, 1ms, [] { return false; }));
    m.unlock();

    /* a notify before the deadline */
    bool flag = false;
    weft::nursery n;
    n.spawn([&] {
        weft::sleep_for(2ms);
        std::lock_guard<weft::mutex> g(m);
        flag = true;
        cv.notify_one();
    });
    lk.lock();
    CHECK(cv.wait_for(lk, std::chrono::nanoseconds(PROMPT_NS), [&] { return flag; }));
    lk.unlock();
    CHECK_OK(n.close());
}

/* A cancelled waiter returns -ECANCELED with the lock held and its
 * predicate false; std-shaped waits report it as a timeout. */
static void cond_cancel()
{
    weft::mutex m;
    weft::cond cv;
    bool never = false;
    std::atomic<int> cancelled{0};
    weft::nursery n;
    for (int i = 0; i < 4; i++)
        n.spawn([&, i] {
            std::unique_lock<weft::mutex> lk(m);
            if (i % 2 == 0) {
                CHECK_EQ(cv.wait(lk, [&] { return never; }), -ECANCELED);
            } else {
                CHECK(!cv.wait_until(lk, std::chrono::steady_clock::now() + 1h,
                                     [&] { return never; }));
                CHECK(weft::cancelled());
            }
            CHECK(lk.owns_lock() && !m.try_lock());
            cancelled++;
        });
    weft::sleep_for(2ms);
    int64_t t0 = weft::now();
    n.cancel();
    CHECK_OK(n.close());
    CHECK_EQ(cancelled.load(), 4);
    CHECK(weft::now() - t0 < PROMPT_NS);

    std::unique_lock<weft::mutex> lk(m);
    weft::scope s;
    s.cancel();
    CHECK_EQ(cv.wait(lk), -ECANCELED);
    CHECK(cv.wait_for(lk, 1h) == std::cv_status::timeout);
    CHECK(s.exit());
}

int main()
{
    test_watchdog(60);
    RUNX(mutex_lock_guard_counter);
    RUNX(mutex_plain_thread);
    RUNX(cond_bounded_queue);
    RUNX(cond_notify_all);
    RUNX(cond_deadlines);
    RUNX(cond_cancel);
    puts("cxx_hpp_sync: ok");
    return 0;
}
