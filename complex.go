package mainbus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mainbus-go/mainbus/internal/goid"
)

// A Member is a bus as a [Complex] sees it, whatever its payload type.
// Every *[Bus] is a Member; no other type can be.
type Member interface {
	Resource() string
	Stats() Stats
	Close(ctx context.Context) error
	Done() <-chan struct{}

	begin()
	inHandler(id uint64) bool
	isNil() bool
	deadLetterTarget() string
}

// A Complex groups the buses of a program, one per resource, whatever
// their payload types, so they can be closed, waited on and reported
// together. Adding a resource adds a bus and changes nothing else.
//
// The zero value is an empty complex ready to use. A Complex is safe for
// concurrent use and must not be copied after first use.
type Complex struct {
	mu     sync.Mutex
	byName map[string]Member
	order  []Member
	closed bool
}

// Add puts bus into the complex. It returns an error wrapping
// [ErrInvalidOption] if bus is nil or its resource already has a bus in
// the complex, and [ErrClosed] once Close has begun.
func (x *Complex) Add(bus Member) error {
	if bus == nil || bus.isNil() {
		return invalid("Complex.Add got a nil bus; want one built by New")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return ErrClosed
	}
	name := bus.Resource()
	if _, dup := x.byName[name]; dup {
		return invalid("resource %s already has a bus in this complex; "+
			"want one bus per resource", name)
	}
	if x.byName == nil {
		x.byName = make(map[string]Member)
	}
	x.byName[name] = bus
	x.order = append(x.order, bus)
	return nil
}

// Bus returns the bus of resource, or an error wrapping
// [ErrUnknownResource] that lists the resources there are.
func (x *Complex) Bus(resource string) (Member, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m, ok := x.byName[resource]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("%w: %q; this complex has %v", ErrUnknownResource, resource, x.names())
}

// Lookup returns the bus of resource in x with its payload type. It
// returns an error wrapping [ErrUnknownResource] if there is no such bus
// or it carries another type.
func Lookup[T any](x *Complex, resource string) (*Bus[T], error) {
	if x == nil {
		return nil, fmt.Errorf("%w: %q; the complex is nil", ErrUnknownResource, resource)
	}
	m, err := x.Bus(resource)
	if err != nil {
		return nil, err
	}
	b, ok := m.(*Bus[T])
	if !ok {
		var zero T
		return nil, fmt.Errorf("%w: bus %s carries another type than %T (it is a %T)",
			ErrUnknownResource, resource, zero, m)
	}
	return b, nil
}

// Resources returns the names of the buses in the order they were added.
func (x *Complex) Resources() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.names()
}

func (x *Complex) names() []string {
	names := make([]string, len(x.order))
	for i, m := range x.order {
		names[i] = m.Resource()
	}
	return names
}

// Stats returns a snapshot of every bus, in the order they were added.
func (x *Complex) Stats() []Stats {
	buses := x.members()
	s := make([]Stats, len(buses))
	for i, m := range buses {
		s[i] = m.Stats()
	}
	return s
}

func (x *Complex) members() []Member {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]Member(nil), x.order...)
}

// Close closes every bus of the complex and returns when all have
// stopped, with the errors of those that did not close cleanly joined
// (each a [*DrainError] of its payload type, found with errors.As). Buses
// drain at the same time, except that a bus another bus dead-letters into
// ([WithDeadLetter]) closes after it, so that no failure of the last
// events misses its dead-letter bus. Later Adds return [ErrClosed].
//
// Like [Bus.Close], it is idempotent and treats a nil ctx as no deadline.
// Called from inside a handler of one of the buses, it closes them in the
// background and returns nil at once; [Complex.Wait] tells when they are
// done.
func (x *Complex) Close(ctx context.Context) error {
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()

	waves := closeOrder(x.members())
	id := goid.Current()
	for _, wave := range waves {
		for _, m := range wave {
			if m.inHandler(id) {
				// This goroutine cannot wait for its own bus. The
				// goroutine below ends when every bus has stopped, which
				// the handler's return allows.
				go closeWaves(context.Background(), waves)
				return nil
			}
		}
	}
	return closeWaves(ctx, waves)
}

// closeOrder groups buses into waves to close one after the other: each
// wave holds the buses that no bus of a later wave dead-letters into.
func closeOrder(buses []Member) [][]Member {
	var waves [][]Member
	for len(buses) > 0 {
		targets := map[string]bool{}
		for _, m := range buses {
			targets[m.deadLetterTarget()] = true
		}
		var wave, rest []Member
		for _, m := range buses {
			if targets[m.Resource()] {
				rest = append(rest, m)
			} else {
				wave = append(wave, m)
			}
		}
		if len(wave) == 0 { // a cycle of dead-letter buses: close them together
			wave, rest = rest, nil
		}
		waves = append(waves, wave)
		buses = rest
	}
	return waves
}

func closeWaves(ctx context.Context, waves [][]Member) error {
	var errs []error
	for _, wave := range waves {
		for _, m := range wave {
			m.begin()
		}
		for _, m := range wave {
			if err := m.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Wait blocks until every bus of the complex has stopped, or ctx ends.
// It does not close anything. A nil ctx waits without limit.
func (x *Complex) Wait(ctx context.Context) error {
	var cut <-chan struct{}
	if ctx != nil {
		cut = ctx.Done()
	}
	for _, m := range x.members() {
		select {
		case <-m.Done():
		case <-cut:
			return ctx.Err()
		}
	}
	return nil
}
