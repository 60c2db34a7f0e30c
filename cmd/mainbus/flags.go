package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mainbus-go/mainbus"
)

// busSpec is one --bus NAME=CONVEYORS flag.
type busSpec struct {
	name      string
	conveyors int
}

// busFlags collects repeated --bus flags. The first --bus replaces the
// defaults it was created with.
type busFlags struct {
	specs []busSpec
	set   bool
}

func (f *busFlags) String() string {
	var parts []string
	for _, s := range f.specs {
		parts = append(parts, fmt.Sprintf("%s=%d", s.name, s.conveyors))
	}
	return strings.Join(parts, ",")
}

func (f *busFlags) Set(v string) error {
	name, count, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=CONVEYORS, as in iron=4")
	}
	n, err := strconv.Atoi(count)
	if err != nil {
		return fmt.Errorf("conveyors %q is not a whole number; "+
			"want NAME=CONVEYORS, as in iron=4", count)
	}
	if n < 1 {
		return fmt.Errorf("bus %s has %d conveyors; want 1 or more", name, n)
	}
	if err := mainbus.CheckResource(name); err != nil {
		// The flag package names the flag; the package prefix adds nothing.
		return errors.New(strings.TrimPrefix(err.Error(), "mainbus: "))
	}
	if !f.set {
		f.specs, f.set = nil, true
	}
	if slices.ContainsFunc(f.specs, func(s busSpec) bool { return s.name == name }) {
		return fmt.Errorf("bus %s is given twice; want each resource once", name)
	}
	f.specs = append(f.specs, busSpec{name: name, conveyors: n})
	return nil
}

// balancerNames lists the values of --balancer.
var balancerNames = []string{"random", "round-robin", "key-hash", "least-loaded"}

// balancerFlag is the --balancer flag.
type balancerFlag string

func (f *balancerFlag) String() string { return string(*f) }

func (f *balancerFlag) Set(v string) error {
	if !slices.Contains(balancerNames, v) {
		return fmt.Errorf("unknown balancer; want one of %s", strings.Join(balancerNames, ", "))
	}
	*f = balancerFlag(v)
	return nil
}

// balancer returns the balancer named by f. seed is used by the random
// balancer when seeded is set.
func (f balancerFlag) balancer(seed uint64, seeded bool) mainbus.Balancer {
	switch f {
	case "round-robin":
		return mainbus.RoundRobin()
	case "key-hash":
		return mainbus.KeyHash()
	case "least-loaded":
		return mainbus.LeastLoaded()
	}
	if seeded {
		return mainbus.SeededRandom(seed)
	}
	return mainbus.Random()
}

// nonNegative is an int flag that refuses negative values.
type nonNegative int

func (n *nonNegative) String() string { return strconv.Itoa(int(*n)) }

func (n *nonNegative) Set(v string) error {
	i, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("not a whole number; want 0 or more")
	}
	if i < 0 {
		return fmt.Errorf("%d is negative; want 0 or more", i)
	}
	*n = nonNegative(i)
	return nil
}

// seedFlag is the --seed flag; set records that it was given.
type seedFlag struct {
	value uint64
	set   bool
}

func (f *seedFlag) String() string { return strconv.FormatUint(f.value, 10) }

func (f *seedFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("want a whole number from 0 to %d", uint64(math.MaxUint64))
	}
	f.value, f.set = n, true
	return nil
}

// overflowNames lists the values of --overflow, in the order of
// [mainbus.Overflow].
var overflowNames = []string{"block", "reject", "drop-newest", "drop-oldest"}

// overflowFlag is the --overflow flag.
type overflowFlag mainbus.Overflow

func (f *overflowFlag) String() string { return mainbus.Overflow(*f).String() }

func (f *overflowFlag) Set(v string) error {
	i := slices.Index(overflowNames, v)
	if i < 0 {
		return fmt.Errorf("unknown overflow policy; want one of %s",
			strings.Join(overflowNames, ", "))
	}
	*f = overflowFlag(mainbus.Block + mainbus.Overflow(i))
	return nil
}

// rateFlag is a rate in events per second, from 0 to maxRate.
type rateFlag float64

const maxRate = 1_000_000

func (f *rateFlag) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

func (f *rateFlag) Set(v string) error {
	r, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil || math.IsNaN(r):
		return fmt.Errorf("not a number; want events per second from 0 to %d", maxRate)
	case r < 0 || r > maxRate:
		return fmt.Errorf("%v is out of range; want events per second from 0 to %d", r, maxRate)
	}
	*f = rateFlag(r)
	return nil
}

// durationFlag is a duration from min to max; a max of 0 sets no upper
// bound.
type durationFlag struct {
	d, min, max time.Duration
}

func (f *durationFlag) String() string { return f.d.String() }

func (f *durationFlag) Set(v string) error {
	want := fmt.Sprintf("want a duration from %v to %v", f.min, f.max)
	if f.max == 0 {
		want = fmt.Sprintf("want %v or more, such as 30s", f.min)
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fmt.Errorf("not a duration; %s", want)
	case d < f.min || f.max > 0 && d > f.max:
		return fmt.Errorf("%v is out of range; %s", d, want)
	}
	f.d = d
	return nil
}

// addrFlag is a HOST:PORT to listen on.
type addrFlag string

func (f *addrFlag) String() string { return string(*f) }

func (f *addrFlag) Set(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("want HOST:PORT with a port from 0 to 65535, as in 127.0.0.1:7070; " +
			"port 0 picks a free one")
	}
	*f = addrFlag(v)
	return nil
}

// flagDashes writes the flag names in the flag package's errors with the
// two dashes the help and the README use.
var flagDashes = strings.NewReplacer("flag -", "flag --", "argument: -", "argument: --",
	"defined: -", "defined: --")

// parseFlags parses the flags of command cmd. On --help it prints usage,
// the flags and help on stdout; on a bad flag or a stray argument it
// says what is wrong on stderr. done tells whether the command should
// return code now.
func parseFlags(fs *flag.FlagSet, args []string, cmd, usage, help string,
	stdout, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(io.Discard) // the error is printed below, with the flags' two dashes
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: %s\n\n", usage)
		fs.PrintDefaults()
		fmt.Fprint(stdout, help)
		return exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "mainbus %s: %s\n", cmd, flagDashes.Replace(err.Error()))
		fmt.Fprintf(stderr, "the flags of %s are %s; run \"mainbus %s --help\" for more\n",
			cmd, flagNames(fs), cmd)
		return exitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "mainbus %s: unexpected argument %q; %s takes flags only\n",
			cmd, fs.Arg(0), cmd)
		return exitUsage, true
	}
	return exitOK, false
}
