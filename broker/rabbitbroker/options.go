package rabbitbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/briskq/brisk/broker"
)

// Options configures a Broker.
type Options struct {
	// URL is the AMQP 0-9-1 URL of the RabbitMQ server, with user, password and vhost
	// (amqp://guest:guest@127.0.0.1:5672/). Required.
	URL string

	// Prefix names the store: its journal streams ("<prefix>.journal", "<prefix>.journal.<g>")
	// and its hint queue ("<prefix>.snapshot"), so that several
	// brisk installations (or tests) share one vhost: letters, digits and "_-.:".
	// Default "brisk".
	Prefix string

	// MaxPayload is the largest payload Enqueue accepts, in bytes.
	// Default broker.DefaultMaxPayload (1 MiB).
	MaxPayload int

	// DialTimeout bounds the TCP connect and AMQP handshake of every (re)connection.
	// Default 3s.
	DialTimeout time.Duration

	// OutageWait is how long a call made while the connection is down waits for it to come
	// back when its context has no earlier deadline, before it fails with an error
	// wrapping broker.ErrUnavailable. Default 5s.
	OutageWait time.Duration

	// SnapshotEvery is how many journal entries a generation of the journal holds after
	// its base before a broker value rolls the journal over to a new generation that starts
	// with a snapshot of the state (see rollover.go); a broker that opens replays about
	// that many entries (at most about twice as many) after loading the base. Negative turns
	// rollovers off: the journal then grows forever. Default 10000.
	SnapshotEvery int

	// RolloverGrace is how long the streams of old generations are kept after a rollover
	// before they are deleted. A broker value that is disconnected or stalled for longer
	// reloads the state from the oldest generation left (see rollover.go). Default 30s.
	RolloverGrace time.Duration

	// Logger receives what the broker cannot return as an error (the connection dropped
	// and came back). Default: discard.
	Logger *slog.Logger
}

const (
	defaultPrefix        = "brisk"
	defaultDialTimeout   = 3 * time.Second
	defaultOutageWait    = 5 * time.Second
	defaultSnapshotEvery = 10000
	defaultRolloverGrace = 30 * time.Second
	// maxPayloadLimit stays well below RabbitMQ's default max_message_size (128 MiB), since
	// a batch of tasks is one message.
	maxPayloadLimit = 64 << 20
)

func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) (Options, error) {
		return o, fmt.Errorf("brisk: rabbitmq: Options.%s = %v: %s: %w", field, v, why, broker.ErrInvalid)
	}
	if o.URL == "" {
		return bad("URL", `""`, "required")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if err := broker.ValidatePrefix(o.Prefix); err != nil {
		return bad("Prefix", strconv.Quote(o.Prefix), err.Error())
	}
	switch {
	case o.MaxPayload < 0:
		return bad("MaxPayload", o.MaxPayload, "must not be negative")
	case o.MaxPayload > maxPayloadLimit:
		return bad("MaxPayload", o.MaxPayload, fmt.Sprintf("at most %d bytes", maxPayloadLimit))
	case o.MaxPayload == 0:
		o.MaxPayload = broker.DefaultMaxPayload
	}
	switch {
	case o.DialTimeout < 0:
		return bad("DialTimeout", o.DialTimeout, "must not be negative")
	case o.DialTimeout == 0:
		o.DialTimeout = defaultDialTimeout
	}
	switch {
	case o.OutageWait < 0:
		return bad("OutageWait", o.OutageWait, "must not be negative")
	case o.OutageWait == 0:
		o.OutageWait = defaultOutageWait
	}
	switch {
	case o.SnapshotEvery < 0:
		o.SnapshotEvery = 0
	case o.SnapshotEvery == 0:
		o.SnapshotEvery = defaultSnapshotEvery
	}
	switch {
	case o.RolloverGrace < 0:
		return bad("RolloverGrace", o.RolloverGrace, "must not be negative")
	case o.RolloverGrace == 0:
		o.RolloverGrace = defaultRolloverGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func init() {
	broker.Register(broker.URLOpener(parseURL, OpenOptions), "amqp", "amqps")
}

// Open opens a broker on the RabbitMQ that rawURL names (see the package documentation).
func Open(ctx context.Context, rawURL string) (*Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: url: %v: %w", err, broker.ErrInvalid)
	}
	opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenOptions(ctx, opts)
}

// urlParams are the query parameters brisk reads; any other is refused.
var urlParams = []string{"dial_timeout", "max_payload", "outage_wait", "prefix", "rollover_grace", "snapshot_every"}

func parseURL(u *url.URL) (Options, error) {
	var opts Options
	bad := func(format string, args ...any) (Options, error) {
		return opts, fmt.Errorf("brisk: rabbitmq: url %q: %s: %w", u.Redacted(), fmt.Sprintf(format, args...), broker.ErrInvalid)
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return bad("scheme %q is not amqp or amqps", u.Scheme)
	}
	if u.Host == "" {
		return bad("no host")
	}
	params, err := broker.URLParams(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	for _, param := range params {
		name, vals := param.Name, param.Values
		v := vals[0]
		switch name {
		case "prefix":
			if v == "" {
				return bad("parameter prefix is empty")
			}
			if err := broker.ValidatePrefix(v); err != nil {
				return bad("parameter prefix=%q: %v", v, err)
			}
			opts.Prefix = v
		case "max_payload":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad("parameter max_payload=%q: want a positive number of bytes", v)
			}
			opts.MaxPayload = n
		case "snapshot_every":
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 {
				return bad("parameter snapshot_every=%q: want a number of journal entries (negative: no snapshots)", v)
			}
			opts.SnapshotEvery = n
		case "dial_timeout", "outage_wait", "rollover_grace":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("parameter %s=%q: want a positive duration such as 3s", name, v)
			}
			switch name {
			case "dial_timeout":
				opts.DialTimeout = d
			case "outage_wait":
				opts.OutageWait = d
			default:
				opts.RolloverGrace = d
			}
		default:
			return bad("unknown parameter %q (known: %v)", name, urlParams)
		}
	}
	conn := *u
	conn.RawQuery = ""
	opts.URL = conn.String()
	if _, err := opts.withDefaults(); err != nil {
		return opts, err
	}
	return opts, nil
}
