// Package redistest gives tests a Redis to talk to: the URL of a reachable server and a
// fresh key prefix that is deleted when the test ends.
package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/internal/testenv"
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
		testenv.Missing(t, "no Redis at %s (set BRISK_REDIS_URL, or start redis-server): %v", raw, err)
	}
	return raw
}

// NewPrefix returns a fresh random key prefix (starting with name) whose keys are deleted
// when t ends.
func NewPrefix(t testing.TB, raw, name string) string {
	t.Helper()
	return testenv.NewPrefix(t, name, func(prefix string) { Clean(t, raw, prefix) })
}

// ClusterURL returns the URL of the Redis Cluster tests use: $BRISK_REDIS_CLUSTER_URL,
// default the three local masters that scripts/test.sh starts on ports 7001-7003. When it
// does not answer with cluster_state:ok, the test fails under CI ($CI set) and is skipped
// out loud elsewhere.
func ClusterURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("BRISK_REDIS_CLUSTER_URL")
	if raw == "" {
		raw = "redis://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003"
	}
	opts, err := redis.ParseClusterURL(raw)
	if err != nil {
		t.Fatalf("BRISK_REDIS_CLUSTER_URL=%q: %v", raw, err)
	}
	c := redis.NewClusterClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err == nil && !strings.Contains(info, "cluster_state:ok") {
		err = fmt.Errorf("CLUSTER INFO does not say cluster_state:ok")
	}
	if err != nil {
		testenv.Missing(t, "no Redis Cluster at %s (set BRISK_REDIS_CLUSTER_URL, or run scripts/test.sh, which starts one): %v", raw, err)
	}
	return raw
}

// Clean deletes every key of a prefix with SCAN and UNLINK in batches (a benchmark may
// leave a million keys), on every master of a cluster.
func Clean(t testing.TB, raw, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	clean := func(ctx context.Context, c *redis.Client, perKey bool) error {
		for _, pattern := range []string{prefix + ":*", "{" + prefix + ":*"} {
			var batch []string
			flush := func() {
				if perKey { // a cluster node refuses a multi-key UNLINK across slots
					pipe := c.Pipeline()
					for _, k := range batch {
						pipe.Unlink(ctx, k)
					}
					_, _ = pipe.Exec(ctx)
				} else {
					c.Unlink(ctx, batch...)
				}
				batch = batch[:0]
			}
			iter := c.Scan(ctx, 0, pattern, 5000).Iterator()
			for iter.Next(ctx) {
				if batch = append(batch, iter.Val()); len(batch) == 5000 {
					flush()
				}
			}
			if len(batch) > 0 {
				flush()
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if strings.Contains(raw, "addr=") || isCluster(ctx, raw) {
		opts, perr := redis.ParseClusterURL(stripBriskParams(raw))
		if perr != nil {
			return
		}
		c := redis.NewClusterClient(opts)
		defer c.Close()
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return clean(ctx, m, true) })
	} else {
		opts, perr := redis.ParseURL(stripBriskParams(raw))
		if perr != nil {
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		err = clean(ctx, c, false)
	}
	if err != nil {
		t.Errorf("deleting the keys of %s: %v", prefix, err)
	}
}

// isCluster reports whether the server raw names is a cluster node.
func isCluster(ctx context.Context, raw string) bool {
	opts, err := redis.ParseURL(stripBriskParams(raw))
	if err != nil {
		return false
	}
	c := redis.NewClient(opts)
	defer c.Close()
	info, err := c.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// stripBriskParams removes the query parameters that brisk reads itself and go-redis does
// not know.
func stripBriskParams(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for _, p := range []string{"prefix", "max_payload", "cluster"} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
