package redisbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// Options configures a Broker.
type Options struct {
	// Redis says how to connect to one Redis server (address, db, AUTH, TLS, pool). Open
	// sets ContextTimeoutEnabled so that every command respects its context's deadline,
	// and unless they are set: MaxRetries -1 (a script is never sent twice, so it never
	// applies twice) and DialerRetries 2, 50 ms apart (fail fast during an outage).
	// When the server turns out to be a node of a Redis Cluster (INFO cluster says
	// cluster_enabled:1), Open connects to the cluster through it instead, with the same
	// settings, unless NoClusterDetect is set.
	Redis *redis.Options

	// Cluster says how to connect to a Redis Cluster (seed addresses, AUTH, TLS, pool).
	// Exactly one of Redis and Cluster is required. Open sets ContextTimeoutEnabled and,
	// unless set, DialerRetries 2, 50 ms apart, as for Redis.
	Cluster *redis.ClusterOptions

	// NoClusterDetect keeps Open from asking a single server (Options.Redis) whether it
	// is a cluster node.
	NoClusterDetect bool

	// Prefix namespaces every key and channel of the broker: letters, digits and "_-.:".
	// Default "brisk".
	Prefix string

	// MaxPayload is the largest payload Enqueue accepts, in bytes.
	// Default broker.DefaultMaxPayload (1 MiB).
	MaxPayload int

	// PingTimeout bounds the PING with which Open checks that the server answers.
	// Default 3s.
	PingTimeout time.Duration

	// Logger receives what the broker cannot return as an error: its Pub/Sub connection
	// dropped and came back; a warning at Open when the server keeps neither an AOF nor
	// RDB snapshots; go-redis's own log lines, at debug level (go-redis has one logger per
	// process: Open routes it to the logger of the broker opened last with one). Default:
	// discard, or for a URL opened through broker.Open, the logger of broker.WithLogger.
	Logger *slog.Logger
}

const (
	defaultPrefix      = "brisk"
	defaultPingTimeout = 3 * time.Second
	// maxPayloadLimit is Redis's default proto-max-bulk-len (512 MB).
	maxPayloadLimit = 512 << 20
)

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) (Options, error) {
		return o, fmt.Errorf("brisk: redis: Options.%s = %v: %s: %w", field, v, why, broker.ErrInvalid)
	}
	if (o.Redis == nil) == (o.Cluster == nil) {
		return bad("Redis", o.Redis, "exactly one of Options.Redis and Options.Cluster is required")
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
		return bad("MaxPayload", o.MaxPayload, fmt.Sprintf("Redis takes at most %d bytes in one value", maxPayloadLimit))
	case o.MaxPayload == 0:
		o.MaxPayload = broker.DefaultMaxPayload
	}
	switch {
	case o.PingTimeout < 0:
		return bad("PingTimeout", o.PingTimeout, "must not be negative")
	case o.PingTimeout == 0:
		o.PingTimeout = defaultPingTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func init() {
	broker.Register(openURL, "redis", "rediss")
}

// openURL is the OpenFunc of the redis and rediss schemes: the logger comes from
// broker.WithLogger.
func openURL(ctx context.Context, u *url.URL) (broker.Broker, error) {
	opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	opts.Logger = broker.LoggerFrom(ctx)
	b, err := OpenOptions(ctx, opts)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return b, nil
}

// Open opens a broker on the Redis that rawURL names (see the package documentation),
// logging through the logger of broker.WithLogger in ctx, if any.
func Open(ctx context.Context, rawURL string) (*Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("brisk: redis: url: %v: %w", err, broker.ErrInvalid)
	}
	opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	opts.Logger = broker.LoggerFrom(ctx)
	return OpenOptions(ctx, opts)
}

// briskParams are the query parameters brisk reads itself; the others go to go-redis.
var briskParams = []string{"cluster", "max_payload", "prefix"}

// parseURL splits a redis or rediss URL into brisk's own parameters and the connection
// options that redis.ParseURL makes of the rest.
func parseURL(u *url.URL) (Options, error) {
	var opts Options
	bad := func(format string, args ...any) (Options, error) {
		return opts, fmt.Errorf("brisk: redis: url %q: %s: %w", u.Redacted(), fmt.Sprintf(format, args...), broker.ErrInvalid)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return bad("scheme %q is not redis or rediss", u.Scheme)
	}
	params, err := broker.URLParams(u.RawQuery, "addr")
	if err != nil {
		return bad("%v", err)
	}
	cluster := false
	rest := url.Values{}
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
		case "cluster":
			switch v {
			case "auto":
			case "yes", "true", "1":
				cluster = true
			case "no", "false", "0":
				opts.NoClusterDetect = true
			default:
				return bad("parameter cluster=%q: want auto, yes or no", v)
			}
		case "addr":
			cluster = true // seed addresses: only a cluster has several
			rest[name] = vals
		case "max_payload":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad("parameter max_payload=%q: want a positive number of bytes", v)
			}
			opts.MaxPayload = n
		default:
			rest[name] = vals
		}
	}
	conn := *u
	conn.RawQuery = rest.Encode()
	if cluster {
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return bad("a Redis Cluster has only database 0, not %s", db)
		}
		conn.Path = ""
		co, err := redis.ParseClusterURL(conn.String())
		if err != nil {
			return bad("%v (brisk's own parameters: %v; the others are go-redis's)", err, briskParams)
		}
		opts.Cluster = co
	} else {
		ro, err := redis.ParseURL(conn.String())
		if err != nil {
			return bad("%v (brisk's own parameters: %v; the others are go-redis's)", err, briskParams)
		}
		opts.Redis = ro
	}
	if _, err := opts.withDefaults(); err != nil {
		return opts, err
	}
	return opts, nil
}
