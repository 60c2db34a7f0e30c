package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDashboardBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"zero conveyors", []string{"--bus", "iron=0"}, "bus iron has 0 conveyors"},
		{"bad bus name", []string{"--bus", "iron.ore=2"}, "resource name"},
		{"negative rate", []string{"--rate", "-5"}, "want events per second from 0 to 1000000"},
		{"rate not a number", []string{"--rate", "fast"}, "not a number"},
		{"NaN rate", []string{"--rate", "NaN"}, "not a number"},
		{"huge rate", []string{"--rate", "1e9"}, "out of range"},
		{"negative cost", []string{"--cost", "-1ms"},
			"-1ms is out of range; want a duration from 0s to 1s"},
		{"cost not a duration", []string{"--cost", "5"}, "not a duration"},
		{"unknown overflow", []string{"--overflow", "spill"},
			"want one of block, reject, drop-newest, drop-oldest"},
		{"negative buffer", []string{"--buffer", "-1"}, "want 0 or more"},
		{"huge buffer", []string{"--buffer", "9223372036854775807"}, "want 0 to 1048576"},
		{"unknown balancer", []string{"--balancer", "fastest"}, "want one of random"},
		{"no port", []string{"--addr", "127.0.0.1"}, "want HOST:PORT"},
		{"port too big", []string{"--addr", "127.0.0.1:99999"},
			"for flag --addr: want HOST:PORT with a port from 0 to 65535"},
		{"named port", []string{"--addr", "127.0.0.1:http"}, "port from 0 to 65535"},
		{"short interval", []string{"--interval", "1ms"}, "want a duration from 10ms to 1m0s"},
		{"unknown flag", []string{"--events", "3"},
			"the flags of dashboard are --addr, --balancer"},
		{"stray argument", []string{"now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkUsageError(t, append([]string{"dashboard"}, tt.args...), tt.want)
		})
	}
}

func TestDashboardHelp(t *testing.T) {
	for _, args := range [][]string{{"dashboard", "--help"}, {"help", "dashboard"}} {
		out, errOut, code := runCLI(t, args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, "Usage: mainbus dashboard") ||
			!strings.Contains(out, "-overflow POLICY") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, _, _ := runCLI(t, "help")
	if !strings.Contains(out, "dashboard") {
		t.Errorf("help does not list the dashboard command:\n%s", out)
	}
}

func TestDashboardAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, errOut, code := runCLI(t, "dashboard", "--addr", ln.Addr().String())
	if code != exitFailure || out != "" {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, out, exitFailure)
	}
	if !strings.Contains(errOut, "address already in use; pick another address with --addr") {
		t.Errorf("stderr %q does not say the address is in use", errOut)
	}
}

// A dashboardProcess is the real command serving a dashboard: this test
// binary, re-executed as main.
type dashboardProcess struct {
	url    string
	cmd    *exec.Cmd
	stderr bytes.Buffer // read once exited is closed
	exited chan struct{}
	err    error // of Wait, set before exited is closed
}

// startDashboard starts "mainbus dashboard --addr 127.0.0.1:0" with args
// and waits for the line that gives its URL. The process is killed when
// the test ends, if it still runs.
func startDashboard(t *testing.T, args ...string) *dashboardProcess {
	t.Helper()
	args = append([]string{"dashboard", "--addr", "127.0.0.1:0"}, args...)
	p := &dashboardProcess{cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "MAINBUS_TEST_RUN_MAIN=1")
	out := &firstLine{got: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = out, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})

	select {
	case <-out.got:
	case <-p.exited:
		t.Fatalf("mainbus %v exited: %v; stderr:\n%s", args, p.err, p.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("mainbus %v printed no URL within 20s", args)
	}
	line := out.line()
	url, ok := strings.CutPrefix(line, "dashboard: ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("first line %q, want dashboard: http://127.0.0.1:PORT/", line)
	}
	p.url = url
	return p
}

// interrupt sends SIGINT and returns the exit status, failing the test
// if the process does not stop in time.
func (p *dashboardProcess) interrupt(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the dashboard did not stop within 15s of an interrupt")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// firstLine is a writer that tells when its first line is complete.
type firstLine struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	got  chan struct{}
	done bool
}

func (f *firstLine) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Write(b)
	if !f.done && bytes.IndexByte(f.buf.Bytes(), '\n') >= 0 {
		f.done = true
		close(f.got)
	}
	return len(b), nil
}

func (f *firstLine) line() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, _, _ := strings.Cut(f.buf.String(), "\n")
	return l
}

// snapshotFrame is the part of a /snapshot frame the tests read.
type snapshotFrame struct {
	Buses []struct {
		Resource string `json:"resource"`
		Active   int    `json:"active"`
		Total    struct {
			Consumed uint64 `json:"consumed"`
			Rate     struct {
				Consumed float64 `json:"consumed"`
			} `json:"rate"`
		} `json:"total"`
	} `json:"buses"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, res.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestDashboardServesAndStops runs the real command: it serves moving
// numbers and its knobs, and stops cleanly on an interrupt.
func TestDashboardServesAndStops(t *testing.T) {
	p := startDashboard(t, "--bus", "iron=2", "--bus", "copper=4", "--rate", "500",
		"--cost", "100us", "--interval", "50ms")

	var first, second snapshotFrame
	getJSON(t, p.url+"snapshot", &first)
	if len(first.Buses) != 2 || first.Buses[0].Resource != "iron" || first.Buses[1].Active != 4 {
		t.Fatalf("buses %+v, want iron with 2 conveyors and copper with 4", first.Buses)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		getJSON(t, p.url+"snapshot", &second)
		if second.Buses[0].Total.Consumed > first.Buses[0].Total.Consumed &&
			second.Buses[0].Total.Rate.Consumed > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iron consumed %d, then %d at %v/s; want it growing",
				first.Buses[0].Total.Consumed, second.Buses[0].Total.Consumed,
				second.Buses[0].Total.Rate.Consumed)
		}
	}

	res, err := http.Post(p.url+"knobs", "application/json",
		strings.NewReader(`{"name": "iron conveyors", "value": 6}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var after snapshotFrame
	getJSON(t, p.url+"snapshot", &after)
	if res.StatusCode != http.StatusOK || after.Buses[0].Active != 6 {
		t.Errorf("iron conveyors knob: %s, then %d conveyors; want 200 and 6",
			res.Status, after.Buses[0].Active)
	}

	// The same server serves the buses' Prometheus metrics.
	res, err = http.Get(p.url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`mainbus_events_consumed_total{conveyor="0",resource="iron"} `,
		`mainbus_handler_seconds_bucket{conveyor="3",resource="copper",le="+Inf"} `,
		`mainbus_bus_conveyors{resource="iron"} 6`,
	} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(metrics), want) {
			t.Errorf("GET /metrics: %s, without %q:\n%.2000s", res.Status, want, metrics)
		}
	}

	if code := p.interrupt(t); code != exitOK {
		t.Errorf("exit %d after an interrupt, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "stopping") {
		t.Errorf("stderr does not say it is stopping:\n%s", p.stderr.String())
	}
}
