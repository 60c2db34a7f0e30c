package jetbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// The mapping of a bus onto JetStream. It is part of the API: programs in
// other languages publish and consume with these names.
const (
	// group is the priority group every conveyor consumer pins its owner in.
	group = "mainbus"

	// metaConveyors is the stream metadata key holding the conveyor count.
	metaConveyors = "mainbus.conveyors"

	// Header names of the event fields other than the value and the ID,
	// which travels in the message ID; see Wire format in the package
	// doc.
	hdrKey  = "Mainbus-Key"
	hdrTime = "Mainbus-Time"
)

// StreamName returns the name of the stream that holds the events of
// resource: "mainbus-" followed by the resource.
func StreamName(resource string) string { return "mainbus-" + resource }

// Subject returns the subject of conveyor i of resource:
// "mainbus.<resource>.<i>".
func Subject(resource string, i int) string {
	return "mainbus." + resource + "." + strconv.Itoa(i)
}

// KeySubject returns the subject pattern "mainbus.<resource>.key.*". The
// stream maps a publish to mainbus.<resource>.key.K onto the conveyor of
// key K under [mainbus.KeyHash] (FNV-1a 32-bit modulo the conveyor count,
// the server's partition function), so producers in any language land
// where Go producers do. Such a publish should carry K in the
// Mainbus-Key header too, since the stored subject no longer holds it.
func KeySubject(resource string) string { return "mainbus." + resource + ".key.*" }

// ConsumerName returns the durable name of conveyor i's consumer: "L<i>".
func ConsumerName(i int) string { return "L" + strconv.Itoa(i) }

// streamConfig returns the stream of a bus of n conveyors.
func streamConfig(resource string, n int, cfg *config) jetstream.StreamConfig {
	subjects := make([]string, n, n+1)
	for i := range subjects {
		subjects[i] = Subject(resource, i)
	}
	subjects = append(subjects, KeySubject(resource))
	storage := jetstream.FileStorage
	if cfg.memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        StreamName(resource),
		Description: "mainbus events of " + resource,
		Subjects:    subjects,
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      KeySubject(resource),
			Destination: fmt.Sprintf("mainbus.%s.{{partition(%d,1)}}", resource, n),
		},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   storage,
		Replicas:  cfg.replicas,
		// A full conveyor refuses new events instead of discarding old
		// ones, and only that conveyor: the others go on.
		MaxMsgsPerSubject:    int64(cfg.capacity),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           cfg.dupWindow,
		Metadata:             map[string]string{metaConveyors: strconv.Itoa(n)},
	}
}

// ensureStream creates the bus's stream or updates it to cfg, after
// checking that an existing one has the same conveyor count.
func ensureStream(ctx context.Context, js jetstream.JetStream,
	sc jetstream.StreamConfig) (jetstream.Stream, error) {
	old, err := js.Stream(ctx, sc.Name)
	switch {
	case err == nil:
		have := old.CachedInfo().Config.Metadata[metaConveyors]
		if want := sc.Metadata[metaConveyors]; have != "" && have != want {
			return nil, invalid("stream %s has %s conveyors; this bus asks for %s. "+
				"Every process of a resource must use the same count", sc.Name, have, want)
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("jetbus: look up stream %s: %w", sc.Name, err)
	}
	s, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("jetbus: create stream %s: %w%s", sc.Name, err,
			replicasHint(err, sc.Replicas))
	}
	return s, nil
}

// replicasHint says what to do when the server refused a stream of n
// replicas for want of servers, and is empty for any other error.
func replicasHint(err error, n int) string {
	var api *jetstream.APIError
	if n < 2 || !errors.As(err, &api) {
		return ""
	}
	// The server's codes; package jetstream names neither.
	const (
		replicasNotSupported  jetstream.ErrorCode = 10074 // not clustered
		insufficientResources jetstream.ErrorCode = 10023
	)
	switch api.ErrorCode {
	case replicasNotSupported:
		return fmt.Sprintf("; the stream needs %d replicas and the server is not "+
			"clustered: use WithReplicas(1), or a cluster of %d servers or more", n, n)
	case insufficientResources:
		return fmt.Sprintf("; the stream needs %d replicas: use a cluster of %d servers "+
			"or more with room for it, or fewer replicas with WithReplicas", n, n)
	}
	return ""
}

// consumerConfig returns the durable consumer of conveyor i.
func consumerConfig(resource string, i int, cfg *config) jetstream.ConsumerConfig {
	maxAck := 1
	if cfg.mode == Throughput {
		maxAck = cfg.maxInFlight
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(i),
		Description:   fmt.Sprintf("mainbus %s conveyor %d", resource, i),
		FilterSubject: Subject(resource, i),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.ackWait,
		MaxDeliver:    -1, // the bus terminates an event after its last attempt
		MaxAckPending: maxAck,
		Replicas:      cfg.replicas,
		MemoryStorage: cfg.memory,
		// One owner per conveyor at a time: the server pins the first
		// puller and hands the conveyor to another after PinnedTTL without
		// pulls from the owner.
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{group},
		PinnedTTL:      cfg.pinTTL,
	}
}
