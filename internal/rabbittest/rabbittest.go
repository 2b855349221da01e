// Package rabbittest gives tests a RabbitMQ to talk to: the URL of a reachable server and a
// fresh store prefix whose queues are deleted when the test ends.
package rabbittest

import (
	"net/url"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/internal/testenv"
)

// URL returns the AMQP URL tests use: $BRISK_AMQP_URL, default the local RabbitMQ with the
// guest user. When it does not answer, the test fails under CI ($CI set) and is skipped out
// loud elsewhere.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("BRISK_AMQP_URL")
	if raw == "" {
		raw = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		testenv.Missing(t, "no RabbitMQ at %s (set BRISK_AMQP_URL, or start it: rabbitmq-server -detached): %v", redact(raw), err)
	}
	_ = conn.Close()
	return raw
}

// NewPrefix returns a fresh random store prefix (starting with name) whose journal stream
// and snapshot queue are deleted when t ends.
func NewPrefix(t testing.TB, raw, name string) string {
	t.Helper()
	return testenv.NewPrefix(t, name, func(prefix string) { Clean(t, raw, prefix) })
}

// Clean deletes the queues of a prefix (its journal stream and its snapshot queue).
func Clean(t testing.TB, raw, prefix string) {
	conn, err := amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Logf("deleting the stream of %s: %v", prefix, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("deleting the stream of %s: %v", prefix, err)
		return
	}
	for _, q := range []string{prefix + ".journal", prefix + ".snapshot"} {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Logf("deleting queue %s: %v", q, err)
			return // the channel is closed after an error
		}
	}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	return u.Redacted()
}
