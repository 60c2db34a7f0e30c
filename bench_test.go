package mainbus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/workload"
)

// The compared workload lives in internal/workload, shared with the bench
// command of cmd/mainbus: producers hand small int events to 4 conveyors
// of 64 slots each, and each consumer adds the values up.

// benchCase runs the case setup builds for producers goroutines as the
// body of a benchmark, one event per operation: the setup is not timed,
// the sending, consuming and shutdown are.
func benchCase(b *testing.B, setup func(producers int) (workload.Run, error), producers int) {
	run, err := setup(producers)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	err = run(context.Background(), b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCompare puts a bus next to hand-rolled channels on the same
// workload, so that ratios come from one run.
func BenchmarkCompare(b *testing.B) {
	for _, p := range workload.Producers() {
		for _, c := range workload.Cases() {
			b.Run(fmt.Sprintf("%s/p%d", c.Name, p), func(b *testing.B) { benchCase(b, c.Setup, p) })
		}
	}
}

// BenchmarkBalancer measures each balancer on the single-event path.
func BenchmarkBalancer(b *testing.B) {
	balancers := []struct {
		name string
		new  func() mainbus.Balancer
	}{
		{"random", mainbus.Random},
		{"round-robin", mainbus.RoundRobin},
		{"key-hash", mainbus.KeyHash},
		{"jump-hash", mainbus.JumpHash},
		{"least-loaded", mainbus.LeastLoaded},
	}
	for _, bal := range balancers {
		b.Run(bal.name, func(b *testing.B) {
			single := func(p int) (workload.Run, error) { return workload.Single(p, bal.new()) }
			benchCase(b, single, 8)
		})
	}
}
