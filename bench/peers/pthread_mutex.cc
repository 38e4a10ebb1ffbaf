// Peer baseline: uncontended pthread mutex (glibc), the OS-level reference for
// weft's uncontended task mutex and Go's mutex_uncontended.
//
// BM_pthread_mutex_uncontended: one iteration = one pthread_mutex_lock +
// pthread_mutex_unlock on a default mutex, so Time per iteration = ns/op.
// glibc elides atomic instructions while the process is single-threaded, so a
// second thread is started before the loop (it just sleeps on a condition
// variable, never touching the measured mutex) and joined afterwards.
#include <benchmark/benchmark.h>
#include <pthread.h>

namespace
{

struct Sleeper {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    bool stop = false;
    pthread_t thread{};

    static void *main(void *arg)
    {
        auto *s = static_cast<Sleeper *>(arg);
        pthread_mutex_lock(&s->mu);
        while (!s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        return nullptr;
    }
    bool start() { return pthread_create(&thread, nullptr, &Sleeper::main, this) == 0; }
    void finish()
    {
        pthread_mutex_lock(&mu);
        stop = true;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        pthread_join(thread, nullptr);
    }
};

void BM_pthread_mutex_uncontended(benchmark::State &state)
{
    Sleeper sleeper;
    if (!sleeper.start()) {
        state.SkipWithError("pthread_create failed");
        return;
    }
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    long counter = 0;
    for (auto _ : state) {
        pthread_mutex_lock(&m);
        ++counter;
        benchmark::DoNotOptimize(counter);
        pthread_mutex_unlock(&m);
    }
    sleeper.finish();
    pthread_mutex_destroy(&m);
    if (counter != static_cast<long>(state.iterations()))
        state.SkipWithError("wrong counter");
    state.SetItemsProcessed(state.iterations());
}

} // namespace

BENCHMARK(BM_pthread_mutex_uncontended);

BENCHMARK_MAIN();
