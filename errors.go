package mainbus

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Produce, TryProduce and Complex.Add once
	// the bus or complex has begun to close.
	ErrClosed = errors.New("mainbus: closed")

	// ErrFull is returned, wrapped in a [*ProduceError], when the chosen
	// conveyor has no room and the caller asked not to wait.
	ErrFull = errors.New("mainbus: conveyor full")

	// ErrWouldBlock is returned, wrapped in a [*ProduceError], when a
	// handler produces into a full conveyor of its own bus under the
	// [Block] policy: waiting there could wait on the handler itself. A
	// Resize called from a handler returns it when it would have to wait
	// for an earlier resize to drain.
	ErrWouldBlock = errors.New("mainbus: a handler would wait on its own bus")

	// ErrInvalidOption is wrapped by every error about a bad option,
	// resource name, handler or balancer result.
	ErrInvalidOption = errors.New("mainbus: invalid option")

	// ErrUnknownResource is wrapped by Complex lookups of a resource that
	// has no bus, or whose bus carries another payload type, and by
	// Produce of an event whose Resource names another bus.
	ErrUnknownResource = errors.New("mainbus: unknown resource")
)

// invalid returns an error wrapping [ErrInvalidOption] that says what was
// wrong and what is accepted.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// A ProduceError reports why an event was not accepted by one conveyor.
// Err is [ErrFull], or the producer's context error.
type ProduceError struct {
	Resource string
	Conveyor int
	Err      error
}

func (e *ProduceError) Error() string {
	return fmt.Sprintf("mainbus: produce to %s L%d: %v", e.Resource, e.Conveyor, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, ErrFull) and
// errors.Is(err, context.DeadlineExceeded) work.
func (e *ProduceError) Unwrap() error { return e.Err }

// A HandlerError reports one failed delivery to the bus's error handler.
// Exactly one of Err and Panic is set: Err is what the handler returned,
// Panic is the value it panicked with. A handler that calls
// runtime.Goexit is reported as a panic with a string value saying so; its
// conveyor gets a new consumer goroutine and goes on. A failure to hand an
// event to the dead-letter bus is reported with Err wrapping the cause.
type HandlerError struct {
	Resource string
	Conveyor int
	EventID  uint64
	Attempt  int // 1 for the first call, 2 for the first retry, …
	Err      error
	Panic    any
}

func (e *HandlerError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("mainbus: handler of %s L%d panicked on event %d (attempt %d): %v",
			e.Resource, e.Conveyor, e.EventID, e.Attempt, e.Panic)
	}
	return fmt.Sprintf("mainbus: handler of %s L%d failed on event %d (attempt %d): %v",
		e.Resource, e.Conveyor, e.EventID, e.Attempt, e.Err)
}

// Unwrap returns the handler's error, or nil for a panic.
func (e *HandlerError) Unwrap() error { return e.Err }

// A DrainError is returned by Close when its context ended before every
// accepted event was delivered. Undelivered holds those events, oldest
// first per conveyor, so the caller can persist or replay them. None of
// them was handled successfully, and none will be handed to the handler
// again; an event cut short between retries, or while waiting for the
// dead-letter bus, had failed attempts before.
type DrainError[T any] struct {
	Resource    string
	Undelivered []Event[T]
	Err         error
}

func (e *DrainError[T]) Error() string {
	return fmt.Sprintf("mainbus: close of %s left %d events undelivered: %v",
		e.Resource, len(e.Undelivered), e.Err)
}

// Unwrap returns the context error that cut the drain short.
func (e *DrainError[T]) Unwrap() error { return e.Err }
