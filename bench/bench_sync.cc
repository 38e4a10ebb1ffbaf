// bench_sync.cc - channels, select's building blocks and mutexes, each the
// same workload as its Go peer (bench/peers/go/{sched,chan,spawn,mutex}.go)
// or pthread peer (bench/peers/pthread_mutex.cc):
//   BM_pingpong/W         unbuffered ping-pong round trip, W workers
//   BM_chan_buffered/S/R  S senders, R receivers, one channel of 1024, 5M ints
//   BM_skynet             1M leaves, 10-ary, results over unbuffered channels
//   BM_mutex_uncontended  lock/unlock on one task (a second thread alive)
//   BM_mutex_contended4   4 tasks x 1M lock;counter++;unlock, 2 workers
//   BM_prime_sieve        the concurrent sieve, first 1000 primes
#include "common.h"

#include <atomic>
#include <chrono>
#include <thread>

namespace
{

int must(int rc, const char *what)
{
    bench_check(rc == 0, what);
    return rc;
}

// ---- ping-pong --------------------------------------------------------------

constexpr long kPingPong = 200000;

struct PP {
    weft_chan *ping, *pong;
};

int ponger(void *arg)
{
    PP *pp = static_cast<PP *>(arg);
    long v;
    while (weft_chan_recv(pp->ping, &v) == 0) {
        v++;
        if (weft_chan_send(pp->pong, &v))
            return -1;
    }
    return 0;
}

void BM_pingpong(benchmark::State &state)
{
    bench_in_task(state, (unsigned)state.range(0), [&](benchmark::State &) {
        PP pp;
        must(weft_chan_open(&pp.ping, sizeof(long), 0), "open");
        must(weft_chan_open(&pp.pong, sizeof(long), 0), "open");
        weft_nursery *n;
        must(weft_nursery_open(&n), "nursery");
        must((weft_spawn)(n, ponger, &pp), "spawn");
        long v = 0;
        for (long i = 0; i < kPingPong; i++) {
            must(weft_chan_send(pp.ping, &v), "send");
            must(weft_chan_recv(pp.pong, &v), "recv");
        }
        weft_chan_close(pp.ping);
        must(weft_nursery_close(n), "close");
        bench_check(v == kPingPong, "pingpong count");
        weft_chan_free(pp.ping);
        weft_chan_free(pp.pong);
    });
    state.counters["ns_per_op"] = benchmark::Counter(kPingPong * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}
BENCHMARK(BM_pingpong)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- buffered throughput ------------------------------------------------------

constexpr long kItems = 5000000;

struct Buf {
    weft_chan *c;
    long lo, hi;
    std::atomic<long> *total;
};

int sender(void *arg)
{
    Buf *b = static_cast<Buf *>(arg);
    for (long i = b->lo; i < b->hi; i++)
        if (weft_chan_send(b->c, &i))
            return -1;
    return 0;
}

int receiver(void *arg)
{
    Buf *b = static_cast<Buf *>(arg);
    long v, s = 0;
    while (weft_chan_recv(b->c, &v) == 0)
        s += v;
    b->total->fetch_add(s);
    return 0;
}

void BM_chan_buffered(benchmark::State &state)
{
    int ns = (int)state.range(0), nr = (int)state.range(1);
    bench_in_task(state, 2, [&](benchmark::State &) {
        std::atomic<long> total{0};
        weft_chan *c;
        must(weft_chan_open(&c, sizeof(long), 1024), "open");
        Buf rb{c, 0, 0, &total};
        Buf sb[8];
        long per = kItems / ns;
        weft_nursery *rn, *sn;
        must(weft_nursery_open(&rn), "nursery");
        for (int r = 0; r < nr; r++)
            must((weft_spawn)(rn, receiver, &rb), "spawn");
        must(weft_nursery_open(&sn), "nursery");
        for (int s = 0; s < ns; s++) {
            sb[s] = Buf{c, s * per, (s + 1) * per, &total};
            must((weft_spawn)(sn, sender, &sb[s]), "spawn");
        }
        must(weft_nursery_close(sn), "close senders");
        weft_chan_close(c);
        must(weft_nursery_close(rn), "close receivers");
        long n = per * ns;
        bench_check(total.load() == n * (n - 1) / 2, "checksum");
        weft_chan_free(c);
    });
    state.counters["ns_per_op"] = benchmark::Counter(kItems * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}
BENCHMARK(BM_chan_buffered)
    ->Args({1, 1})
    ->Args({4, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- skynet -------------------------------------------------------------------

struct Sky {
    weft_chan *out;
    long num, size;
};

int skynet(void *arg)
{
    Sky *s = static_cast<Sky *>(arg);
    if (s->size == 1)
        return weft_chan_send(s->out, &s->num);
    weft_chan *rc;
    if (weft_chan_open(&rc, sizeof(long), 0))
        return -1;
    Sky kids[10];
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    for (int i = 0; i < 10; i++) {
        kids[i] = Sky{rc, s->num + i * (s->size / 10), s->size / 10};
        if ((weft_spawn)(n, skynet, &kids[i]))
            break;
    }
    long sum = 0, v;
    for (int i = 0; i < 10; i++)
        if (weft_chan_recv(rc, &v) == 0)
            sum += v;
    int rc2 = weft_nursery_close(n);
    weft_chan_free(rc);
    if (rc2)
        return rc2;
    return weft_chan_send(s->out, &sum);
}

void BM_skynet(benchmark::State &state)
{
    bench_in_task(state, (unsigned)state.range(0), [&](benchmark::State &) {
        weft_chan *c;
        must(weft_chan_open(&c, sizeof(long), 1), "open");
        Sky root{c, 0, 1000000};
        must(skynet(&root), "skynet");
        long sum = 0;
        must(weft_chan_recv(c, &sum), "recv");
        bench_check(sum == 499999500000L, "skynet sum");
        weft_chan_free(c);
    });
    bench_report_stats(state);
}
BENCHMARK(BM_skynet)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- mutexes --------------------------------------------------------------------

constexpr long kMutexOps = 20000000;

void BM_mutex_uncontended(benchmark::State &state)
{
    // glibc skips atomics in a single-threaded process; weft always has
    // worker and monitor threads, and the pthread peer keeps one alive too.
    bench_in_task(state, 1, [&](benchmark::State &) {
        weft_mutex m = WEFT_MUTEX_INIT;
        long counter = 0;
        for (long i = 0; i < kMutexOps; i++) {
            weft_mutex_lock(&m);
            counter++;
            weft_mutex_unlock(&m);
        }
        benchmark::DoNotOptimize(counter);
        bench_check(counter == kMutexOps, "counter");
    });
    state.counters["ns_per_op"] = benchmark::Counter(kMutexOps * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}
BENCHMARK(BM_mutex_uncontended)->Unit(benchmark::kMillisecond)->UseRealTime();

constexpr long kContendK = 1000000;

struct Cont {
    weft_mutex *m;
    long *counter;
};

int contender(void *arg)
{
    Cont *c = static_cast<Cont *>(arg);
    for (long i = 0; i < kContendK; i++) {
        weft_mutex_lock(c->m);
        (*c->counter)++;
        weft_mutex_unlock(c->m);
    }
    return 0;
}

void BM_mutex_contended4(benchmark::State &state)
{
    bench_in_task(state, 2, [&](benchmark::State &) {
        weft_mutex m = WEFT_MUTEX_INIT;
        long counter = 0;
        Cont c{&m, &counter};
        weft_nursery *n;
        must(weft_nursery_open(&n), "nursery");
        for (int i = 0; i < 4; i++)
            must((weft_spawn)(n, contender, &c), "spawn");
        must(weft_nursery_close(n), "close");
        bench_check(counter == 4 * kContendK, "counter");
    });
    state.counters["ns_per_op"] = benchmark::Counter(4 * kContendK * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}
BENCHMARK(BM_mutex_contended4)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- prime sieve ------------------------------------------------------------------

constexpr int kPrimes = 1000, kLastPrime = 7919, kLimit = 8000;

int generate(void *arg)
{
    weft_chan *out = static_cast<weft_chan *>(arg);
    for (long i = 2; i <= kLimit; i++)
        if (weft_chan_send(out, &i))
            break;
    weft_chan_close(out);
    return 0;
}

struct Filter {
    weft_chan *in, *out;
    long prime;
};

int filter(void *arg)
{
    Filter *f = static_cast<Filter *>(arg);
    long v;
    while (weft_chan_recv(f->in, &v) == 0)
        if (v % f->prime != 0 && weft_chan_send(f->out, &v))
            break;
    weft_chan_close(f->out);
    return 0;
}

void BM_prime_sieve(benchmark::State &state)
{
    bench_in_task(state, (unsigned)state.range(0), [&](benchmark::State &st) {
        static Filter filters[kPrimes];
        static weft_chan *chans[kPrimes];
        auto t0 = std::chrono::steady_clock::now();
        weft_nursery *n;
        must(weft_nursery_open(&n), "nursery");
        must(weft_chan_open(&chans[0], sizeof(long), 0), "open");
        must((weft_spawn)(n, generate, chans[0]), "spawn");
        weft_chan *ch = chans[0];
        long prime = 0;
        for (int i = 0; i < kPrimes; i++) {
            must(weft_chan_recv(ch, &prime), "recv");
            if (i < kPrimes - 1) {
                must(weft_chan_open(&chans[i + 1], sizeof(long), 0), "open");
                filters[i] = Filter{ch, chans[i + 1], prime};
                must((weft_spawn)(n, filter, &filters[i]), "spawn");
                ch = chans[i + 1];
            }
        }
        auto t1 = std::chrono::steady_clock::now();
        st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        bench_check(prime == kLastPrime, "1000th prime");
        long v;
        while (weft_chan_recv(ch, &v) == 0) {
        } // drain the tail so every filter ends (not timed, as in Go)
        must(weft_nursery_close(n), "close");
        for (int i = 0; i < kPrimes; i++)
            weft_chan_free(chans[i]);
    });
}
BENCHMARK(BM_prime_sieve)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();

} // namespace

BENCHMARK_MAIN();
