package mainbus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus"
)

// The compared workload: producers hand small int events to 4 conveyors
// of 64 slots each, and each consumer adds the values up.
const (
	benchConveyors = 4
	benchBuffer    = 64
)

var benchProducers = []int{1, 8}

// split runs fn(count) on p goroutines whose counts add up to n, and waits.
func split(n, p int, fn func(count int)) {
	var wg sync.WaitGroup
	for i := range p {
		count := n / p
		if i < n%p {
			count++
		}
		wg.Go(func() { fn(count) })
	}
	wg.Wait()
}

// benchRaw is the hand-rolled baseline: a slice of buffered channels, one
// goroutine draining each, producers sending round-robin from a counter
// of their own.
func benchRaw(b *testing.B, producers int) {
	var sum atomic.Int64
	chans := make([]chan int, benchConveyors)
	var consumers sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan int, benchBuffer)
		consumers.Go(func() {
			var s int64
			for v := range chans[i] {
				s += int64(v)
			}
			sum.Add(s)
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	split(b.N, producers, func(count int) {
		for i := range count {
			chans[i%benchConveyors] <- 1
		}
	})
	for _, ch := range chans {
		close(ch)
	}
	consumers.Wait()
	b.StopTimer()
	if sum.Load() != int64(b.N) {
		b.Fatalf("summed %d, want %d", sum.Load(), b.N)
	}
}

// benchSingle runs the same workload through a bus, one Produce per event.
func benchSingle(b *testing.B, producers int, balancer mainbus.Balancer) {
	var sum atomic.Int64
	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		sum.Add(int64(ev.Value))
		return nil
	}, mainbus.WithConveyors(benchConveyors), mainbus.WithBuffer(benchBuffer),
		mainbus.WithBalancer(balancer))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	split(b.N, producers, func(count int) {
		for range count {
			if err := bus.Produce(ctx, mainbus.Event[int]{Value: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := bus.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if sum.Load() != int64(b.N) {
		b.Fatalf("summed %d, want %d", sum.Load(), b.N)
	}
}

// benchBatch is the number of events a stacked producer hands over in one
// ProduceBatch call.
const benchBatch = 256

// benchStacked runs the same workload with stacked belts: producers hand
// over batches and a stack handler takes a slot's stack in one call.
func benchStacked(b *testing.B, producers int) {
	var sum atomic.Int64
	bus, err := mainbus.NewStacked("iron", func(_ context.Context, _ int, evs []mainbus.Event[int]) error {
		var s int64
		for i := range evs {
			s += int64(evs[i].Value)
		}
		sum.Add(s)
		return nil
	}, mainbus.WithConveyors(benchConveyors), mainbus.WithBuffer(benchBuffer),
		mainbus.WithBalancer(mainbus.RoundRobin()))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	split(b.N, producers, func(count int) {
		batch := make([]mainbus.Event[int], 0, benchBatch)
		for count > 0 {
			n := min(count, benchBatch)
			batch = batch[:n]
			for i := range batch {
				batch[i].Value = 1 // ProduceBatch copies; the rest stays zero
			}
			if err := bus.ProduceBatch(ctx, batch); err != nil {
				b.Error(err)
				return
			}
			count -= n
		}
	})
	if err := bus.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if sum.Load() != int64(b.N) {
		b.Fatalf("summed %d, want %d", sum.Load(), b.N)
	}
}

// BenchmarkCompare puts a bus next to hand-rolled channels on the same
// workload, so that ratios come from one run.
func BenchmarkCompare(b *testing.B) {
	for _, p := range benchProducers {
		b.Run(fmt.Sprintf("raw-channels/p%d", p), func(b *testing.B) { benchRaw(b, p) })
		b.Run(fmt.Sprintf("single/p%d", p), func(b *testing.B) {
			benchSingle(b, p, mainbus.RoundRobin())
		})
		b.Run(fmt.Sprintf("stacked/p%d", p), func(b *testing.B) { benchStacked(b, p) })
	}
}

// BenchmarkBalancer measures each balancer on the single-event path.
func BenchmarkBalancer(b *testing.B) {
	balancers := []struct {
		name string
		new  func() mainbus.Balancer
	}{
		{"random", mainbus.Random},
		{"round-robin", mainbus.RoundRobin},
		{"key-hash", mainbus.KeyHash},
		{"jump-hash", mainbus.JumpHash},
		{"least-loaded", mainbus.LeastLoaded},
	}
	for _, bal := range balancers {
		b.Run(bal.name, func(b *testing.B) { benchSingle(b, 8, bal.new()) })
	}
}
