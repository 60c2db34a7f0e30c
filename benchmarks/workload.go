package main

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/workload"
)

// The compared workload, the same as BenchmarkCompare in the main module:
// producers hand small int events to 4 conveyors (lanes, workers) of 64
// slots each, and the consumers add the values up.
const (
	conveyors = 4
	buffer    = 64
)

// producerCounts are the numbers of producer goroutines each
// implementation runs with.
var producerCounts = []int{1, 8}

// An impl is one way of running the workload. run sends b.N events, each
// of value 1, from producers goroutines, waits until every one is
// consumed and everything it started has stopped, and returns an error
// if an event was lost or the shutdown failed. It times only the sending,
// consuming and shutdown, not the setup.
type impl struct {
	name string
	run  func(b *testing.B, producers int) error
}

// impls lists the implementations in the order they are reported. The
// first is the baseline the others are compared to; a new row (say a
// batched mainbus) is one more entry here.
var impls = []impl{
	{"raw-channels", fromWorkload(workload.Raw)},
	{"mainbus", fromWorkload(func(producers int) (workload.Run, error) {
		return workload.Single(producers, mainbus.RoundRobin())
	})},
	{"mainbus-stacked", fromWorkload(workload.Stacked)},
	{"ants", runAnts},
	{"pond", runPond},
	{"eventbus", runEventBus},
	{"watermill", runWatermill},
}

// fromWorkload runs one case of the main module's shared workload, the
// code behind its BenchmarkCompare, so both measure the same thing.
func fromWorkload(setup func(producers int) (workload.Run, error)) func(*testing.B, int) error {
	return func(b *testing.B, producers int) error {
		run, err := setup(producers)
		if err != nil {
			return err
		}
		b.ResetTimer()
		return run(context.Background(), b.N)
	}
}

// bench runs im with producers producers as the body of a benchmark and
// checks that it left no goroutine behind. It returns run's error, or the
// leak, for the caller to report.
func bench(b *testing.B, im impl, producers int) error {
	b.ReportAllocs()
	before := runtime.NumGoroutine()
	if err := im.run(b, producers); err != nil {
		return fmt.Errorf("%s/p%d: %w", im.name, producers, err)
	}
	b.StopTimer()
	if err := settle(before); err != nil {
		return fmt.Errorf("%s/p%d: %w", im.name, producers, err)
	}
	return nil
}

// settle waits until no more than want goroutines run. Some libraries end
// their last goroutines just after their shutdown call returns, so it
// polls for a while before it calls the rest a leak.
func settle(want int) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutines still running after shutdown, want %d", n, want)
		}
		time.Sleep(time.Millisecond)
	}
}
