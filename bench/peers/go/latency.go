// Latency workloads under load: mirror bench/latency.c (timer, spawn and
// handoff; its ramp measurement has no Go peer, since which OS thread runs a
// goroutine is not observable in Go). One-shot workloads (see main.go): measured once per
// process, with GOMAXPROCS = -procs.
//
//	timer_late_p50  two goroutines ping-pong an int over two unbuffered
//	timer_late_p99  channels without pause; a third calls time.Sleep(1 ms)
//	                latencyN times (after 20 unrecorded ones), recording
//	                lateness = wake time - (time before the call + 1 ms).
//	spawn_delay_p50 under the same pair, a goroutine starts a child
//	spawn_delay_p99 (`go func()`) latencyN times (after 20 unrecorded ones),
//	                sleeping 1 ms (time.Sleep) between; the delay is from just
//	                before the `go` statement until the child's first
//	                statement (time.Now() there).
//
// latencyN = 1000 (200 with -quick). Percentiles are nearest-rank, in us;
// both are printed, the one named by -bench first. The full distribution and
// the pair's round trips per second go to stderr. Sampling stops after 30 s
// (a runtime so slow reports what it has). With -cached, the figures are
// written to weftpeers-latency-<timer|spawn>-<procs>.cache next to the
// executable, tagged with WEFT_BENCH_RUN_ID and N, and the other row of the
// same bench run reuses them (as parked.go does).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	latencyN      = 1000
	latencyNQuick = 200
	latencyWarmup = 20
	latencySleep  = time.Millisecond
	latencyBudget = 30 * time.Second
)

func init() {
	for _, kind := range []string{"timer_late", "spawn_delay", "handoff_delay"} {
		for _, p := range []string{"p50", "p99"} {
			kind, p := kind, p
			registerOneshot(oneshot{name: kind + "_" + p, run: func(o oneshotOpts) ([]figure, error) {
				return runLatency(kind, p, o)
			}})
		}
	}
}

// chattyPair starts the two ping-pong goroutines; stop ends them and waits.
type chattyPair struct {
	stop   atomic.Bool
	rounds atomic.Int64
	done   chan struct{}
}

func startPair() *chattyPair {
	c := &chattyPair{done: make(chan struct{})}
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(c.done)
	}()
	go func() {
		v := 0
		var i int64
		for !c.stop.Load() {
			ping <- v
			v = <-pong
			i++
			c.rounds.Store(i)
		}
		close(ping)
		if int64(v) != i {
			panic("latency: wrong ping-pong count")
		}
	}()
	return c
}

func (c *chattyPair) waitStarted() error {
	t0 := time.Now()
	for c.rounds.Load() < 1000 {
		if time.Since(t0) > 5*time.Second {
			return fmt.Errorf("the ping-pong pair did not start")
		}
		time.Sleep(latencySleep)
	}
	return nil
}

func (c *chattyPair) end() {
	c.stop.Store(true)
	<-c.done
}

// measureTimer returns the lateness of each 1 ms sleep.
func measureTimer(c *chattyPair, n int) []time.Duration {
	for i := 0; i < latencyWarmup; i++ {
		time.Sleep(latencySleep)
	}
	start := time.Now()
	s := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		time.Sleep(latencySleep)
		t1 := time.Now()
		s = append(s, t1.Sub(t0)-latencySleep)
		if t1.Sub(start) > latencyBudget {
			break
		}
	}
	return s
}

// measureSpawn returns each child's start delay.
func measureSpawn(n int) []time.Duration {
	total := latencyWarmup + n
	t0 := make([]time.Time, total)
	t1 := make([]time.Time, total)
	var wg sync.WaitGroup
	var start time.Time
	spawned := 0
	for i := 0; i < total; i++ {
		if i == latencyWarmup {
			start = time.Now()
		}
		wg.Add(1)
		t0[i] = time.Now()
		go func(i int) {
			t1[i] = time.Now()
			wg.Done()
		}(i)
		spawned++
		time.Sleep(latencySleep)
		if i >= latencyWarmup && time.Since(start) > latencyBudget {
			break
		}
	}
	wg.Wait()
	s := make([]time.Duration, 0, n)
	for i := latencyWarmup; i < spawned; i++ {
		s = append(s, t1[i].Sub(t0[i]))
	}
	return s
}

// measureHandoff: work queued behind a long blocking syscall (mirrors
// bench/latency.c's handoff mode). n times, 2 ms apart, a goroutine starts a
// child and then loops in 20 us nanosleep syscalls (at most 100 ms) until the
// child has run; the delay is from the loop's start to the child's first
// statement (0 if the child ran first). With GOMAXPROCS=1 the child runs
// once sysmon retakes the P from the goroutine in its syscall.
func measureHandoff(n int) []time.Duration {
	total := latencyWarmup + n
	s := make([]time.Duration, 0, n)
	start := time.Now()
	for i := 0; i < total; i++ {
		var ran atomic.Bool
		var t1 time.Time
		done := make(chan struct{})
		go func() {
			t1 = time.Now()
			ran.Store(true)
			close(done)
		}()
		t0 := time.Now()
		ts := syscall.Timespec{Nsec: 20000}
		for !ran.Load() && time.Since(t0) < 100*time.Millisecond {
			syscall.Nanosleep(&ts, nil)
		}
		<-done
		if i >= latencyWarmup {
			d := t1.Sub(t0)
			if d < 0 {
				d = 0
			}
			s = append(s, d)
		}
		time.Sleep(2 * time.Millisecond)
		if time.Since(start) > latencyBudget {
			break
		}
	}
	return s
}

// nearest rank, in us
func percentileUs(s []time.Duration, p float64) float64 {
	rank := int(p/100*float64(len(s)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return float64(s[rank-1].Nanoseconds()) / 1e3
}

type latencyFigures struct {
	n        int
	p50, p99 float64 // us
}

func measureLatency(kind string, n int) (latencyFigures, error) {
	type result struct {
		s   []time.Duration
		err error
	}
	res := make(chan result)
	var rate float64
	t0 := time.Now()
	go func() { // the measuring goroutine, as weft's third task
		if kind == "handoff_delay" {
			res <- result{measureHandoff(n), nil}
			return
		}
		c := startPair()
		if err := c.waitStarted(); err != nil {
			c.end()
			res <- result{nil, err}
			return
		}
		r0, l0 := c.rounds.Load(), time.Now()
		var s []time.Duration
		if kind == "timer_late" {
			s = measureTimer(c, n)
		} else {
			s = measureSpawn(n)
		}
		rate = float64(c.rounds.Load()-r0) / time.Since(l0).Seconds()
		c.end()
		res <- result{s, nil}
	}()
	r := <-res
	if r.err != nil {
		return latencyFigures{}, r.err
	}
	s := r.s
	if len(s) == 0 {
		return latencyFigures{}, fmt.Errorf("no samples")
	}
	if len(s) < n {
		fmt.Fprintf(os.Stderr, "weftpeers: only %d of %d samples within %v\n", len(s), n, latencyBudget)
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	fmt.Fprintf(os.Stderr, "weftpeers: the pair made %.0f round trips/s during the measurement\n", rate)
	fmt.Fprintf(os.Stderr, "weftpeers: %s, GOMAXPROCS=%d, %d samples (us): min %.1f p50 %.1f p90 %.1f "+
		"p99 %.1f max %.1f mean %.1f; %.1f s in all\n",
		kind, runtime.GOMAXPROCS(0), len(s), float64(s[0].Nanoseconds())/1e3,
		percentileUs(s, 50), percentileUs(s, 90), percentileUs(s, 99),
		float64(s[len(s)-1].Nanoseconds())/1e3, float64(sum.Nanoseconds())/float64(len(s))/1e3,
		time.Since(t0).Seconds())
	f := latencyFigures{n: n, p50: percentileUs(s, 50), p99: percentileUs(s, 99)}
	if len(s) < n {
		f.n = -1 // reported, but not handed to the next row
	}
	return f, nil
}

func latencyCachePath(kind string) (string, os.FileInfo) {
	return exeCachePath(fmt.Sprintf("weftpeers-latency-%s-%d.cache", strings.SplitN(kind, "_", 2)[0], runtime.GOMAXPROCS(0)))
}

func readLatencyCache(path string, exe os.FileInfo, runID string, n int) (latencyFigures, bool) {
	var f latencyFigures
	st, err := os.Stat(path)
	if err != nil || st.ModTime().Before(exe.ModTime()) {
		return f, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, false
	}
	var id string
	_, err = fmt.Sscanf(string(b), "run=%s n=%d p50=%g p99=%g", &id, &f.n, &f.p50, &f.p99)
	if err != nil || id != runID || f.n != n {
		return f, false
	}
	return f, true
}

func writeLatencyCache(path, runID string, f latencyFigures) {
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	s := fmt.Sprintf("run=%s n=%d p50=%.6f p99=%.6f\n", runID, f.n, f.p50, f.p99)
	if os.WriteFile(tmp, []byte(s), 0o644) != nil || os.Rename(tmp, path) != nil {
		os.Remove(tmp)
	}
}

func runLatency(kind, p string, o oneshotOpts) ([]figure, error) {
	n := latencyN
	if o.quick {
		n = latencyNQuick
	}
	if kind == "handoff_delay" {
		n = 300
		if o.quick {
			n = 50
		}
	}
	runID := os.Getenv("WEFT_BENCH_RUN_ID")
	if strings.ContainsAny(runID, " \t\n") {
		runID = ""
	}
	path, exe := latencyCachePath(kind)
	var f latencyFigures
	cached := false
	if o.cached && runID != "" && path != "" {
		f, cached = readLatencyCache(path, exe, runID, n)
	}
	if cached {
		fmt.Fprintf(os.Stderr, "weftpeers: figures of this bench run (%s) from %s\n", runID, path)
	} else {
		// As weft's watchdog: a program that cannot finish still stops.
		watchdog := time.AfterFunc(120*time.Second, func() {
			fmt.Fprintln(os.Stderr, "weftpeers: still running after 120 s, giving up")
			os.Exit(1)
		})
		var err error
		f, err = measureLatency(kind, n)
		watchdog.Stop()
		if err != nil {
			return nil, err
		}
		if runID != "" && path != "" && f.n == n {
			writeLatencyCache(path, runID, f)
		}
	}
	figs := []figure{{kind + "_p50", f.p50, "us"}, {kind + "_p99", f.p99, "us"}}
	if p == "p99" {
		figs[0], figs[1] = figs[1], figs[0]
	}
	return figs, nil
}
