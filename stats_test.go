package mainbus_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
)

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {1, 0}, {125, 0}, {126, 1}, {250, 1}, {251, 2},
		{time.Microsecond, 3}, {time.Microsecond + 1, 4}, {time.Millisecond, 13},
		{3 * time.Millisecond, 15}, {mainbus.HistogramBound(29), 29},
		{mainbus.HistogramBound(29) + 1, 30}, {time.Hour, 30}, {math.MaxInt64, 30},
	} {
		if got := mainbus.BucketOf(int64(tc.d)); got != tc.want {
			t.Errorf("bucket of %v = %d; want %d", tc.d, got, tc.want)
		}
	}
	for i := range mainbus.HistogramBuckets - 1 {
		lo, hi := time.Duration(0), mainbus.HistogramBound(i)
		if i > 0 {
			lo = mainbus.HistogramBound(i - 1)
		}
		if got := mainbus.BucketOf(int64(hi)); got != i {
			t.Errorf("bucket of bound %d (%v) = %d", i, hi, got)
		}
		if got := mainbus.BucketOf(int64(lo) + 1); got != i {
			t.Errorf("bucket of %v, just over bound %d, = %d; want %d", lo+1, i-1, got, i)
		}
	}
	for _, i := range []int{-1, mainbus.HistogramBuckets} {
		if got := mainbus.HistogramBound(i); got != 0 {
			t.Errorf("HistogramBound(%d) = %v; want 0", i, got)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	var h mainbus.Histogram
	if q := h.Quantile(0.5); q != 0 || h.Mean() != 0 {
		t.Errorf("empty histogram: median %v, mean %v; want 0, 0", q, h.Mean())
	}
	// 100 durations in (1µs, 2µs], bucket 4.
	h.Buckets[4], h.Count, h.Sum = 100, 100, 150*time.Microsecond
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0, time.Microsecond}, {0.5, 1500 * time.Nanosecond}, {1, 2 * time.Microsecond},
		{-1, time.Microsecond}, {2, 2 * time.Microsecond}, {math.NaN(), 0},
	} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v; want %v", tc.q, got, tc.want)
		}
	}
	if m := h.Mean(); m != 1500*time.Nanosecond {
		t.Errorf("Mean = %v; want 1.5µs", m)
	}
	// One more, past the last finite bound: the top quantile is that bound.
	h.Buckets[mainbus.HistogramBuckets-1]++
	if got, want := h.Quantile(1), mainbus.HistogramBound(mainbus.HistogramBuckets-2); got != want {
		t.Errorf("Quantile(1) with an overflow = %v; want %v", got, want)
	}
}

// With a fake clock every duration is exact: a handler that takes 3 ms
// per event, and events produced together, each waiting for those before.
func TestTimingsAreExact(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const events, cost = 5, 3 * time.Millisecond
		b := slowBus(t, events, cost)
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := b.Stats().Conveyors[0]

		var work mainbus.Histogram
		work.Count, work.Sum = events, events*cost
		work.Buckets[mainbus.BucketOf(int64(cost))] = events
		if s.HandlerTime != work {
			t.Errorf("HandlerTime = %+v; want %+v", s.HandlerTime, work)
		}
		// Event i waits i·3ms: 0, 3, 6, 9, 12 ms.
		var queue mainbus.Histogram
		for i := range events {
			d := time.Duration(i) * cost
			queue.Count++
			queue.Sum += d
			queue.Buckets[mainbus.BucketOf(int64(d))]++
		}
		if s.QueueTime != queue {
			t.Errorf("QueueTime = %+v; want %+v", s.QueueTime, queue)
		}
	})
}

// A stack handed to a stack handler, or to a handler of single events,
// is timed once: each event counts as taking the stack's mean.
func TestStackTimingsShareTheMean(t *testing.T) {
	t.Parallel()
	for _, stacked := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			const events, cost = 10, time.Millisecond
			opts := []mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}
			var b *mainbus.Bus[int]
			var err error
			if stacked {
				b, err = mainbus.NewStacked("iron",
					func(_ context.Context, _ int, evs []mainbus.Event[int]) error {
						time.Sleep(time.Duration(len(evs)) * cost)
						return nil
					}, opts...)
			} else {
				b, err = mainbus.New("iron", func(context.Context, int, mainbus.Event[int]) error {
					time.Sleep(cost)
					return nil
				}, opts...)
			}
			if err != nil {
				t.Fatal(err)
			}
			evs := make([]mainbus.Event[int], events)
			if err := b.ProduceBatch(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := b.Stats().Conveyors[0]
			var want mainbus.Histogram
			want.Count, want.Sum = events, events*cost
			want.Buckets[mainbus.BucketOf(int64(cost))] = events
			if s.HandlerTime != want {
				t.Errorf("stacked %v: HandlerTime = %+v; want %+v", stacked, s.HandlerTime, want)
			}
			if s.QueueTime.Count != events || s.QueueTime.Sum != 0 {
				t.Errorf("stacked %v: QueueTime = %+v; want %d events that did not wait",
					stacked, s.QueueTime, events)
			}
		})
	}
}

// A failed attempt is timed, a panicked one is not, and the backoff
// before a retry counts neither as handler time nor in queue.
func TestRetriesAreTimedPerAttempt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const cost = time.Millisecond
		calls := 0
		b, err := mainbus.New("iron", func(context.Context, int, mainbus.Event[int]) error {
			calls++
			time.Sleep(cost)
			switch calls {
			case 1:
				return errors.New("first attempt fails")
			case 2:
				panic("second attempt panics")
			}
			return nil
		}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
			mainbus.WithRetry(3, time.Second, time.Second),
			mainbus.WithErrorHandler(func(error) {}))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Produce(context.Background(), mainbus.Event[int]{ID: 1}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := b.Stats().Conveyors[0]
		if s.Retried != 2 || s.Consumed != 1 {
			t.Fatalf("Retried %d, Consumed %d; want 2, 1", s.Retried, s.Consumed)
		}
		if h := s.HandlerTime; h.Count != 2 || h.Sum != 2*cost {
			t.Errorf("HandlerTime counts %d attempts taking %v; want 2 taking %v",
				h.Count, h.Sum, 2*cost)
		}
		if q := s.QueueTime; q.Count != 1 || q.Sum != 0 {
			t.Errorf("QueueTime counts %d taking %v; want 1 that did not wait", q.Count, q.Sum)
		}
	})
}

// A producer waiting for room shows in Blocked while it waits, and in
// Blocks and BlockedTime once it is through.
func TestBackpressureIsCounted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		b, err := mainbus.New("iron", func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
			hold(ctx, gate)
			return nil
		}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for id := range uint64(2) { // one in the handler, one in the buffer
			if err := b.Produce(ctx, mainbus.Event[int]{ID: id + 1}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait() // the first is in the handler before the second comes
		}
		var wg sync.WaitGroup
		for id := range uint64(2) {
			wg.Go(func() {
				if err := b.Produce(ctx, mainbus.Event[int]{ID: id + 3}); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait()
		s := b.Stats().Conveyors[0]
		if s.Blocked != 2 || s.Blocks != 2 || s.BlockedTime != 0 {
			t.Errorf("while waiting: Blocked %d, Blocks %d, BlockedTime %v; want 2, 2, 0",
				s.Blocked, s.Blocks, s.BlockedTime)
		}
		time.Sleep(time.Second) // the wait measured, on the fake clock
		close(gate)
		wg.Wait()
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		s = b.Stats().Conveyors[0]
		if s.Blocked != 0 || s.Blocks != 2 || s.BlockedTime < 2*time.Second {
			t.Errorf("after: Blocked %d, Blocks %d, BlockedTime %v; want 0, 2, at least 2s",
				s.Blocked, s.Blocks, s.BlockedTime)
		}
		if s.Consumed != 4 {
			t.Errorf("Consumed %d; want 4", s.Consumed)
		}
	})
}

// Stats read while producers, consumers and a Resize run never show a
// negative gauge, a depth past capacity or a counter going down; once
// the bus has closed, every total adds up.
func TestStatsUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, policy := range []mainbus.Overflow{mainbus.Block, mainbus.DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			const producers, each = 8, 2000
			b := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil },
				mainbus.WithConveyors(4), mainbus.WithBuffer(2), mainbus.WithOverflow(policy),
				mainbus.WithBalancer(mainbus.RoundRobin()))

			stop := make(chan struct{})
			var readers sync.WaitGroup
			for range 2 {
				readers.Go(func() { watchStats(t, b, stop) })
			}
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					for i := range each {
						ev := mainbus.Event[int]{ID: uint64(p*each + i + 1)}
						if err := b.Produce(context.Background(), ev); err != nil {
							t.Errorf("Produce: %v", err)
							return
						}
					}
				})
			}
			for _, n := range []int{6, 3} {
				if err := b.Resize(context.Background(), n); err != nil {
					t.Errorf("Resize(%d): %v", n, err)
				}
			}
			wg.Wait()
			if err := b.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			close(stop)
			readers.Wait()

			tot := b.Stats().Total()
			if tot.Produced != producers*each || tot.Consumed+tot.Dropped != tot.Produced {
				t.Errorf("Produced %d, Consumed %d, Dropped %d; want %d = Consumed + Dropped",
					tot.Produced, tot.Consumed, tot.Dropped, producers*each)
			}
			if policy == mainbus.Block && tot.Dropped != 0 {
				t.Errorf("Block dropped %d events", tot.Dropped)
			}
			checkTimings(t, tot)
			if tot.Blocks > 0 && tot.BlockedTime <= 0 {
				t.Errorf("%d waits for room took %v; want more than 0", tot.Blocks, tot.BlockedTime)
			}
		})
	}
}

// watchStats reads b's Stats until stop closes, checking each snapshot
// and each against the one before.
func watchStats[T any](t *testing.T, b *mainbus.Bus[T], stop <-chan struct{}) {
	var last []mainbus.ConveyorStats
	for {
		select {
		case <-stop:
			return
		default:
		}
		s := b.Stats()
		if s.Active < 0 || s.Active > len(s.Conveyors) || s.Draining < 0 {
			t.Errorf("Active %d of %d conveyors, Draining %d",
				s.Active, len(s.Conveyors), s.Draining)
			return
		}
		for i, c := range s.Conveyors {
			if c.Depth < 0 || c.Depth > c.Capacity || c.Blocked < 0 || c.BlockedTime < 0 {
				t.Errorf("L%d: Depth %d of %d, Blocked %d, BlockedTime %v",
					i, c.Depth, c.Capacity, c.Blocked, c.BlockedTime)
				return
			}
			if i >= len(last) {
				continue
			}
			p := last[i]
			if c.Produced < p.Produced || c.Consumed < p.Consumed || c.Dropped < p.Dropped ||
				c.Blocks < p.Blocks || c.BlockedTime < p.BlockedTime ||
				c.QueueTime.Count < p.QueueTime.Count || c.HandlerTime.Count < p.HandlerTime.Count {
				t.Errorf("L%d went down: %+v after %+v", i, c, p)
				return
			}
		}
		last = s.Conveyors
	}
}

func TestStatsOf(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, int, mainbus.Event[int]) error { return nil }
	iron := newBus(t, nop)
	copper, err := mainbus.New("copper", func(context.Context, int, mainbus.Event[string]) error {
		return nil
	}, mainbus.WithConveyors(3), mainbus.WithExactConveyors())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(copper) })
	buses := []mainbus.Member{copper, iron}
	stats := mainbus.StatsOf(buses...)
	buses[0] = iron // StatsOf keeps its own list
	if err := copper.Produce(context.Background(), mainbus.Event[string]{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, func() bool {
		s := stats()
		return len(s) == 2 && s[0].Total().Consumed == 1
	})
	s := stats()
	if s[0].Resource != "copper" || len(s[0].Conveyors) != 3 || s[1].Resource != "iron" {
		t.Errorf("StatsOf gave %s (%d conveyors), %s; want copper (3), iron",
			s[0].Resource, len(s[0].Conveyors), s[1].Resource)
	}
}

func TestHistogramObserve(t *testing.T) {
	t.Parallel()
	var h mainbus.Histogram
	for _, d := range []time.Duration{-time.Second, 0, 3 * time.Millisecond, time.Hour} {
		h.Observe(d)
	}
	want := mainbus.Histogram{Count: 4, Sum: time.Hour + 3*time.Millisecond}
	want.Buckets[0] = 2
	want.Buckets[mainbus.BucketOf(int64(3*time.Millisecond))] = 1
	want.Buckets[mainbus.HistogramBuckets-1] = 1
	if h != want {
		t.Errorf("after 4 observations: %+v; want %+v", h, want)
	}
}

// Rejected counts every event handed back for want of room: by Produce
// and TryProduce one at a time, by ProduceBatch all it hands back,
// including those after the refused stack, which were not tried.
func TestRejectedCountsWhatIsHandedBack(t *testing.T) {
	t.Parallel()
	gate, open := newGate(t)
	taken := make(chan struct{}, 1)
	b := newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
		select {
		case taken <- struct{}{}:
		default:
		}
		hold(ctx, gate)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
		mainbus.WithOverflow(mainbus.Reject))
	ctx := context.Background()
	if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
		t.Fatal(err)
	}
	recv(t, taken, "event 1 in the handler")
	// The first stack of 64 takes the one free slot; the rest find none.
	err := b.ProduceBatch(ctx, make([]mainbus.Event[int], 200))
	var be *mainbus.BatchError[int]
	if !errors.As(err, &be) || !errors.Is(err, mainbus.ErrFull) || len(be.Rejected) != 136 {
		t.Fatalf("ProduceBatch = %v; want ErrFull with 136 events handed back", err)
	}
	if err := b.TryProduce(mainbus.Event[int]{ID: 2}); !errors.Is(err, mainbus.ErrFull) {
		t.Fatalf("TryProduce = %v; want ErrFull", err)
	}
	if got := b.Stats().Total().Rejected; got != 137 {
		t.Errorf("Rejected = %d; want 137", got)
	}
	open()
	closeBus(b)
	if tot := b.Stats().Total(); tot.Consumed != 65 || tot.Produced != 65 {
		t.Errorf("Produced %d, Consumed %d; want 65, 65", tot.Produced, tot.Consumed)
	}
}

// A busy conveyor publishes its timings at least every 50 ms, even when
// it handles fewer than 64 events in that time and never runs empty.
func TestTimingsArePublishedWhileBusy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const events, cost = 20, 10 * time.Millisecond
		b := slowBus(t, events, cost)
		time.Sleep(10*cost + cost/2) // ten events handled, the conveyor still busy
		s := b.Stats().Conveyors[0]
		if s.Consumed != 10 || s.HandlerTime.Count < 5 || s.HandlerTime.Count > 10 {
			t.Errorf("after 10 events of 20: Consumed %d, HandlerTime counts %d; "+
				"want 10, and 5 to 10 published", s.Consumed, s.HandlerTime.Count)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := b.Stats().Conveyors[0].HandlerTime.Count; n != events {
			t.Errorf("after Close HandlerTime counts %d; want %d", n, events)
		}
	})
}

// slowBus builds, in a synctest bubble, a bus of one conveyor whose
// handler takes cost per event on the fake clock, and produces events on
// it at once.
func slowBus(t *testing.T, events int, cost time.Duration) *mainbus.Bus[int] {
	t.Helper()
	b, err := mainbus.New("iron", func(context.Context, int, mainbus.Event[int]) error {
		time.Sleep(cost) // the handler's work, on the fake clock
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(events))
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		ev := mainbus.Event[int]{ID: uint64(i + 1)}
		if err := b.Produce(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
