// Command weftpeers runs the Go baselines ("peers") for the weft benchmarks.
//
//	weftpeers -bench NAME [-procs P] [-quick] [-cached]
//	weftpeers -bench list
//
// Each workload mirrors a weft benchmark of the same name (see the top comment
// of the file that defines it). The program sets GOMAXPROCS(P) (default 2;
// gosched forces 1), does one untimed warm-up run, then repeats the workload
// until at least 1 s (0.2 s with -quick) of measured time has accumulated
// (always at least one measured run, at most maxReps), and prints the MEDIAN
// of the repetitions as exactly one line on stdout (with -quick, a warm-up
// that alone took longer than 0.2 s is reused as the only sample):
//
//	BENCH <NAME> <value> <unit>
//
// Per-repetition statistics go to stderr. Only the standard library is used.
//
// One-shot workloads (memory and page-fault figures: parked.go) run once per
// process instead, with no warm-up and no GC beforehand, since the first run
// is the one that faults; they print one BENCH line per figure, the one named
// after -bench first. -cached lets them reuse the figures of the same
// measurement taken earlier in this bench/run (see parked.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"
)

// workload describes one benchmark. run performs one repetition and returns
// the measured time (setup/teardown that is not part of the workload may be
// excluded by run itself). The reported value is elapsed / div, expressed in
// unit ("ns/..." units report nanoseconds, "ms" reports milliseconds).
type workload struct {
	name  string
	unit  string
	div   float64 // operations per repetition (1 for whole-run units)
	procs int     // if > 0, overrides -procs
	run   func() time.Duration
}

var workloads []workload

func register(w workload) { workloads = append(workloads, w) }

// oneshot describes a workload measured once per process. run returns its
// figures, the one to report first at index 0.
type oneshot struct {
	name string
	run  func(o oneshotOpts) ([]figure, error)
}

type oneshotOpts struct {
	quick  bool // the smaller size of bench/run --quick
	cached bool // figures of this bench run may be reused (parked.go)
}

type figure struct {
	name  string
	value float64
	unit  string
}

var oneshots []oneshot

func registerOneshot(o oneshot) { oneshots = append(oneshots, o) }

const maxReps = 1000

func main() {
	bench := flag.String("bench", "", "workload name, or 'list'")
	procs := flag.Int("procs", 2, "GOMAXPROCS")
	quick := flag.Bool("quick", false, "measure for ~0.2 s instead of ~1 s")
	cached := flag.Bool("cached", false, "one-shot workloads: reuse this bench run's figures")
	flag.Parse()

	if *bench == "list" {
		for _, w := range workloads {
			fmt.Println(w.name)
		}
		for _, o := range oneshots {
			fmt.Println(o.name)
		}
		return
	}
	for _, o := range oneshots {
		if o.name == *bench {
			if *procs < 1 {
				fmt.Fprintln(os.Stderr, "weftpeers: -procs must be >= 1")
				os.Exit(2)
			}
			runtime.GOMAXPROCS(*procs)
			figs, err := o.run(oneshotOpts{quick: *quick, cached: *cached})
			if err != nil {
				fmt.Fprintf(os.Stderr, "weftpeers: %s: %v\n", o.name, err)
				os.Exit(1)
			}
			for _, f := range figs {
				fmt.Printf("BENCH %s %s %s\n", f.name, format(f.value), f.unit)
			}
			return
		}
	}
	var w *workload
	for i := range workloads {
		if workloads[i].name == *bench {
			w = &workloads[i]
		}
	}
	if w == nil {
		fmt.Fprintf(os.Stderr, "weftpeers: unknown benchmark %q (try -bench list)\n", *bench)
		os.Exit(2)
	}
	if *procs < 1 {
		fmt.Fprintln(os.Stderr, "weftpeers: -procs must be >= 1")
		os.Exit(2)
	}
	p := *procs
	if w.procs > 0 {
		p = w.procs
	}
	runtime.GOMAXPROCS(p)

	budget := time.Second
	if *quick {
		budget = 200 * time.Millisecond
	}

	runtime.GC()
	warm := w.run() // warm-up, not measured (but see -quick below)

	var samples []float64
	var total time.Duration
	if *quick && warm >= budget {
		// -quick only: a warm-up that alone exceeds the budget (fib, tree,
		// skynet, ...) is reused as the single sample, to keep the whole
		// quick suite within a few seconds.
		samples = append(samples, float64(warm.Nanoseconds())/w.div)
		total = warm
	}
	for len(samples) < maxReps && (len(samples) == 0 || total < budget) {
		runtime.GC() // start every repetition from a collected heap
		d := w.run()
		total += d
		samples = append(samples, float64(d.Nanoseconds())/w.div)
	}
	sort.Float64s(samples)
	median := samples[len(samples)/2]
	if len(samples)%2 == 0 {
		median = (samples[len(samples)/2-1] + samples[len(samples)/2]) / 2
	}
	scale := 1.0
	if w.unit == "ms" {
		scale = 1e-6
	}
	fmt.Fprintf(os.Stderr, "weftpeers: %s procs=%d reps=%d min=%.4g median=%.4g max=%.4g %s\n",
		w.name, p, len(samples), samples[0]*scale, median*scale, samples[len(samples)-1]*scale, w.unit)
	fmt.Printf("BENCH %s %s %s\n", w.name, format(median*scale), w.unit)
}

// format prints about four significant digits without exponent notation.
func format(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
