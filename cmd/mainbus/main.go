// Command mainbus runs mainbus buses from the command line.
//
// Usage:
//
//	mainbus [command] [flags]
//
// The commands are:
//
//	demo        run the seed factory: iron and copper buses, one line per
//	            handled event (the default when no command is given); with
//	            --nats, over NATS JetStream: an embedded server or a URL
//	worker      handle the events of given buses from a NATS server until
//	            interrupted; workers in several processes share the conveyors
//	serve-nats  run a NATS server with JetStream for the other commands to use
//	bench       compare a bus with raw channels on one workload: ns, events/s
//	            and allocations per event, and latency at half load
//	dashboard   run a live factory and serve its dashboard: belts, rates, fill
//	            levels and backpressure in a browser, with knobs for rate,
//	            cost and conveyors
//	help        print this text
//
// Run "mainbus COMMAND --help" for the flags of a command. Bad flags or
// values print what is wrong and what is accepted, and exit with status 2.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// A command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"demo", "run the seed factory: iron and copper buses (the default)", runDemo},
		{"worker", "handle the events of buses on a NATS server, sharing conveyors",
			runWorker},
		{"serve-nats", "run a NATS server with JetStream on 127.0.0.1 to try them",
			runServeNATS},
		{"bench", "compare a bus with raw channels: ns, allocations and latency per event",
			runBench},
		{"dashboard", "run a live factory and serve its dashboard in a browser", runDashboard},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal a command winds down; a second one
		// stops the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a command and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return runDemo(ctx, args, stdout, stderr)
	}
	name := args[0]
	if name == "help" && len(args) > 1 {
		// "mainbus help demo" is "mainbus demo --help".
		return run(ctx, []string{args[1], "--help"}, stdout, stderr)
	}
	if isHelp(name) || name == "help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mainbus: unknown command %q; want one of %s\n", name, commandNames())
	fmt.Fprintln(stderr, `run "mainbus help" for usage`)
	return exitUsage
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

func commandNames() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mainbus moves typed events through per-resource buses of parallel conveyors.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: mainbus [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "mainbus COMMAND --help" for the flags of a command.`)
}
