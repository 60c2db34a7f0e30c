package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// eventLine is the demo's line format, with the resource, conveyor, ID,
// value and time as groups.
var eventLine = regexp.MustCompile(
	`^\[Consumer-([a-z]+)-L(\d+)\] ID:(\d+) Value:([A-Z][a-z]+ Plate) Time:\d\d:\d\d:\d\d$`)

const lastLine = "All main buses completed processing."

// runCLI runs the command in this process and returns its output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// checkUsageError runs the command with args and checks that it exits
// with the usage status, says want on stderr and prints nothing else.
func checkUsageError(t *testing.T, args []string, want string) {
	t.Helper()
	out, errOut, code := runCLI(t, args...)
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr %q does not say %q", errOut, want)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
}

// parseDemo parses demo output and returns, per resource, the conveyors
// seen, and the IDs handled.
func parseDemo(t *testing.T, out string) (lanes map[string][]string, ids map[string][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != lastLine {
		t.Fatalf("last line is not %q; output:\n%s", lastLine, out)
	}
	lanes, ids = map[string][]string{}, map[string][]string{}
	for _, line := range lines[:len(lines)-1] {
		m := eventLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %q does not match %s", line, eventLine)
		}
		res, lane, id, value := m[1], m[2], m[3], m[4]
		if want := strings.ToUpper(res[:1]) + res[1:] + " Plate"; value != want {
			t.Errorf("line %q: value %q, want %q", line, value, want)
		}
		if !slices.Contains(lanes[res], lane) {
			lanes[res] = append(lanes[res], lane)
		}
		ids[res] = append(ids[res], id)
	}
	for _, l := range lanes {
		slices.Sort(l)
	}
	return lanes, ids
}

func TestDemoDefault(t *testing.T) {
	out, errOut, code := runCLI(t)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lanes, ids := parseDemo(t, out)
	allowed := map[string][]string{"iron": {"0", "1", "2", "3"}, "copper": {"0", "1"}}
	if len(lanes) != 2 {
		t.Fatalf("resources %v, want iron and copper", lanes)
	}
	for res, seen := range lanes {
		for _, l := range seen {
			if !slices.Contains(allowed[res], l) {
				t.Errorf("%s handled on L%s, want one of %v", res, l, allowed[res])
			}
		}
		var got []int
		for _, id := range ids[res] {
			n, _ := strconv.Atoi(id)
			got = append(got, n)
		}
		slices.Sort(got)
		want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		if !slices.Equal(got, want) {
			t.Errorf("%s IDs %v, want each of %v once", res, got, want)
		}
	}
}

func TestDemoOddBusRoundsUp(t *testing.T) {
	out, _, code := runCLI(t, "--bus", "iron=3", "--events", "2000")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	lanes, ids := parseDemo(t, out)
	if want := []string{"0", "1", "2", "3"}; !slices.Equal(lanes["iron"], want) {
		t.Errorf("iron lanes %v, want %v", lanes["iron"], want)
	}
	if len(lanes) != 1 || len(ids["iron"]) != 2000 {
		t.Errorf("got %d resources and %d iron events, want 1 and 2000", len(lanes), len(ids["iron"]))
	}
}

func TestDemoBalancers(t *testing.T) {
	for _, name := range balancerNames {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "--balancer", name, "--events", "50", "--buffer", "0")
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			_, ids := parseDemo(t, out)
			if len(ids["iron"]) != 50 || len(ids["copper"]) != 50 {
				t.Errorf("handled %d iron and %d copper, want 50 each", len(ids["iron"]), len(ids["copper"]))
			}
		})
	}
}

// TestDemoSeedRepeats checks that --seed makes the random balancer's
// choices repeatable: the same events land on the same conveyors.
func TestDemoSeedRepeats(t *testing.T) {
	placement := func(seed string) []string {
		out, _, code := runCLI(t, "--seed", seed, "--events", "200")
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
		var p []string
		for _, line := range strings.Split(out, "\n") {
			if m := eventLine.FindStringSubmatch(line); m != nil {
				p = append(p, m[1]+" L"+m[2]+" "+m[3])
			}
		}
		slices.Sort(p)
		return p
	}
	a, b, c := placement("7"), placement("7"), placement("8")
	if !slices.Equal(a, b) {
		t.Error("two runs with --seed 7 placed events differently")
	}
	if slices.Equal(a, c) {
		t.Error("runs with --seed 7 and --seed 8 placed all 400 events alike")
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"zero conveyors", []string{"--bus", "iron=0"}, "bus iron has 0 conveyors; want 1 or more"},
		{"negative conveyors", []string{"--bus", "iron=-2"}, "want 1 or more"},
		{"no equals", []string{"--bus", "iron"}, "want NAME=CONVEYORS"},
		{"not a number", []string{"--bus", "iron=four"}, "is not a whole number"},
		{"empty name", []string{"--bus", "=4"}, "want NAME=CONVEYORS"},
		{"bad name", []string{"--bus", "iron.ore=2"}, "resource name"},
		{"twice", []string{"--bus", "iron=2", "--bus", "iron=4"}, "given twice"},
		{"negative events", []string{"--events", "-1"}, "want 0 or more"},
		{"events not a number", []string{"--events", "ten"}, "not a whole number"},
		{"negative buffer", []string{"--buffer", "-5"}, "want 0 or more"},
		{"unknown balancer", []string{"--balancer", "fastest"}, "want one of random, round-robin"},
		{"seed without random", []string{"--balancer", "key-hash", "--seed", "1"}, "random balancer only"},
		{"bad seed", []string{"--seed", "x"}, "want a whole number from 0 to 18446744073709551615"},
		{"negative seed", []string{"--seed", "-1"}, "want a whole number"},
		{"huge buffer", []string{"--buffer", "9223372036854775807"}, "want 0 to 1048576"},
		{"non-ASCII name", []string{"--bus", "é=2"}, "non-ASCII character"},
		{"unknown flag", []string{"--colour"}, "the flags of demo are --balancer, --buffer, --bus"},
		{"stray argument", []string{"demo", "extra"}, `unexpected argument "extra"`},
		{"unknown command", []string{"smelt"}, `unknown command "smelt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkUsageError(t, tt.args, tt.want)
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"demo", "--help"}, {"-h"}, {"help", "demo"}} {
		out, errOut, code := runCLI(t, args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// TestExitStatus runs the real command (this test binary, re-executed as
// main) and checks the status the process exits with.
func TestExitStatus(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitOK},
		{[]string{"demo", "--events", "3"}, exitOK},
		{[]string{"--bus", "iron=0"}, exitUsage},
		{[]string{"frob"}, exitUsage},
	}
	for _, tt := range tests {
		cmd := exec.Command(os.Args[0], tt.args...)
		cmd.Env = append(os.Environ(), "MAINBUS_TEST_RUN_MAIN=1")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if code != tt.want {
			t.Errorf("mainbus %v exited %d, want %d; output:\n%s", tt.args, code, tt.want, out)
		}
	}
}
