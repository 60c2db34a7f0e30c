package jetbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
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
