package mainbus

import (
	"math/rand/v2"
	"time"
)

// A retryPolicy is how often and how patiently a conveyor retries a
// failing event.
type retryPolicy struct {
	attempts  int
	base, max time.Duration
}

func (r retryPolicy) check() error {
	if r.attempts < 1 {
		return invalid("retry attempts is %d; want 1 or more (1 means no retry)", r.attempts)
	}
	if r.attempts > 1 && (r.base <= 0 || r.max < r.base) {
		return invalid("retry backoff base %v, max %v; want 0 < base <= max", r.base, r.max)
	}
	return nil
}

// delay returns the wait after failed attempt n (1-based): base·2^(n-1)
// capped at max, drawn at random from its upper half.
func (r retryPolicy) delay(n int) time.Duration {
	d := r.max
	if n-1 < 62 && r.base<<(n-1) > 0 && r.base<<(n-1) < r.max {
		d = r.base << (n - 1)
	}
	return d/2 + rand.N(d/2+1)
}

// A DeadLetter is an event whose every attempt failed, as sent to the
// dead-letter bus of [WithDeadLetter].
type DeadLetter[T any] struct {
	Event    Event[T]
	Err      error // the last attempt's *HandlerError
	Attempts int
}
