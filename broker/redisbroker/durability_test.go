package redisbroker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/testenv"
)

// debugLogger returns a logger of every level that writes to b.
func debugLogger(b *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestPersistenceWarning starts Redis servers of the test's own: one that keeps nothing on
// disk (no AOF, no RDB snapshots), whose every task is lost at a restart, gets one warning
// at Open; one with AOF and one with RDB snapshots get none; one that evicts keys at
// maxmemory gets one; and one whose CONFIG command is disabled (as on managed services)
// gets a debug line saying brisk cannot tell.
func TestPersistenceWarning(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "no redis-server binary to start: %v", err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string // in the log; "" for nothing at all
	}{
		{"none", nil, `level=WARN msg="redis: the server keeps no AOF and no RDB snapshot`},
		{"aof", []string{"--appendonly", "yes"}, ""},
		{"rdb", []string{"--save", "3600 1"}, ""},
		{"evicts", []string{"--appendonly", "yes", "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, `level=WARN msg="redis: the server evicts keys`},
		{"no-config", []string{"--rename-command", "CONFIG", ""}, `level=DEBUG msg="redis: cannot tell whether the server persists`},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t)
			srv := startRedis(t, bin, port, c.args...)
			defer func() {
				_ = srv.Process.Kill()
				_ = srv.Wait()
			}()
			var log testenv.Buffer
			ctx := broker.WithLogger(t.Context(), debugLogger(&log))
			b, err := broker.Open(ctx, fmt.Sprintf("redis://127.0.0.1:%d/0?prefix=dur", port))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// go-redis's own lines go to the broker opened last with a logger, which may
			// be this one while other tests' connections fail: they are not Open's.
			var lines []string
			for line := range strings.Lines(log.String()) {
				if !strings.Contains(line, `msg="redis client:`) {
					lines = append(lines, line)
				}
			}
			got := strings.Join(lines, "")
			if c.want == "" && got != "" {
				t.Errorf("log at Open: %q, want nothing", got)
			}
			if c.want != "" && (!strings.Contains(got, c.want) || strings.Count(got, "\n") != 1) {
				t.Errorf("log at Open: %q, want one line with %q", got, c.want)
			}
		})
	}
}

// TestClientLogRouted checks that go-redis's own log lines (a failed dial, from its
// connection pool) go to the broker's slog logger, at debug level, and not raw to standard
// error.
//
// go-redis has one logger per process, so the test does not run in parallel with others
// that open brokers with loggers of their own.
func TestClientLogRouted(t *testing.T) {
	var log testenv.Buffer
	opts := redisbroker.Options{Logger: debugLogger(&log)}
	_, err := redisbroker.OpenOptions(context.Background(), withRedis(opts, "127.0.0.1:1"))
	if err == nil {
		t.Fatal("Open of 127.0.0.1:1 succeeded")
	}
	if got := log.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "failed to dial") {
		t.Errorf("log of an Open that cannot dial: %q, want go-redis's dial failure at debug level", got)
	}
}

// withRedis returns opts connecting to one server at addr.
func withRedis(opts redisbroker.Options, addr string) redisbroker.Options {
	opts.Redis = &redis.Options{Addr: addr}
	return opts
}
