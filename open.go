package brisk

import (
	"context"
	"fmt"
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
// _ "github.com/briskq/brisk/broker/redisbroker".
func Open(ctx context.Context, url string) (broker.Broker, error) {
	url = BrokerURL(url)
	b, err := broker.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("brisk: open broker: %w", err)
	}
	return b, nil
}
