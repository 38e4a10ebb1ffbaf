// pread from goroutines (mirrors bench/bench_blocking.cc, job 2).
//
//	blocking_pread_T  T goroutines (T = 1, 8, 64; GOMAXPROCS from -procs)
//	                  make 20,000 calls in all of a 4 KiB syscall.Pread at a
//	                  random 4 KiB offset of a 4 MiB file in the page cache.
//	                  Each call enters the kernel through Go's syscall path
//	                  (entersyscall/exitsyscall; the sysmon hands the P off
//	                  if the call stays blocked). Unit ns/call = the caller's
//	                  view: wall time / calls made by each goroutine.
package main

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

const (
	blkCalls    = 20000
	blkFileSize = 4 << 20
	blkBlock    = 4096
)

var blkFd = -1

func blkFile() int {
	if blkFd >= 0 {
		return blkFd
	}
	f, err := os.CreateTemp("", "weft-peer-blocking.")
	if err != nil {
		panic(err)
	}
	os.Remove(f.Name())
	buf := make([]byte, 1<<16)
	for i := range buf {
		buf[i] = byte(i * 131)
	}
	for off := 0; off < blkFileSize; off += len(buf) {
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			panic(err)
		}
	}
	for off := 0; off < blkFileSize; off += len(buf) {
		if _, err := f.ReadAt(buf, int64(off)); err != nil {
			panic(err)
		}
	}
	blkFd = int(f.Fd())
	// Keep f reachable so its finalizer never closes the fd.
	blkKeep = f
	return blkFd
}

var blkKeep *os.File

func init() {
	for _, t := range []int{1, 8, 64} {
		t := t
		per := blkCalls / t
		register(workload{name: fmt.Sprintf("blocking_pread_%d", t), unit: "ns/call", div: float64(per),
			run: func() time.Duration { return runBlockingPread(t, per) }})
	}
}

func runBlockingPread(tasks, per int) time.Duration {
	fd := blkFile()
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < tasks; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			buf := make([]byte, blkBlock)
			for i := 0; i < per; i++ {
				seed = seed*6364136223846793005 + 1442695040888963407
				off := int64((seed >> 33) % (blkFileSize / blkBlock) * blkBlock)
				n, err := syscall.Pread(fd, buf, off)
				if err != nil || n != blkBlock {
					panic("pread failed")
				}
			}
		}(uint64(g + 1))
	}
	wg.Wait()
	return time.Since(start)
}
