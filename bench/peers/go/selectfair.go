// Select fairness and a quit's delay next to always-ready producers: mirrors
// bench/select_fair.c. One-shot workloads (see main.go), GOMAXPROCS = -procs.
//
//	select_quit_delay_p50  selectTrials trials; in each, three goroutines loop
//	select_quit_delay_max  `c[i] <- v` on their own unbuffered channel, a
//	select_share_min       consumer loops on a select over the three channels
//	select_share_max       plus an unbuffered quit channel, and a quit
//	                       goroutine sleeps (time.Sleep) selectTrial, stamps
//	                       time.Now() and sends on quit. The delay is from
//	                       that stamp to the consumer's stamp after its
//	                       select returned the quit (p50 nearest rank and max
//	                       over the trials, us); the shares are each
//	                       producer's share of the receives before the quit,
//	                       smallest and largest over producers and trials.
//
// After the quit the consumer sets a stop flag and drains each channel until
// its producer has ended (a producer checks the flag between sends), so no
// goroutine outlives its trial. selectTrials = 20 (5 with -quick). All four
// figures are printed, the one named by -bench first. With -cached the
// figures are written to weftpeers-selectfair-<procs>.cache next to the
// executable, tagged with WEFT_BENCH_RUN_ID and the trial count, and the
// other rows of the same bench run reuse them (as latency.go does).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

const (
	selectTrials      = 20
	selectTrialsQuick = 5
	selectTrial       = 50 * time.Millisecond
	selectProducers   = 3
)

var selectFigNames = []string{"select_quit_delay_p50", "select_quit_delay_max", "select_share_min", "select_share_max"}

func init() {
	for i, name := range selectFigNames {
		i, name := i, name
		registerOneshot(oneshot{name: name, run: func(o oneshotOpts) ([]figure, error) {
			return runSelectFair(i, o)
		}})
	}
}

type selectTrialResult struct {
	got           [selectProducers]int64
	total         int64
	late, delay   time.Duration // quit goroutine's wake-up lateness; send -> received
	sentAt, gotAt time.Time
}

func selectFairTrial() selectTrialResult {
	var r selectTrialResult
	var stop atomic.Bool
	var ch [selectProducers]chan int
	var done [selectProducers]chan struct{}
	for i := range ch {
		ch[i] = make(chan int)
		done[i] = make(chan struct{})
	}
	quit := make(chan int)
	finished := make(chan struct{})
	go func() { // the consumer
		for {
			select {
			case <-ch[0]:
				r.got[0]++
			case <-ch[1]:
				r.got[1]++
			case <-ch[2]:
				r.got[2]++
			case <-quit:
				r.gotAt = time.Now()
				r.total = r.got[0] + r.got[1] + r.got[2]
				stop.Store(true)
				for i := range ch {
				drain:
					for {
						select {
						case <-ch[i]:
						case <-done[i]:
							break drain
						}
					}
				}
				close(finished)
				return
			}
		}
	}()
	for i := 0; i < selectProducers; i++ {
		go func(i int) {
			for v := 0; !stop.Load(); v++ {
				ch[i] <- v
			}
			close(done[i])
		}(i)
	}
	deadline := time.Now().Add(selectTrial)
	go func() { // the quit goroutine
		time.Sleep(time.Until(deadline))
		r.sentAt = time.Now()
		r.late = r.sentAt.Sub(deadline)
		quit <- 1
	}()
	<-finished
	r.delay = r.gotAt.Sub(r.sentAt)
	return r
}

func selectFairCachePath() (string, os.FileInfo) {
	return exeCachePath(fmt.Sprintf("weftpeers-selectfair-%d.cache", runtime.GOMAXPROCS(0)))
}

func runSelectFair(want int, o oneshotOpts) ([]figure, error) {
	n := selectTrials
	if o.quick {
		n = selectTrialsQuick
	}
	runID := os.Getenv("WEFT_BENCH_RUN_ID")
	if strings.ContainsAny(runID, " \t\n") {
		runID = ""
	}
	path, exe := selectFairCachePath()
	var v [4]float64
	cached := false
	if o.cached && runID != "" && path != "" {
		if st, err := os.Stat(path); err == nil && !st.ModTime().Before(exe.ModTime()) {
			if b, err := os.ReadFile(path); err == nil {
				var id string
				var gotN int
				_, err = fmt.Sscanf(string(b), "run=%s n=%d %g %g %g %g", &id, &gotN, &v[0], &v[1], &v[2], &v[3])
				cached = err == nil && id == runID && gotN == n
			}
		}
	}
	if cached {
		fmt.Fprintf(os.Stderr, "weftpeers: figures of this bench run (%s) from %s\n", runID, path)
	} else {
		watchdog := time.AfterFunc(120*time.Second, func() {
			fmt.Fprintln(os.Stderr, "weftpeers: still running after 120 s, giving up")
			os.Exit(1)
		})
		t0 := time.Now()
		delays := make([]time.Duration, 0, n)
		smin, smax := 1.0, 0.0
		var maxLate time.Duration
		var all int64
		for k := 0; k < n; k++ {
			r := selectFairTrial()
			fmt.Fprintf(os.Stderr, "weftpeers: select_fair trial %2d: %7d receives, shares", k, r.total)
			for i := 0; i < selectProducers; i++ {
				s := 0.0
				if r.total > 0 {
					s = float64(r.got[i]) / float64(r.total)
				}
				if s < smin {
					smin = s
				}
				if s > smax {
					smax = s
				}
				fmt.Fprintf(os.Stderr, " %.4f", s)
			}
			fmt.Fprintf(os.Stderr, "; quit goroutine woke %.1f us late, quit received %.1f us after its send\n",
				float64(r.late.Nanoseconds())/1e3, float64(r.delay.Nanoseconds())/1e3)
			delays = append(delays, r.delay)
			if r.late > maxLate {
				maxLate = r.late
			}
			all += r.total
		}
		watchdog.Stop()
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		v = [4]float64{percentileUs(delays, 50), float64(delays[len(delays)-1].Nanoseconds()) / 1e3, smin, smax}
		fmt.Fprintf(os.Stderr, "weftpeers: select_fair, GOMAXPROCS=%d, %d trials of %v: quit delay (us) p50 %.1f "+
			"max %.1f; quit goroutine's wake-up lateness max %.1f us; shares min %.4f max %.4f; %.0f receives/s; "+
			"%.1f s in all\n", runtime.GOMAXPROCS(0), n, selectTrial, v[0], v[1],
			float64(maxLate.Nanoseconds())/1e3, smin, smax, float64(all)/time.Since(t0).Seconds(),
			time.Since(t0).Seconds())
		if runID != "" && path != "" {
			tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
			s := fmt.Sprintf("run=%s n=%d %.6f %.6f %.6f %.6f\n", runID, n, v[0], v[1], v[2], v[3])
			if os.WriteFile(tmp, []byte(s), 0o644) != nil || os.Rename(tmp, path) != nil {
				os.Remove(tmp)
			}
		}
	}
	units := []string{"us", "us", "share", "share"}
	figs := []figure{{selectFigNames[want], v[want], units[want]}}
	for i := range selectFigNames {
		if i != want {
			figs = append(figs, figure{selectFigNames[i], v[i], units[i]})
		}
	}
	return figs, nil
}
