package main

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus/internal/natstest"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// placements returns the event lines of a demo's output as "resource Lc
// ID", sorted: where each event was handled, without the time.
func placements(t *testing.T, out string) []string {
	t.Helper()
	lanes, _ := parseDemo(t, out) // checks the format and the last line
	if len(lanes) == 0 {
		t.Fatalf("no events in output:\n%s", out)
	}
	var p []string
	for _, l := range strings.Split(out, "\n") {
		if m := eventLine.FindStringSubmatch(l); m != nil {
			p = append(p, m[1]+" L"+m[2]+" "+m[3])
		}
	}
	slices.Sort(p)
	return p
}

// checkOnce checks that out holds each ID from 0 to n-1 once on each of
// the resources, and nothing else.
func checkOnce(t *testing.T, out string, n int, resources ...string) {
	t.Helper()
	_, ids := parseDemo(t, out)
	if len(ids) != len(resources) {
		t.Errorf("resources %v, want %v", ids, resources)
	}
	for _, res := range resources {
		var got []int
		for _, id := range ids[res] {
			i, _ := strconv.Atoi(id)
			got = append(got, i)
		}
		slices.Sort(got)
		var want []int
		for i := range n {
			want = append(want, i)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s handled IDs %v, want each of 0 to %d once", res, got, n-1)
		}
	}
}

// The demo over an embedded server handles the same events on the same
// conveyors as in process, and prints them in the same format.
func TestDemoNATSEmbedded(t *testing.T) {
	args := []string{"--bus", "iron=3", "--bus", "copper=2", "--events", "40",
		"--seed", "7", "--buffer", "4"}
	want, errOut, code := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("in process: exit %d, stderr %q", code, errOut)
	}
	out, errOut, code, took := runBinary(t, 20*time.Second,
		append([]string{"demo", "--nats", "embedded"}, args...)...)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if got, want := placements(t, out), placements(t, want); !slices.Equal(got, want) {
		t.Errorf("over NATS the events went to\n%v\nin process to\n%v", got, want)
	}
	checkOnce(t, out, 40, "iron", "copper")
	t.Logf("demo --nats embedded took %v", took)
}

// The demo against a running server deletes the streams it created, so
// a second run prints its own events only, and it refuses streams that
// are not its own unless told to reset them.
func TestDemoNATSTwice(t *testing.T) {
	srv := startNATS(t)
	for run := 1; run <= 2; run++ {
		out, errOut, code, took := runBinary(t, 15*time.Second,
			"demo", "--nats", srv.URL(), "--events", "20")
		if code != exitOK || errOut != "" {
			t.Fatalf("run %d: exit %d, stderr %q", run, code, errOut)
		}
		checkOnce(t, out, 20, "iron", "copper")
		t.Logf("run %d took %v", run, took)
	}
	checkNoStreams(t, srv.URL(), "iron", "copper")

	// Events left by a producer are not the demo's: it refuses them, and
	// --reset deletes them first.
	out, errOut, code, _ := runBinary(t, 15*time.Second,
		"demo", "--nats", srv.URL(), "--produce-only", "--bus", "iron=2", "--events", "3")
	if code != exitOK || out != "Produced 3 events on iron, IDs 1 to 3.\n" || errOut != "" {
		t.Fatalf("produce-only: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code, _ = runBinary(t, 15*time.Second,
		"demo", "--nats", srv.URL(), "--bus", "iron=2")
	if code != exitFailure || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "stream mainbus-iron already exists") ||
		!strings.Contains(errOut, "holding 3 events") || !strings.Contains(errOut, "--reset") {
		t.Errorf("on a stream of others: exit %d, stdout %q, stderr %q; want %d and one line "+
			"saying the stream exists and what to do", code, out, errOut, exitFailure)
	}
	out, errOut, code, _ = runBinary(t, 15*time.Second,
		"demo", "--nats", srv.URL(), "--bus", "iron=2", "--events", "5", "--reset")
	if code != exitOK || errOut != "" {
		t.Fatalf("--reset: exit %d, stderr %q", code, errOut)
	}
	checkOnce(t, out, 5, "iron")
	checkNoStreams(t, srv.URL(), "iron")
}

// checkNoStreams checks that the server at url has no stream for the
// resources.
func checkNoStreams(t *testing.T, url string, resources ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resources {
		_, err := js.Stream(ctx, jetbus.StreamName(res))
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream of %s after the demo: %v, want none", res, err)
		}
	}
}

// A server that cannot be used gives one clear line on stderr and exit
// status 1 within a few seconds, for the demo and the worker alike.
func TestNATSConnectErrors(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "nats://" + ln.Addr().String()
	ln.Close()

	// A server without JetStream.
	plain := natstest.NoJetStream(t)

	tests := []struct {
		name, url, want string
	}{
		{"unreachable", closed, "connect to " + closed},
		{"no JetStream", plain, "answers without JetStream"},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"demo"}, {"demo", "--produce-only"}, {"worker"}} {
			t.Run(tt.name+"/"+strings.Join(cmd, " "), func(t *testing.T) {
				args := append(slices.Clone(cmd), "--nats", tt.url)
				out, errOut, code, took := runBinary(t, 15*time.Second, args...)
				if code != exitFailure || out != "" || strings.Count(errOut, "\n") != 1 ||
					!strings.Contains(errOut, tt.want) {
					t.Errorf("exit %d, stdout %q, stderr %q; want %d and one line saying %q",
						code, out, errOut, exitFailure, tt.want)
				}
				if took > 6*time.Second {
					t.Errorf("took %v; want an answer within a few seconds", took)
				}
			})
		}
	}
}

func TestNATSBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"produce-only alone", []string{"--produce-only"}, "--produce-only needs --nats URL"},
		{"produce-only embedded", []string{"--nats", "embedded", "--produce-only"},
			"needs a server that outlives this process"},
		{"reset alone", []string{"--reset"}, "--reset needs --nats URL"},
		{"reset produce-only", []string{"--nats", "nats://127.0.0.1:1", "--reset",
			"--produce-only"}, "cannot go with --produce-only"},
		{"zero buffer", []string{"--nats", "embedded", "--buffer", "0"},
			"holds at least 1 event"},
		{"demo unknown flag", []string{"demo", "--mode", "ordered"},
			"the flags of demo are --balancer, --buffer, --bus, --events, --nats, " +
				"--produce-only, --reset, --seed"},
		{"worker embedded", []string{"worker", "--nats", "embedded"},
			"needs a server that outlives this process"},
		{"worker empty URL", []string{"worker", "--nats", ""},
			"empty; want embedded, or nats://HOST:PORT"},
		{"empty URL", []string{"--nats", ""}, "empty; want embedded, or nats://HOST:PORT"},
		{"URL is a flag", []string{"--nats", "--produce-only"},
			`"--produce-only" looks like a flag, not a server; want embedded, or nats://`},
		{"worker URL is a flag", []string{"worker", "--nats", "--name"}, "looks like a flag"},
		{"bench URL is a flag", []string{"bench", "--nats", "--json"}, "looks like a flag"},
		{"bench empty URL", []string{"bench", "--nats", ""}, "empty; want embedded"},
		{"no scheme", []string{"--nats", "localhost"}, `"localhost" has no scheme`},
		{"wrong scheme", []string{"--nats", "http://127.0.0.1:4222"},
			`has scheme "http"; want embedded, or nats://HOST:PORT`},
		{"worker wrong scheme", []string{"worker", "--nats", "http://127.0.0.1:4222"},
			`has scheme "http"`},
		{"no host", []string{"--nats", "nats://:4222"}, "has no host"},
		{"cluster member is a flag", []string{"--nats", "nats://127.0.0.1:4222,-v"},
			"looks like a flag"},
		{"dotted bus", []string{"--nats", "embedded", "--bus", "a.b=2"},
			"1 to 64 ASCII letters, digits, '-' or '_'"},
		{"bus with a space", []string{"--nats", "embedded", "--bus", "bad name=2"},
			"1 to 64 ASCII letters"},
		{"wildcard bus", []string{"--nats", "embedded", "--bus", "*=2"},
			"1 to 64 ASCII letters"},
		{"worker dotted bus", []string{"worker", "--bus", "a.b=2"}, "1 to 64 ASCII letters"},
		{"produce-only wildcard bus", []string{"--nats", "nats://127.0.0.1:1",
			"--produce-only", "--bus", "iron.>=2"}, "1 to 64 ASCII letters"},
		{"worker mode", []string{"worker", "--mode", "fast"}, "want ordered or throughput"},
		{"worker short pin", []string{"worker", "--pin-ttl", "1s"}, "want 2s or more"},
		{"worker pin not duration", []string{"worker", "--pin-ttl", "2"}, "not a duration"},
		{"worker short ack", []string{"worker", "--ack-wait", "10ms"}, "want 1s or more"},
		{"worker bus", []string{"worker", "--bus", "iron=x"}, "is not a whole number"},
		{"worker zero buffer", []string{"worker", "--buffer", "0"}, "want 1 or more"},
		{"worker argument", []string{"worker", "iron"}, `unexpected argument "iron"`},
		{"worker unknown flag", []string{"worker", "--events", "3"},
			"the flags of worker are --ack-wait, --buffer, --bus, --mode, --name, --nats, " +
				"--pin-ttl"},
		{"serve addr", []string{"serve-nats", "--addr", "4222"}, "want HOST:PORT"},
		{"serve port", []string{"serve-nats", "--addr", "127.0.0.1:70000"},
			"want 0 (a free port) to 65535"},
		{"serve argument", []string{"serve-nats", "now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkUsageError(t, tt.args, tt.want)
		})
	}
}

func TestNATSHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--help"}, "--nats embedded"},
		{[]string{"worker", "--help"}, "Usage: mainbus worker"},
		{[]string{"help", "worker"}, "-pin-ttl"},
		{[]string{"serve-nats", "-h"}, "Usage: mainbus serve-nats"},
		{[]string{"help"}, "serve-nats"},
		{[]string{"help"}, "worker"},
	} {
		out, errOut, code := runCLI(t, tt.args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout does not say %q:\n%s",
				tt.args, code, errOut, tt.want, out)
		}
	}
}

// A server that accepts connections and never answers gives exit status
// 1 within the five seconds the README promises.
func TestNATSSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never written to
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})

	url := "nats://" + ln.Addr().String()
	for _, cmd := range [][]string{{"demo"}, {"demo", "--produce-only"}, {"worker"},
		{"bench"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			t.Parallel()
			args := append(slices.Clone(cmd), "--nats", url)
			out, errOut, code, took := runBinary(t, 15*time.Second, args...)
			if code != exitFailure || out != "" || !strings.Contains(errOut, url) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and a line naming %s",
					code, out, errOut, exitFailure, url)
			}
			if took >= 5*time.Second {
				t.Errorf("took %v; want less than 5s", took)
			}
		})
	}
}
