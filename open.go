package brisk

import (
	"context"
	"log/slog"
	"os"

	"github.com/briskq/brisk/broker"
)

// Broker is a store of tasks: the embedded SQLite file, Redis, or another engine, opened by
// Open or by a broker package's own Open. Pass it to NewClient, NewWorker and NewInspector,
// and Close it when done. Its methods are the contract between brisk and its brokers
// (package broker); applications use the Client, Worker and Inspector instead.
type Broker = broker.Broker

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

// Open opens the broker that url names (see BrokerURL for the default). A broker registers
// its URL schemes when its package is imported, the way database/sql drivers do, so a
// program links only the engines it uses:
//
//	import _ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://, the default
//	import _ "github.com/briskq/brisk/broker/redisbroker"  // redis://, rediss://
//
// A URL whose broker is not imported gives an error wrapping ErrUnknownScheme that names
// the package to import. Errors quote the URL with its password masked. The broker logs
// through the logger of WithLogger(ctx, …), if any.
func Open(ctx context.Context, url string) (Broker, error) {
	url = BrokerURL(url)
	b, err := broker.Open(ctx, url)
	if err != nil {
		return nil, wrapf(err, "open broker")
	}
	return b, nil
}

// OpenExisting is Open for programs that read a store: a broker whose store is made by
// opening it (a SQLite file) refuses a path where none exists, or an empty file, instead of
// creating an empty store there. The error wraps ErrUnavailable, and fs.ErrNotExist for a
// missing file.
func OpenExisting(ctx context.Context, url string) (Broker, error) {
	return Open(broker.WithoutCreate(ctx), url)
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
