package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/workload"
)

// maxBenchDuration bounds --duration: with eight runs of up to about
// 1.3 times it, the longest bench takes a quarter of an hour or so.
const maxBenchDuration = 10 * time.Minute

// benchHelp follows the flags in "mainbus bench --help". It documents the
// fields of --json; keep it in step with benchReport.
const benchHelp = `
bench runs the workload of BenchmarkCompare: producers hand int events to
4 conveyors of 64 slots each and the consumers add them up, through raw
channels (the baseline), through a bus with one Produce per event
(single), and through a stacked bus fed by ProduceBatch of 256 events
(stacked), with 1 and 8 producers. Each of the 6 cases runs for about
--duration after short calibration runs; setup is not timed, the drain at
shutdown is. Then single and stacked run once more with one producer
paced at half the events/s they reached with one producer, each event
carrying its produce time, for the latency from produce to handler.

Progress goes to stderr, the results to stdout: a table, or with --json
one JSON document with these fields:

  duration_ns            --duration, in nanoseconds
  go_version, gomaxprocs the Go release and the processors it used
  conveyors, buffer      the workload: 4 conveyors of 64 events
  batch                  events per ProduceBatch of the stacked case
  cases[]                one per case and producer count, in table order:
    case                 raw-channels, single or stacked
    producers            1 or 8
    events               events of the measured run
    elapsed_ns           its length in nanoseconds
    ns_per_event         elapsed_ns / events
    events_per_sec       events / elapsed
    allocs_per_event     heap allocations (runtime.MemStats.Mallocs) per event
    vs_raw               ns_per_event / that of raw-channels with as many producers
  latency[]              single, then stacked, at half load:
    case                 single or stacked
    producers            1
    target_events_per_sec  half the case's events_per_sec with 1 producer
    events_per_sec       the rate the paced producer reached
    events               events measured
    p50_ns, p99_ns       produce-to-handler latency percentiles, nanoseconds
`

// benchConfig is what the flags of bench set.
type benchConfig struct {
	duration benchDuration
	json     bool
	nats     natsFlag // --nats: "", "embedded" or a server URL
}

func benchFlags(stderr io.Writer) (*flag.FlagSet, *benchConfig) {
	cfg := &benchConfig{duration: benchDuration(time.Second)}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&cfg.duration, "duration",
		"how long each case runs: `D`, a duration such as 200ms or 2s, at most 10m")
	fs.BoolVar(&cfg.json, "json", false,
		"print the results as one JSON document instead of a table")
	fs.Var(&cfg.nats, "nats",
		"compare mainbus over JetStream with plain nats.go instead, on the server at `URL`: "+
			"embedded (one started here on 127.0.0.1) or nats://HOST:PORT")
	fs.Usage = func() {}
	return fs, cfg
}

// benchDuration is the --duration flag: above 0, at most maxBenchDuration.
type benchDuration time.Duration

func (d *benchDuration) String() string { return time.Duration(*d).String() }

func (d *benchDuration) Set(v string) error {
	const want = "want a duration above 0 and at most 10m, such as 200ms or 2s"
	t, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fmt.Errorf("not a duration; %s", want)
	case t <= 0:
		return fmt.Errorf("%v is not above 0; %s", t, want)
	case t > maxBenchDuration:
		return fmt.Errorf("%v is more than 10m; %s", t, want)
	}
	*d = benchDuration(t)
	return nil
}

// runBench measures the workload and prints the results.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := benchFlags(stderr)
	if code, done := parseFlags(fs, args, "bench",
		"mainbus bench [--duration D] [--json] [--nats URL]", benchHelp+benchNATSHelp,
		stdout, stderr); done {
		return code
	}
	if cfg.nats != "" {
		return runBenchNATS(ctx, cfg, stdout, stderr)
	}
	rep, err := bench(ctx, time.Duration(cfg.duration), newProgress(stderr))
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "mainbus bench: interrupted")
		} else {
			fmt.Fprintf(stderr, "mainbus bench: %v\n", err)
		}
		return exitFailure
	}
	return writeReport(rep, cfg.json, stdout, stderr)
}

// writeReport prints rep as a table, or as JSON if asJSON is set, and
// returns the exit status.
func writeReport(rep interface{ writeTable(io.Writer) error }, asJSON bool,
	stdout, stderr io.Writer) int {
	var err error
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mainbus bench: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// benchReport is everything bench measured; its JSON form is documented
// in benchHelp.
type benchReport struct {
	DurationNS int64           `json:"duration_ns"`
	GoVersion  string          `json:"go_version"`
	GOMAXPROCS int             `json:"gomaxprocs"`
	Conveyors  int             `json:"conveyors"`
	Buffer     int             `json:"buffer"`
	Batch      int             `json:"batch"`
	Cases      []caseResult    `json:"cases"`
	Latency    []latencyResult `json:"latency"`
}

// caseResult is the measured run of one case with one producer count.
type caseResult struct {
	Case           string  `json:"case"`
	Producers      int     `json:"producers"`
	Events         int     `json:"events"`
	ElapsedNS      int64   `json:"elapsed_ns"`
	NSPerEvent     float64 `json:"ns_per_event"`
	EventsPerSec   float64 `json:"events_per_sec"`
	AllocsPerEvent float64 `json:"allocs_per_event"`
	VsRaw          float64 `json:"vs_raw"`
}

// latencyResult is the produce-to-handler latency of one case at half
// load.
type latencyResult struct {
	Case         string  `json:"case"`
	Producers    int     `json:"producers"`
	TargetPerSec float64 `json:"target_events_per_sec"`
	EventsPerSec float64 `json:"events_per_sec"`
	Events       int     `json:"events"`
	P50NS        int64   `json:"p50_ns"`
	P99NS        int64   `json:"p99_ns"`
}

// bench runs every case of the workload for about d, then the latency
// runs, reporting progress to p.
func bench(ctx context.Context, d time.Duration, p *progress) (*benchReport, error) {
	rep := &benchReport{
		DurationNS: int64(d),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Conveyors:  workload.Conveyors,
		Buffer:     workload.Buffer,
		Batch:      workload.Batch,
	}
	for _, producers := range workload.Producers() {
		var raw float64 // ns/event of the baseline, which runs first
		for _, c := range workload.Cases() {
			p.start(fmt.Sprintf("%s p%d", c.Name, producers))
			r, err := measure(ctx, c, producers, d)
			p.stop()
			if err != nil {
				return nil, fmt.Errorf("%s with %d producers: %w", c.Name, producers, err)
			}
			if raw == 0 {
				raw = r.NSPerEvent
			}
			r.VsRaw = r.NSPerEvent / raw
			p.done("%s p%d: %.1f ns/event, %.2f allocs/event, %.2f× raw channels, %d events in %v",
				r.Case, r.Producers, r.NSPerEvent, r.AllocsPerEvent, r.VsRaw, r.Events,
				time.Duration(r.ElapsedNS).Round(time.Millisecond))
			rep.Cases = append(rep.Cases, r)
		}
	}

	for _, name := range []string{"single", "stacked"} {
		i := slices.IndexFunc(rep.Cases, func(r caseResult) bool {
			return r.Case == name && r.Producers == 1
		})
		rate := rep.Cases[i].EventsPerSec / 2
		p.start("latency " + name)
		l, err := measureLatency(ctx, name, rate, d/2)
		p.stop()
		if err != nil {
			return nil, fmt.Errorf("latency of %s: %w", name, err)
		}
		p.done("latency %s at %.0f events/s: p50 %s, p99 %s", name, l.EventsPerSec,
			micros(l.P50NS), micros(l.P99NS))
		rep.Latency = append(rep.Latency, l)
	}
	return rep, nil
}

// measure runs case c with producers producers, calibrating like the
// testing package: runs grow until one lasts a tenth of d, and the next,
// sized to last d, is the one measured. Each run sets the case up afresh.
func measure(ctx context.Context, c workload.Case, producers int,
	d time.Duration) (caseResult, error) {
	n, final := 100, false
	for {
		r, err := runOnce(ctx, c, producers, n)
		if err != nil || final || time.Duration(r.ElapsedNS) >= d {
			return r, err
		}
		perEvent := max(float64(r.ElapsedNS), 1) / float64(n)
		if time.Duration(r.ElapsedNS) >= d/10 {
			n, final = max(int(float64(d)/perEvent), n), true
			continue
		}
		// Aim a little past a tenth of d, growing at least twice and at
		// most a hundredfold, as testing.B does.
		next := int(1.2 * float64(d/10) / perEvent)
		n = min(max(next, 2*n), 100*n)
	}
}

// runOnce sets c up and runs it once with n events, timing the run and
// counting its heap allocations.
func runOnce(ctx context.Context, c workload.Case, producers, n int) (caseResult, error) {
	run, err := c.Setup(producers)
	if err != nil {
		return caseResult{}, err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	err = run(ctx, n)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		return caseResult{}, err
	}
	return caseResult{
		Case:           c.Name,
		Producers:      producers,
		Events:         n,
		ElapsedNS:      int64(elapsed),
		NSPerEvent:     float64(elapsed) / float64(n),
		EventsPerSec:   float64(n) / elapsed.Seconds(),
		AllocsPerEvent: float64(after.Mallocs-before.Mallocs) / float64(n),
	}, nil
}

// measureLatency runs case name ("single" or "stacked") of the workload
// with one producer paced at rate events/s for about window and returns
// the percentiles of the time from produce to handler over every event.
func measureLatency(ctx context.Context, name string, rate float64,
	window time.Duration) (latencyResult, error) {
	batch, calls := 1, 1 // events per produce call, handler calls per produce call
	if name == "stacked" {
		batch, calls = workload.Batch, (workload.Batch+mainbus.StackSize-1)/mainbus.StackSize
	}
	n := max(int(rate*window.Seconds()), workload.Batch)
	n = min(n, maxLatencySamples/calls*batch)
	rec := &latencyRecorder{samples: make([]latencySample, (n+batch-1)/batch*calls)}

	opts := workload.Options(mainbus.RoundRobin())
	var bus *mainbus.Bus[int]
	var err error
	if name == "stacked" {
		record := func(_ context.Context, _ int, evs []mainbus.Event[int]) error {
			rec.stack(time.Now(), evs) // the whole stack is handed over at once
			return nil
		}
		bus, err = mainbus.NewStacked("iron", record, opts...)
	} else {
		bus, err = mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
			rec.add(time.Since(ev.Time), 1)
			return nil
		}, opts...)
	}
	if err != nil {
		return latencyResult{}, err
	}

	runtime.GC() // not in the middle of the run, if it can be helped
	elapsed, err := pace(ctx, bus, n, batch, rate)
	if cerr := bus.Close(context.Background()); err == nil {
		err = cerr
	}
	if err != nil {
		return latencyResult{}, err
	}
	p50, p99, err := rec.percentiles(n)
	if err != nil {
		return latencyResult{}, err
	}
	return latencyResult{
		Case:         name,
		Producers:    1,
		TargetPerSec: math.Round(rate),
		EventsPerSec: math.Round(float64(n) / elapsed.Seconds()),
		Events:       n,
		P50NS:        int64(p50),
		P99NS:        int64(p99),
	}, nil
}

// maxLatencySamples bounds the samples a latency run keeps, 16 MiB of
// them: a million events of single, 64 million of stacked.
const maxLatencySamples = 1 << 20

// A latencySample is the latency of events handled together that were
// produced at one time: one event of single, a stack of stacked.
type latencySample struct {
	lat    time.Duration
	events int
}

// A latencyRecorder collects samples from the consumers of a bus into a
// slice allocated beforehand; each consumer claims its slots with next.
type latencyRecorder struct {
	samples []latencySample
	next    atomic.Int64 // index of the next free sample
}

func (r *latencyRecorder) add(lat time.Duration, events int) {
	if i := r.next.Add(1) - 1; i < int64(len(r.samples)) {
		r.samples[i] = latencySample{lat, events}
	}
}

// stack records the events of a stack handed over at now, one sample per
// run of events with the same produce time (a stack of stacked holds one).
func (r *latencyRecorder) stack(now time.Time, evs []mainbus.Event[int]) {
	for len(evs) > 0 {
		k := 1
		for k < len(evs) && evs[k].Time.Equal(evs[0].Time) {
			k++
		}
		r.add(now.Sub(evs[0].Time), k)
		evs = evs[k:]
	}
}

// percentiles returns the 50th and 99th percentile over every event
// recorded (nearest rank), and an error unless exactly n were. Call it
// once the consumers have stopped.
func (r *latencyRecorder) percentiles(n int) (p50, p99 time.Duration, err error) {
	if used := r.next.Load(); used > int64(len(r.samples)) {
		return 0, 0, fmt.Errorf("%d latency samples, room for %d", used, len(r.samples))
	}
	s := r.samples[:r.next.Load()]
	total := 0
	for _, x := range s {
		total += x.events
	}
	if total != n || n == 0 {
		return 0, 0, fmt.Errorf("handled %d events, want %d", total, n)
	}
	slices.SortFunc(s, func(a, b latencySample) int { return cmp.Compare(a.lat, b.lat) })
	return weightedPercentile(s, n, 50), weightedPercentile(s, n, 99), nil
}

// weightedPercentile returns the nearest-rank p-th percentile of the n
// events in sorted.
func weightedPercentile(sorted []latencySample, n, p int) time.Duration {
	rank := max((n*p+99)/100, 1) // ceil(n × p/100)
	seen := 0
	for _, x := range sorted {
		if seen += x.events; seen >= rank {
			return x.lat
		}
	}
	return sorted[len(sorted)-1].lat
}

// pace produces n events on bus from this goroutine, batch at a time
// (one Produce per event when batch is 1), at rate events/s. Each event
// carries the time it is produced. The producer spins, yielding, until a
// batch is due: at the rates measured here the gaps are far shorter than
// a timer can wait. It returns how long producing took.
func pace(ctx context.Context, bus *mainbus.Bus[int], n, batch int,
	rate float64) (time.Duration, error) {
	evs := make([]mainbus.Event[int], 0, batch)
	gap := float64(time.Second) / rate
	start := time.Now()
	for sent := 0; sent < n; sent += len(evs) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// One clock reading serves to wait and to stamp: the bus reads the
		// clock once per Produce of an unstamped event, so the paced
		// producer costs what the measured one did.
		due := start.Add(time.Duration(float64(sent) * gap))
		now := time.Now()
		for now.Before(due) {
			runtime.Gosched()
			now = time.Now()
		}
		evs = evs[:min(batch, n-sent)]
		for i := range evs {
			evs[i] = mainbus.Event[int]{Value: 1, Time: now}
		}
		var err error
		if batch == 1 {
			err = bus.Produce(context.Background(), evs[0])
		} else {
			err = bus.ProduceBatch(context.Background(), evs)
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// micros formats ns nanoseconds as microseconds with one decimal, which
// time.ParseDuration reads back.
func micros(ns int64) string {
	return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
}

// writeTable prints the report as two tables: throughput, then latency.
func (r *benchReport) writeTable(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("%-12s %9s %10s %12s %12s %7s\n",
		"case", "producers", "ns/event", "events/s", "allocs/event", "vs raw")
	for _, c := range r.Cases {
		ew.printf("%-12s %9d %10.1f %12.0f %12.2f %7.2f\n",
			c.Case, c.Producers, c.NSPerEvent, c.EventsPerSec, c.AllocsPerEvent, c.VsRaw)
	}
	ew.printf("\nproduce→handler latency, 1 producer paced at half its events/s:\n")
	ew.printf("%-12s %12s %9s %10s %10s\n", "case", "events/s", "events", "p50", "p99")
	for _, l := range r.Latency {
		ew.printf("%-12s %12.0f %9d %10s %10s\n",
			l.Case, l.EventsPerSec, l.Events, micros(l.P50NS), micros(l.P99NS))
	}
	return ew.err
}

// errWriter keeps the first error of a run of writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// A progress tells the user on stderr which case runs. Every finished
// case gets a line. On a terminal, a line with a spinner and the time
// spent shows the running case and is redrawn with a carriage return, then
// blanked, so no escape sequences are ever written; elsewhere nothing else
// is written.
type progress struct {
	w     io.Writer
	live  bool
	width int           // of the live line last drawn
	quit  chan struct{} // closed by stop to end spin
	ended chan struct{} // closed by spin when it returns
}

// progressTick is how often the live line is redrawn.
const progressTick = 100 * time.Millisecond

func newProgress(w io.Writer) *progress {
	return &progress{w: w, live: isTerminal(w)}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// start shows label as running. On a terminal it draws the live line at
// once and starts the goroutine that redraws it; stop ends that goroutine
// and must be called before the next start.
func (p *progress) start(label string) {
	if !p.live {
		return
	}
	p.quit, p.ended = make(chan struct{}), make(chan struct{})
	begin := time.Now()
	p.draw(label, 0, 0)
	go p.spin(label, begin)
}

// spin redraws the live line every progressTick until quit is closed.
func (p *progress) spin(label string, begin time.Time) {
	defer close(p.ended)
	t := time.NewTicker(progressTick)
	defer t.Stop()
	for frame := 1; ; frame++ {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.draw(label, frame, time.Since(begin))
		}
	}
}

func (p *progress) draw(label string, frame int, spent time.Duration) {
	line := fmt.Sprintf("bench: %s %c %.1fs", label, `|/-\`[frame%4], spent.Seconds())
	fmt.Fprintf(p.w, "\r%-*s", p.width, line)
	p.width = max(p.width, len(line))
}

// stop ends the live line of start, blanking it; it returns once spin has
// returned, so only the caller writes to p.w afterwards.
func (p *progress) stop() {
	if !p.live {
		return
	}
	close(p.quit)
	<-p.ended
	fmt.Fprintf(p.w, "\r%*s\r", p.width, "")
	p.width = 0
}

// done writes the line of a finished case.
func (p *progress) done(format string, args ...any) {
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
}
