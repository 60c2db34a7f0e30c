package jetbus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// Every accepted event is handled exactly once in Ordered mode, with
// several producers, and the events of each key in the order produced.
func TestExactlyOnceInOrder(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ty := newTally()
	var e errs
	bus := newBus(t, nc, "iron", ty.handler(),
		jetbus.WithConveyors(4), jetbus.WithBalancer(mainbus.KeyHash()),
		jetbus.WithErrorHandler(e.handler()), jetbus.WithMemoryStorage())

	const producers, perProducer, keys = 4, 300, 5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				id := uint64(p*perProducer + i + 1)
				key := fmt.Sprintf("p%d-k%d", p, i%keys) // each key has one producer
				ev := mainbus.Event[int]{ID: id, Key: key, Value: int(id)}
				if err := bus.Produce(ctx, ev); err != nil {
					t.Errorf("produce %d: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()

	const total = producers * perProducer
	eventually(t, 20*time.Second, "every event handled", func() bool {
		return ty.distinct() == total
	})
	closeBus(t, bus)
	ty.checkOnceInOrder(t, total)
	s := bus.Stats()
	if got := s.Total(); got.Produced != total || got.Consumed != total {
		t.Errorf("stats produced %d consumed %d; want %d", got.Produced, got.Consumed, total)
	}
	if l := e.all(); len(l) > 0 {
		t.Errorf("errors reported: %v", l)
	}
}

// Throughput mode hands every event over once while nothing fails, in
// the order stored per conveyor.
func TestThroughputMode(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ty := newTally()
	bus := newBus(t, nc, "sand", ty.handler(), jetbus.WithMode(jetbus.Throughput),
		jetbus.WithMaxInFlight(64), jetbus.WithBalancer(mainbus.KeyHash()),
		jetbus.WithMemoryStorage())

	const total = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := p; i < total; i += 4 {
				ev := mainbus.Event[int]{ID: uint64(i + 1), Key: fmt.Sprint("k", p)}
				if err := bus.Produce(ctx, ev); err != nil {
					t.Errorf("produce: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, 10*time.Second, "every event handled", func() bool {
		return ty.distinct() == total
	})
	closeBus(t, bus)
	ty.checkOnceInOrder(t, total)
}
