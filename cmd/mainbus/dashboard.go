package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/dashboard"
	"github.com/mainbus-go/mainbus/prom"
)

// dashboardConfig is what the flags of the dashboard command set.
type dashboardConfig struct {
	buses    busFlags
	rate     rateFlag
	cost     durationFlag
	overflow overflowFlag
	buffer   nonNegative
	balancer balancerFlag
	addr     addrFlag
	interval durationFlag
}

// maxCost bounds --cost and the cost knobs.
const maxCost = time.Second

func dashboardFlags(stderr io.Writer) (*flag.FlagSet, *dashboardConfig) {
	cfg := &dashboardConfig{
		buses:    busFlags{specs: []busSpec{{"iron", 4}, {"copper", 2}}},
		rate:     2000,
		cost:     durationFlag{d: time.Millisecond, max: maxCost},
		overflow: overflowFlag(mainbus.Block),
		buffer:   mainbus.DefaultBuffer,
		balancer: "random",
		addr:     "127.0.0.1:7070",
		interval: durationFlag{d: dashboard.DefaultInterval,
			min: dashboard.MinInterval, max: dashboard.MaxInterval},
	}
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&cfg.buses, "bus", "a bus as `NAME=CONVEYORS`; repeat for more buses; "+
		"replaces the default iron=4 and copper=2")
	fs.Var(&cfg.rate, "rate", "`EVENTS` per second produced on each bus")
	fs.Var(&cfg.cost, "cost", "`D`uration the handler takes per event, such as 1ms; "+
		"it waits, so it costs no processor time")
	fs.Var(&cfg.overflow, "overflow", "`POLICY` when a conveyor is full: "+
		strings.Join(overflowNames, ", "))
	fs.Var(&cfg.buffer, "buffer", "`N` events each conveyor holds")
	fs.Var(&cfg.balancer, "balancer",
		"`NAME` of the way conveyors are picked: "+strings.Join(balancerNames, ", "))
	fs.Var(&cfg.addr, "addr", "`HOST:PORT` the dashboard listens on; port 0 picks a free one")
	fs.Var(&cfg.interval, "interval", "`D`uration between updates of the page")
	fs.Usage = func() {}
	return fs, cfg
}

// dashboardHelp follows the flags in the dashboard's --help.
const dashboardHelp = `
Runs a live factory and serves its dashboard; rate, cost and conveyors per
bus are knobs on the page.
`

// runDashboard runs a live factory, one producer per bus at --rate, and
// serves its dashboard at --addr until ctx ends: then it stops the
// producers, drains and closes the buses, and stops the server.
func runDashboard(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := dashboardFlags(stderr)
	if code, done := parseFlags(fs, args, "dashboard", "mainbus dashboard [flags]",
		dashboardHelp, stdout, stderr); done {
		return code
	}

	f, err := newFactory(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mainbus dashboard: %v\n", err)
		if errors.Is(err, mainbus.ErrInvalidOption) {
			return exitUsage
		}
		return exitFailure
	}
	ln, err := net.Listen("tcp", string(cfg.addr))
	if err != nil {
		f.complex.Close(context.Background())
		fmt.Fprintf(stderr, "mainbus dashboard: %v; pick another address with --addr\n", err)
		return exitFailure
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := f.server(cfg, log)
	if err != nil {
		ln.Close()
		f.complex.Close(context.Background())
		fmt.Fprintf(stderr, "mainbus dashboard: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "dashboard: %s\n", pageURL(ln.Addr()))
	return f.run(ctx, srv, ln, log)
}

// pageURL returns the URL of the page served on addr. A wildcard address
// is shown as localhost, where the page can be reached.
func pageURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// A factory is the buses of the dashboard command, each with the producer
// and handler settings its knobs change.
type factory struct {
	complex mainbus.Complex
	lines   []*line
	stop    context.CancelFunc // stops the producers; set by run
}

// A line is one bus and the settings of its producer and handler, read
// for every event and set by the knobs.
type line struct {
	bus  *mainbus.Bus[string]
	rate atomic.Uint64 // math.Float64bits of events per second
	cost atomic.Int64  // time.Duration per event

	// resizeCtx bounds a Resize from a knob; it ends when the factory
	// stops.
	resizeCtx context.Context
}

func newFactory(cfg *dashboardConfig) (*factory, error) {
	f := &factory{}
	for _, s := range cfg.buses.specs {
		l := &line{}
		l.rate.Store(math.Float64bits(float64(cfg.rate)))
		l.cost.Store(int64(cfg.cost.d))
		b, err := mainbus.New(s.name, l.handle,
			mainbus.WithConveyors(s.conveyors),
			mainbus.WithBuffer(int(cfg.buffer)),
			mainbus.WithOverflow(mainbus.Overflow(cfg.overflow)),
			mainbus.WithBalancer(cfg.balancer.balancer(0, false)))
		if err == nil {
			err = f.complex.Add(b)
		}
		if err != nil {
			f.complex.Close(context.Background())
			return nil, fmt.Errorf("--bus %s=%d: %w", s.name, s.conveyors, err)
		}
		l.bus = b
		f.lines = append(f.lines, l)
	}
	return f, nil
}

// handle is the handler of a line's bus: it takes the line's cost per
// event, waiting on a timer so that it uses no processor time.
func (l *line) handle(ctx context.Context, _ int, _ mainbus.Event[string]) error {
	d := time.Duration(l.cost.Load())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// produceTick is how often a producer wakes to put on its bus the events
// its rate has earned since.
const produceTick = 10 * time.Millisecond

// produce puts events on the line's bus at its rate until ctx ends. A
// producer held back by a full conveyor does not catch up later by more
// than a tenth of a second of events.
func (l *line) produce(ctx context.Context) {
	t := time.NewTicker(produceTick)
	defer t.Stop()
	plate := capitalize(l.bus.Resource()) + " Plate"
	last, credit, id := time.Now(), 0.0, uint64(0)
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		rate := math.Float64frombits(l.rate.Load())
		credit = min(credit+rate*now.Sub(last).Seconds(), rate/10+1)
		last = now
		for ; credit >= 1; credit-- {
			ev := mainbus.Event[string]{ID: id, Key: strconv.FormatUint(id, 10), Value: plate}
			id++
			// Under the reject policy a full conveyor refuses the event;
			// the producer goes on, as a real one would retry or give up.
			err := l.bus.Produce(ctx, ev)
			if err != nil && !errors.Is(err, mainbus.ErrFull) {
				return
			}
		}
	}
}

// knobs returns the live controls of the factory: rate, cost and
// conveyors of each bus.
func (f *factory) knobs(cfg *dashboardConfig, log *slog.Logger) []dashboard.Knob {
	maxRate := math.Max(20000, math.Ceil(float64(cfg.rate)*2/1000)*1000)
	maxCostMs := math.Max(20, math.Ceil(float64(cfg.cost.d)*2/float64(time.Millisecond)))
	var knobs []dashboard.Knob
	for _, l := range f.lines {
		res := l.bus.Resource()
		logged := func(name string, set func(float64) error) func(float64) error {
			return func(v float64) error {
				err := set(v)
				log.Info("knob set", "knob", name, "value", v, "err", err)
				return err
			}
		}
		knobs = append(knobs,
			dashboard.Knob{Name: res + " rate", Unit: "events/s",
				Min: 0, Max: maxRate, Step: 100,
				Get: func() float64 { return math.Float64frombits(l.rate.Load()) },
				Set: logged(res+" rate", func(v float64) error {
					l.rate.Store(math.Float64bits(v))
					return nil
				})},
			dashboard.Knob{Name: res + " cost", Unit: "ms",
				Min: 0, Max: maxCostMs, Step: 0.1,
				Get: func() float64 { return float64(l.cost.Load()) / float64(time.Millisecond) },
				Set: logged(res+" cost", func(v float64) error {
					l.cost.Store(int64(v * float64(time.Millisecond)))
					return nil
				})},
			dashboard.Knob{Name: res + " conveyors", Min: 2,
				Max: float64(max(64, l.bus.Conveyors())), Step: 2,
				Get: func() float64 { return float64(l.bus.Conveyors()) },
				Set: logged(res+" conveyors", l.resize)},
		)
	}
	return knobs
}

// resizeTimeout bounds how long a conveyors knob waits for the old
// conveyors to drain.
const resizeTimeout = 10 * time.Second

func (l *line) resize(v float64) error {
	ctx, cancel := context.WithTimeout(l.resizeCtx, resizeTimeout)
	defer cancel()
	return l.bus.Resize(ctx, int(v))
}

// server returns the HTTP server of the dashboard and /metrics.
func (f *factory) server(cfg *dashboardConfig, log *slog.Logger) (*http.Server, error) {
	h, err := dashboard.NewHandler(f.complex.Stats,
		dashboard.WithTitle("mainbus factory"),
		dashboard.WithInterval(cfg.interval.d),
		dashboard.WithKnobs(f.knobs(cfg, log)...))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/metrics", metricsHandler(f.complex.Stats))
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, nil
}

// metricsHandler serves the Prometheus metrics of the buses, from a
// registry of their own.
func metricsHandler(stats func() []mainbus.Stats) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewCollector(stats))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Deadlines of the shutdown.
const (
	drainTimeout    = 5 * time.Second
	shutdownTimeout = 2 * time.Second
)

// run produces and serves until ctx ends or the server fails, then stops
// in order: producers, buses (drained), server (its streams ended first).
func (f *factory) run(ctx context.Context, srv *http.Server, ln net.Listener,
	log *slog.Logger) int {
	// Requests get a context of their own that ends before Shutdown, so
	// that the page's event streams end and Shutdown does not wait on
	// them.
	reqCtx, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	prodCtx, stopProducers := context.WithCancel(context.Background())
	var producers sync.WaitGroup
	for _, l := range f.lines {
		l.resizeCtx = prodCtx
		producers.Go(func() { l.produce(prodCtx) })
	}

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("stopping: producers, then buses, then the server")
	case err := <-served:
		// Serve returned before any Shutdown: the listener failed.
		log.Error("the dashboard server stopped", "err", err)
		code = exitFailure
	}

	stopProducers()
	producers.Wait()
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := f.complex.Close(drainCtx); err != nil {
		log.Error("closing the buses", "err", err)
		code = exitFailure
	}

	endRequests()
	shutCtx, cancelShut := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelShut()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Error("stopping the server", "err", err)
		code = exitFailure
	}
	if code == exitOK {
		<-served // http.ErrServerClosed
	}
	return code
}
