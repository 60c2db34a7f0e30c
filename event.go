package mainbus

import "time"

// An Event is one item on a bus.
//
// ID is the caller's; the bus never changes it. Resource is set to the
// bus's resource when empty. Key chooses the conveyor under the key-hash
// balancer and is otherwise free. Time is set to the time of Produce when
// zero.
type Event[T any] struct {
	ID       uint64
	Resource string
	Key      string
	Value    T
	Time     time.Time
}
