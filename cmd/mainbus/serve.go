package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/mainbus-go/mainbus/jetbus/embedded"
)

// serveHelp follows the flags in "mainbus serve-nats --help".
const serveHelp = `
serve-nats runs a NATS server with JetStream in this process, for trying
"mainbus worker" and "mainbus demo --nats URL" on one machine. It prints
the URL to connect to as "nats: URL" and serves until Ctrl-C or SIGTERM,
then shuts down and exits with status 0. It has no authentication and no
TLS: keep it on 127.0.0.1 (the default) unless the network is yours. For
production, run nats-server itself, or a cluster, and pass its URLs.
`

// serveConfig is what the flags of serve-nats set.
type serveConfig struct {
	addr string
	dir  string
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	cfg := &serveConfig{}
	fs := flag.NewFlagSet("serve-nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:4222", "`HOST:PORT` to listen on; "+
		"an empty host is 127.0.0.1, port 0 picks a free one, 0.0.0.0 is every interface")
	fs.StringVar(&cfg.dir, "dir", "", "`DIR` where JetStream keeps its files, kept after "+
		"exit; by default a temporary directory, removed at exit")
	fs.Usage = func() {}
	return fs, cfg
}

// runServeNATS serves NATS with JetStream until ctx ends.
func runServeNATS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfg := serveFlags(stderr)
	if code, done := parseFlags(fs, args, "serve-nats", "mainbus serve-nats [flags]",
		serveHelp, stdout, stderr); done {
		return code
	}
	host, port, err := splitAddr(cfg.addr)
	if err != nil {
		fmt.Fprintf(stderr, "mainbus serve-nats: --addr %q: %v\n", cfg.addr, err)
		return exitUsage
	}
	srv, err := embedded.Start(cfg.dir, port, embedded.WithHost(host),
		embedded.WithName("mainbus-serve-nats"))
	if err != nil {
		// The command names itself; the package's prefix would say it twice.
		fmt.Fprintf(stderr, "mainbus serve-nats: %s\n",
			strings.TrimPrefix(err.Error(), "embedded: "))
		return exitFailure
	}
	fmt.Fprintf(stdout, "nats: %s\n", srv.URL())
	kept := "kept"
	if cfg.dir == "" {
		kept = "temporary, removed at exit"
	}
	fmt.Fprintf(stderr, "mainbus serve-nats: JetStream storage in %s (%s); Ctrl-C to stop\n",
		srv.Dir(), kept)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(stderr, "mainbus serve-nats: listening on %s without authentication: "+
			"anyone who reaches it can read and write every stream\n", host)
	}

	<-ctx.Done()
	// Shutdown removes a temporary storage directory, and only that.
	srv.Shutdown()
	fmt.Fprintln(stderr, "mainbus serve-nats: stopped")
	return exitOK
}

// splitAddr splits a --addr value; an empty host is 127.0.0.1.
func splitAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want HOST:PORT, as in 127.0.0.1:4222")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q; want 0 (a free port) to 65535", p)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}
