package jetbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/natstest"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// stored returns the number of messages in the stream of resource.
func stored(t *testing.T, url, resource string) uint64 {
	t.Helper()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), jetbus.StreamName(resource))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestLostAck loses the connection with the acknowledgement of one
// publish in flight: the publishes awaiting an answer are sent again
// after the reconnect and the server stores each event once.
func TestLostAck(t *testing.T) {
	srv := startServer(t, "", 0)
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "Produce", true: "ProduceBatch"}[batch]
		t.Run(name, func(t *testing.T) {
			proxy := natstest.NewProxy(t, srv.URL(), true, `"seq":50`)
			resource := "lost" + name
			bus := newBus[int](t, connect(t, proxy.URL()), resource, nil,
				jetbus.WithMemoryStorage())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			evs := make([]mainbus.Event[int], 200)
			for i := range evs {
				evs[i] = mainbus.Event[int]{ID: uint64(i + 1), Value: i}
			}
			if batch {
				if err := bus.ProduceBatch(ctx, evs); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
			} else {
				for _, ev := range evs {
					if err := bus.Produce(ctx, ev); err != nil {
						t.Fatalf("Produce %d: %v", ev.ID, err)
					}
				}
			}
			select {
			case <-proxy.Lost():
			default:
				t.Fatal("no acknowledgement was lost")
			}
			if n := stored(t, srv.URL(), resource); n != uint64(len(evs)) {
				t.Errorf("stream holds %d messages, want %d", n, len(evs))
			}
			var dups uint64
			for _, c := range bus.Stats().Server {
				dups += c.Duplicates
			}
			if dups < 1 {
				t.Errorf("duplicates = %d, want the resent event counted", dups)
			}
		})
	}
}

// TestAckTimeout holds back every answer after the first lost one, the
// connection kept: each publish is sent again after the publish wait,
// and once ctx ends the events are in doubt.
func TestAckTimeout(t *testing.T) {
	srv := startServer(t, "", 0)
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "Produce", true: "ProduceBatch"}[batch]
		t.Run(name, func(t *testing.T) {
			proxy := natstest.NewProxy(t, srv.URL(), false, `"seq":1`)
			bus := newBus[int](t, connect(t, proxy.URL()), "held"+name, nil,
				jetbus.WithMemoryStorage(), jetbus.WithPublishWait(20*time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			evs := []mainbus.Event[int]{{ID: 1}, {ID: 2, Key: "k"}, {ID: 3, Key: "k"}}
			var err error
			if batch {
				err = bus.ProduceBatch(ctx, evs)
				var be *mainbus.BatchError[int]
				if !errors.As(err, &be) || len(be.Rejected) != len(evs) {
					t.Fatalf("ProduceBatch: %v, want all %d events rejected", err, len(evs))
				}
			} else {
				err = bus.Produce(ctx, evs[0])
			}
			if !errors.Is(err, jetbus.ErrInDoubt) {
				t.Errorf("err = %v, want one wrapping ErrInDoubt", err)
			}
			<-proxy.Lost()
		})
	}
}
