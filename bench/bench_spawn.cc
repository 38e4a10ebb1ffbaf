// bench_spawn.cc - spawn + join of 1M trivial tasks, and a 10-ary spawn tree
// of 1M leaves where every node sums what its children wrote after its
// nursery closes. Peers: the same workloads in Go (bench/peers/go/spawn.go),
// the tree also with oneTBB (bench/peers/tbb_peers.cc).
#include "common.h"

#include <atomic>
#include <vector>

namespace
{

constexpr long kTasks = 1000000;

struct SpawnArgs {
    long n;
    std::vector<long> *slots;
};

int leaf(void *arg)
{
    long *slot = static_cast<long *>(arg);
    *slot = 1;
    return 0;
}

int spawn_join(void *arg)
{
    auto *a = static_cast<SpawnArgs *>(arg);
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    for (long i = 0; i < a->n; i++)
        if ((weft_spawn)(n, leaf, &(*a->slots)[i]))
            return -1;
    return weft_nursery_close(n);
}

void BM_spawn_join(benchmark::State &state)
{
    unsigned workers = (unsigned)state.range(0);
    std::vector<long> slots(kTasks);
    SpawnArgs a{kTasks, &slots};
    bench_in_task(state, workers, [&](benchmark::State &) {
        std::fill(slots.begin(), slots.end(), 0);
        bench_check(spawn_join(&a) == 0, "spawn_join");
        long sum = 0;
        for (long v : slots)
            sum += v;
        bench_check(sum == kTasks, "every task wrote its slot");
    });
    state.counters["ns_per_op"] = benchmark::Counter((double)kTasks * 1e-9,
                                                     benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
    bench_report_stats(state);
}
BENCHMARK(BM_spawn_join)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

struct Node {
    long leaves;
    long *out;
};

int tree(void *arg)
{
    Node *me = static_cast<Node *>(arg);
    if (me->leaves == 1) {
        *me->out = 1;
        return 0;
    }
    long got[10] = {0};
    Node kids[10];
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -1;
    long per = me->leaves / 10;
    for (int i = 0; i < 10; i++) {
        kids[i].leaves = per;
        kids[i].out = &got[i];
        if ((weft_spawn)(n, tree, &kids[i]))
            return -1;
    }
    int rc = weft_nursery_close(n);
    long sum = 0;
    for (long v : got)
        sum += v;
    *me->out = sum;
    return rc;
}

int tree_root(void *arg)
{
    Node *root = static_cast<Node *>(arg);
    return tree(root);
}

void BM_tree(benchmark::State &state)
{
    unsigned workers = (unsigned)state.range(0);
    bench_in_task(state, workers, [&](benchmark::State &) {
        long total = 0;
        Node root{kTasks, &total};
        bench_check(tree_root(&root) == 0, "tree");
        bench_check(total == kTasks, "tree sums to 1e6");
    });
}
BENCHMARK(BM_tree)->Arg(2)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
