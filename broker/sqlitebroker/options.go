package sqlitebroker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk/broker"
)

// Options configures a Broker. The zero value is ready to use.
type Options struct {
	// MaxPayload is the largest payload Enqueue accepts, in bytes.
	// Default broker.DefaultMaxPayload (1 MiB).
	MaxPayload int

	// Synchronous is SQLite's synchronous setting for writes: "normal" or "full"
	// (case-insensitive). Default "normal": a commit survives a crash of the process but
	// not necessarily of the machine; "full" fsyncs every commit. See the package
	// documentation.
	Synchronous string

	// BusyTimeout is how long a statement waits for a lock held by another process before
	// it fails with an error wrapping broker.ErrUnavailable. Default 5s.
	BusyTimeout time.Duration

	// PollInterval is how often Wait checks whether another process committed a change to
	// the file. Wake-ups within one process do not wait for it. Default 10ms.
	PollInterval time.Duration

	// NoCreate makes Open refuse a path where no store exists yet, a missing file or an
	// empty one, instead of creating a store there (URL parameter mode=rw, or
	// broker.WithoutCreate on the context of broker.Open; the default, mode=rwc, creates
	// it). Programs that only read a store use it, so that a mistyped path is an error and
	// not an empty store.
	NoCreate bool

	// Logger receives the few events the broker cannot return as errors (a corrupt row it
	// skipped, a store created in an empty file). Default: discard, or for a URL opened
	// through broker.Open, the logger of broker.WithLogger.
	Logger *slog.Logger
}

const (
	defaultBusyTimeout  = 5 * time.Second
	defaultPollInterval = 10 * time.Millisecond
	// maxBlob keeps payloads below SQLite's default SQLITE_MAX_LENGTH (1e9 bytes).
	maxBlob = 1_000_000_000
)

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) (Options, error) {
		return o, fmt.Errorf("brisk: sqlite: Options.%s = %v: %s: %w", field, v, why, broker.ErrInvalid)
	}
	switch {
	case o.MaxPayload < 0:
		return bad("MaxPayload", o.MaxPayload, "must not be negative")
	case o.MaxPayload > maxBlob:
		return bad("MaxPayload", o.MaxPayload, fmt.Sprintf("SQLite stores at most %d bytes", maxBlob))
	case o.MaxPayload == 0:
		o.MaxPayload = broker.DefaultMaxPayload
	}
	switch strings.ToLower(o.Synchronous) {
	case "", "normal":
		o.Synchronous = "normal"
	case "full":
		o.Synchronous = "full"
	default:
		return bad("Synchronous", strconv.Quote(o.Synchronous), `want "normal" or "full"`)
	}
	switch {
	case o.BusyTimeout < 0:
		return bad("BusyTimeout", o.BusyTimeout, "must not be negative")
	case o.BusyTimeout == 0:
		o.BusyTimeout = defaultBusyTimeout
	}
	switch {
	case o.PollInterval < 0:
		return bad("PollInterval", o.PollInterval, "must not be negative")
	case o.PollInterval == 0:
		o.PollInterval = defaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func init() {
	broker.Register(openURL, "sqlite")
}

func openURL(ctx context.Context, u *url.URL) (broker.Broker, error) {
	path, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	opts.Logger = broker.LoggerFrom(ctx)
	opts.NoCreate = opts.NoCreate || !broker.CreateAllowed(ctx)
	b, err := Open(ctx, path, opts)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return b, nil
}

// parseURL turns a sqlite URL into a file path and options:
//
//	sqlite://./brisk.db  -> ./brisk.db (host "." + path "/brisk.db")
//	sqlite:///abs/x.db   -> /abs/x.db
//	sqlite://brisk.db    -> brisk.db
//	sqlite:brisk.db      -> brisk.db (opaque)
func parseURL(u *url.URL) (string, Options, error) {
	var opts Options
	shown := u.Redacted()
	if u.Opaque == "" && u.Host == "" && u.Path == "" {
		shown = strings.Replace(shown, ":", "://", 1) // net/url drops the "//" of "sqlite://"
	}
	bad := func(format string, args ...any) (string, Options, error) {
		return "", opts, fmt.Errorf("brisk: sqlite: url %q: %s: %w", shown, fmt.Sprintf(format, args...), broker.ErrInvalid)
	}
	if u.Scheme != "sqlite" {
		return bad("scheme %q is not sqlite", u.Scheme)
	}
	if u.User != nil {
		return bad("user information is not allowed in a file URL")
	}
	if u.Fragment != "" {
		return bad("fragment %q is not allowed", u.Fragment)
	}
	var path string
	if u.Opaque != "" {
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return bad("path %q: %v", u.Opaque, err)
		}
		path = p
	} else {
		path = u.Host + u.Path
	}
	if path == "" {
		return bad("no file path (want sqlite://./brisk.db or sqlite:///abs/path.db)")
	}
	params, err := broker.URLParams(u.RawQuery)
	if err != nil {
		return bad("%v", err)
	}
	for _, param := range params {
		key, vals := param.Name, param.Values
		v := vals[0]
		switch key {
		case "max_payload":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad("parameter max_payload=%q: want a positive number of bytes", v)
			}
			opts.MaxPayload = n
		case "synchronous":
			switch strings.ToLower(v) {
			case "normal", "full":
				opts.Synchronous = strings.ToLower(v)
			default:
				return bad("parameter synchronous=%q: want normal or full", v)
			}
		case "busy_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("parameter busy_timeout=%q: want a positive duration such as 5s", v)
			}
			opts.BusyTimeout = d
		case "mode":
			switch v {
			case "rw":
				opts.NoCreate = true
			case "rwc":
			default:
				return bad("parameter mode=%q: want rw (the store must exist) or rwc (create it if missing, the default)", v)
			}
		case "poll":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("parameter poll=%q: want a positive duration such as 10ms", v)
			}
			opts.PollInterval = d
		default:
			return bad("unknown parameter %q (known: max_payload, synchronous, busy_timeout, poll, mode)", key)
		}
	}
	if _, err := opts.withDefaults(); err != nil {
		return "", opts, err
	}
	return path, opts, nil
}
