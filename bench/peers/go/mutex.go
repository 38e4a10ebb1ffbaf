// sync.Mutex workloads (mirror weft's task-mutex benches).
//
//	mutex_uncontended  Lock/Unlock in a loop on one goroutine, mutexOps times.
//	                   Unit ns/op.
//	mutex_contended4   4 goroutines each do mutexK x {Lock; counter++;
//	                   Unlock} on one shared mutex; the counter is checked.
//	                   Uses -procs. Unit ns/op = total time / (4*mutexK).
package main

import (
	"sync"
	"time"
)

const (
	mutexOps = 20_000_000
	mutexK   = 1_000_000
)

func init() {
	register(workload{name: "mutex_uncontended", unit: "ns/op", div: mutexOps, run: runMutexUncontended})
	register(workload{name: "mutex_contended4", unit: "ns/op", div: 4 * mutexK, run: runMutexContended})
}

func runMutexUncontended() time.Duration {
	var mu sync.Mutex
	counter := 0
	start := time.Now()
	for i := 0; i < mutexOps; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	d := time.Since(start)
	if counter != mutexOps {
		panic("mutex_uncontended: wrong counter")
	}
	return d
}

func runMutexContended() time.Duration {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	wg.Add(4)
	start := time.Now()
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < mutexK; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if counter != 4*mutexK {
		panic("mutex_contended4: wrong counter")
	}
	return d
}
