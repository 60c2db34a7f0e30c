package jetbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go"
)

// Close is idempotent, safe from many goroutines and from a handler, and
// Produce after it returns ErrClosed.
func TestClose(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("many goroutines", func(t *testing.T) {
		ty := newTally()
		b := newBus(t, nc, "close", ty.handler(), jetbus.WithMemoryStorage())
		if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := b.Close(ctx); err != nil {
					t.Errorf("close: %v", err)
				}
			})
		}
		wg.Wait()
		if err := b.Produce(ctx, mainbus.Event[int]{ID: 2}); !errors.Is(err, mainbus.ErrClosed) {
			t.Errorf("Produce after Close: %v; want ErrClosed", err)
		}
		if err := b.TryProduce(mainbus.Event[int]{ID: 3}); !errors.Is(err, mainbus.ErrClosed) {
			t.Errorf("TryProduce after Close: %v; want ErrClosed", err)
		}
	})

	t.Run("from a handler", func(t *testing.T) {
		var b *jetbus.Bus[int]
		ready := make(chan struct{})
		b = newBus(t, nc, "selfclose", func(ctx context.Context, _ int,
			_ mainbus.Event[int]) error {
			<-ready
			return b.Close(ctx)
		}, jetbus.WithMemoryStorage())
		close(ready)
		if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.Done():
		case <-ctx.Done():
			t.Fatal("Close from a handler never finished")
		}
	})
}

// With the server gone, Produce returns an error once its context ends
// instead of hanging, and says whether the event may have been stored.
func TestServerDown(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	b := newBus[int](t, nc, "down", nil, jetbus.WithMemoryStorage(),
		jetbus.WithPublishWait(300*time.Millisecond))
	srv.Shutdown()
	eventually(t, 5*time.Second, "the client sees the server gone", func() bool {
		return nc.Status() != nats.CONNECTED
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := b.Produce(ctx, mainbus.Event[int]{ID: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Produce with the server down: %v; want the context's error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Produce took %v with a 1s context", d)
	}
	if err := b.TryProduce(mainbus.Event[int]{ID: 2}); err == nil {
		t.Error("TryProduce with the server down succeeded")
	}
}

// A failing handler is retried up to the attempts given, reported, and
// its conveyor goes on; order holds in Ordered mode.
func TestHandlerFailure(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	var (
		mu    sync.Mutex
		order []uint64
		tries = map[uint64]int{}
	)
	var e errs
	b := newBus(t, nc, "flaky", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		mu.Lock()
		defer mu.Unlock()
		tries[ev.ID]++
		switch {
		case ev.ID == 2 && tries[2] < 3:
			return errors.New("not yet")
		case ev.ID == 4:
			panic("bad event")
		}
		order = append(order, ev.ID)
		return nil
	}, jetbus.WithConveyors(1), jetbus.WithExactConveyors(), jetbus.WithMemoryStorage(),
		jetbus.WithRetry(3, 10*time.Millisecond, 50*time.Millisecond),
		jetbus.WithErrorHandler(e.handler()))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id := uint64(1); id <= 5; id++ {
		if err := b.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "every event done with", func() bool {
		return b.Stats().Total().Consumed == 5
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3, 5}; len(order) != 4 || order[1] != 2 || order[3] != 5 {
		t.Errorf("handled %v; want %v", order, want)
	}
	if tries[4] != 3 {
		t.Errorf("panicking event tried %d times; want 3", tries[4])
	}
	s := b.Stats().Total()
	if s.Failed != 2 || s.Panicked != 3 || s.Retried != 4 {
		t.Errorf("failed %d panicked %d retried %d; want 2, 3, 4", s.Failed, s.Panicked,
			s.Retried)
	}
	var he *mainbus.HandlerError
	if l := e.all(); len(l) != 5 || !errors.As(l[0], &he) || he.EventID != 2 {
		t.Errorf("reported %v; want 5 HandlerErrors, the first for event 2", l)
	}
}
