package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStats reads server-wide figures of the Redis under test.
type redisStats struct {
	addr string
	rdb  *redis.Client
}

// serialPings sends n PINGs one after the other on one connection of the Go client both
// Go systems use, and returns how many it completed per second: the most that any enqueue
// of one network round trip, made by one caller that waits for each reply, can reach here.
func (rs *redisStats) serialPings(ctx context.Context, n int) (float64, error) {
	start := time.Now()
	for range n {
		if err := rs.rdb.Ping(ctx).Err(); err != nil {
			return 0, fmt.Errorf("ping: %w", err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// commandStats returns the calls of every command (INFO commandstats). Commands run inside
// scripts are counted too on Redis 7, under their own names.
func (rs *redisStats) commandStats(ctx context.Context) (map[string]int64, error) {
	info, err := rs.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out, nil
}

func diffStats(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if x := v - before[k]; x > 0 {
			d[k] = x
		}
	}
	return d
}

// cpu returns INFO cpu's used_cpu_sys + used_cpu_user: the seconds of CPU the server has
// used (its main thread and the others).
func (rs *redisStats) cpu(ctx context.Context) (float64, error) {
	info, err := rs.rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			total += x
		}
	}
	return total, nil
}

// usedMemory returns INFO memory's used_memory, in bytes.
func (rs *redisStats) usedMemory(ctx context.Context) (int64, error) {
	info, err := rs.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

// settledMemory reads used_memory after a short pause, twice, and returns the lower
// (client buffers and lazy frees settle).
func (rs *redisStats) settledMemory(ctx context.Context) (int64, error) {
	time.Sleep(300 * time.Millisecond)
	a, err := rs.usedMemory(ctx)
	if err != nil {
		return 0, err
	}
	time.Sleep(200 * time.Millisecond)
	b, err := rs.usedMemory(ctx)
	return min(a, b), err
}

// checkEmpty refuses a database that holds keys: peerbench empties the databases of
// asynq, Celery and RQ at the end, so it must not be given one in use.
func checkEmpty(ctx context.Context, addr string, db int, who string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("redis database %d (for %s) holds %d keys; peerbench empties it at the end, so give it an unused one (-%s-db)", db, who, n, strings.SplitN(who, "-", 2)[0])
	}
	return nil
}

func flushDB(ctx context.Context, addr string, db int) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	return rdb.FlushDB(ctx).Err()
}

// rbLine matches redis-benchmark -q's result lines, e.g. "LPUSH: 52910.05 requests per second, p50=0.479 msec".
var rbLine = regexp.MustCompile(`([A-Z_]+(?: \([^)]*\))?): ([0-9.]+) requests per second`)

// redisBenchmark runs redis-benchmark -q -t lpush,lpop,set,get -n n, with pipeline depth
// pipe (1: unpipelined), in database db (its keys key:__rand_int__ and mylist stay
// there), and returns ops/s by test.
func redisBenchmark(ctx context.Context, host, port string, db, n, pipe int) (map[string]float64, error) {
	args := []string{"-h", host, "-p", port, "--dbnum", strconv.Itoa(db), "-q", "-t", "lpush,lpop,set,get", "-n", strconv.Itoa(n)}
	if pipe > 1 {
		args = append(args, "-P", strconv.Itoa(pipe))
	}
	out, err := exec.CommandContext(ctx, "redis-benchmark", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark %s: %w", strings.Join(args, " "), err)
	}
	res := map[string]float64{}
	// -q rewrites progress lines with \r; the final figure of each test follows the last \r.
	for _, line := range strings.FieldsFunc(string(out), func(r rune) bool { return r == '\n' || r == '\r' }) {
		if m := rbLine.FindStringSubmatch(line); m != nil && strings.Contains(line, "requests per second") && !strings.Contains(line, "rps=") {
			v, _ := strconv.ParseFloat(m[2], 64)
			res[strings.ToLower(m[1])] = v
		}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("redis-benchmark printed no result: %q", out)
	}
	return res, nil
}
