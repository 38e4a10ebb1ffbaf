// cxx_hpp_channel.cc - weft.hpp: weft::channel<T> for types the C channel's
// byte copy would break (std::string's self-pointer) and move-only types
// (std::unique_ptr), N producers x M consumers over unbuffered and buffered
// channels: every element sent is received exactly once or destroyed with
// the channel (constructions and destructions counted); a refused send
// (closed, cancelled, would park) leaves the element with the caller;
// receive results; trivial types by value; a plain thread as a sender.
/* LABELS: unit */
#include <weft.hpp>

#include "test.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
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

/* A non-trivial element that counts its live instances and carries a
 * string that must survive the trip (short ones use the SSO buffer). */
struct tracked {
    static std::atomic<long> live;
    long v;
    std::string s;
    explicit tracked(long x) : v(x), s(std::to_string(x) + (x % 2 ? std::string(40, 'z') : ""))
    {
        live++;
    }
    tracked(const tracked &o) : v(o.v), s(o.s) { live++; }
    tracked(tracked &&o) noexcept : v(o.v), s(std::move(o.s))
    {
        o.v = -1;
        live++;
    }
    tracked &operator=(const tracked &) = default;
    tracked &operator=(tracked &&o) noexcept
    {
        v = o.v;
        s = std::move(o.s);
        o.v = -1;
        return *this;
    }
    ~tracked() { live--; }
    bool intact() const
    {
        return v >= 0 && s == std::to_string(v) + (v % 2 ? std::string(40, 'z') : "");
    }
};
std::atomic<long> tracked::live{0};

static const size_t capacities[] = {0, 1, 16};

static std::string make_string(long idx)
{
    return std::to_string(idx) + (idx % 2 ? std::string(40, 'z') : "");
}

/* P producers and C consumers over ch; producers send make(idx) for every
 * idx in [0, P*per); consumers pass each received element to take(). */
template <class T, class Make, class Take>
static void mpmc(weft::channel<T> &ch, int producers, int consumers, long per, Make make, Take take)
{
    weft::nursery n;
    for (int c = 0; c < consumers; c++)
        n.spawn([&] {
            std::optional<T> v;
            while ((v = ch.recv()))
                take(std::move(*v));
            CHECK(!weft::cancelled()); // so the channel was closed and drained
        });
    n.spawn([&] {
        {
            weft::nursery prod;
            for (int p = 0; p < producers; p++)
                prod.spawn([&, p] {
                    for (long i = 0; i < per; i++) {
                        T v = make(p * per + i);
                        CHECK_OK(ch.send(std::move(v)));
                    }
                });
        }
        ch.close();
    });
    CHECK_OK(n.close());
}

static void strings_mpmc()
{
    long per = test_scale(20000);
    const int P = 4, C = 3;
    for (size_t cap : capacities) {
        std::vector<std::atomic<int>> seen((size_t)(P * per));
        weft::channel<std::string> ch(cap);
        mpmc(ch, P, C, per, make_string, [&](std::string &&s) {
            long idx = std::stol(s);
            CHECK(idx >= 0 && idx < P * per);
            CHECK(s == make_string(idx));
            seen[(size_t)idx]++;
        });
        for (auto &x : seen)
            CHECK_EQ(x.load(), 1);
    }
}

static void unique_ptr_mpmc()
{
    long per = test_scale(20000);
    const int P = 3, C = 3;
    for (size_t cap : capacities) {
        std::atomic<long> sum{0}, count{0};
        weft::channel<std::unique_ptr<int>> ch(cap);
        mpmc(
            ch, P, C, per, [](long idx) { return std::make_unique<int>((int)idx); },
            [&](std::unique_ptr<int> &&p) {
                CHECK(p != nullptr);
                sum += *p;
                count++;
            });
        long total = P * per;
        CHECK_EQ(count.load(), total);
        CHECK_EQ(sum.load(), total * (total - 1) / 2);
    }
}

/* Constructions and destructions balance: nothing leaked, nothing freed
 * twice, every element intact. */
static void tracked_conservation()
{
    long per = test_scale(10000);
    for (size_t cap : capacities) {
        std::atomic<long> sum{0};
        {
            weft::channel<tracked> ch(cap);
            mpmc(
                ch, 3, 2, per, [](long idx) { return tracked(idx); },
                [&](tracked &&t) {
                    CHECK(t.intact());
                    sum += t.v;
                });
        }
        CHECK_EQ(sum.load(), 3 * per * (3 * per - 1) / 2);
        CHECK_EQ(tracked::live.load(), 0);
        sum = 0;
        {
            weft::channel<std::unique_ptr<tracked>> ch(cap);
            mpmc(
                ch, 2, 3, per, [](long idx) { return std::make_unique<tracked>(idx); },
                [&](std::unique_ptr<tracked> &&t) {
                    CHECK(t->intact());
                    sum += t->v;
                });
        }
        CHECK_EQ(sum.load(), 2 * per * (2 * per - 1) / 2);
        CHECK_EQ(tracked::live.load(), 0);
    }
}

/* Elements still buffered when the channel is destroyed are destroyed. */
static void destroy_drains()
{
    {
        weft::channel<tracked> ch(16);
        for (long i = 0; i < 10; i++)
            CHECK_OK(ch.send(tracked(i)));
        CHECK_EQ(tracked::live.load(), 10);
        CHECK_EQ(ch.size(), 10);
        CHECK_EQ(ch.capacity(), 16);
        for (long i = 0; i < 3; i++) {
            auto t = ch.recv();
            CHECK(t && t->v == i && t->intact());
        }
        CHECK_EQ(tracked::live.load(), 7);
        ch.close();
    }
    CHECK_EQ(tracked::live.load(), 0);
    {
        weft::channel<std::unique_ptr<tracked>> ch(8);
        for (long i = 0; i < 8; i++)
            CHECK_OK(ch.send(std::make_unique<tracked>(i)));
        CHECK_EQ(ch.try_send(std::make_unique<tracked>(99)), -EAGAIN); // full: destroyed
        CHECK_EQ(tracked::live.load(), 8);
    }
    CHECK_EQ(tracked::live.load(), 0);
    {
        weft::channel<std::string> ch(4);
        CHECK_OK(ch.send(std::string(100, 'a')));
    }
}

/* A refused send leaves the element with the caller. */
static void refused_send_keeps_element()
{
    {
        weft::channel<std::string> ch(4);
        ch.close();
        std::string s(50, 'q');
        CHECK_EQ(ch.send(std::move(s)), -EPIPE);
        CHECK(s == std::string(50, 'q'));
        std::string shortstr = "sso";
        CHECK_EQ(ch.send(std::move(shortstr)), -EPIPE);
        CHECK(shortstr == "sso");
        CHECK_EQ(ch.send(s), -EPIPE); // copy
        CHECK_EQ(ch.try_send(std::move(s)), -EPIPE);
        CHECK(s == std::string(50, 'q'));
    }
    {
        weft::channel<std::unique_ptr<tracked>> ch;
        ch.close();
        auto p = std::make_unique<tracked>(5);
        tracked *raw = p.get();
        CHECK_EQ(ch.send(std::move(p)), -EPIPE);
        CHECK(p.get() == raw && p->intact());
    }
    CHECK_EQ(tracked::live.load(), 0);
    {
        /* cancelled: an unbuffered channel with no receiver */
        weft::channel<tracked> ch;
        tracked t(7);
        {
            weft::scope s(weft::after(2ms));
            CHECK_EQ(ch.send(std::move(t)), -ECANCELED);
            CHECK(s.exit());
        }
        CHECK(t.v == 7 && t.intact());
        CHECK_EQ(ch.try_send(std::move(t)), -EAGAIN);
        CHECK(t.v == 7 && t.intact());
        CHECK_EQ(ch.try_send(t), -EAGAIN);
        CHECK_EQ(tracked::live.load(), 1);
    }
    CHECK_EQ(tracked::live.load(), 0);
    {
        /* full buffered channel */
        weft::channel<std::unique_ptr<int>> ch(1);
        CHECK_OK(ch.try_send(std::make_unique<int>(1)));
        auto p = std::make_unique<int>(2);
        CHECK_EQ(ch.try_send(std::move(p)), -EAGAIN);
        CHECK(p && *p == 2);
        {
            weft::scope s;
            s.cancel();
            CHECK_EQ(ch.send(std::move(p)), -ECANCELED);
            s.exit();
        }
        CHECK(p && *p == 2);
        auto q = ch.try_recv();
        CHECK(q && *q && **q == 1);
        CHECK_OK(ch.try_send(std::move(p)));
        CHECK(!p);
    }
    {
        /* not move-assignable: a refused element is destroyed */
        struct fixed {
            const int k;
            tracked t;
        };
        weft::channel<fixed> ch(2);
        CHECK_OK(ch.send(fixed{1, tracked(1)}));
        ch.close();
        CHECK_EQ(ch.send(fixed{2, tracked(2)}), -EPIPE);
        auto f = ch.recv();
        CHECK(f && f->k == 1 && f->t.intact());
        CHECK(!ch.recv());
    }
    CHECK_EQ(tracked::live.load(), 0);
}

static void recv_results()
{
    weft::channel<std::string> ch(4);
    std::string out = "untouched";
    CHECK_EQ(ch.try_recv(out), -EAGAIN);
    CHECK(!ch.try_recv());
    {
        weft::scope s;
        s.cancel();
        CHECK_EQ(ch.recv(out), -ECANCELED);
        CHECK(!ch.recv());
        s.exit();
    }
    CHECK(out == "untouched");
    CHECK_OK(ch.send(std::string("a")));
    CHECK_OK(ch.send(std::string("b")));
    ch.close();
    ch.close();             // idempotent
    CHECK_OK(ch.recv(out)); // buffered elements stay receivable
    CHECK(out == "a");
    auto b = ch.recv();
    CHECK(b && *b == "b");
    CHECK_EQ(ch.recv(out), -EPIPE);
    CHECK_EQ(ch.try_recv(out), -EPIPE);
    CHECK(!ch.recv());
    CHECK(out == "a");

    /* a receiver parked on an unbuffered channel takes a send */
    weft::channel<std::unique_ptr<int>> u;
    weft::nursery n;
    auto r = n.spawn([&u] { return u.recv(); });
    weft::sleep_for(1ms);
    CHECK_OK(u.send(std::make_unique<int>(9)));
    CHECK_OK(n.close());
    auto got = std::move(r).get();
    CHECK(got && *got && **got == 9);
}

/* Trivial types travel by value (no box). */
struct pod {
    int a;
    double b;
};

static void trivial_types()
{
    long per = test_scale(20000);
    for (size_t cap : capacities) {
        std::atomic<long> sum{0};
        weft::channel<long> ch(cap);
        mpmc(
            ch, 3, 2, per, [](long idx) { return idx; }, [&](long v) { sum += v; });
        CHECK_EQ(sum.load(), 3 * per * (3 * per - 1) / 2);
    }
    weft::channel<pod> ch(2);
    CHECK_OK(ch.send(pod{1, 2.5}));
    pod p{3, 4.5};
    CHECK_OK(ch.send(p));
    auto x = ch.recv();
    CHECK(x && x->a == 1 && x->b == 2.5);
    pod y{};
    CHECK_OK(ch.recv(y));
    CHECK(y.a == 3 && y.b == 4.5);
    ch.close();
    CHECK_EQ(ch.send(p), -EPIPE);
}

/* A plain thread sends (it blocks its thread); tasks receive. */
static void plain_thread_sender()
{
    long count = test_scale(5000);
    weft::channel<std::string> ch(2);
    std::thread th([&] {
        for (long i = 0; i < count; i++)
            CHECK_OK(ch.send(make_string(i)));
        ch.close();
    });
    long got = 0;
    std::string s;
    while (ch.recv(s) == 0) {
        CHECK(s == make_string(got));
        got++;
    }
    CHECK_EQ(got, count);
    weft::blocking([&] { th.join(); });
}

int main()
{
    test_watchdog(120);
    RUNX(strings_mpmc);
    RUNX(unique_ptr_mpmc);
    RUNX(tracked_conservation);
    RUNX(destroy_drains);
    RUNX(refused_send_keeps_element);
    RUNX(recv_results);
    RUNX(trivial_types);
    RUNX(plain_thread_sender);
    CHECK_EQ(tracked::live.load(), 0);
    puts("cxx_hpp_channel: ok");
    return 0;
}
