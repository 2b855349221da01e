package brisk

import (
	"context"
	"log/slog"
	"os"

	"github.com/briskq/brisk/broker"
	_ "github.com/briskq/brisk/broker/sqlitebroker" // the embedded default
)

// DefaultBrokerURL is the broker used when none is named: a SQLite file in the current
// directory.
const DefaultBrokerURL = "sqlite://./brisk.db"

// BrokerURL returns url, or the BRISK_BROKER environment variable when url is empty, or
// DefaultBrokerURL when both are.
func BrokerURL(url string) string {
	if url != "" {
		return url
	}
	if env := os.Getenv("BRISK_BROKER"); env != "" {
		return env
	}
	return DefaultBrokerURL
}

// Open opens the broker that url names (see BrokerURL for the default). SQLite is built
// in; other brokers register their schemes when their package is imported, for example
// _ "github.com/briskq/brisk/broker/redisbroker". Errors quote the URL with its password
// masked. The broker logs through the logger of WithLogger(ctx, …), if any.
func Open(ctx context.Context, url string) (broker.Broker, error) {
	url = BrokerURL(url)
	b, err := broker.Open(ctx, url)
	if err != nil {
		return nil, wrapf(err, "open broker")
	}
	return b, nil
}

// WithLogger returns a copy of ctx that carries logger to Open: the broker logs through it
// what it cannot return as an error, such as a warning about the engine's settings at
// Open (a Redis that keeps nothing on disk, a store created in an empty SQLite file).
func WithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	return broker.WithLogger(ctx, logger)
}

// RedactURL returns a broker URL with its password masked, for messages and logs. It
// works on URLs that net/url refuses too.
func RedactURL(url string) string { return broker.RedactURL(url) }
