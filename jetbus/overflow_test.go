package jetbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// gate is a handler that records events and holds each until released.
type gate struct {
	ty   *tally
	open chan struct{}
}

func newGate() *gate { return &gate{ty: newTally(), open: make(chan struct{})} }

func (g *gate) handler() mainbus.Handler[int] {
	return func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.ty.add(ev)
		return nil
	}
}

// A conveyor holding its capacity refuses new events under Reject and
// makes producers wait under Block; the server discards nothing.
func TestFullConveyor(t *testing.T) {
	const capacity = 4
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	opts := func(o mainbus.Overflow) []jetbus.Option {
		return []jetbus.Option{jetbus.WithConveyors(1), jetbus.WithExactConveyors(),
			jetbus.WithCapacity(capacity), jetbus.WithOverflow(o), jetbus.WithMemoryStorage()}
	}
	fill := func(t *testing.T, b *jetbus.Bus[int]) {
		t.Helper()
		for id := range uint64(capacity) {
			if err := b.TryProduce(mainbus.Event[int]{ID: id + 1}); err != nil {
				t.Fatalf("produce %d of %d: %v", id+1, capacity, err)
			}
		}
	}

	t.Run("reject", func(t *testing.T) {
		g := newGate()
		b := newBus(t, nc, "reject", g.handler(), opts(mainbus.Reject)...)
		fill(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := b.Produce(ctx, mainbus.Event[int]{ID: 99})
		var pe *mainbus.ProduceError
		if !errors.Is(err, mainbus.ErrFull) || !errors.As(err, &pe) || pe.Conveyor != 0 {
			t.Fatalf("Produce on a full conveyor: %v; want a ProduceError wrapping ErrFull", err)
		}
		if err := b.TryProduce(mainbus.Event[int]{ID: 98}); !errors.Is(err, mainbus.ErrFull) {
			t.Fatalf("TryProduce on a full conveyor: %v; want ErrFull", err)
		}
		close(g.open)
		eventually(t, 5*time.Second, "the accepted events handled", func() bool {
			return g.ty.distinct() == capacity
		})
		// Room again once handled.
		if err := b.Produce(ctx, mainbus.Event[int]{ID: 100}); err != nil {
			t.Fatalf("produce after the conveyor drained: %v", err)
		}
		eventually(t, 5*time.Second, "event 100 handled", func() bool {
			return g.ty.seen(100) == 1
		})
		closeBus(t, b)
		if g.ty.seen(98) > 0 || g.ty.seen(99) > 0 {
			t.Error("a rejected event was handled")
		}
	})

	t.Run("block", func(t *testing.T) {
		g := newGate()
		b := newBus(t, nc, "block", g.handler(), opts(mainbus.Block)...)
		fill(t, b)

		// A producer whose context ends while it waits: not stored.
		short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := b.Produce(short, mainbus.Event[int]{ID: 99})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetbus.ErrInDoubt) {
			t.Fatalf("Produce with a short context on a full conveyor: %v; "+
				"want DeadlineExceeded, not in doubt", err)
		}
		if err := b.TryProduce(mainbus.Event[int]{ID: 98}); !errors.Is(err, mainbus.ErrFull) {
			t.Fatalf("TryProduce on a full conveyor: %v; want ErrFull", err)
		}

		// A producer that waits long enough gets in once the handler runs.
		ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		res := make(chan error, 1)
		go func() { res <- b.Produce(ctx, mainbus.Event[int]{ID: 100}) }()
		eventually(t, 5*time.Second, "the producer counted as blocked", func() bool {
			return b.Stats().Total().Blocked == 1
		})
		close(g.open)
		if err := <-res; err != nil {
			t.Fatalf("blocked Produce: %v", err)
		}
		eventually(t, 5*time.Second, "every accepted event handled", func() bool {
			return g.ty.distinct() == capacity+1
		})
		closeBus(t, b)
		if g.ty.seen(98) > 0 || g.ty.seen(99) > 0 {
			t.Error("an event not accepted was handled")
		}
		if s := b.Stats().Total(); s.Blocks < 2 {
			t.Errorf("stats count %d waits for room; want 2", s.Blocks)
		}
	})
}
