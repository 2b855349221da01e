package redisbroker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	_ "github.com/briskq/brisk/broker/redisbroker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisURL returns the URL of the Redis the tests use (BRISK_REDIS_URL, default the local
// one). When it does not answer, the test fails under CI and is skipped out loud elsewhere.
func redisURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("BRISK_REDIS_URL")
	if raw == "" {
		raw = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("BRISK_REDIS_URL=%q: %v", raw, err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Redis at %s (set BRISK_REDIS_URL, or start redis-server): %v", raw, err)
		}
		t.Skipf("SKIPPED: no Redis at %s (set BRISK_REDIS_URL, or start redis-server): %v", raw, err)
	}
	return raw
}

// newPrefix returns a fresh random key prefix whose keys are deleted when t ends.
func newPrefix(t testing.TB, raw string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "brisktest-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { cleanPrefix(t, raw, prefix) })
	return prefix
}

// cleanPrefix deletes every key of a prefix (SCAN, then DEL).
func cleanPrefix(t testing.TB, raw, prefix string) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pattern := range []string{prefix + ":*", "{" + prefix + ":*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				c.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			c.Unlink(ctx, batch...)
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning keys %s: %v", pattern, err)
		}
	}
}

// withPrefix adds prefix=… to a Redis URL.
func withPrefix(t testing.TB, raw, prefix string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	return u.String()
}

// newURL returns the URL of a fresh namespace on the test Redis.
func newURL(t testing.TB) string {
	raw := redisURL(t)
	return withPrefix(t, raw, newPrefix(t, raw))
}

func TestConformance(t *testing.T) {
	if os.Getenv("BRISKTEST_ROLE") == "" {
		redisURL(t) // skip or fail before the suite starts children
	}
	brokertest.Run(t, brokertest.Harness{
		NewURL: func(t testing.TB) string {
			if os.Getenv("BRISKTEST_ROLE") != "" {
				return ""
			}
			return newURL(t)
		},
		Open: broker.Open,
	})
}
