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

// QueueType is the RabbitMQ type of the queue that holds a brisk queue's ready tasks (and of
// its dead queue).
type QueueType string

// The queue types a brisk queue can have.
const (
	// Quorum is a replicated, durable Raft queue: the default. It counts the deliveries
	// of every message (x-delivery-count), so attempts survive a worker crash exactly.
	Quorum QueueType = "quorum"
	// Classic is a single-node durable queue. RabbitMQ marks a redelivery but does not count
	// them, so a task redelivered several times by crashes counts one attempt for all of
	// them; the management plugin reports the age of its head.
	Classic QueueType = "classic"
)

// Options configures a Broker.
type Options struct {
	// URL is the AMQP 0-9-1 URL of the RabbitMQ server, with user, password and vhost
	// (amqp://guest:guest@127.0.0.1:5672/). Required.
	URL string

	// Prefix starts the name of every queue, exchange and stream of the store
	// ("<prefix>.q.<queue>", …), so that several brisk installations (or tests) share one
	// vhost: letters, digits and "_-.:". Default "brisk".
	Prefix string

	// QueueType is the type of each brisk queue's ready and dead queues. Default Quorum.
	// A queue keeps the type it was created with: opening a store whose queues have the
	// other type fails when the queue is first used.
	QueueType QueueType

	// Management is the base URL of the RabbitMQ management HTTP API
	// (http://user:password@host:15672), from which Stats reads the running counts and, for
	// classic queues, the age of the head message. Default: the AMQP URL's host and
	// credentials on port 15672. "off" turns it off: Stats then counts running tasks of
	// this broker value only and says so in QueueStats.Notes.
	Management string

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

	// Logger receives what the broker cannot return as an error (the connection dropped
	// and came back). Default: discard.
	Logger *slog.Logger
}

const (
	defaultPrefix      = "brisk"
	defaultDialTimeout = 3 * time.Second
	defaultOutageWait  = 5 * time.Second
	// maxPayloadLimit stays well below RabbitMQ's default max_message_size (128 MiB).
	maxPayloadLimit = 64 << 20
	managementOff   = "off"
)

func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) (Options, error) {
		return o, fmt.Errorf("brisk: rabbitmq: Options.%s = %v: %s: %w", field, v, why, broker.ErrInvalid)
	}
	if o.URL == "" {
		return bad("URL", `""`, "required")
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return bad("URL", strconv.Quote(redact(o.URL)), "want amqp://user:password@host:port/vhost")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if err := broker.ValidatePrefix(o.Prefix); err != nil {
		return bad("Prefix", strconv.Quote(o.Prefix), err.Error())
	}
	switch o.QueueType {
	case "":
		o.QueueType = Quorum
	case Quorum, Classic:
	default:
		return bad("QueueType", strconv.Quote(string(o.QueueType)), "want quorum or classic")
	}
	if o.Management == "" {
		host := u.Hostname()
		m := url.URL{Scheme: "http", Host: host + ":15672", User: u.User}
		if u.Scheme == "amqps" {
			m.Scheme, m.Host = "https", host+":15671"
		}
		o.Management = m.String()
	} else if o.Management != managementOff {
		m, err := url.Parse(o.Management)
		if err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
			return bad("Management", strconv.Quote(redact(o.Management)), `want http(s)://user:password@host:port or "off"`)
		}
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
var urlParams = []string{"dial_timeout", "management", "max_payload", "outage_wait", "prefix", "queue_type"}

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
		name, v := param.Name, param.Values[0]
		switch name {
		case "prefix":
			if v == "" {
				return bad("parameter prefix is empty")
			}
			if err := broker.ValidatePrefix(v); err != nil {
				return bad("parameter prefix=%q: %v", v, err)
			}
			opts.Prefix = v
		case "queue_type":
			if v != string(Quorum) && v != string(Classic) {
				return bad("parameter queue_type=%q: want quorum or classic", v)
			}
			opts.QueueType = QueueType(v)
		case "management":
			if v == "" {
				return bad(`parameter management is empty (want a URL or "off")`)
			}
			opts.Management = v
		case "max_payload":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad("parameter max_payload=%q: want a positive number of bytes", v)
			}
			opts.MaxPayload = n
		case "dial_timeout", "outage_wait":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("parameter %s=%q: want a positive duration such as 3s", name, v)
			}
			if name == "dial_timeout" {
				opts.DialTimeout = d
			} else {
				opts.OutageWait = d
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

// redact hides the password of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
