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

// The server restarts mid-stream, on file storage: every event accepted
// before, during and after is handled.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	nc := connect(t, srv.URL())
	ty := newTally()
	var e errs
	var bus *jetbus.Bus[int]
	defer func() {
		if t.Failed() {
			t.Logf("stats %+v; errors %v", bus.Stats().Server, e.all())
		}
	}()
	bus = newBus(t, nc, "coal", ty.handler(), jetbus.WithConveyors(2),
		jetbus.WithErrorHandler(e.handler()), jetbus.WithMonitor(200*time.Millisecond),
		jetbus.WithPinTTL(2*time.Second), jetbus.WithAckWait(2*time.Second),
		jetbus.WithPublishWait(time.Second))

	const producers, perProducer = 2, 400
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		accepted []uint64
		produced atomic.Int64
		wg       sync.WaitGroup
	)
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				id := uint64(p*perProducer + i + 1)
				if err := bus.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
					t.Errorf("produce %d: %v", id, err)
					return
				}
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
				produced.Add(1)
			}
		})
	}

	eventually(t, 10*time.Second, "a third of the events produced", func() bool {
		return produced.Load() >= producers*perProducer/3
	})
	port := srv.Port()
	srv.Shutdown()
	startServer(t, dir, port)
	wg.Wait()

	mu.Lock()
	want := append([]uint64(nil), accepted...)
	mu.Unlock()
	if len(want) != producers*perProducer {
		t.Fatalf("%d events accepted of %d", len(want), producers*perProducer)
	}
	eventually(t, 8*time.Second, "every accepted event handled", func() bool {
		return ty.distinct() == len(want)
	})
	closeBus(t, bus)
	for _, id := range want {
		if ty.seen(id) == 0 {
			t.Errorf("accepted event %d never handled", id)
		}
	}
	s := bus.Stats().Total()
	t.Logf("handled %d times for %d events; produced %d", ty.total, len(want), s.Produced)
}
