// Command clusterbench runs W1 (single enqueue, batch enqueue, drain) and the memory per
// pending task against brisk and asynq on one Redis Cluster, in the same run, so that the
// ratios of issue 18's part 4 can be quoted. It needs an empty cluster (no key of asynq's,
// none of brisk's under its prefix) and leaves it as it found it.
//
//	cd bench && go run ./cmd/clusterbench -seeds 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/bench/internal/asynqrun"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/workload"
)

func main() {
	seeds := flag.String("seeds", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", "comma-separated seed `addresses` of the cluster")
	n := flag.Int("n", 20000, "W1: tasks enqueued one call each, and as many again in batches (drain 2n)")
	memN := flag.Int("mem-n", 10000, "MEM: pending tasks enqueued to measure the cluster's memory")
	flag.Parse()
	if err := run(context.Background(), strings.Split(*seeds, ","), *n, *memN); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

// cluster is the cluster under test, seen by the harness itself.
type cluster struct {
	seeds []string
	rdb   *redis.ClusterClient
}

// forMasters runs f on every master, one at a time.
func (c *cluster) forMasters(ctx context.Context, f func(context.Context, *redis.Client) error) error {
	var mu sync.Mutex
	return c.rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		return f(ctx, m)
	})
}

// infoSum sums the given fields of one INFO section over the masters; a field that no
// master reports is an error.
func (c *cluster) infoSum(ctx context.Context, section string, fields ...string) (float64, error) {
	var total float64
	err := c.forMasters(ctx, func(ctx context.Context, m *redis.Client) error {
		info, err := m.Info(ctx, section).Result()
		if err != nil {
			return err
		}
		found := 0
		for _, line := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			if slices.Contains(fields, k) {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("INFO %s: %s: %w", section, k, err)
				}
				total += x
				found++
			}
		}
		if found != len(fields) {
			return fmt.Errorf("INFO %s has %d of the fields %v", section, found, fields)
		}
		return nil
	})
	return total, err
}

// usedMemory sums INFO memory's used_memory over the masters, after a short pause (client
// buffers and lazy frees settle).
func (c *cluster) usedMemory(ctx context.Context) (int64, error) {
	time.Sleep(500 * time.Millisecond)
	v, err := c.infoSum(ctx, "memory", "used_memory")
	return int64(v), err
}

// cpu sums INFO cpu's used_cpu_sys and used_cpu_user over the masters: the seconds of CPU
// the servers have used.
func (c *cluster) cpu(ctx context.Context) (float64, error) {
	return c.infoSum(ctx, "cpu", "used_cpu_sys", "used_cpu_user")
}

// keys counts the keys matching pattern on every master.
func (c *cluster) keys(ctx context.Context, pattern string) (int, error) {
	total := 0
	err := c.forMasters(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, pattern).Result()
		total += len(ks)
		return err
	})
	return total, err
}

// unlink deletes the keys matching pattern on every master.
func (c *cluster) unlink(ctx context.Context, pattern string) error {
	return c.forMasters(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, pattern).Result()
		if err != nil {
			return err
		}
		for _, k := range ks {
			if err := m.Unlink(ctx, k).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// system is one task queue under test, with the pattern of its keys.
type system struct {
	name    string
	sys     workload.System
	pattern string
	close   func()
}

func newBrisk(ctx context.Context, c *cluster) (*system, error) {
	prefix := fmt.Sprintf("clusterbench_%08x", rand.Uint32())
	open := func(ctx context.Context) (*redisbroker.Broker, error) {
		return redisbroker.OpenOptions(ctx, redisbroker.Options{Cluster: &redis.ClusterOptions{Addrs: c.seeds}, Prefix: prefix})
	}
	b, err := open(ctx)
	if err != nil {
		return nil, err
	}
	s := &workload.Brisk{Client: brisk.NewClient(b), Inspector: brisk.NewInspector(b), Queue: "pb",
		OpenBroker: func(ctx context.Context) (brisk.Broker, error) { return open(ctx) }}
	return &system{name: "brisk", sys: s, pattern: "*" + prefix + "*", close: func() { b.Close() }}, nil
}

func newAsynq(c *cluster) *system {
	newRedis := func() redis.UniversalClient { return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.seeds}) }
	in := newRedis()
	s := &asynqrun.System{Queue: "pb", Client: asynq.NewClientFromRedisClient(newRedis()),
		Inspector: asynq.NewInspectorFromRedisClient(in), NewRedis: newRedis}
	return &system{name: "asynq", sys: s, pattern: "asynq:*", close: func() { s.Client.Close(); in.Close() }}
}

// measure runs W1 and MEM on one system and deletes its keys after each.
func measure(ctx context.Context, c *cluster, s *system, n, memN int) (map[string]float64, error) {
	out := map[string]float64{}
	ru := &workload.Runner{System: s.sys, Progress: os.Stderr}
	var cpu0 float64
	ru.Hooks = func(phase string, after bool, r *workload.Result) error {
		if phase != "drain" {
			return nil
		}
		v, err := c.cpu(ctx)
		if !after {
			cpu0 = v
		} else {
			out["redis_cpu_us_per_task"] = (v - cpu0) / float64(2*n) * 1e6
		}
		return err
	}
	r, err := ru.W1(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("%s W1: %w", s.name, err)
	}
	for _, k := range []string{"enqueue_per_s", "enqueue_batch_per_s", "drain_per_s"} {
		if v, ok := r.Get(k); ok {
			out[k], _ = v.(float64)
		}
	}
	if err := c.unlink(ctx, s.pattern); err != nil {
		return nil, err
	}
	before, err := c.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ru.EnqueueAll(ctx, 0, memN, nil); err != nil {
		return nil, fmt.Errorf("%s MEM: %w", s.name, err)
	}
	after, err := c.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	out["mem_per_10k_mib"] = float64(after-before) / float64(memN) * 10000 / (1 << 20)
	return out, c.unlink(ctx, s.pattern)
}

func run(ctx context.Context, seeds []string, n, memN int) error {
	c := &cluster{seeds: seeds, rdb: redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})}
	defer c.rdb.Close()
	if k, err := c.keys(ctx, "asynq:*"); err != nil || k > 0 {
		return fmt.Errorf("the cluster must hold no asynq key (%d found, %v)", k, err)
	}
	b, err := newBrisk(ctx, c)
	if err != nil {
		return err
	}
	a := newAsynq(c)
	started := time.Now().UTC()
	res := map[string]map[string]float64{}
	for _, s := range []*system{b, a} {
		m, err := measure(ctx, c, s, n, memN)
		s.close()
		if err != nil {
			_ = c.unlink(ctx, s.pattern)
			return err
		}
		res[s.name] = m
	}
	fmt.Printf("## clusterbench %s UTC, %s\n\nRedis Cluster %s; W1 n=%d (drain 2n); MEM %d pending tasks; payload 100 bytes.\n\n",
		started.Format("2006-01-02 15:04"), time.Since(started).Round(time.Second), strings.Join(seeds, ","), n, memN)
	fmt.Println("| figure | brisk | asynq | ÷asynq |\n| --- | --- | --- | --- |")
	for _, row := range []struct{ key, label string }{
		{"enqueue_per_s", "W1 enqueue, one call each (/s)"},
		{"enqueue_batch_per_s", "W1 enqueue, batches of 1,000 (/s)"},
		{"drain_per_s", "W1 drain, 1 worker (/s)"},
		{"redis_cpu_us_per_task", "W1 drain: Redis CPU per task (µs, INFO cpu summed over the masters)"},
		{"mem_per_10k_mib", "memory per 10,000 pending tasks (MiB, summed over the masters)"},
	} {
		bv, av := res["brisk"][row.key], res["asynq"][row.key]
		ratio := ""
		if av > 0 {
			ratio = fmt.Sprintf("%.2f×", bv/av)
		}
		fmt.Printf("| %s | %s | %s | %s |\n", row.label, num(bv), num(av), ratio)
	}
	return nil
}

func num(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v < 100:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}
