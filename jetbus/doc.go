// Package jetbus runs the buses of package mainbus over NATS JetStream,
// across processes and machines, with the producer and handler shape of
// the in-process bus: switching is a change of constructor.
//
//	nc, err := jetbus.Connect(ctx, "nats://127.0.0.1:4222")
//	if err != nil { … }
//	defer nc.Close()
//	iron, err := jetbus.New(ctx, nc, "iron", smelt,
//		jetbus.WithConveyors(4), jetbus.WithBalancer(mainbus.KeyHash()))
//	if err != nil { … }
//	err = iron.Produce(ctx, mainbus.Event[Plate]{ID: 7, Key: "furnace-7", Value: p})
//	…
//	err = iron.Close(ctx)
//
// # Mapping
//
// A bus is one stream, [StreamName] "mainbus-<resource>", with work-queue
// retention: an event leaves the stream when a handler is done with it. A
// conveyor is one subject, [Subject] "mainbus.<resource>.<i>", and one
// durable pull consumer, [ConsumerName] "L<i>", in a priority group with
// a pinned client, so one process at a time owns a conveyor and another
// takes over after the pin TTL when the owner dies. Producers pick the
// conveyor with the balancers of package mainbus; [mainbus.KeyHash] is
// the partition function of the server, so producers in other languages
// can publish to [KeySubject] and land on the same conveyor. The event's
// value travels in the body ([Codec], JSON by default), the rest in
// headers (see Wire format). A conveyor's capacity is the stream's limit of
// messages per subject, with new messages refused when it is reached, so
// a full conveyor meets the bus's overflow policy and the server never
// discards an accepted event.
//
// # Wire format
//
// A message carries one event; producers in other languages publish
// messages of this form to [Subject] or [KeySubject]:
//
//   - Nats-Msg-Id: the event ID in decimal. The server drops a second
//     message of the same ID within the duplicate window, and consumers
//     read the event ID from it. Any other value unique in the stream
//     deduplicates too, and the event arrives with ID 0.
//   - Mainbus-Key: the event's key, when it has one.
//   - Mainbus-Time: the event's time, when the producer set one, as unix
//     nanoseconds in decimal or in RFC 3339. Without it, handlers get
//     the time the server stored the event, by the server's clock.
//
// The body is the value as encoded by the bus's [Codec].
//
// # Delivery
//
// Produce returns nil once the server has stored the event. Each stored
// event is handed to a handler at least once. In [Ordered] mode, the
// default, a conveyor has one unacknowledged event at a time and an ack
// is confirmed by the server, so events are handled exactly once and in
// order while no process crashes; a redelivery of an event already
// handled by this process is acknowledged without calling the handler
// again. In [Throughput] mode, more events are in flight and acks are not
// confirmed: faster, and a crash or a failing handler can reorder and
// repeat events.
//
// Handlers must be idempotent. A worker that crashes, stalls past the ack
// wait or loses its connection after handling an event and before its
// ack reaches the server leaves the event to be handled again, by itself
// or by the worker that takes the conveyor over; the server also accepts
// an ack that arrives late, after it has delivered the event again.
// Event IDs are the message IDs the server deduplicates publishes with;
// they must be unique per resource within the duplicate window. After a
// restart the server remembers only the IDs of events still in the
// stream: an event handled before the restart and produced again after
// it is handled again.
//
// # Shutdown
//
// [Bus.Close] stops intake, waits for publishes in flight, lets each
// conveyor finish and acknowledge the events already delivered to this
// process, and stops the bus's goroutines. Events still on the server
// stay there for the other workers or the next start. Close the
// connection after the buses on it, and an embedded server after that.
package jetbus
