package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/mainbus-go/mainbus/internal/natsload"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/nats-io/nats.go"
)

// benchNATSHelp follows benchHelp in "mainbus bench --help". It documents
// the fields of --json with --nats; keep it in step with natsReport.
const benchNATSHelp = `
With --nats, bench instead measures the same work done by plain nats.go
and by a jetbus bus on one NATS server, in the same run: publishing
64-byte bodies on 4 subjects to a work-queue stream (memory and file
storage) until every one is stored, and consuming them with one pull
consumer per subject, ordered (one in flight, acks confirmed) and
throughput (up to 1024 in flight, acks not confirmed). Each case runs
on a fresh stream for about --duration. The bus publishes with
ProduceBatch and adds its headers; plain publishes bare bodies (plain)
and bodies with a Nats-Msg-Id header (plain+id), the deduplication the
bus relies on. --nats embedded starts a server on 127.0.0.1 with a
temporary directory.

With --json, the fields are:

  server                 embedded or the URL given
  duration_ns, size, conveyors, gomaxprocs
  cases[]                publish/memory, publish/file, consume-ordered/memory,
                         consume-throughput/memory:
    work, storage, events
    plain_per_sec        msgs/s of plain nats.go
    plain_id_per_sec     msgs/s of plain nats.go with message IDs (publish only)
    mainbus_per_sec      msgs/s of the bus
    ratio                mainbus_per_sec / plain_per_sec
    ratio_id             mainbus_per_sec / plain_id_per_sec (publish only)
`

// natsReport is what bench --nats measured.
type natsReport struct {
	Server     string     `json:"server"`
	DurationNS int64      `json:"duration_ns"`
	Size       int        `json:"size"`
	Conveyors  int        `json:"conveyors"`
	GOMAXPROCS int        `json:"gomaxprocs"`
	Cases      []natsCase `json:"cases"`
}

// natsCase is one work on both sides.
type natsCase struct {
	Work          string  `json:"work"`
	Storage       string  `json:"storage"`
	Events        int     `json:"events"`
	PlainPerSec   float64 `json:"plain_per_sec"`
	PlainIDPerSec float64 `json:"plain_id_per_sec,omitempty"`
	BusPerSec     float64 `json:"mainbus_per_sec"`
	Ratio         float64 `json:"ratio"`
	RatioID       float64 `json:"ratio_id,omitempty"`
}

// runBenchNATS is bench --nats.
func runBenchNATS(ctx context.Context, cfg *benchConfig, stdout, stderr io.Writer) int {
	url := string(cfg.nats)
	if url == "embedded" {
		srv, err := embedded.Start("", 0)
		if err != nil {
			fmt.Fprintf(stderr, "mainbus bench: %v\n", err)
			return exitFailure
		}
		defer srv.Shutdown()
		url = srv.URL()
	}
	cctx, cancel := context.WithTimeout(ctx, connectWait)
	nc, err := jetbus.Connect(cctx, url)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "mainbus bench: --nats %s: %v\n", cfg.nats, err)
		return exitFailure
	}
	defer nc.Close()

	rep, err := benchNATS(ctx, nc, time.Duration(cfg.duration), newProgress(stderr))
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "mainbus bench: interrupted")
		} else {
			fmt.Fprintf(stderr, "mainbus bench: %v\n", err)
		}
		return exitFailure
	}
	rep.Server = string(cfg.nats)
	return writeReport(rep, cfg.json, stdout, stderr)
}

// benchNATS runs every case for about d on nc.
func benchNATS(ctx context.Context, nc *nats.Conn, d time.Duration,
	p *progress) (*natsReport, error) {
	rep := &natsReport{DurationNS: int64(d), Size: natsload.DefaultSize,
		Conveyors: natsload.DefaultConveyors, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	cases := []natsload.Config{
		{Work: natsload.Publish, Memory: true},
		{Work: natsload.Publish},
		{Work: natsload.ConsumeOrdered, Memory: true},
		{Work: natsload.ConsumeThroughput, Memory: true},
	}
	for _, cfg := range cases {
		label := string(cfg.Work) + "/" + cfg.Storage()
		p.start(label)
		c, err := natsCompare(ctx, nc, cfg, d)
		p.stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		p.done("%s: plain %.0f msgs/s, mainbus %.0f msgs/s, %.2f× plain, %d events each",
			label, c.PlainPerSec, c.BusPerSec, c.Ratio, c.Events)
		rep.Cases = append(rep.Cases, c)
	}
	return rep, nil
}

// natsCompare sizes cfg to last about d on the plain side, from a short
// calibration run, and runs it on both sides.
func natsCompare(ctx context.Context, nc *nats.Conn, cfg natsload.Config,
	d time.Duration) (natsCase, error) {
	cfg.Events = 1000
	r, err := natsload.Run(ctx, nc, natsload.Plain, cfg)
	if err != nil {
		return natsCase{}, err
	}
	cfg.Events = min(max(int(r.PerSec()*d.Seconds()), 1000), 5_000_000)
	pair, err := natsload.Compare(ctx, nc, cfg)
	if err != nil {
		return natsCase{}, err
	}
	c := natsCase{Work: string(cfg.Work), Storage: cfg.Storage(), Events: cfg.Events,
		PlainPerSec: pair.Plain.PerSec(), BusPerSec: pair.Jetbus.PerSec(),
		Ratio: pair.Ratio()}
	if cfg.Work == natsload.Publish {
		cfg.MsgIDs = true
		r, err := natsload.Run(ctx, nc, natsload.Plain, cfg)
		if err != nil {
			return natsCase{}, fmt.Errorf("plain with message IDs: %w", err)
		}
		c.PlainIDPerSec = r.PerSec()
		c.RatioID = c.BusPerSec / c.PlainIDPerSec
	}
	return c, nil
}

// writeTable prints the report, one row per case.
func (r *natsReport) writeTable(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("%-19s %-7s %9s %11s %11s %11s %7s %9s\n", "work", "storage", "events",
		"plain/s", "plain+id/s", "mainbus/s", "ratio", "ratio+id")
	for _, c := range r.Cases {
		id, ratioID := "-", "-"
		if c.PlainIDPerSec > 0 {
			id, ratioID = fmt.Sprintf("%.0f", c.PlainIDPerSec), fmt.Sprintf("%.2f", c.RatioID)
		}
		ew.printf("%-19s %-7s %9d %11.0f %11s %11.0f %7.2f %9s\n", c.Work, c.Storage,
			c.Events, c.PlainPerSec, id, c.BusPerSec, c.Ratio, ratioID)
	}
	return ew.err
}
