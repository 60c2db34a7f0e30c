package natsload

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Raw is a [jetbus.Codec] for []byte values that sends them as they are.
type Raw struct{}

// Marshal returns v, which must be a []byte.
func (Raw) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("natsload: Raw encodes []byte, not %T", v)
	}
	return b, nil
}

// Unmarshal points *v, which must be a *[]byte, at data.
func (Raw) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("natsload: Raw decodes into *[]byte, not %T", v)
	}
	*p = data
	return nil
}

// Batch is the number of events the jetbus side hands to one
// ProduceBatch.
const Batch = 16384

// runBus does the work of cfg through a jetbus bus: ProduceBatch to
// publish, a handler that counts to consume.
func runBus(ctx context.Context, nc *nats.Conn, cfg Config) (Rate, error) {
	resource := name("load")
	opts := []jetbus.Option{
		jetbus.WithConveyors(cfg.Conveyors), jetbus.WithExactConveyors(),
		jetbus.WithBalancer(mainbus.RoundRobin()),
		jetbus.WithCapacity(max(cfg.Events, jetbus.DefaultCapacity)),
		jetbus.WithMaxPending(cfg.Pending), jetbus.WithMaxInFlight(cfg.MaxInFlight),
		jetbus.WithCodec(Raw{}),
	}
	if cfg.Memory {
		opts = append(opts, jetbus.WithMemoryStorage())
	}
	if cfg.Work == ConsumeOrdered {
		opts = append(opts, jetbus.WithMode(jetbus.Ordered))
	} else {
		opts = append(opts, jetbus.WithMode(jetbus.Throughput))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Rate{}, err
	}
	defer deleteStream(js, jetbus.StreamName(resource))

	prod, err := jetbus.New[[]byte](ctx, nc, resource, nil, opts...)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	err = publishBus(ctx, prod, cfg)
	elapsed := time.Since(start)
	if cerr := prod.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil || cfg.Work == Publish {
		return Rate{Events: cfg.Events, Elapsed: elapsed}, err
	}
	return consumeBus(ctx, nc, resource, cfg, opts)
}

// publishBus produces cfg.Events events in batches and returns once all
// are stored.
func publishBus(ctx context.Context, bus *jetbus.Bus[[]byte], cfg Config) error {
	data := body(cfg)
	evs := make([]mainbus.Event[[]byte], min(cfg.Events, Batch))
	for sent := 0; sent < cfg.Events; {
		n := min(len(evs), cfg.Events-sent)
		for i := range n {
			evs[i] = mainbus.Event[[]byte]{ID: uint64(sent + i + 1), Value: data}
		}
		if err := bus.ProduceBatch(ctx, evs[:n]); err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// consumeBus starts a consuming bus on the events stored and times it
// until the handler has seen them all, then closes it.
func consumeBus(ctx context.Context, nc *nats.Conn, resource string, cfg Config,
	opts []jetbus.Option) (Rate, error) {
	var left atomic.Int64
	left.Store(int64(cfg.Events))
	done := make(chan struct{})
	count := func(context.Context, int, mainbus.Event[[]byte]) error {
		if left.Add(-1) == 0 {
			close(done)
		}
		return nil
	}
	start := time.Now()
	bus, err := jetbus.New(ctx, nc, resource, count, opts...)
	if err != nil {
		return Rate{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	elapsed := time.Since(start)
	cerr := bus.Close(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		return Rate{}, ctx.Err()
	}
	return Rate{Events: cfg.Events, Elapsed: elapsed}, cerr
}
