package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/nats-io/nats.go"
)

// embeddedServer is the value of --nats that starts a server in the
// process instead of connecting to one.
const embeddedServer = "embedded"

// defaultNATS is the URL of the server "mainbus serve-nats" starts by
// default, and the server a worker connects to without --nats.
const defaultNATS = "nats://127.0.0.1:4222"

// Time limits of the commands that use NATS. connectWait bounds
// connecting, under the 5 s of jetbus.Connect, so that the process has
// said why and exited within the five seconds the README promises;
// setupWait covers the streams and consumers of every bus; closeWait
// bounds the drain of the buses at the end.
const (
	connectWait = 4500 * time.Millisecond
	setupWait   = 10 * time.Second
	closeWait   = 10 * time.Second
)

// A natsConn is a connection to the server of a command, and the server
// itself when the command started it.
type natsConn struct {
	url string
	nc  *nats.Conn
	srv *embedded.Server // nil for a server at a URL
}

// dialNATS connects to server, a URL or "embedded", under the connection
// name name. For "embedded" it first starts a server on 127.0.0.1 with
// storage in a temporary directory.
func dialNATS(ctx context.Context, server, name string) (*natsConn, error) {
	c := &natsConn{url: server}
	if server == embeddedServer {
		srv, err := embedded.Start("", 0)
		if err != nil {
			return nil, err
		}
		c.srv, c.url = srv, srv.URL()
	}
	cctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	nc, err := jetbus.Connect(cctx, c.url, nats.Name(name))
	if err != nil {
		c.close()
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// close closes the connection, then stops the embedded server, if any.
// The buses on the connection must be closed first.
func (c *natsConn) close() {
	if c.nc != nil {
		c.nc.Close()
	}
	if c.srv != nil {
		c.srv.Shutdown()
	}
}

// errorPrinter returns the error handler of the buses of a command: one
// line on stderr per failure, stall or lost acknowledgement, so the user
// sees why events are late.
func errorPrinter(errOut *lineWriter, cmd string) func(error) {
	return func(err error) { errOut.printf("mainbus %s: %s\n", cmd, oneLine(err)) }
}

// oneLine returns the message of err on one line: the errors joined by
// errors.Join, one per line, separated by "; " instead.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// modeFlag is the --mode flag of the worker.
type modeFlag jetbus.Mode

func (f *modeFlag) String() string { return jetbus.Mode(*f).String() }

func (f *modeFlag) Set(v string) error {
	for _, m := range []jetbus.Mode{jetbus.Ordered, jetbus.Throughput} {
		if v == m.String() {
			*f = modeFlag(m)
			return nil
		}
	}
	return fmt.Errorf("unknown mode; want ordered or throughput")
}

// natsFlag is a --nats flag: "embedded" or the URL of a server, or a
// comma-separated list of a cluster's. Set checks only the form, so that
// a mistake such as "--nats --produce-only" is a usage error and not a
// name to look up.
type natsFlag string

// natsAccepted says what a --nats flag accepts.
const natsAccepted = "want embedded, or nats://HOST:PORT (or tls://, ws://, wss://), " +
	"or a comma-separated list of such URLs"

func (f *natsFlag) String() string { return string(*f) }

func (f *natsFlag) Set(v string) error {
	if v == embeddedServer {
		*f = natsFlag(v)
		return nil
	}
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("empty; %s", natsAccepted)
	}
	for u := range strings.SplitSeq(v, ",") {
		u = strings.TrimSpace(u)
		scheme, rest, ok := strings.Cut(u, "://")
		switch {
		case strings.HasPrefix(u, "-"):
			return fmt.Errorf("%q looks like a flag, not a server; %s", u, natsAccepted)
		case !ok:
			return fmt.Errorf("%q has no scheme; %s", u, natsAccepted)
		case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, scheme):
			return fmt.Errorf("%q has scheme %q; %s", u, scheme, natsAccepted)
		case rest == "" || strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "/"):
			return fmt.Errorf("%q has no host; %s", u, natsAccepted)
		}
	}
	*f = natsFlag(v)
	return nil
}

// natsURLFlag checks the value of a --nats flag that must name a server
// at a URL: the worker's, or the demo's with --produce-only or --reset.
func natsURLFlag(v, why string) error {
	switch strings.TrimSpace(v) {
	case "":
		return fmt.Errorf("%s needs --nats URL, as in --nats %s", why, defaultNATS)
	case embeddedServer:
		return fmt.Errorf("%s needs a server that outlives this process: "+
			"--nats URL, such as one started by \"mainbus serve-nats\", not %q",
			why, embeddedServer)
	}
	return nil
}
