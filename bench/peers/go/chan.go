// Buffered-channel throughput workloads (mirror weft's MPMC channel benches).
//
//	chan_buffered_1x1  1 sender, 1 receiver, one channel of capacity 1024,
//	                   chanItems ints; the receiver's checksum is verified.
//	chan_buffered_4x4  4 senders, 4 receivers sharing one channel of capacity
//	                   1024, chanItems ints in total (disjoint ranges per
//	                   sender); the total sum is verified.
//
// Both use -procs and report ns/item = total time / chanItems.
package main

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	chanCap   = 1024
	chanItems = 5_000_000 // ~0.25-0.35 s per repetition on 2 cores
)

func init() {
	register(workload{name: "chan_buffered_1x1", unit: "ns/item", div: chanItems, run: func() time.Duration { return runChan(1, 1) }})
	register(workload{name: "chan_buffered_4x4", unit: "ns/item", div: chanItems, run: func() time.Duration { return runChan(4, 4) }})
}

func runChan(senders, receivers int) time.Duration {
	ch := make(chan int, chanCap)
	var total int64
	var swg, rwg sync.WaitGroup
	swg.Add(senders)
	rwg.Add(receivers)
	per := chanItems / senders
	start := time.Now()
	for r := 0; r < receivers; r++ {
		go func() {
			var s int64
			for v := range ch {
				s += int64(v)
			}
			atomic.AddInt64(&total, s)
			rwg.Done()
		}()
	}
	for s := 0; s < senders; s++ {
		go func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ch <- i
			}
			swg.Done()
		}(s*per, (s+1)*per)
	}
	swg.Wait()
	close(ch)
	rwg.Wait()
	d := time.Since(start)
	n := int64(per * senders)
	if total != n*(n-1)/2 {
		panic("chan_buffered: wrong checksum")
	}
	return d
}
