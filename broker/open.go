package broker

import (
	"context"
	"fmt"
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
}

// Open opens the broker that rawURL names, by its scheme.
func Open(ctx context.Context, rawURL string) (Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: broker url %q: %v", ErrInvalid, rawURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: broker url %q has no scheme (want one of %s)", ErrUnknownScheme, rawURL, strings.Join(Schemes(), ", "))
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		if pkg, known := packageOf[u.Scheme]; known {
			return nil, fmt.Errorf("%w: %q: no broker is registered for it in this program: import _ %q", ErrUnknownScheme, u.Scheme, pkg)
		}
		return nil, fmt.Errorf("%w: %q in %q (want one of %s)", ErrUnknownScheme, u.Scheme, rawURL, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
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
