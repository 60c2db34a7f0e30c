// Command benchmarks runs the workload of BenchmarkPeers through mainbus,
// hand-rolled channels and the libraries users would pick instead, and
// prints one table: nanoseconds and allocations per event, and the ratio
// to raw channels with the same number of producers.
//
// Usage:
//
//	go run . [-benchtime 500ms|100x] [-count 3] [-run regexp]
//
// Each row is the median of -count runs of testing.Benchmark, each run as
// long as -benchtime (a duration, or a count of events written as 100x).
// The defaults take about half a minute on a 2-core machine.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"testing"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// A row is the measured result of one implementation with one producer
// count.
type row struct {
	impl      string
	producers int
	result    testing.BenchmarkResult
}

// options are the command's flags.
type options struct {
	count int
	match *regexp.Regexp
}

// parse reads the flags in args and hands -benchtime to the testing
// package. It returns the exit status to stop with, or -1 to go on.
func parse(args []string, stderr io.Writer) (options, int) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	benchtime := fs.String("benchtime", "500ms",
		"how long each run takes: a duration, or N events as Nx")
	count := fs.Int("count", 3, "runs per row; the row shows the median")
	filter := fs.String("run", "",
		"run only the rows whose impl/pN matches this regular expression")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return options{}, exitOK
	} else if err != nil {
		return options{}, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q; the benchmarks take flags only\n", fs.Arg(0))
		return options{}, exitUsage
	}
	match, err := regexp.Compile(*filter)
	if err != nil {
		fmt.Fprintf(stderr, "-run %q: %v; want a Go regular expression\n", *filter, err)
		return options{}, exitUsage
	}
	if *count < 1 {
		fmt.Fprintf(stderr, "-count is %d; want 1 or more\n", *count)
		return options{}, exitUsage
	}

	// testing.Benchmark reads its run length from the testing package's
	// own flag, which testing.Init registers.
	testing.Init()
	if err := flag.Set("test.benchtime", *benchtime); err != nil {
		fmt.Fprintf(stderr, "-benchtime %q: %v; "+
			"want a duration such as 500ms or a count such as 100x\n", *benchtime, err)
		return options{}, exitUsage
	}
	return options{count: *count, match: match}, -1
}

// run parses args, runs the selected benchmarks and prints the table on
// stdout and progress and failures on stderr. It returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	opts, code := parse(args, stderr)
	if code >= 0 {
		return code
	}

	var rows []row
	failed := false
	for _, im := range impls {
		for _, p := range producerCounts {
			name := fmt.Sprintf("%s/p%d", im.name, p)
			if !opts.match.MatchString(name) {
				continue
			}
			fmt.Fprintf(stderr, "running %s\n", name)
			res, err := median(im, p, opts.count)
			if err != nil {
				fmt.Fprintf(stderr, "FAIL %v\n", err)
				failed = true
				continue
			}
			rows = append(rows, row{im.name, p, res})
		}
	}
	printTable(stdout, rows)
	if failed {
		return exitFailure
	}
	return exitOK
}

// median runs im with p producers count times and returns the run with
// the median time per event, or the first error.
func median(im impl, p, count int) (testing.BenchmarkResult, error) {
	results := make([]testing.BenchmarkResult, 0, count)
	for range count {
		var err error
		res := testing.Benchmark(func(b *testing.B) {
			if err = bench(b, im, p); err != nil {
				b.FailNow()
			}
		})
		if err != nil {
			return testing.BenchmarkResult{}, err
		}
		results = append(results, res)
	}
	slices.SortFunc(results, func(a, b testing.BenchmarkResult) int {
		return cmp.Compare(nsPerEvent(a), nsPerEvent(b))
	})
	return results[len(results)/2], nil
}

// printTable writes rows as a table, with each row's ratio to the raw
// channels row of the same producer count when that row was run.
func printTable(w io.Writer, rows []row) {
	fmt.Fprintf(w, "%s %s/%s, GOMAXPROCS=%d, %d CPUs\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	base := map[int]float64{}
	for _, r := range rows {
		if r.impl == impls[0].name {
			base[r.producers] = nsPerEvent(r.result)
		}
	}
	const format = "%-*s  %9s  %8s  %12s  %6s\n"
	width := len("impl")
	for _, r := range rows {
		width = max(width, len(r.impl))
	}
	fmt.Fprintf(w, format, width, "impl", "producers", "ns/event", "allocs/event", "vs raw")
	for _, r := range rows {
		ns := nsPerEvent(r.result)
		ratio := "-"
		if b, ok := base[r.producers]; ok && b > 0 {
			ratio = fmt.Sprintf("%.1fx", ns/b)
		}
		allocs := float64(r.result.MemAllocs) / float64(r.result.N)
		fmt.Fprintf(w, format, width, r.impl, fmt.Sprint(r.producers),
			fmt.Sprintf("%.0f", ns), fmt.Sprintf("%.1f", allocs), ratio)
	}
}

// nsPerEvent is the time per event of a result, unrounded: one benchmark
// operation is one event.
func nsPerEvent(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(r.N)
}
