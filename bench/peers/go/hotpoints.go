// Issue 11's shared hot points (bench/bench_hotpoints.cc).
//
//	shared_nursery  two spawner goroutines each start 100,000 trivial
//	                goroutines (each writes its slot), all counted by ONE
//	                sync.WaitGroup that main waits on: Go's counterpart of
//	                one nursery shared by two spawners. Unit ns/task.
//	deadline_churn  10,000 goroutines, each looping 20 times:
//	                context.WithTimeout(ctx, 1 ms), runtime.Gosched(), a
//	                look at ctx.Err(), cancel(). Unit ns per iteration.
//	                Gosched's turn can outlast the 1 ms with 10,000
//	                goroutines queued: that is counted on stderr, not an
//	                error (as the weft side counts its late yields).
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	hotSpawners   = 2
	hotPerSpawner = 100_000
	hotTasks      = hotSpawners * hotPerSpawner
	churnTasks    = 10_000
	churnLoops    = 20
)

var churnLate atomic.Int64

func init() {
	register(workload{name: "shared_nursery", unit: "ns/task", div: hotTasks, run: runSharedNursery})
	register(workload{name: "deadline_churn", unit: "ns/op", div: churnTasks * churnLoops, run: runDeadlineChurn})
}

func runSharedNursery() time.Duration {
	slots := make([]int, hotTasks)
	start := time.Now()
	var wg sync.WaitGroup
	var spawners sync.WaitGroup
	spawners.Add(hotSpawners)
	for s := 0; s < hotSpawners; s++ {
		go func(base int) {
			for i := 0; i < hotPerSpawner; i++ {
				wg.Add(1)
				go func(i int) {
					slots[i] = 1
					wg.Done()
				}(base + i)
			}
			spawners.Done()
		}(s * hotPerSpawner)
	}
	spawners.Wait()
	wg.Wait()
	d := time.Since(start)
	for _, v := range slots {
		if v != 1 {
			panic("shared_nursery: slot not written")
		}
	}
	return d
}

func runDeadlineChurn() time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(churnTasks)
	bg := context.Background()
	for t := 0; t < churnTasks; t++ {
		go func() {
			late := int64(0)
			for i := 0; i < churnLoops; i++ {
				ctx, cancel := context.WithTimeout(bg, time.Millisecond)
				runtime.Gosched()
				if ctx.Err() != nil {
					late++
				}
				cancel()
			}
			if late > 0 {
				churnLate.Add(late)
			}
			wg.Done()
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if l := churnLate.Swap(0); l > 0 {
		fmt.Fprintf(os.Stderr, "deadline_churn: %d of %d iterations found the 1 ms passed\n", l, churnTasks*churnLoops)
	}
	return d
}
