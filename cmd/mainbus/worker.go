package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// workerHelp follows the flags in "mainbus worker --help".
const workerHelp = `
A worker handles the events of its buses on a NATS JetStream server and
prints one line per event, in the format of the demo, until Ctrl-C or
SIGTERM; then it finishes the events it holds and exits with status 0. A
second Ctrl-C stops it at once.

Run workers in as many processes as you like: each conveyor belongs to one
worker at a time, and when that worker dies the others take its conveyors
over within --pin-ttl (an event it was handling comes back after
--ack-wait). Every process of a bus must give it the same conveyor count.
Events come from "mainbus demo --nats URL --produce-only" or any producer
of package jetbus; the worker's status lines go to stderr.
`

// workerConfig is what the worker's flags set.
type workerConfig struct {
	nats    natsFlag
	buses   busFlags
	buffer  nonNegative
	mode    modeFlag
	pinTTL  durationFlag
	ackWait durationFlag
	name    string
}

// The lower bounds of jetbus.WithPinTTL and jetbus.WithAckWait, checked
// with the other flags, before connecting.
const (
	minPinTTL  = 2 * time.Second
	minAckWait = time.Second
)

func workerFlags(stderr io.Writer) (*flag.FlagSet, *workerConfig) {
	cfg := &workerConfig{
		nats:    defaultNATS,
		buses:   busFlags{specs: []busSpec{{"iron", 4}, {"copper", 2}}},
		buffer:  jetbus.DefaultCapacity,
		pinTTL:  durationFlag{d: jetbus.DefaultPinTTL, min: minPinTTL},
		ackWait: durationFlag{d: jetbus.DefaultAckWait, min: minAckWait},
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&cfg.nats, "nats", "`URL` of the NATS server or cluster")
	fs.Var(&cfg.buses, "bus", "a bus as `NAME=CONVEYORS`; repeat for more buses; "+
		"replaces the default iron=4 and copper=2")
	fs.Var(&cfg.buffer, "buffer", "`N` unhandled events each conveyor holds on the server")
	fs.Var(&cfg.mode, "mode", "`MODE`: ordered (one event of a conveyor in flight at a "+
		"time, exactly once while nothing crashes) or throughput")
	fs.Var(&cfg.pinTTL, "pin-ttl", "`D`: how long the conveyors of a dead worker wait "+
		"before another takes them over; 2s or more")
	fs.Var(&cfg.ackWait, "ack-wait", "`D`: how long the server waits for a worker to "+
		"finish an event before it hands it out again; 1s or more")
	fs.StringVar(&cfg.name, "name", "", "`NAME` of this worker, ending each line "+
		"as Worker:NAME and naming its connection")
	fs.Usage = func() {}
	return fs, cfg
}

// runWorker handles the events of the worker's buses until ctx ends.
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := workerFlags(stderr)
	if code, done := parseFlags(fs, args, "worker", "mainbus worker [flags]", workerHelp,
		stdout, stderr); done {
		return code
	}
	if err := checkWorker(cfg); err != nil {
		fmt.Fprintf(stderr, "mainbus worker: %v\n", err)
		return exitUsage
	}

	errOut := &lineWriter{w: stderr}
	setup, cancel := context.WithTimeout(ctx, setupWait)
	defer cancel()
	conn, err := dialNATS(setup, string(cfg.nats), "mainbus worker "+cfg.name)
	if err != nil {
		errOut.printf("mainbus worker: %v\n", err)
		return exitFailure
	}
	defer conn.close()

	var handled atomic.Uint64
	buses, code := startWorkerBuses(setup, conn, cfg, &lineWriter{w: stdout}, errOut, &handled)
	if code == exitOK {
		var names []string
		for _, b := range buses {
			names = append(names, fmt.Sprintf("%s (%d conveyors)", b.Resource(), b.Conveyors()))
		}
		errOut.printf("mainbus worker: handling %s from %s; Ctrl-C to stop\n",
			strings.Join(names, ", "), conn.url)
		<-ctx.Done()
		errOut.printf("mainbus worker: stopping: finishing the events in hand\n")
		if !conn.nc.IsConnected() {
			errOut.printf("mainbus worker: %s does not answer; waiting up to %v for it "+
				"(Ctrl-C again to quit at once)\n", conn.url, closeWait)
		}
	}

	closeCtx, cancelClose := context.WithTimeout(context.Background(), closeWait)
	defer cancelClose()
	for _, b := range buses {
		if err := b.Close(closeCtx); err != nil {
			errOut.printf("mainbus worker: %s\n", oneLine(err))
			code = exitFailure
		}
	}
	if code == exitOK {
		errOut.printf("mainbus worker: stopped after handling %d events\n", handled.Load())
	}
	return code
}

// checkWorker checks the flags that depend on each other.
func checkWorker(cfg *workerConfig) error {
	if err := natsURLFlag(string(cfg.nats), "the worker"); err != nil {
		return err
	}
	if cfg.buffer < 1 {
		return fmt.Errorf("--buffer %d: a conveyor on a NATS server holds at least "+
			"1 event; want 1 or more", cfg.buffer)
	}
	return nil
}

// startWorkerBuses starts a consuming bus per --bus. On failure it
// returns the buses started so far, for the caller to close.
func startWorkerBuses(ctx context.Context, conn *natsConn, cfg *workerConfig,
	out, errOut *lineWriter, handled *atomic.Uint64) ([]*jetbus.Bus[string], int) {
	show := printer(out, cfg.name)
	h := func(ctx context.Context, conveyor int, ev mainbus.Event[string]) error {
		err := show(ctx, conveyor, ev)
		handled.Add(1)
		return err
	}
	var buses []*jetbus.Bus[string]
	for _, s := range cfg.buses.specs {
		opts := []jetbus.Option{
			jetbus.WithConveyors(s.conveyors),
			jetbus.WithCapacity(int(cfg.buffer)),
			jetbus.WithMode(jetbus.Mode(cfg.mode)),
			jetbus.WithPinTTL(cfg.pinTTL.d),
			jetbus.WithAckWait(cfg.ackWait.d),
			jetbus.WithErrorHandler(errorPrinter(errOut, "worker")),
		}
		b, err := jetbus.New(ctx, conn.nc, s.name, h, opts...)
		if err != nil {
			errOut.printf("mainbus worker: --bus %s=%d: %v\n", s.name, s.conveyors, err)
			if errors.Is(err, mainbus.ErrInvalidOption) {
				return buses, exitUsage
			}
			return buses, exitFailure
		}
		buses = append(buses, b)
	}
	return buses, exitOK
}
