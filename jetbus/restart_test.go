package jetbus_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
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

// In Ordered mode, an event handled here whose ack the server lost is
// not handled again when the server delivers it anew, even as a first
// delivery. A server killed before it wrote the delivery to disk does
// that after its restart; the test stands in for the kill by restarting
// the server on a copy of its storage taken before the delivery.
func TestOrderedRedeliveryAfterLostState(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, 0)
	port := srv.Port()
	nc := connect(t, srv.URL())
	opts := []jetbus.Option{jetbus.WithConveyors(1), jetbus.WithExactConveyors(),
		jetbus.WithAckWait(time.Second), jetbus.WithPublishWait(time.Second),
		jetbus.WithPinTTL(2 * time.Second)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The conveyor's consumer exists and holds event 1, not yet delivered.
	first := newBus(t, nc, "lost", newTally().handler(), opts...)
	closeBus(t, first)
	prod := newBus[int](t, nc, "lost", nil, opts...)
	if err := prod.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	before := t.TempDir()
	if err := os.CopyFS(before, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, dir, port)

	// The worker handles event 1; while its handler runs, the server
	// stops and comes back on the storage of before the delivery. The ack
	// finds nothing to acknowledge, and the worker's next pull gets
	// event 1 again, as a first delivery.
	var calls atomic.Int64
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var e errs
	worker := newBus(t, nc, "lost", func(context.Context, int, mainbus.Event[int]) error {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return nil
	}, append(opts, jetbus.WithErrorHandler(e.handler()))...)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("event 1 never delivered")
	}
	srv.Shutdown()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(before)); err != nil {
		t.Fatal(err)
	}
	startServer(t, dir, port)
	close(release)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	eventually(t, 15*time.Second, "event 1 acknowledged", func() bool {
		s, err := js.Stream(ctx, jetbus.StreamName("lost"))
		if err != nil {
			return false
		}
		si, err := s.Info(ctx)
		return err == nil && si.State.Msgs == 0 && worker.Stats().Total().Consumed == 1
	})
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times for event 1; want 1 (errors %v)", n, e.all())
	}
	if s := worker.Stats().Server[0]; s.Duplicates != 1 {
		t.Errorf("%d duplicates counted; want 1 (stats %+v)", s.Duplicates, s)
	}
	// Before the cleanups, which stop the last server first.
	closeBus(t, worker)
}
