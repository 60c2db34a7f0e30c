package jetbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Events reach handlers with the ID, key and time they were produced
// with, from this package and from messages of the wire format published
// by hand, as another language would.
func TestWireFormat(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	got := make(chan mainbus.Event[int], 16)
	b := newBus(t, nc, "wire", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		got <- ev
		return nil
	}, jetbus.WithConveyors(1), jetbus.WithExactConveyors(), jetbus.WithMemoryStorage())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	before := time.Now()
	evs := []mainbus.Event[int]{{ID: 1, Value: 10}, {ID: 2, Key: "k", Value: 20, Time: at}}
	if err := b.ProduceBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	subject := jetbus.Subject("wire", 0)
	hand := []nats.Header{
		{"Nats-Msg-Id": {"3"}, "Mainbus-Time": {"1714979289123456789"}},
		{"Nats-Msg-Id": {"wire-x"}, "Mainbus-Time": {"2024-05-06T07:08:09.123456789Z"}},
		{"Nats-Msg-Id": {"5"}, "Mainbus-Key": {"k"}},
	}
	for i, h := range hand {
		m := &nats.Msg{Subject: subject, Header: h, Data: []byte{'3' + byte(i)}}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}

	want := []struct {
		id    uint64
		key   string
		value int
		at    time.Time // zero: the time stored, after before
	}{{1, "", 10, time.Time{}}, {2, "k", 20, at}, {3, "", 3, at}, {0, "", 4, at},
		{5, "k", 5, time.Time{}}}
	for _, w := range want {
		var ev mainbus.Event[int]
		select {
		case ev = <-got:
		case <-ctx.Done():
			t.Fatalf("waiting for event %d: %v", w.id, ctx.Err())
		}
		if ev.ID != w.id || ev.Key != w.key || ev.Value != w.value || ev.Resource != "wire" {
			t.Errorf("event %+v; want ID %d, key %q, value %d", ev, w.id, w.key, w.value)
		}
		switch {
		case !w.at.IsZero() && !ev.Time.Equal(w.at):
			t.Errorf("event %d at %v; want %v", w.id, ev.Time, w.at)
		case w.at.IsZero() && (ev.Time.Before(before.Add(-time.Second)) ||
			ev.Time.After(time.Now())):
			t.Errorf("event %d at %v; want the time it was stored, after %v", w.id,
				ev.Time, before)
		}
	}
}

// A second publish of an event ID, by Produce or ProduceBatch, is stored
// once: the message ID carries the event ID.
func TestDuplicatesStoredOnce(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	b := newBus[int](t, nc, "dup", nil, jetbus.WithConveyors(2), jetbus.WithMemoryStorage())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := b.Produce(ctx, mainbus.Event[int]{ID: 7}); err != nil {
			t.Fatal(err)
		}
	}
	evs := []mainbus.Event[int]{{ID: 7}, {ID: 8}, {ID: 8}, {}, {}}
	if err := b.ProduceBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, jetbus.StreamName("dup"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 7, 8 and the two events without an ID.
	if info.State.Msgs != 4 {
		t.Errorf("%d messages stored; want 4", info.State.Msgs)
	}
}
