package mainbus_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
)

// cpuTime returns the processor time this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleBusDoesNotSpin checks that an idle bus parks its consumers: a
// spinning consumer would burn a whole core, an idle bus next to nothing.
// The bound is loose on purpose (a fifth of one core), so that the test
// catches spinning without depending on how busy the machine is.
func TestIdleBusDoesNotSpin(t *testing.T) {
	bus := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil },
		mainbus.WithConveyors(64))
	if err := bus.Produce(context.Background(), mainbus.Event[int]{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, func() bool { return bus.Stats().Total().Consumed == 1 })

	const idle = 300 * time.Millisecond
	before, start := cpuTime(t), time.Now()
	<-time.After(idle) // the interval measured, not a synchronisation
	used, wall := cpuTime(t)-before, time.Since(start)
	if used > wall/5 {
		t.Errorf("idle bus of 64 conveyors used %v of processor time in %v", used, wall)
	}
}
