package jetbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/natsload"
	"github.com/mainbus-go/mainbus/jetbus"
)

// BenchmarkProduce publishes small events from many goroutines to a
// producer-only bus on memory storage: one op is one stored event.
func BenchmarkProduce(b *testing.B) {
	srv := startServerB(b)
	nc, err := jetbus.Connect(context.Background(), srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	bus, err := jetbus.New[int](ctx, nc, "bench", nil, jetbus.WithMemoryStorage(),
		jetbus.WithCapacity(1<<24))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	var id atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bus.Produce(ctx, mainbus.Event[int]{ID: id.Add(1), Value: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkConsume measures handling events already stored, per mode.
func BenchmarkConsume(b *testing.B) {
	for _, mode := range []jetbus.Mode{jetbus.Ordered, jetbus.Throughput} {
		b.Run(mode.String(), func(b *testing.B) {
			srv := startServerB(b)
			nc, err := jetbus.Connect(context.Background(), srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			ctx := context.Background()
			opts := []jetbus.Option{jetbus.WithMemoryStorage(), jetbus.WithMode(mode),
				jetbus.WithCapacity(1 << 24)}
			prod, err := jetbus.New[int](ctx, nc, "bench", nil, opts...)
			if err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				if err := prod.Produce(ctx, mainbus.Event[int]{ID: uint64(i + 1)}); err != nil {
					b.Fatal(err)
				}
			}
			prod.Close(ctx)
			var n atomic.Int64
			done := make(chan struct{})
			b.ResetTimer()
			bus, err := jetbus.New(ctx, nc, "bench",
				func(context.Context, int, mainbus.Event[int]) error {
					if n.Add(1) == int64(b.N) {
						close(done)
					}
					return nil
				}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatal("not all events handled")
			}
			b.StopTimer()
			bus.Close(ctx)
		})
	}
}

func startServerB(b *testing.B) interface{ URL() string } {
	b.Helper()
	srv, err := embeddedStart()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	return srv
}

// BenchmarkNATS runs the work of package natsload through plain nats.go
// and through a bus, in the same run: one op is one message published or
// consumed, with 64-byte bodies on 4 subjects, on a fresh stream per
// run. ns/op and allocs/op include creating and deleting the stream and,
// for consumption, storing the messages first; msgs/s counts the timed
// part only. Compare the msgs/s of plain and jetbus for the same work;
// plain/publish-memory-id gives plain messages the Nats-Msg-Id header
// the bus's deduplication rests on.
func BenchmarkNATS(b *testing.B) {
	srv := startServerB(b)
	nc, err := jetbus.Connect(context.Background(), srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	cases := []struct {
		name string
		cfg  natsload.Config
	}{
		{"publish-memory", natsload.Config{Work: natsload.Publish, Memory: true}},
		{"publish-memory-id", natsload.Config{Work: natsload.Publish, Memory: true,
			MsgIDs: true}},
		{"publish-file", natsload.Config{Work: natsload.Publish}},
		{"consume-ordered", natsload.Config{Work: natsload.ConsumeOrdered, Memory: true}},
		{"consume-throughput", natsload.Config{Work: natsload.ConsumeThroughput,
			Memory: true}},
	}
	for _, side := range []natsload.Side{natsload.Plain, natsload.Jetbus} {
		for _, c := range cases {
			if c.cfg.MsgIDs && side == natsload.Jetbus {
				continue // the bus always sends message IDs
			}
			b.Run(string(side)+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				cfg := c.cfg
				cfg.Events = b.N
				r, err := natsload.Run(context.Background(), nc, side, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.PerSec(), "msgs/s")
			})
		}
	}
}
