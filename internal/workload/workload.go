// Package workload is the workload mainbus is compared on, shared by
// BenchmarkCompare and the bench command of cmd/mainbus so that both
// measure the same code: producers hand small int events (value 1) to 4
// conveyors of 64 slots each, and the consumers add the values up, once
// through hand-rolled channels (the baseline), once through a bus with one
// Produce per event, and once through a stacked bus fed by ProduceBatch.
//
// A case is set up first, untimed, and then run once with n events; the
// run includes the shutdown (drain) and checks that the consumers summed
// exactly n, so an event lost or handled twice is an error.
package workload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mainbus-go/mainbus"
)

// The shape of the workload.
const (
	Conveyors = 4   // conveyors (channels, consumers) per case
	Buffer    = 64  // events each conveyor holds
	Batch     = 256 // events a stacked producer hands over per ProduceBatch
)

// Producers returns the producer counts each case is run with.
func Producers() []int { return []int{1, 8} }

// A Run sends n events of value 1 from the producers its case was set up
// with, waits until every one is consumed and the shutdown is over, and
// returns an error if a producer or the shutdown failed or the consumers'
// sum is not n. It stops every goroutine its setup started. A Run may be
// called once.
//
// The producers look at ctx every [Batch] events and stop early when it
// ends; the run then shuts down as usual and returns ctx's error among its
// errors. Events are produced with context.Background, so a cancelable ctx
// does not change what is measured.
type Run func(ctx context.Context, n int) error

// A Case is one way of running the workload.
type Case struct {
	Name string // raw-channels, single or stacked

	// Setup builds the case for producers producer goroutines and starts
	// its consumers; the Run it returns must be called to stop them.
	Setup func(producers int) (Run, error)
}

// Cases returns the compared cases, the baseline first.
func Cases() []Case {
	return []Case{
		{"raw-channels", Raw},
		{"single", func(producers int) (Run, error) {
			return Single(producers, mainbus.RoundRobin())
		}},
		{"stacked", Stacked},
	}
}

// Options returns the options of the compared buses: [Conveyors]
// conveyors of [Buffer] events, placed by balancer (round-robin in
// [Cases]).
func Options(balancer mainbus.Balancer) []mainbus.Option {
	return []mainbus.Option{
		mainbus.WithConveyors(Conveyors),
		mainbus.WithBuffer(Buffer),
		mainbus.WithBalancer(balancer),
	}
}

// Raw sets up the hand-rolled baseline: a slice of buffered channels, one
// goroutine draining each, producers sending round-robin from a counter
// of their own. Its error is always nil.
func Raw(producers int) (Run, error) {
	var sum atomic.Int64
	chans := make([]chan int, Conveyors)
	var consumers sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan int, Buffer)
		consumers.Go(func() {
			var s int64
			for v := range chans[i] {
				s += int64(v)
			}
			sum.Add(s)
		})
	}
	return func(ctx context.Context, n int) error {
		err := Split(n, producers, func(count int) error {
			for sent := 0; sent < count; {
				if err := ctx.Err(); err != nil {
					return err
				}
				for end := min(sent+Batch, count); sent < end; sent++ {
					chans[sent%Conveyors] <- 1
				}
			}
			return nil
		})
		for _, ch := range chans {
			close(ch)
		}
		consumers.Wait()
		if err != nil {
			return err
		}
		return CheckSum(sum.Load(), n)
	}, nil
}

// keys are the keys of the events of Single, so that keyed balancers
// spread them; made once, so that no key is built on the measured path.
var keys = func() []string {
	k := make([]string, 64)
	for i := range k {
		k[i] = "key-" + strconv.Itoa(i)
	}
	return k
}()

// Single sets up the workload on a bus, one Produce per event.
func Single(producers int, balancer mainbus.Balancer) (Run, error) {
	var sum atomic.Int64
	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		sum.Add(int64(ev.Value))
		return nil
	}, Options(balancer)...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, n int) error {
		bg := context.Background()
		err := Split(n, producers, func(count int) error {
			for sent := 0; sent < count; {
				if err := ctx.Err(); err != nil {
					return err
				}
				for end := min(sent+Batch, count); sent < end; sent++ {
					ev := mainbus.Event[int]{Key: keys[sent%len(keys)], Value: 1}
					if err := bus.Produce(bg, ev); err != nil {
						return err
					}
				}
			}
			return nil
		})
		return finish(bus, err, &sum, n)
	}, nil
}

// Stacked sets up the workload with stacked belts: producers hand over
// batches of [Batch] events and a stack handler takes a slot's stack in
// one call.
func Stacked(producers int) (Run, error) {
	var sum atomic.Int64
	add := func(_ context.Context, _ int, evs []mainbus.Event[int]) error {
		var s int64
		for i := range evs {
			s += int64(evs[i].Value)
		}
		sum.Add(s)
		return nil
	}
	bus, err := mainbus.NewStacked("iron", add, Options(mainbus.RoundRobin())...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, n int) error {
		bg := context.Background()
		err := Split(n, producers, func(count int) error {
			batch := make([]mainbus.Event[int], 0, Batch)
			for count > 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				k := min(count, Batch)
				batch = batch[:k]
				for i := range batch {
					batch[i].Value = 1 // ProduceBatch copies; the rest stays zero
				}
				if err := bus.ProduceBatch(bg, batch); err != nil {
					return err
				}
				count -= k
			}
			return nil
		})
		return finish(bus, err, &sum, n)
	}, nil
}

// finish closes bus, draining it, and returns the producers' error, the
// shutdown's and the sum's, joined.
func finish(bus *mainbus.Bus[int], produceErr error, sum *atomic.Int64, n int) error {
	closeErr := bus.Close(context.Background())
	if produceErr != nil || closeErr != nil {
		return errors.Join(produceErr, closeErr)
	}
	return CheckSum(sum.Load(), n)
}

// Split runs fn(count) on p goroutines whose counts add up to n, waits
// for all of them and returns their errors joined.
func Split(n, p int, fn func(count int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, p)
	for i := range p {
		count := n / p
		if i < n%p {
			count++
		}
		wg.Go(func() { errs[i] = fn(count) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CheckSum reports whether the consumers' sum says every one of n events
// of value 1 arrived exactly once.
func CheckSum(sum int64, n int) error {
	if sum != int64(n) {
		return fmt.Errorf("consumers summed %d, want %d: events lost or handled twice", sum, n)
	}
	return nil
}
