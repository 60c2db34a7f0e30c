package jetbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// The histograms count every event once in QueueTime and every attempt
// that returned in HandlerTime, and a handler of a known cost shows up in
// the buckets of that cost. Events are stored before the consumer starts
// and a conveyor handles one at a time, so event k waits at least k-1
// handler calls on the server.
func TestTimings(t *testing.T) {
	const (
		events = 8
		cost   = 3 * time.Millisecond
	)
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	opts := []jetbus.Option{jetbus.WithConveyors(1), jetbus.WithExactConveyors(),
		jetbus.WithMemoryStorage(), jetbus.WithRetry(2, time.Millisecond, time.Millisecond)}
	prod := newBus[int](t, nc, "smelt", nil, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id := uint64(1); id <= events; id++ {
		if err := prod.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			t.Fatal(err)
		}
	}

	// Event 3 fails once after its cost, event 5 panics once at once:
	// events+1 attempts return, one more panics.
	var mu sync.Mutex
	tried := map[uint64]int{}
	var e errs
	b := newBus(t, nc, "smelt", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		mu.Lock()
		tried[ev.ID]++
		first := tried[ev.ID] == 1
		mu.Unlock()
		if ev.ID == 5 && first {
			panic("slag in the furnace")
		}
		time.Sleep(cost) // the handler's cost, under test
		if ev.ID == 3 && first {
			return errors.New("furnace too cold")
		}
		return nil
	}, append(opts, jetbus.WithErrorHandler(e.handler()))...)
	eventually(t, 10*time.Second, "every event consumed", func() bool {
		return b.Stats().Conveyors[0].Consumed == events
	})

	cs := b.Stats().Conveyors[0]
	if cs.Failed != 1 || cs.Panicked != 1 || cs.Retried != 2 {
		t.Errorf("failed %d, panicked %d, retried %d; want 1, 1, 2 (reported: %v)",
			cs.Failed, cs.Panicked, cs.Retried, e.all())
	}
	h := cs.HandlerTime
	if h.Count != events+1 || bucketTotal(h) != h.Count {
		t.Errorf("HandlerTime counts %d (buckets %d); want %d attempts that returned",
			h.Count, bucketTotal(h), events+1)
	}
	if min := time.Duration(h.Count) * cost; h.Sum < min {
		t.Errorf("HandlerTime sums %v; want at least %d × %v = %v", h.Sum, h.Count, cost, min)
	}
	// Generous for a loaded machine, and still far below a unit error.
	if max := time.Duration(h.Count) * (cost + time.Second); h.Sum > max {
		t.Errorf("HandlerTime sums %v; want at most %v", h.Sum, max)
	}
	if n := below(h, cost); n != 0 {
		t.Errorf("HandlerTime has %d attempts in buckets below %v: %v", n, cost, h.Buckets)
	}

	q := cs.QueueTime
	if q.Count != events || bucketTotal(q) != q.Count {
		t.Errorf("QueueTime counts %d (buckets %d); want one per event, %d",
			q.Count, bucketTotal(q), events)
	}
	// Event k waited for k-1 calls; the panicking one costs nothing.
	waited := time.Duration(0)
	for k := 1; k <= events; k++ {
		calls := k - 1
		if k > 5 {
			calls--
		}
		waited += time.Duration(calls) * cost
	}
	if q.Sum < waited {
		t.Errorf("QueueTime sums %v; want at least %v", q.Sum, waited)
	}
	if last := (events - 2) * cost; q.Count-below(q, last) == 0 {
		t.Errorf("QueueTime has no event in the buckets of %v and above: %v", last, q.Buckets)
	}
}

// bucketTotal adds up the buckets of h.
func bucketTotal(h mainbus.Histogram) uint64 {
	n := uint64(0)
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// below counts the durations of h in buckets whose upper bound is below d,
// so that are surely shorter than d.
func below(h mainbus.Histogram, d time.Duration) uint64 {
	n := uint64(0)
	for i, c := range h.Buckets {
		if mainbus.HistogramBound(i) < d {
			n += c
		}
	}
	return n
}
