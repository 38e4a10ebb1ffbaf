// Parked-goroutine workloads: what a blocked goroutine costs, and whether a
// burst's memory is given back. One-shot workloads (see main.go): measured
// once per process, with no warm-up, because the first run is the one that
// faults. Memory is read the same way as weft's bench/parked_rss.c and
// bench/burst_rss.c do: the resident field of /proc/self/statm, and minor
// page faults from getrusage(RUSAGE_SELF).
//
//	parked_spawn   mirrors bench/parked_rss: N = 1,000,000 goroutines
//	parked_rss     (100,000 with -quick) each blocked receiving from one
//	parked_faults  unbuffered channel; measured from just before the first
//	               `go` until every goroutine has counted itself parked (a
//	               WaitGroup, as weft's tasks do before their event wait):
//	               wall time (ms), statm resident delta / N (bytes/task) and
//	               minor faults delta / N (faults/task); then the channel is
//	               closed and all are joined. The three names print the same
//	               three figures, the named one first. With -cached, the
//	               figures are written to weftpeers-parked.cache next to the
//	               executable, tagged with WEFT_BENCH_RUN_ID (bench/run
//	               exports a new one per run) and N, and a later call of the
//	               same bench run reuses them instead of measuring again.
//	burst_rss      mirrors bench/burst_rss: 200,000 goroutines blocked on a
//	               channel at once, then released and joined; RSS sampled
//	               before, at the peak (all blocked), right after the join
//	               and every 100 ms for 3 s. Reports the MiB above the
//	               pre-burst RSS 2 s after the join (burst_rss_2s), then the
//	               peak (burst_peak). Go's default behaviour: no
//	               debug.FreeOSMemory, no forced GC; the background scavenger
//	               is what a Go user gets.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	parkedTasks      = 1_000_000
	parkedTasksQuick = 100_000
	parkedTimeout    = 240 * time.Second
	burstTasks       = 200_000
	burstTimeout     = 120 * time.Second
	burstPeriod      = 100 * time.Millisecond
	burstSamples     = 30 // 3 s
	burstReport      = 20 // the figure reported: 2 s after the join
)

func init() {
	for _, name := range []string{"parked_spawn", "parked_rss", "parked_faults"} {
		name := name
		registerOneshot(oneshot{name: name, run: func(o oneshotOpts) ([]figure, error) {
			return runParked(name, o)
		}})
	}
	registerOneshot(oneshot{name: "burst_rss", run: runBurst})
}

// Package-level, so that `go parkedWorker()` allocates nothing but the
// goroutine (weft's tasks get a NULL argument).
var (
	parkRelease chan struct{}
	parkWG      sync.WaitGroup // goroutines not yet (about to be) blocked
	joinWG      sync.WaitGroup // goroutines not yet finished
)

func parkedWorker() {
	parkWG.Done()
	<-parkRelease
	joinWG.Done()
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	var size, resident int64
	if err == nil {
		_, err = fmt.Sscan(string(b), &size, &resident)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "weftpeers: cannot read /proc/self/statm: %v\n", err)
		os.Exit(1)
	}
	return resident * int64(os.Getpagesize())
}

func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintf(os.Stderr, "weftpeers: getrusage: %v\n", err)
		os.Exit(1)
	}
	return ru.Minflt
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// spawnParked starts n parkedWorker goroutines and waits until all have
// counted themselves parked; it returns that phase's wall time.
func spawnParked(n int, timeout time.Duration) (time.Duration, error) {
	parkRelease = make(chan struct{})
	parkWG.Add(n)
	joinWG.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go parkedWorker()
	}
	if !waitTimeout(&parkWG, timeout) {
		return 0, fmt.Errorf("goroutines not all blocked after %v", timeout)
	}
	d := time.Since(t0)
	time.Sleep(20 * time.Millisecond) // the last one counted itself just before blocking
	return d, nil
}

func releaseParked() {
	close(parkRelease)
	joinWG.Wait()
}

type parkedFigures struct {
	n      int
	timeMs float64
	rss    float64 // bytes per goroutine
	faults float64 // minor faults per goroutine
}

// exeCachePath is where a figure cache named file lives: next to this
// executable, with the executable's stat (a cache older than the binary is
// not used). "" if either is unknown.
func exeCachePath(file string) (string, os.FileInfo) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil
	}
	st, err := os.Stat(exe)
	if err != nil {
		return "", nil
	}
	return filepath.Join(filepath.Dir(exe), file), st
}

func cachePath() (string, os.FileInfo) { return exeCachePath("weftpeers-parked.cache") }

func readCache(path string, exe os.FileInfo, runID string, n int) (parkedFigures, bool) {
	var f parkedFigures
	st, err := os.Stat(path)
	if err != nil || st.ModTime().Before(exe.ModTime()) {
		return f, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, false
	}
	var id string
	_, err = fmt.Sscanf(string(b), "run=%s n=%d time_ms=%g rss=%g faults=%g",
		&id, &f.n, &f.timeMs, &f.rss, &f.faults)
	if err != nil || id != runID || f.n != n {
		return f, false
	}
	return f, true
}

func writeCache(path, runID string, f parkedFigures) {
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	s := fmt.Sprintf("run=%s n=%d time_ms=%.6f rss=%.6f faults=%.6f\n", runID, f.n, f.timeMs, f.rss, f.faults)
	if os.WriteFile(tmp, []byte(s), 0o644) != nil || os.Rename(tmp, path) != nil {
		os.Remove(tmp)
	}
}

func measureParked(n int) (parkedFigures, error) {
	rss0, flt0 := rssBytes(), minorFaults()
	d, err := spawnParked(n, parkedTimeout)
	if err != nil {
		return parkedFigures{}, err
	}
	rss1, flt1 := rssBytes(), minorFaults()
	releaseParked()
	fmt.Fprintf(os.Stderr, "weftpeers: %d goroutines blocked in %.1f ms (%.0f ns/goroutine); "+
		"RSS %d -> %d bytes; minor faults %d -> %d\n",
		n, float64(d.Nanoseconds())/1e6, float64(d.Nanoseconds())/float64(n), rss0, rss1, flt0, flt1)
	return parkedFigures{
		n:      n,
		timeMs: float64(d.Nanoseconds()) / 1e6,
		rss:    float64(rss1-rss0) / float64(n),
		faults: float64(flt1-flt0) / float64(n),
	}, nil
}

func runParked(name string, o oneshotOpts) ([]figure, error) {
	n := parkedTasks
	if o.quick {
		n = parkedTasksQuick
	}
	runID := os.Getenv("WEFT_BENCH_RUN_ID")
	if strings.ContainsAny(runID, " \t\n") {
		runID = ""
	}
	path, exe := cachePath()
	var f parkedFigures
	cached := false
	if o.cached && runID != "" && path != "" {
		f, cached = readCache(path, exe, runID, n)
	}
	if cached {
		fmt.Fprintf(os.Stderr, "weftpeers: figures of this bench run (%s) from %s\n", runID, path)
	} else {
		var err error
		if f, err = measureParked(n); err != nil {
			return nil, err
		}
		if runID != "" && path != "" {
			writeCache(path, runID, f)
		}
	}
	figs := []figure{
		{"parked_spawn", f.timeMs, "ms"},
		{"parked_rss", f.rss, "bytes/task"},
		{"parked_faults", f.faults, "faults/task"},
	}
	for i := range figs {
		if figs[i].name == name {
			figs[0], figs[i] = figs[i], figs[0]
		}
	}
	return figs, nil
}

func runBurst(o oneshotOpts) ([]figure, error) {
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	pre := rssBytes()
	dPark, err := spawnParked(burstTasks, burstTimeout)
	if err != nil {
		return nil, err
	}
	peak := rssBytes()
	t2 := time.Now()
	releaseParked()
	tj := time.Now()
	join := rssBytes()
	var after [burstSamples + 1]int64
	for k := 1; k <= burstSamples; k++ {
		time.Sleep(time.Until(tj.Add(time.Duration(k) * burstPeriod)))
		after[k] = rssBytes()
	}
	fmt.Fprintf(os.Stderr, "weftpeers: %d goroutines blocked in %.1f ms, released and joined in %.1f ms; "+
		"RSS before %.1f MiB, peak +%.1f MiB, at the join +%.1f MiB\n",
		burstTasks, float64(dPark.Nanoseconds())/1e6, float64(tj.Sub(t2).Nanoseconds())/1e6,
		mib(pre), mib(peak-pre), mib(join-pre))
	var sb strings.Builder
	for k := 1; k <= burstSamples; k++ {
		fmt.Fprintf(&sb, " %.1f", mib(after[k]-pre))
	}
	fmt.Fprintf(os.Stderr, "weftpeers: MiB above pre-burst every 100 ms after the join:%s\n", sb.String())
	return []figure{
		{"burst_rss_2s", mib(after[burstReport] - pre), "MiB"},
		{"burst_peak", mib(peak - pre), "MiB"},
	}, nil
}
