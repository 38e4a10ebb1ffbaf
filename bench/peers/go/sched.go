// Scheduling / synchronous hand-off workloads.
//
//	gosched      mirrors weft's yield benchmark: two goroutines each call
//	             runtime.Gosched() goschedN times with GOMAXPROCS forced to 1
//	             (-procs is ignored). Unit ns/yield = total / (2*goschedN).
//	pingpong     mirrors weft's channel ping-pong: two goroutines bounce an
//	             int over two unbuffered channels pingpongN round trips. Uses
//	             -procs (the runner calls it with 1 and 2). Unit ns/roundtrip.
//	prime_sieve  Go's classic concurrent prime sieve (generate -> chain of
//	             filter goroutines over unbuffered channels) for the first
//	             1000 primes; the 1000th must be 7919. Unit ms. To let each
//	             repetition finish cleanly, the generator stops at sieveLimit
//	             and closes its channel, filters range/close, and main drains
//	             the tail after the clock is stopped.
package main

import (
	"runtime"
	"sync"
	"time"
)

const (
	goschedN    = 500_000
	pingpongN   = 200_000
	sievePrimes = 1000
	sieveLast   = 7919 // the 1000th prime
	sieveLimit  = 8000 // generator bound (> sieveLast) so the chain terminates
)

func init() {
	register(workload{name: "gosched", unit: "ns/yield", div: 2 * goschedN, procs: 1, run: runGosched})
	register(workload{name: "pingpong", unit: "ns/roundtrip", div: pingpongN, run: runPingpong})
	register(workload{name: "prime_sieve", unit: "ms", div: 1, run: runSieve})
}

func runGosched() time.Duration {
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < goschedN; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func runPingpong() time.Duration {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	start := time.Now()
	v := 0
	for i := 0; i < pingpongN; i++ {
		ping <- v
		v = <-pong
	}
	d := time.Since(start)
	close(ping)
	<-pong // wait for the partner to exit
	if v != pingpongN {
		panic("pingpong: wrong count")
	}
	return d
}

func generate(ch chan<- int) {
	for i := 2; i <= sieveLimit; i++ {
		ch <- i
	}
	close(ch)
}

func filter(in <-chan int, out chan<- int, prime int) {
	for i := range in {
		if i%prime != 0 {
			out <- i
		}
	}
	close(out)
}

func runSieve() time.Duration {
	start := time.Now()
	ch := make(chan int)
	go generate(ch)
	prime := 0
	for i := 0; i < sievePrimes; i++ {
		var ok bool
		prime, ok = <-ch
		if !ok {
			panic("prime_sieve: generator exhausted")
		}
		if i < sievePrimes-1 {
			ch1 := make(chan int)
			go filter(ch, ch1, prime)
			ch = ch1
		}
	}
	d := time.Since(start)
	for range ch { // drain the tail so every goroutine exits
	}
	if prime != sieveLast {
		panic("prime_sieve: wrong 1000th prime")
	}
	return d
}
