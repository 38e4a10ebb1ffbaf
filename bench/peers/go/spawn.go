// Spawn-heavy workloads: goroutine creation and fork-join.
//
//	spawn_join  mirrors weft's flat spawn/join benchmark: 1,000,000 trivial
//	            tasks, each writing its index into a slice slot, joined with
//	            one sync.WaitGroup. Unit ns/task.
//	tree        mirrors weft's nursery tree: a 10-ary spawn tree of depth 6
//	            (1,000,000 leaves). Every inner node spawns 10 children that
//	            write their value (leaf: 1) into the parent's [10]int64,
//	            waits on a WaitGroup, sums, and writes the sum into its own
//	            parent's slot. Root sum must be 1e6. Unit ms per tree.
//	fib         fork-join fib(32), spawning BOTH children as goroutines on
//	            every call and waiting with a WaitGroup (results in locals),
//	            no cutoff (~7M goroutines). Unit ms.
//	fib_cutoff  same, but serial for n <= fibCutoff. Unit ms.
//	fib_serial  plain recursive fib(32), the sequential reference. Unit ms.
//	skynet      the classic skynet benchmark (github.com/atemerev/skynet):
//	            1,000,000 leaves, 10-ary, each node makes an unbuffered
//	            channel, spawns 10 children that send their sum on it.
//	            Root sum must be 499999500000. Unit ms.
package main

import (
	"sync"
	"time"
)

const (
	spawnTasks = 1_000_000
	treeDepth  = 6 // 10^6 leaves
	treeLeaves = 1_000_000
	fibN       = 32
	fibResult  = 2178309
	fibCutoff  = 20 // fib_cutoff computes serially for n <= fibCutoff
	skynetSize = 1_000_000
	skynetSum  = 499999500000
)

func init() {
	register(workload{name: "spawn_join", unit: "ns/task", div: spawnTasks, run: runSpawnJoin})
	register(workload{name: "tree", unit: "ms", div: 1, run: runTree})
	register(workload{name: "fib", unit: "ms", div: 1, run: func() time.Duration { return runFib(fibPar) }})
	register(workload{name: "fib_cutoff", unit: "ms", div: 1, run: func() time.Duration { return runFib(fibParCutoff) }})
	register(workload{name: "fib_serial", unit: "ms", div: 1, run: func() time.Duration { return runFib(fibSerial) }})
	register(workload{name: "skynet", unit: "ms", div: 1, run: runSkynet})
}

func runSpawnJoin() time.Duration {
	slots := make([]int, spawnTasks) // allocated outside the timed region
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(spawnTasks)
	for i := 0; i < spawnTasks; i++ {
		go func(i int) {
			slots[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	d := time.Since(start)
	for i, v := range slots {
		if v != i {
			panic("spawn_join: slot not written")
		}
	}
	return d
}

func treeNode(depth int, out *int64) {
	if depth == 0 {
		*out = 1
		return
	}
	var vals [10]int64
	var wg sync.WaitGroup
	wg.Add(len(vals))
	for i := range vals {
		go func(p *int64) {
			treeNode(depth-1, p)
			wg.Done()
		}(&vals[i])
	}
	wg.Wait()
	var s int64
	for _, v := range vals {
		s += v
	}
	*out = s
}

func runTree() time.Duration {
	var sum int64
	start := time.Now()
	treeNode(treeDepth, &sum)
	d := time.Since(start)
	if sum != treeLeaves {
		panic("tree: wrong sum")
	}
	return d
}

func fibSerial(n int) int {
	if n < 2 {
		return n
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

func fibPar(n int) int {
	if n < 2 {
		return n
	}
	var a, b int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { a = fibPar(n - 1); wg.Done() }()
	go func() { b = fibPar(n - 2); wg.Done() }()
	wg.Wait()
	return a + b
}

func fibParCutoff(n int) int {
	if n <= fibCutoff {
		return fibSerial(n)
	}
	var a, b int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { a = fibParCutoff(n - 1); wg.Done() }()
	go func() { b = fibParCutoff(n - 2); wg.Done() }()
	wg.Wait()
	return a + b
}

func runFib(f func(int) int) time.Duration {
	start := time.Now()
	r := f(fibN)
	d := time.Since(start)
	if r != fibResult {
		panic("fib: wrong result")
	}
	return d
}

func skynet(c chan int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	var sum int
	for i := 0; i < div; i++ {
		subNum := num + i*(size/div)
		go skynet(rc, subNum, size/div, div)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func runSkynet() time.Duration {
	c := make(chan int)
	start := time.Now()
	go skynet(c, 0, skynetSize, 10)
	sum := <-c
	d := time.Since(start)
	if sum != skynetSum {
		panic("skynet: wrong sum")
	}
	return d
}
