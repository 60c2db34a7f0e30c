package prom_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/mainbus-go/mainbus/prom"
)

// A collector of jetbus.StatsOf scrapes buses over JetStream like
// in-process ones: every number of their Stats, histograms included.
func TestJetbus(t *testing.T) {
	srv, err := embedded.Start("", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	nc, err := jetbus.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	opts := []jetbus.Option{jetbus.WithConveyors(2), jetbus.WithExactConveyors(),
		jetbus.WithMemoryStorage()}
	iron := newJetbus(t, nc, "iron", func(context.Context, int, mainbus.Event[int]) error {
		return nil
	}, opts...)
	wire := newJetbus(t, nc, "wire", func(context.Context, int, mainbus.Event[string]) error {
		return nil
	}, opts...)
	for id := uint64(1); id <= 6; id++ {
		if err := iron.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wire.Produce(ctx, mainbus.Event[string]{ID: 1, Value: "copper"}); err != nil {
		t.Fatal(err)
	}
	stats := jetbus.StatsOf(iron, wire)
	pollUntil(t, "every event consumed", func() bool {
		s := stats()
		return s[0].Total().Consumed == 6 && s[1].Total().Consumed == 1
	})

	web := serve(t, prom.NewCollector(stats), promhttp.HandlerOpts{})
	fams, got := stableScrape(t, web, stats)
	checkStats(t, fams, got)
	if n := sum(fams, "mainbus_handler_seconds", "iron"); n != 6 {
		t.Errorf("mainbus_handler_seconds of iron counts %v attempts; want 6", n)
	}
	if n := sum(fams, "mainbus_queue_seconds", "wire"); n != 1 {
		t.Errorf("mainbus_queue_seconds of wire counts %v events; want 1", n)
	}
}

// newJetbus builds a bus over nc and closes it when the test ends.
func newJetbus[T any](t *testing.T, nc *nats.Conn, resource string, h mainbus.Handler[T],
	opts ...jetbus.Option) *jetbus.Bus[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	b, err := jetbus.New(ctx, nc, resource, h, opts...)
	if err != nil {
		t.Fatalf("new bus %s: %v", resource, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close %s: %v", resource, err)
		}
	})
	return b
}
