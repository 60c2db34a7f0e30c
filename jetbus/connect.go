package jetbus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// connectTimeout bounds the first dial of [Connect] when ctx has no
// earlier deadline.
const connectTimeout = 5 * time.Second

// Connect connects to the NATS server or cluster at rawURL and checks
// that it runs JetStream. rawURL is one URL or a comma-separated list,
// each nats://, tls://, ws:// or wss:// followed by host:port, or a bare
// host:port.
//
// The connection reconnects forever, every half second, so buses on it
// ride out a server restart; opts are applied after these defaults.
// Connect returns within ctx's deadline or 5 seconds: an error naming the
// URL for one that does not parse, for a server that does not answer, and
// one wrapping [ErrNoJetStream] for a server without JetStream, and one
// wrapping [mainbus.ErrInvalidOption] for a nil ctx. The caller closes
// the connection, after every bus on it has closed.
func Connect(ctx context.Context, rawURL string, opts ...nats.Option) (*nats.Conn, error) {
	if ctx == nil {
		return nil, invalid("Connect to %s got a nil context; "+
			"want context.Background() or another", rawURL)
	}
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()

	all := append([]nats.Option{
		nats.Name("mainbus"),
		nats.Timeout(time.Until(dl)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(rawURL, all...)
	if err != nil {
		return nil, fmt.Errorf("jetbus: connect to %s: %w; "+
			"want the URL of a running NATS server, e.g. nats://127.0.0.1:4222", rawURL, err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("%w: %s answers without JetStream (%v); "+
				"start nats-server with -js, or use the embedded server", ErrNoJetStream,
				rawURL, err)
		}
		return nil, fmt.Errorf("jetbus: JetStream at %s: %w", rawURL, err)
	}
	return nc, nil
}

// checkURL refuses URLs that nats.Connect would only fail on later or
// with a less clear message.
func checkURL(rawURL string) error {
	const want = "want nats://HOST:PORT (or tls://, ws://, wss://), or a comma-separated list"
	if strings.TrimSpace(rawURL) == "" {
		return fmt.Errorf("jetbus: empty server URL; %s", want)
	}
	for _, u := range strings.Split(rawURL, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("jetbus: server URL %q: %w; %s", rawURL, err, want)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("jetbus: server URL %q has scheme %q; %s", rawURL, p.Scheme, want)
		}
		if p.Hostname() == "" {
			return fmt.Errorf("jetbus: server URL %q has no host; %s", rawURL, want)
		}
	}
	return nil
}
