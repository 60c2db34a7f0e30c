package jetbus

import (
	"errors"
	"fmt"

	"github.com/mainbus-go/mainbus"
)

var (
	// ErrInDoubt is returned, wrapped in a [*mainbus.ProduceError], when
	// an event was sent to the server but Produce's context ended before
	// the server said whether it stored it. The event may be handled.
	// Producing it again with the same ID within the stream's duplicate
	// window stores one copy, unless the server restarted after handling
	// the first: a restarted server remembers only the IDs of the events
	// still in the stream.
	ErrInDoubt = errors.New("jetbus: publish in doubt")

	// ErrStalled is wrapped by the errors the monitor reports when a
	// conveyor has events waiting on the server and delivered none since
	// the previous check: no owner is alive, the owner stopped pulling,
	// or its handler is stuck.
	ErrStalled = errors.New("jetbus: conveyor stalled")

	// ErrNoJetStream is returned by [Connect] for a server that answers
	// but has JetStream disabled.
	ErrNoJetStream = errors.New("jetbus: server has no JetStream")
)

// invalid returns an error wrapping [mainbus.ErrInvalidOption].
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", mainbus.ErrInvalidOption, fmt.Sprintf(format, args...))
}
