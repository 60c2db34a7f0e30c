package main

import (
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus/internal/workload"

	"github.com/alitto/pond/v2"
)

// runPond hands each event to a pond pool of 4 workers as a task, with
// Go, which skips the future Submit returns. The pool's one queue holds
// 4×64 tasks, the workload's slots in all, and Go waits when it is full.
// A task is a closure carrying its event's value, so each event costs an
// allocation: pond has no way to pass an argument to a shared function.
// StopAndWait runs every queued task before it returns.
func runPond(b *testing.B, producers int) error {
	var sum atomic.Int64
	pool := pond.NewPool(conveyors, pond.WithQueueSize(conveyors*buffer))

	b.ResetTimer()
	perr := workload.Split(b.N, producers, func(count int) error {
		for range count {
			v := 1
			if err := pool.Go(func() { sum.Add(int64(v)) }); err != nil {
				return err
			}
		}
		return nil
	})
	pool.StopAndWait()
	b.StopTimer()
	if perr != nil {
		return perr
	}
	return workload.CheckSum(sum.Load(), b.N)
}
