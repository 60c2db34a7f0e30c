package main

import (
	"sync"
	"sync/atomic"
	"testing"
)

// runRaw is the hand-rolled baseline, as benchRaw in the main module: a
// slice of buffered channels, one goroutine draining each, producers
// sending round-robin from a counter of their own.
func runRaw(b *testing.B, producers int) error {
	var sum atomic.Int64
	chans := make([]chan int, conveyors)
	var consumers sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan int, buffer)
		consumers.Go(func() {
			var s int64
			for v := range chans[i] {
				s += int64(v)
			}
			sum.Add(s)
		})
	}

	b.ResetTimer()
	_ = split(b.N, producers, func(count int) error {
		for i := range count {
			chans[i%conveyors] <- 1
		}
		return nil
	})
	for _, ch := range chans {
		close(ch)
	}
	consumers.Wait()
	b.StopTimer()
	return checkSum(sum.Load(), b.N)
}
