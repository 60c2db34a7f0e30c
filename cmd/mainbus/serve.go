package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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

// serveReady bounds how long serve-nats waits for the server to accept
// clients.
const serveReady = 10 * time.Second

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
	srv, dir, err := startServer(host, port, cfg.dir)
	if err != nil {
		fmt.Fprintf(stderr, "mainbus serve-nats: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "nats: %s\n", srv.ClientURL())
	kept := "kept"
	if cfg.dir == "" {
		kept = "temporary, removed at exit"
	}
	fmt.Fprintf(stderr, "mainbus serve-nats: JetStream storage in %s (%s); Ctrl-C to stop\n",
		dir, kept)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(stderr, "mainbus serve-nats: listening on %s without authentication: "+
			"anyone who reaches it can read and write every stream\n", host)
	}

	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	if cfg.dir == "" {
		// Best effort: a temporary directory left behind is no reason to
		// fail a clean shutdown.
		_ = os.RemoveAll(dir)
	}
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

// startServer starts a NATS server with JetStream on host:port, storing
// in dir or, when dir is empty, in a new temporary directory, and waits
// until it accepts clients. It returns the server and its storage
// directory.
func startServer(host string, port int, dir string) (*server.Server, string, error) {
	// The server only logs a port it cannot listen on, and this one logs
	// nothing; trying the port first turns that into an error.
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, "", err
	}
	ln.Close()

	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "mainbus-nats-"); err != nil {
			return nil, "", fmt.Errorf("storage directory: %w", err)
		}
	}
	fail := func(err error) (*server.Server, string, error) {
		if temp {
			_ = os.RemoveAll(dir)
		}
		return nil, "", err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "mainbus-serve-nats",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return fail(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(serveReady) {
		srv.Shutdown()
		return fail(fmt.Errorf("server on %s not ready after %v",
			net.JoinHostPort(host, strconv.Itoa(port)), serveReady))
	}
	return srv, dir, nil
}
