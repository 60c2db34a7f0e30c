// Package mainbus moves typed events through per-resource buses of parallel
// conveyors, after the main bus of the game Factorio: one corridor of belts
// per resource, each corridor made of several belts side by side.
//
// A [Bus] carries one resource. It owns a set of conveyors, each a
// buffered channel drained by exactly one consumer goroutine that hands
// events to the bus's [Handler]. Producers call [Bus.Produce] or
// [Bus.TryProduce]; a [Balancer] picks the conveyor for each event.
// [Bus.Resize] changes the number of conveyors while the bus runs.
//
// For throughput, events travel stacked: [Bus.ProduceBatch] carries the
// events bound for one conveyor in one slot, a bus built with
// [NewStacked] hands a slot's stack to one handler call, and a [Stacker]
// gathers events produced one at a time into stacks.
//
//	smelt := func(ctx context.Context, c int, ev mainbus.Event[Plate]) error { … }
//	iron, err := mainbus.New("iron", smelt, mainbus.WithConveyors(4))
//	if err != nil { … }
//	err = iron.Produce(ctx, mainbus.Event[Plate]{Key: "furnace-7", Value: p})
//	…
//	err = iron.Close(ctx)
//
// # Promises
//
// Produce returning nil means the event is accepted, and every accepted
// event reaches the handler exactly once, in the order accepted per
// conveyor, unless a dropping [Overflow] policy discards it, which is
// counted and reported. Under [KeyHash] and [JumpHash] the events of one
// key are handled in the order accepted, across resizes too. A handler
// that returns an error or panics is reported to the error handler
// ([WithErrorHandler]) and counted in [Stats]; its conveyor goes on with
// the next event, after retries ([WithRetry]) and a dead-letter bus
// ([WithDeadLetter]) if configured.
//
// # Shutdown
//
// [Bus.Close] stops intake, delivers everything already accepted, stops the
// consumers and returns once none of the bus's goroutines is left. Producers
// blocked on a full conveyor when Close begins return [ErrClosed]; every
// later Produce does too. If the context given to Close ends first, Close
// cancels the context handed to running handlers, waits for them to return,
// and hands back the events it did not deliver in a [*DrainError]. Close
// is idempotent and may be called from many goroutines and from inside a
// handler.
//
// A [Complex] groups buses of different payload types, so that a program
// can close, wait on and report all of them together.
//
// The package never logs and imports nothing outside the standard library.
package mainbus
