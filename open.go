package brisk

import (
	"context"
	"fmt"
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
// the package to import.
func Open(ctx context.Context, url string) (Broker, error) {
	url = BrokerURL(url)
	b, err := broker.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("brisk: open broker: %w", err)
	}
	return b, nil
}
