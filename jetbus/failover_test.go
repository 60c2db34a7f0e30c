package jetbus_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// A worker killed mid-stream, with another on standby: its conveyors move
// to the standby within the pin TTL, and every event is handled.
func TestFailover(t *testing.T) {
	const (
		pinTTL  = 2 * time.Second
		ackWait = 2 * time.Second
		total   = 200
		killAt  = 60 // the event worker A is handling when it dies
	)
	srv := startServer(t, "", 0)
	opts := []jetbus.Option{jetbus.WithConveyors(2), jetbus.WithBalancer(mainbus.RoundRobin()),
		jetbus.WithPinTTL(pinTTL), jetbus.WithAckWait(ackWait),
		jetbus.WithMonitor(100 * time.Millisecond)}

	// Worker A handles events until killAt, where it hangs.
	seen := newTally()
	reached, release := make(chan struct{}), make(chan struct{})
	var reachOnce sync.Once
	ncA := connect(t, srv.URL())
	a := newBus(t, ncA, "gears", func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		seen.add(ev)
		if ev.ID == killAt {
			reachOnce.Do(func() { close(reached) })
			<-release
		}
		return nil
	}, opts...)
	producer := newBus[int](t, connect(t, srv.URL()), "gears", nil, opts...)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	produce := func(from, to uint64) {
		for id := from; id <= to; id++ {
			if err := producer.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
				t.Fatalf("produce %d: %v", id, err)
			}
		}
	}
	// A takes both conveyors before B starts.
	produce(1, 2)
	eventually(t, 5*time.Second, "A owns both conveyors", func() bool {
		s := a.Stats()
		return seen.distinct() == 2 && s.Server[0].Owned && s.Server[1].Owned
	})

	var firstB atomic.Int64 // unix nanos of B's first event
	b := newBus(t, connect(t, srv.URL()), "gears",
		func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			firstB.CompareAndSwap(0, time.Now().UnixNano())
			seen.add(ev)
			return nil
		}, opts...)

	produce(3, total)
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("A never reached the event it dies on")
	}
	killed := time.Now()
	ncA.Close() // A dies: its pulls and its ack of killAt are gone
	close(release)

	eventually(t, pinTTL+ackWait+5*time.Second, "every event handled after A died",
		func() bool { return seen.distinct() == total })
	took := time.Duration(firstB.Load() - killed.UnixNano())
	if firstB.Load() == 0 || took > pinTTL+2*time.Second {
		t.Errorf("B took its first event %v after A died; want within the pin TTL %v",
			took, pinTTL)
	}
	if seen.seen(killAt) < 2 {
		t.Errorf("event %d handled %d times; want again by B after A died mid-event",
			killAt, seen.seen(killAt))
	}
	// One more event per conveyor: B owns both now. (It learns that it
	// owns a conveyor from the events delivered to it.)
	produce(total+1, total+2)
	eventually(t, 5*time.Second, "B owns both conveyors", func() bool {
		s := b.Stats()
		return s.Server[0].Owned && s.Server[1].Owned
	})
	t.Logf("B took over %v after A died", took)
}
