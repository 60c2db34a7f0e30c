package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus"
)

// runMainbus puts the workload on one bus of 4 conveyors with 64 slots
// each and the round-robin balancer, one Produce per event, as
// BenchmarkCompare's single row in the main module. Close drains it.
func runMainbus(b *testing.B, producers int) error {
	var sum atomic.Int64
	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		sum.Add(int64(ev.Value))
		return nil
	}, mainbus.WithConveyors(conveyors), mainbus.WithBuffer(buffer),
		mainbus.WithBalancer(mainbus.RoundRobin()))
	if err != nil {
		return err
	}
	ctx := context.Background()

	b.ResetTimer()
	perr := split(b.N, producers, func(count int) error {
		for range count {
			if err := bus.Produce(ctx, mainbus.Event[int]{Value: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	cerr := bus.Close(ctx)
	b.StopTimer()
	if perr != nil || cerr != nil {
		return errors.Join(perr, cerr)
	}
	return checkSum(sum.Load(), b.N)
}
