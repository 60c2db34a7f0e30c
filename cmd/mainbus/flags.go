package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

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

// parseFlags parses the flags of command cmd. On --help it prints usage,
// the flags and help on stdout; on a bad flag or a stray argument it
// says what is wrong on stderr. done tells whether the command should
// return code now.
func parseFlags(fs *flag.FlagSet, args []string, cmd, usage, help string,
	stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage: %s\n\n", usage)
		fs.PrintDefaults()
		fmt.Fprint(stdout, help)
		return exitOK, true
	case err != nil:
		// The flag package has printed the error.
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
