// CPU-parallel fork-join workloads: line-by-line translations of the serial
// code in bench/forkjoin.h (shared by weft's bench/bench_forkjoin.cc and the
// oneTBB and OpenMP peers), forked with goroutines and a sync.WaitGroup.
//
//	qsort   quicksort of 20,000,000 ints (the same 31-bit splitmix64 values
//	        from the same seed, in a []int: Go's natural int is 64-bit),
//	        regenerated before each repetition outside the timed region;
//	        Hoare partition around the median of first/middle/last, both
//	        halves in goroutines, sort.Ints below 4096. Checked sorted and
//	        summed after each run. Unit ms.
//	mandel  2000x2000 Mandelbrot of [-2,0.5]x[-1.25,1.25], at most 256
//	        iterations, a goroutine per block of 8 rows (250 goroutines);
//	        checked against the same checksum as the C++ programs. Unit ms.
package main

import (
	"sort"
	"sync"
	"time"
)

const (
	sortN      = 20_000_000
	sortCutoff = 4096
	sortSeed   = 0x5eed5eed2024

	mandelW       = 2000
	mandelH       = 2000
	mandelBlocks  = 250
	mandelRows    = mandelH / mandelBlocks
	mandelMaxIter = 256
	mandelSum     = 269789452
)

func init() {
	register(workload{name: "qsort", unit: "ms", div: 1, run: runQsort})
	register(workload{name: "mandel", unit: "ms", div: 1, run: runMandel})
}

var sortData []int

func sortFill(a []int) uint64 {
	s, sum := uint64(sortSeed), uint64(0)
	for i := range a {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		a[i] = int(z >> 33)
		sum += uint64(a[i])
	}
	return sum
}

func sortPartition(a []int) int {
	n := len(a)
	x, y, z := a[0], a[n/2], a[n-1]
	var p int
	if x < y {
		if y < z {
			p = y
		} else if x < z {
			p = z
		} else {
			p = x
		}
	} else {
		if x < z {
			p = x
		} else if y < z {
			p = z
		} else {
			p = y
		}
	}
	i, j := -1, n
	for {
		for {
			i++
			if a[i] >= p {
				break
			}
		}
		for {
			j--
			if a[j] <= p {
				break
			}
		}
		if i >= j {
			return j + 1
		}
		a[i], a[j] = a[j], a[i]
	}
}

func qsortPar(a []int) {
	if len(a) < sortCutoff {
		sort.Ints(a)
		return
	}
	k := sortPartition(a)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { qsortPar(a[:k]); wg.Done() }()
	go func() { qsortPar(a[k:]); wg.Done() }()
	wg.Wait()
}

func runQsort() time.Duration {
	if sortData == nil {
		sortData = make([]int, sortN)
	}
	a := sortData
	sum := sortFill(a)
	start := time.Now()
	qsortPar(a)
	d := time.Since(start)
	s := uint64(0)
	for i, v := range a {
		if i > 0 && a[i-1] > v {
			panic("qsort: not sorted")
		}
		s += uint64(v)
	}
	if s != sum {
		panic("qsort: wrong sum")
	}
	return d
}

var mandelImg []uint16

func mandelBlock(block int, img []uint16) {
	const x0, y0, dx, dy = -2.0, -1.25, 2.5 / mandelW, 2.5 / mandelH
	for row := block * mandelRows; row < (block+1)*mandelRows; row++ {
		ci := y0 + float64(row)*dy
		for col := 0; col < mandelW; col++ {
			cr := x0 + float64(col)*dx
			var zr, zi, zr2, zi2 float64
			it := 0
			for it < mandelMaxIter && zr2+zi2 <= 4.0 {
				zi = 2*zr*zi + ci
				zr = zr2 - zi2 + cr
				zr2 = zr * zr
				zi2 = zi * zi
				it++
			}
			img[row*mandelW+col] = uint16(it)
		}
	}
}

func runMandel() time.Duration {
	if mandelImg == nil {
		mandelImg = make([]uint16, mandelW*mandelH)
	}
	img := mandelImg
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(mandelBlocks)
	for b := 0; b < mandelBlocks; b++ {
		go func(b int) {
			mandelBlock(b, img)
			wg.Done()
		}(b)
	}
	wg.Wait()
	d := time.Since(start)
	s := uint64(0)
	for _, v := range img {
		s += uint64(v)
	}
	if s != mandelSum {
		panic("mandel: wrong checksum")
	}
	return d
}
