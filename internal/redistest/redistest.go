// Package redistest gives tests a Redis to talk to: the URL of a reachable server and a
// fresh key prefix that is deleted when the test ends.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL returns the URL of the Redis tests use: $BRISK_REDIS_URL, default the local one.
// When it does not answer, the test fails under CI ($CI set) and is skipped out loud
// elsewhere.
func URL(t testing.TB) string {
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

// NewPrefix returns a fresh random key prefix (starting with name) whose keys are deleted
// when t ends.
func NewPrefix(t testing.TB, raw, name string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := name + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { Clean(t, raw, prefix) })
	return prefix
}

// WithPrefix returns raw with its prefix query parameter set.
func WithPrefix(t testing.TB, raw, prefix string) string {
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

// Clean deletes every key of a prefix with SCAN and UNLINK in batches (a benchmark may
// leave a million keys).
func Clean(t testing.TB, raw, prefix string) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, pattern := range []string{prefix + ":*", "{" + prefix + ":*"} {
		var batch []string
		iter := c.Scan(ctx, 0, pattern, 5000).Iterator()
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 5000 {
				c.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			c.Unlink(ctx, batch...)
		}
		if err := iter.Err(); err != nil {
			t.Errorf("deleting the keys of %s: %v", prefix, err)
		}
	}
}
