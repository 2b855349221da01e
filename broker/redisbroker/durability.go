package redisbroker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis logs a few events itself (a failed dial of its connection pool, a dropped
// Pub/Sub connection) through one logger per process, by default raw to standard error.
// Open routes it through slog: its lines go, at debug level, to the Logger of the broker
// opened last with one, and nowhere before that. They repeat what the broker's calls
// return as errors, which is why they are not warnings.
var (
	clientLog   atomic.Pointer[slog.Logger]
	routeClient sync.Once
)

// clientLogger is the go-redis logger (redis.SetLogger) that forwards to clientLog.
type clientLogger struct{}

func (clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := clientLog.Load(); l != nil {
		l.DebugContext(ctx, "redis client: "+strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	}
}

// routeClientLog installs clientLogger once per process and, when the caller gave a
// logger, makes it the destination of go-redis's lines.
func routeClientLog(given *slog.Logger) {
	routeClient.Do(func() { redis.SetLogger(clientLogger{}) })
	if given != nil {
		clientLog.Store(given)
	}
}

// persistence is what one server says about keeping data across a restart.
type persistence struct {
	known      bool   // the server answered CONFIG GET (or INFO persistence said AOF is on)
	persistent bool   // AOF or RDB snapshots are on
	evicts     string // a maxmemory-policy other than noeviction, with maxmemory set
	detail     string // the settings read, or why they could not be
}

// persistenceOf asks one server whether it keeps its data across a restart: CONFIG GET
// appendonly and save, or, where CONFIG is refused (renamed, an ACL, a managed service),
// INFO persistence, which tells whether AOF is on but not whether RDB snapshots are.
func persistenceOf(ctx context.Context, c redis.Cmdable) persistence {
	cfg := map[string]string{}
	var err error
	for _, name := range []string{"appendonly", "save", "maxmemory", "maxmemory-policy"} {
		var v map[string]string
		if v, err = c.ConfigGet(ctx, name).Result(); err != nil {
			break
		}
		cfg[name] = v[name]
	}
	if err == nil {
		p := persistence{known: true, persistent: cfg["appendonly"] == "yes" || strings.TrimSpace(cfg["save"]) != "",
			detail: fmt.Sprintf("appendonly %s, save %q", cfg["appendonly"], cfg["save"])}
		if cfg["maxmemory"] != "0" && cfg["maxmemory-policy"] != "noeviction" {
			p.evicts = fmt.Sprintf("maxmemory %s, maxmemory-policy %s", cfg["maxmemory"], cfg["maxmemory-policy"])
		}
		return p
	}
	info, ierr := c.Info(ctx, "persistence").Result()
	if ierr == nil && strings.Contains(info, "aof_enabled:1") {
		return persistence{known: true, persistent: true, detail: "INFO persistence: aof_enabled:1"}
	}
	return persistence{detail: fmt.Sprintf("CONFIG GET refused (%v), and INFO persistence does not say AOF is on", err)}
}

// checkDurability asks the server, or every master of a cluster, whether it keeps tasks
// across a restart, and says so once through the broker's logger: a warning when one keeps
// neither an AOF nor RDB snapshots (a restart of it loses every task it holds), a warning
// when one may evict keys, a debug line when it cannot tell. What each guarantee needs is
// in the package documentation.
func (b *Broker) checkDurability(ctx context.Context) {
	var (
		mu                      sync.Mutex
		none, unknown, evict    []string
		noneD, unknownD, evictD []string
	)
	note := func(addr string, p persistence) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !p.known:
			unknown, unknownD = append(unknown, addr), append(unknownD, p.detail)
		case !p.persistent:
			none, noneD = append(none, addr), append(noneD, p.detail)
		}
		if p.evicts != "" {
			evict, evictD = append(evict, addr), append(evictD, p.evicts)
		}
	}
	if cc, ok := b.rdb.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			note(c.Options().Addr, persistenceOf(ctx, c))
			return nil
		})
	} else {
		note(b.addr, persistenceOf(ctx, b.rdb))
	}
	if len(none) > 0 {
		b.log.Warn("redis: the server keeps no AOF and no RDB snapshot, so a restart of Redis loses every task it holds; "+
			"set appendonly yes (see the redisbroker package documentation)",
			"server", strings.Join(none, ","), "settings", strings.Join(noneD, "; "))
	}
	if len(evict) > 0 {
		b.log.Warn("redis: the server evicts keys when it reaches maxmemory, which deletes tasks without a trace; "+
			"set maxmemory-policy noeviction (see the redisbroker package documentation)",
			"server", strings.Join(evict, ","), "settings", strings.Join(evictD, "; "))
	}
	if len(unknown) > 0 {
		b.log.Debug("redis: cannot tell whether the server persists tasks across a restart",
			"server", strings.Join(unknown, ","), "why", strings.Join(unknownD, "; "))
	}
}
