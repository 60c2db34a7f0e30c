package jetbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go"
)

// A conveyor whose handler hangs shows up in Stats as pending and
// unacknowledged events and a stall, reported to the error handler.
func TestStallInStats(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	g := newGate()
	var e errs
	b := newBus(t, nc, "stall", g.handler(), jetbus.WithConveyors(1),
		jetbus.WithExactConveyors(), jetbus.WithMemoryStorage(),
		jetbus.WithMonitor(50*time.Millisecond), jetbus.WithErrorHandler(e.handler()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id := uint64(1); id <= 3; id++ {
		if err := b.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "a stall seen", func() bool {
		return b.Stats().Server[0].Stalls > 0
	})
	s := b.Stats()
	if sv := s.Server[0]; sv.Pending != 2 || sv.AckPending != 1 || sv.Stored != 3 || !sv.Owned {
		t.Errorf("server stats %+v; want 2 pending, 1 unacknowledged, 3 stored, owned", sv)
	}
	if s.Conveyors[0].Depth != 3 || s.Conveyors[0].Capacity != jetbus.DefaultCapacity {
		t.Errorf("depth %d of %d; want 3 of %d", s.Conveyors[0].Depth,
			s.Conveyors[0].Capacity, jetbus.DefaultCapacity)
	}
	if l := e.all(); len(l) == 0 || !errors.Is(l[0], jetbus.ErrStalled) {
		t.Errorf("reported %v; want ErrStalled", l)
	}
	close(g.open)
	eventually(t, 5*time.Second, "the stall over", func() bool {
		return g.ty.distinct() == 3 && b.Stats().Server[0].Stored == 0
	})
	if n := b.Stats().Server[0].Stalls; n != 1 {
		t.Errorf("%d stalls counted; want 1", n)
	}
}

// A publish to the key subject, as a producer in another language would
// send it, lands on the conveyor KeyHash picks for the key.
func TestKeySubject(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	got := make(chan [2]any, 16)
	newBus(t, nc, "tin", func(_ context.Context, c int, ev mainbus.Event[int]) error {
		got <- [2]any{c, ev.Key}
		return nil
	}, jetbus.WithConveyors(6), jetbus.WithMemoryStorage())

	keys := []string{"furnace-1", "furnace-2", "furnace-3", "a", "b", "c", "d"}
	for _, k := range keys {
		m := nats.NewMsg("mainbus.tin.key." + k)
		m.Header.Set("Mainbus-Key", k)
		m.Data = []byte("1")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	view := fixed(6)
	for range keys {
		select {
		case r := <-got:
			c, k := r[0].(int), r[1].(string)
			if want := mainbus.KeyHash().Pick(k, view); c != want {
				t.Errorf("key %q on L%d; KeyHash picks L%d", k, c, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an event published on the key subject never arrived")
		}
	}
}

// fixed is a view of n empty conveyors.
type fixed int

func (f fixed) Len() int    { return int(f) }
func (fixed) Depth(int) int { return 0 }

// A producer-only bus reports as Depth the events its conveyors hold on
// the server, read at its monitor interval.
func TestProducerOnlyDepth(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	b := newBus[int](t, nc, "prodonly", nil, jetbus.WithConveyors(2),
		jetbus.WithExactConveyors(), jetbus.WithMemoryStorage(),
		jetbus.WithMonitor(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for id := uint64(1); id <= 5; id++ {
		if err := b.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "Depth 5 on the producer-only bus", func() bool {
		return b.Stats().Total().Depth == 5
	})
	for _, s := range b.Stats().Server {
		if s.Stored != b.Stats().Conveyors[s.Conveyor].Depth {
			t.Errorf("conveyor %d: Stored %d, Depth %d", s.Conveyor, s.Stored,
				b.Stats().Conveyors[s.Conveyor].Depth)
		}
	}
}
