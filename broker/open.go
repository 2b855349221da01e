package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// OpenFunc opens a broker from a parsed URL.
type OpenFunc func(ctx context.Context, u *url.URL) (Broker, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a broker available under the URL schemes given. Brokers call it from an
// init function. It panics when a scheme is registered twice (a programmer error).
func Register(open OpenFunc, schemes ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, s := range schemes {
		if _, dup := registry[s]; dup {
			panic("brisk: broker scheme registered twice: " + s)
		}
		registry[s] = open
	}
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// packageOf names the package that registers each scheme of brisk's own brokers, so that an
// unregistered scheme's error can say what to import.
var packageOf = map[string]string{
	"sqlite": "github.com/briskq/brisk/broker/sqlitebroker",
	"redis":  "github.com/briskq/brisk/broker/redisbroker",
	"rediss": "github.com/briskq/brisk/broker/redisbroker",
	"amqp":   "github.com/briskq/brisk/broker/rabbitbroker",
	"amqps":  "github.com/briskq/brisk/broker/rabbitbroker",

	"postgres":   "github.com/briskq/brisk/broker/pgbroker",
	"postgresql": "github.com/briskq/brisk/broker/pgbroker",
}

// Open opens the broker that rawURL names, by its scheme. Its errors quote the URL with
// its password masked (RedactURL), and an unparsable URL is named by its real problem.
func Open(ctx context.Context, rawURL string) (Broker, error) {
	shown := RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return nil, fmt.Errorf("%w: broker url %q: %v", ErrInvalid, shown, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: broker url %q has no scheme (want one of %s)", ErrUnknownScheme, shown, strings.Join(Schemes(), ", "))
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		if pkg, known := packageOf[u.Scheme]; known {
			return nil, fmt.Errorf("%w: %q: no broker is registered for it in this program: import _ %q", ErrUnknownScheme, u.Scheme, pkg)
		}
		return nil, fmt.Errorf("%w: %q in %q (want one of %s)", ErrUnknownScheme, u.Scheme, shown, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

// RedactURL returns a broker URL with its password replaced by "xxxxx", in the URL's
// userinfo and in a password= query parameter, without parsing it otherwise, so that even
// a URL that net/url refuses can be quoted in an error.
func RedactURL(raw string) string {
	out := raw
	// The userinfo starts after "://" (or a leading "//"; without either, at the start when
	// no "/" comes before the "@") and ends at the last "@": a password may itself hold "/"
	// or "?" when the URL is malformed, and over-masking a query that holds "@" leaks nothing.
	start := 0
	if i := strings.Index(out, "://"); i >= 0 {
		start = i + 3
	} else if strings.HasPrefix(out, "//") {
		start = 2
	}
	if at := strings.LastIndex(out[start:], "@"); at >= 0 {
		user := out[start : start+at]
		if c := strings.IndexByte(user, ':'); c >= 0 && (start > 0 || !strings.Contains(user, "/")) {
			out = out[:start+c+1] + "xxxxx" + out[start+at:]
		}
	}
	if q := strings.IndexByte(out, '?'); q >= 0 {
		params := strings.Split(out[q+1:], "&")
		for j, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok && strings.EqualFold(k, "password") {
				params[j] = k + "=xxxxx"
			}
		}
		out = out[:q+1] + strings.Join(params, "&")
	}
	return out
}

// URLOpener makes the OpenFunc of a broker package whose URL becomes an options value:
// parse turns the URL into options and open (the package's OpenOptions) opens them. A
// failed open gives a nil Broker, never a nil pointer inside the interface.
func URLOpener[O any, B Broker](parse func(*url.URL) (O, error), open func(context.Context, O) (B, error)) OpenFunc {
	return func(ctx context.Context, u *url.URL) (Broker, error) {
		opts, err := parse(u)
		if err != nil {
			return nil, err
		}
		b, err := open(ctx, opts)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

type loggerKey struct{}

// WithLogger returns a copy of ctx that carries logger to Open: a broker opened by URL
// with it logs through logger what it cannot return as an error (such as a warning about
// the engine's settings at Open), as the Logger of its package's Options would. Only
// Open reads it; the broker keeps the logger, not the context.
func WithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, logger)
}

// LoggerFrom returns the logger that WithLogger put in ctx, or nil. Brokers call it in
// their OpenFunc.
func LoggerFrom(ctx context.Context) *slog.Logger {
	l, _ := ctx.Value(loggerKey{}).(*slog.Logger)
	return l
}

type noCreateKey struct{}

// WithoutCreate returns a copy of ctx that tells Open not to create a store: a broker
// whose store is made by opening it (a SQLite file) refuses a path where none exists, or
// an empty file, with an error wrapping ErrUnavailable (and fs.ErrNotExist for a missing
// file). Programs that only read a store use it, so that a mistyped path is an error.
// Only Open reads it.
func WithoutCreate(ctx context.Context) context.Context {
	return context.WithValue(ctx, noCreateKey{}, true)
}

// CreateAllowed reports whether Open may create a store (false after WithoutCreate).
// Brokers call it in their OpenFunc.
func CreateAllowed(ctx context.Context) bool {
	no, _ := ctx.Value(noCreateKey{}).(bool)
	return !no
}
