package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// demoNATSHelp follows the flags in "mainbus demo --help".
const demoNATSHelp = `
With --nats the demo runs over NATS JetStream, a stream per bus and a
subject and a consumer per conveyor, and prints the same lines. It waits
until every event it produced has been handled, then closes the buses, the
connection and the embedded server, in that order.

  --nats embedded  starts a server in this process on 127.0.0.1, with its
                   storage in a temporary directory removed at the end.
  --nats URL       uses a running server or cluster. The demo creates the
                   streams mainbus-NAME of its buses and deletes them at
                   the end, so nothing is left for a rerun to print. It
                   refuses streams that already exist (another program's,
                   or those of a demo that was killed) unless --reset is
                   given, which deletes them and their events first.
  --produce-only   only produces, and leaves the events on the server for
                   "mainbus worker" to handle. Event IDs continue after the
                   last sequence of each stream, so the server does not drop
                   a rerun's events as duplicates.

Over NATS, --buffer is how many unhandled events a conveyor holds on the
server: 65536 unless given, at least 1.
`

// runDemoNATS runs the demo of cfg over the NATS server of cfg.nats.
func runDemoNATS(ctx context.Context, cfg *demoConfig, stdout, stderr io.Writer) int {
	if err := checkDemoNATS(cfg); err != nil {
		fmt.Fprintf(stderr, "mainbus demo: %v\n", err)
		return exitUsage
	}
	setup, cancel := context.WithTimeout(ctx, setupWait)
	defer cancel()
	conn, err := dialNATS(setup, string(cfg.nats), "mainbus demo")
	if err != nil {
		fmt.Fprintf(stderr, "mainbus demo: %v\n", err)
		return exitFailure
	}
	js, err := jetstream.New(conn.nc)
	if err != nil {
		conn.close()
		fmt.Fprintf(stderr, "mainbus demo: %v\n", err)
		return exitFailure
	}
	d := &natsDemo{cfg: cfg, conn: conn, js: js, out: &lineWriter{w: stdout},
		errOut: &lineWriter{w: stderr}}

	code := d.start(setup)
	if code == exitOK {
		code = d.run(ctx)
	}
	if err := d.shutdown(); err != nil {
		d.errOut.printf("mainbus demo: %s\n", oneLine(err))
		code = exitFailure
	}
	if code == exitOK && !cfg.produceOnly {
		d.out.printf("All main buses completed processing.\n")
	}
	return code
}

// checkDemoNATS checks the flags that only apply over NATS.
func checkDemoNATS(cfg *demoConfig) error {
	switch {
	case cfg.produceOnly:
		if err := natsURLFlag(string(cfg.nats), "--produce-only"); err != nil {
			return err
		}
		if cfg.reset {
			return fmt.Errorf("--reset deletes streams that workers may be using; " +
				"it cannot go with --produce-only")
		}
	case cfg.reset:
		if err := natsURLFlag(string(cfg.nats), "--reset"); err != nil {
			return err
		}
	}
	if cfg.bufferSet && cfg.buffer < 1 {
		return fmt.Errorf("--buffer %d: a conveyor on a NATS server holds at least "+
			"1 event; want 1 or more with --nats", cfg.buffer)
	}
	return nil
}

// natsDemo is one run of the demo over NATS.
type natsDemo struct {
	cfg    *demoConfig
	conn   *natsConn
	js     jetstream.JetStream
	out    *lineWriter
	errOut *lineWriter

	buses   []*jetbus.Bus[string]
	tallies []*tally // one per bus; none with --produce-only
	created []string // streams this run made, deleted by shutdown
}

// start makes the streams and buses, and returns the exit status.
func (d *natsDemo) start(ctx context.Context) int {
	if !d.cfg.produceOnly {
		if err := d.claimStreams(ctx); err != nil {
			d.errOut.printf("mainbus demo: %v\n", err)
			return exitFailure
		}
	}
	for _, s := range d.cfg.buses.specs {
		opts := []jetbus.Option{
			jetbus.WithConveyors(s.conveyors),
			jetbus.WithBalancer(d.cfg.balancer.balancer(d.cfg.seed.value, d.cfg.seed.set)),
			jetbus.WithErrorHandler(errorPrinter(d.errOut, "demo")),
		}
		if d.cfg.bufferSet {
			opts = append(opts, jetbus.WithCapacity(int(d.cfg.buffer)))
		}
		var h mainbus.Handler[string]
		if !d.cfg.produceOnly {
			t := newTally(int(d.cfg.events))
			d.tallies = append(d.tallies, t)
			h = t.wrap(printer(d.out, ""))
		}
		b, err := jetbus.New(ctx, d.conn.nc, s.name, h, opts...)
		if err != nil {
			d.errOut.printf("mainbus demo: --bus %s=%d: %v\n", s.name, s.conveyors, err)
			if errors.Is(err, mainbus.ErrInvalidOption) {
				return exitUsage
			}
			return exitFailure
		}
		d.buses = append(d.buses, b)
	}
	return exitOK
}

// claimStreams makes sure the streams of the demo's buses are its own:
// it refuses streams that exist, or deletes them under --reset. The
// streams of a server at a URL are deleted again by shutdown; those of
// the embedded server go with its temporary directory.
func (d *natsDemo) claimStreams(ctx context.Context) error {
	for _, s := range d.cfg.buses.specs {
		name := jetbus.StreamName(s.name)
		st, err := d.js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			return fmt.Errorf("look up stream %s: %w", name, err)
		case d.cfg.reset:
			if err := d.js.DeleteStream(ctx, name); err != nil {
				return fmt.Errorf("--reset: delete stream %s: %w", name, err)
			}
		default:
			return fmt.Errorf("stream %s already exists on %s, holding %d events; "+
				"the demo runs on streams of its own and deletes them when done. "+
				"Add --reset to delete it and its events first, or --produce-only "+
				"to feed the workers that use it", name, d.conn.url, st.CachedInfo().State.Msgs)
		}
		if d.conn.srv == nil {
			d.created = append(d.created, name)
		}
	}
	return nil
}

// run produces the events and waits until they have been handled, or,
// with --produce-only, says what it produced.
func (d *natsDemo) run(ctx context.Context) int {
	producers := make([]producer, len(d.buses))
	first := make([]uint64, len(d.buses))
	for i, b := range d.buses {
		producers[i] = b
		if d.cfg.produceOnly {
			seq, err := d.lastSequence(ctx, b.Resource())
			if err != nil {
				d.errOut.printf("mainbus demo: %v\n", err)
				return exitFailure
			}
			first[i] = seq + 1
		}
	}
	n := int(d.cfg.events)
	reconnects := d.conn.nc.Stats().Reconnects
	if err := produceAll(ctx, producers, first, n); err != nil {
		d.errOut.printf("mainbus demo: %s\n", oneLine(err))
		return exitFailure
	}
	if d.cfg.produceOnly {
		return d.report(ctx, first, d.conn.nc.Stats().Reconnects > reconnects)
	}
	for _, t := range d.tallies {
		select {
		case <-t.done:
		case <-ctx.Done():
			d.errOut.printf("mainbus demo: interrupted before every event was handled\n")
			return exitFailure
		}
	}
	return exitOK
}

// lastSequence returns the sequence of the last event stored on the
// stream of resource, handled or not.
func (d *natsDemo) lastSequence(ctx context.Context, resource string) (uint64, error) {
	s, err := d.js.Stream(ctx, jetbus.StreamName(resource))
	if err == nil {
		var info *jetstream.StreamInfo
		if info, err = s.Info(ctx); err == nil {
			return info.State.LastSeq, nil
		}
	}
	return 0, fmt.Errorf("read stream %s: %w", jetbus.StreamName(resource), err)
}

// report prints what --produce-only produced, one line per bus, and
// fails if the server dropped events as duplicates of IDs another
// producer stored. reconnected tells whether the connection was lost and
// made again while producing.
func (d *natsDemo) report(ctx context.Context, first []uint64, reconnected bool) int {
	code := exitOK
	n := uint64(d.cfg.events)
	for i, b := range d.buses {
		if n == 0 {
			d.out.printf("Produced 0 events on %s.\n", b.Resource())
			continue
		}
		var dup uint64
		for _, c := range b.Stats().Server {
			dup += c.Duplicates
		}
		if dup > 0 {
			last, err := d.lastSequence(ctx, b.Resource())
			if err != nil {
				d.errOut.printf("mainbus demo: %v\n", err)
				code = exitFailure
				continue
			}
			if collided(n, last-(first[i]-1), dup, reconnected) {
				d.errOut.printf("mainbus demo: of the %d events sent on %s, IDs %d to %d, the "+
					"server dropped %d as duplicates of IDs stored in the last two minutes; "+
					"is another producer running?\n",
					n, b.Resource(), first[i], first[i]+n-1, dup)
				code = exitFailure
				continue
			}
		}
		d.out.printf("Produced %d events on %s, IDs %d to %d.\n", n, b.Resource(),
			first[i], first[i]+n-1)
	}
	return code
}

// collided tells whether a producer of n events on a stream collided
// with another producer's event IDs, given dup, the publishes the server
// acknowledged as duplicates, and stored, how many events the stream
// stored while it produced.
//
// A publish whose answer was lost with the connection is sent again, and
// the server acknowledges the copy as a duplicate: those duplicates are
// this producer's own, and nothing is lost. Without a reconnection every
// duplicate is another producer's ID. After one, the stream tells: with
// no other producer it stored exactly the n events. Two producers of the
// same IDs at once, one of which also reconnected, go unseen by that
// one: the stream then also stored n events.
func collided(n, stored, dup uint64, reconnected bool) bool {
	switch {
	case dup == 0:
		return false
	case !reconnected:
		return true
	}
	return stored != n
}

// shutdown closes the buses, deletes the streams this run created, and
// closes the connection and the embedded server, in that order.
func (d *natsDemo) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	var errs []error
	for _, b := range d.buses {
		if err := b.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range d.created {
		err := d.js.DeleteStream(ctx, name)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
		}
	}
	d.conn.close()
	return errors.Join(errs...)
}

// A tally counts the distinct events a bus of the demo has handled and
// closes done once it has seen all of them.
type tally struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
	want int
	done chan struct{}
}

func newTally(want int) *tally {
	t := &tally{seen: make(map[uint64]struct{}, want), want: want, done: make(chan struct{})}
	if want == 0 {
		close(t.done)
	}
	return t
}

// wrap returns h, counting each event it handles.
func (t *tally) wrap(h mainbus.Handler[string]) mainbus.Handler[string] {
	return func(ctx context.Context, conveyor int, ev mainbus.Event[string]) error {
		err := h(ctx, conveyor, ev)
		t.add(ev.ID)
		return err
	}
}

func (t *tally) add(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[id]; ok {
		return
	}
	t.seen[id] = struct{}{}
	if len(t.seen) == t.want {
		close(t.done)
	}
}
