package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mainbus-go/mainbus"
)

// demoConfig is what the demo's flags set.
type demoConfig struct {
	buses    busFlags
	events   nonNegative
	buffer   nonNegative
	balancer balancerFlag
	seed     seedFlag

	// Over NATS JetStream: "embedded" or a server URL.
	nats        natsFlag
	produceOnly bool
	reset       bool
	bufferSet   bool // --buffer was given
}

func demoFlags(stderr io.Writer) (*flag.FlagSet, *demoConfig) {
	cfg := &demoConfig{
		buses:    busFlags{specs: []busSpec{{"iron", 4}, {"copper", 2}}},
		events:   10,
		buffer:   mainbus.DefaultBuffer,
		balancer: "random",
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&cfg.buses, "bus", "a bus as `NAME=CONVEYORS`; repeat for more buses; "+
		"replaces the default iron=4 and copper=2")
	fs.Var(&cfg.events, "events", "`N` events produced on each bus")
	fs.Var(&cfg.buffer, "buffer", "`N` events each conveyor holds")
	fs.Var(&cfg.balancer, "balancer",
		"`NAME` of the way conveyors are picked: "+strings.Join(balancerNames, ", "))
	fs.Var(&cfg.seed, "seed", "`N` seeds the random balancer, for repeatable runs")
	fs.Var(&cfg.nats, "nats", "run over NATS JetStream: `SERVER` is \"embedded\" "+
		"(a server in this process, on 127.0.0.1, storing in a temporary directory) "+
		"or a URL such as nats://127.0.0.1:4222")
	fs.BoolVar(&cfg.produceOnly, "produce-only", false,
		"with --nats URL: only produce, for the workers of \"mainbus worker\" to handle")
	fs.BoolVar(&cfg.reset, "reset", false,
		"with --nats URL: delete the streams of the buses first, with any events on them")
	fs.Usage = func() {}
	return fs, cfg
}

// runDemo runs the seed factory: every bus gets --events events, each
// handled event prints one line, and once all buses have drained and
// closed a last line says so.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := demoFlags(stderr)
	if code, done := parseFlags(fs, args, "demo", "mainbus [demo] [flags]", demoNATSHelp,
		stdout, stderr); done {
		return code
	}
	if cfg.seed.set && cfg.balancer != "random" {
		fmt.Fprintf(stderr, "mainbus demo: --seed applies to the random balancer only, not %s\n",
			cfg.balancer)
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { cfg.bufferSet = cfg.bufferSet || f.Name == "buffer" })
	if cfg.nats != "" || cfg.produceOnly || cfg.reset {
		return runDemoNATS(ctx, cfg, stdout, stderr)
	}

	out := &lineWriter{w: stdout}
	var factory mainbus.Complex
	var buses []*mainbus.Bus[string]
	for _, s := range cfg.buses.specs {
		b, err := mainbus.New(s.name, printer(out, ""),
			mainbus.WithConveyors(s.conveyors),
			mainbus.WithBuffer(int(cfg.buffer)),
			mainbus.WithBalancer(cfg.balancer.balancer(cfg.seed.value, cfg.seed.set)))
		if err == nil {
			err = factory.Add(b)
		}
		if err != nil {
			factory.Close(context.Background())
			fmt.Fprintf(stderr, "mainbus demo: --bus %s=%d: %v\n", s.name, s.conveyors, err)
			if errors.Is(err, mainbus.ErrInvalidOption) {
				return exitUsage
			}
			return exitFailure
		}
		buses = append(buses, b)
	}

	code := exitOK
	producers := make([]producer, len(buses))
	for i, b := range buses {
		producers[i] = b
	}
	if err := produceAll(ctx, producers, nil, int(cfg.events)); err != nil {
		fmt.Fprintf(stderr, "mainbus demo: %v\n", err)
		code = exitFailure
	}
	if err := factory.Close(context.Background()); err != nil {
		fmt.Fprintf(stderr, "mainbus demo: %v\n", err)
		return exitFailure
	}
	if code == exitOK {
		out.printf("All main buses completed processing.\n")
	}
	return code
}

// A producer is a bus of the demo, in process or over NATS.
type producer interface {
	Resource() string
	Produce(ctx context.Context, ev mainbus.Event[string]) error
}

// produceAll puts n events on every bus, one producer goroutine per bus,
// and waits for them. The IDs on bus i run from first[i], or from 0 when
// first is nil.
func produceAll(ctx context.Context, buses []producer, first []uint64, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(buses))
	for i, b := range buses {
		plate := capitalize(b.Resource()) + " Plate"
		var from uint64
		if first != nil {
			from = first[i]
		}
		wg.Go(func() {
			for id := from; id < from+uint64(n); id++ {
				ev := mainbus.Event[string]{ID: id, Key: strconv.FormatUint(id, 10),
					Value: plate}
				if err := b.Produce(ctx, ev); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// printer returns the handler that prints one line per event, ending in
// " Worker:NAME" when worker is not empty.
func printer(out *lineWriter, worker string) mainbus.Handler[string] {
	if worker != "" {
		worker = " Worker:" + worker
	}
	return func(_ context.Context, conveyor int, ev mainbus.Event[string]) error {
		out.printf("[Consumer-%s-L%d] ID:%d Value:%s Time:%s%s\n",
			ev.Resource, conveyor, ev.ID, ev.Value, ev.Time.Format(time.TimeOnly), worker)
		return nil
	}
}

// flagNames lists the flags of fs as --name, comma-separated.
func flagNames(fs *flag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	return strings.Join(names, ", ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// lineWriter writes whole lines from many goroutines without mixing them.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	fmt.Fprintf(l.w, format, args...)
	l.mu.Unlock()
}
