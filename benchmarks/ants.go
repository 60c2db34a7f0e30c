package main

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus/internal/workload"
	"time"

	"github.com/panjf2000/ants/v2"
)

// runAnts hands each event to a pool of 4 ants workers with Invoke on a
// generic pool with a function. Of the ways ants offers, Submit of a
// closure per event and Invoke on the untyped PoolWithFunc were no faster
// on this workload, and Submit allocates a closure per event. ants has no
// queue: Invoke waits for an idle worker, each worker holding at most one
// event, so there is no 64-slot buffer to set. ReleaseTimeout waits for
// every worker to stop, so for every event to be consumed.
func runAnts(b *testing.B, producers int) error {
	var sum atomic.Int64
	pool, err := ants.NewPoolWithFuncGeneric(conveyors, func(v int) {
		sum.Add(int64(v))
	})
	if err != nil {
		return err
	}

	b.ResetTimer()
	perr := workload.Split(b.N, producers, func(count int) error {
		for range count {
			if err := pool.Invoke(1); err != nil {
				return err
			}
		}
		return nil
	})
	rerr := pool.ReleaseTimeout(time.Minute)
	b.StopTimer()
	if perr != nil || rerr != nil {
		return errors.Join(perr, rerr)
	}
	return workload.CheckSum(sum.Load(), b.N)
}
