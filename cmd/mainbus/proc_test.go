package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus/jetbus/embedded"
)

// runBinary runs the real command (this test binary, re-executed as
// main) to its end, within limit, and returns its output, exit status
// and how long it took.
func runBinary(t *testing.T, limit time.Duration, args ...string) (
	stdout, stderr string, code int, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAINBUS_TEST_RUN_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("mainbus %v still running after %v; stdout:\n%s\nstderr:\n%s",
			args, limit, out.String(), errOut.String())
	}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mainbus %v: %v", args, err)
	}
	return out.String(), errOut.String(), code, took
}

// A board follows commands running in child processes: their output
// lines as they come, and their ends. Tests wait on it for conditions
// over all of them.
type board struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each line and exit
}

func newBoard() *board { return &board{changed: make(chan struct{})} }

// A proc is a command started on a board. Its fields other than cmd are
// guarded by the board's mutex.
type proc struct {
	b      *board
	args   []string
	cmd    *exec.Cmd
	out    []outputLine // stdout
	errOut []outputLine // stderr
	exited bool
	code   int
	done   chan struct{} // closed once the process has exited
}

// An outputLine is one line of output and when the test read it.
type outputLine struct {
	text string
	at   time.Time
}

// start starts the command with args in a child process. When the test
// ends, a process still running is killed and waited for.
func (b *board) start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{b: b, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), "MAINBUS_TEST_RUN_MAIN=1")
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mainbus %v: %v", args, err)
	}
	var readers sync.WaitGroup
	readers.Go(func() { b.read(stdout, &p.out) })
	readers.Go(func() { b.read(stderr, &p.errOut) })
	go func() {
		// Wait must follow the last read of the pipes.
		readers.Wait()
		err := p.cmd.Wait()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		b.update(func() { p.exited, p.code = true, code })
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // fails once the process has exited
		<-p.done
	})
	return p
}

// read appends each line of r to *lines until r ends.
func (b *board) read(r io.Reader, lines *[]outputLine) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := outputLine{text: sc.Text(), at: time.Now()}
		b.update(func() { *lines = append(*lines, l) })
	}
}

// update runs f under the board's mutex and wakes the waiters.
func (b *board) update(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
	close(b.changed)
	b.changed = make(chan struct{})
}

// waitFor waits until cond holds, for at most d, and fails the test if
// it does not. cond runs with the board locked, so it may read the
// fields of the board's procs.
func (b *board) waitFor(t *testing.T, d time.Duration, what string, cond func() bool,
	procs ...*proc) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		b.mu.Lock()
		ok, changed := cond(), b.changed
		b.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("after %v: %s%s", d, what, b.dump(procs))
		}
	}
}

// dump returns the output of procs, for a failure message.
func (b *board) dump(procs []*proc) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	for _, p := range procs {
		s.WriteString("\n--- mainbus " + strings.Join(p.args, " ") + "\nstdout:\n")
		for _, l := range p.out {
			s.WriteString(l.text + "\n")
		}
		s.WriteString("stderr:\n")
		for _, l := range p.errOut {
			s.WriteString(l.text + "\n")
		}
	}
	return s.String()
}

// stop sends sig to p and waits, at most d, for it to exit; it returns
// the exit status.
func (p *proc) stop(t *testing.T, sig os.Signal, d time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal mainbus %v: %v", p.args, err)
	}
	p.b.waitFor(t, d, "mainbus "+strings.Join(p.args, " ")+" still running after "+
		sig.String(), func() bool { return p.exited }, p)
	return p.code
}

// startNATS starts an embedded NATS server with JetStream for the test.
func startNATS(t *testing.T) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start("", 0)
	if err != nil {
		t.Fatalf("start NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}
