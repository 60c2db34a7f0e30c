package jetbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// batch returns events with IDs from first to last, keyed round robin
// over keys named after their number (none when keys is 0).
func batch(first, last uint64, keys int) []mainbus.Event[int] {
	var evs []mainbus.Event[int]
	for id := first; id <= last; id++ {
		ev := mainbus.Event[int]{ID: id, Value: int(id)}
		if keys > 0 {
			ev.Key = fmt.Sprintf("k%d-%d", keys, id%uint64(keys))
		}
		evs = append(evs, ev)
	}
	return evs
}

// rejectedIDs checks that err is a BatchError of resource wrapping want
// and returns the IDs it hands back.
func rejectedIDs(t *testing.T, err error, resource string, want error) []uint64 {
	t.Helper()
	var be *mainbus.BatchError[int]
	if !errors.As(err, &be) || !errors.Is(err, want) || be.Resource != resource {
		t.Fatalf("ProduceBatch returned %T %v; want a BatchError of %s wrapping %v",
			err, err, resource, want)
	}
	var ids []uint64
	for _, ev := range be.Rejected {
		ids = append(ids, ev.ID)
	}
	return ids
}

// Every event of a batch is handled exactly once, the events of each key
// in the order given, with several batches at once, keyed and not.
func TestProduceBatchExactlyOnce(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ty := newTally()
	bus := newBus(t, nc, "batch", ty.handler(), jetbus.WithConveyors(4),
		jetbus.WithBalancer(mainbus.KeyHash()), jetbus.WithMemoryStorage(),
		jetbus.WithMaxPending(64)) // fewer than a batch: the window wraps
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const per = 500
	res := make(chan error, 3)
	for p, keys := range []int{7, 1, 0} { // many keys, one key, none
		go func() {
			first := uint64(p*per + 1)
			res <- bus.ProduceBatch(ctx, batch(first, first+per-1, keys))
		}()
	}
	for range 3 {
		if err := <-res; err != nil {
			t.Fatalf("ProduceBatch: %v", err)
		}
	}
	if err := bus.ProduceBatch(ctx, nil); err != nil {
		t.Fatalf("ProduceBatch of no events: %v", err)
	}
	eventually(t, 20*time.Second, "every event handled", func() bool {
		return ty.distinct() == 3*per
	})
	closeBus(t, bus)
	ty.checkOnceInOrder(t, 3*per)
	if s := bus.Stats().Total(); s.Produced != 3*per {
		t.Errorf("stats count %d produced; want %d", s.Produced, 3*per)
	}
}

// On full conveyors, a batch under Reject hands back exactly the events
// not stored, and later events of their keys; under Block it waits for
// room, or hands back what it could not store when its context ends.
func TestProduceBatchFull(t *testing.T) {
	const capacity = 4
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	opts := func(o mainbus.Overflow) []jetbus.Option {
		return []jetbus.Option{jetbus.WithConveyors(1), jetbus.WithExactConveyors(),
			jetbus.WithCapacity(capacity), jetbus.WithOverflow(o), jetbus.WithMemoryStorage(),
			jetbus.WithBalancer(mainbus.KeyHash())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("reject", func(t *testing.T) {
		g := newGate()
		b := newBus(t, nc, "breject", g.handler(), opts(mainbus.Reject)...)
		got := rejectedIDs(t, b.ProduceBatch(ctx, batch(1, 10, 3)), "breject",
			mainbus.ErrFull)
		if want := []uint64{5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
			t.Fatalf("BatchError hands back %v; want %v", got, want)
		}
		close(g.open)
		eventually(t, 5*time.Second, "the stored events handled", func() bool {
			return g.ty.distinct() == capacity
		})
		closeBus(t, b)
		for id := uint64(5); id <= 10; id++ {
			if g.ty.seen(id) > 0 {
				t.Errorf("event %d, handed back, was handled", id)
			}
		}
	})

	t.Run("block", func(t *testing.T) {
		g := newGate()
		b := newBus(t, nc, "bblock", g.handler(), opts(mainbus.Block)...)

		// A context that ends while the batch waits for room.
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		got := rejectedIDs(t, b.ProduceBatch(short, batch(1, 8, 2)), "bblock",
			context.DeadlineExceeded)
		if want := []uint64{5, 6, 7, 8}; !slices.Equal(got, want) {
			t.Fatalf("BatchError hands back %v; want %v", got, want)
		}

		// A batch that waits long enough gets in once the handler runs.
		res := make(chan error, 1)
		go func() { res <- b.ProduceBatch(ctx, batch(11, 18, 2)) }()
		eventually(t, 5*time.Second, "the batch counted as blocked", func() bool {
			return b.Stats().Total().Blocked == 1
		})
		close(g.open)
		if err := <-res; err != nil {
			t.Fatalf("blocked ProduceBatch: %v", err)
		}
		eventually(t, 10*time.Second, "every stored event handled", func() bool {
			return g.ty.distinct() == 12
		})
		closeBus(t, b)
		g.ty.mu.Lock()
		defer g.ty.mu.Unlock()
		for key, ids := range g.ty.byKey {
			if !slices.IsSorted(ids) {
				t.Errorf("key %s handled in the order %v; want the order given", key, ids)
			}
		}
		for id := uint64(5); id <= 8; id++ {
			if g.ty.count[id] > 0 {
				t.Errorf("event %d, handed back, was handled", id)
			}
		}
	})
}

// A batch on a closed bus, or with an event of another resource, is
// handed back whole.
func TestProduceBatchRefused(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	b := newBus[int](t, nc, "bclosed", nil, jetbus.WithMemoryStorage())
	ctx := context.Background()

	evs := batch(1, 3, 0)
	evs[2].Resource = "copper"
	got := rejectedIDs(t, b.ProduceBatch(ctx, evs), "bclosed", mainbus.ErrUnknownResource)
	if !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("BatchError hands back %v; want all of 1 2 3", got)
	}
	var noCtx context.Context
	if err := b.ProduceBatch(noCtx, evs); !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("ProduceBatch with a nil context: %v; want ErrInvalidOption", err)
	}

	closeBus(t, b)
	got = rejectedIDs(t, b.ProduceBatch(ctx, batch(1, 3, 0)), "bclosed", mainbus.ErrClosed)
	if !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("BatchError hands back %v; want all of 1 2 3", got)
	}
	if err := b.ProduceBatch(ctx, nil); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("ProduceBatch of no events on a closed bus: %v; want ErrClosed", err)
	}
}
