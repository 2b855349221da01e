package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/redisbroker"

	"github.com/briskq/brisk/bench/internal/asynqrun"
	"github.com/briskq/brisk/internal/workload"
)

// goSystem is a task queue driven in-process by the Go harness: a workload.System with what
// peerbench adds (worker processes for W4, command counts, clean-up).
type goSystem interface {
	workload.System
	// childArgs are the flags of `peerbench -role worker` that run this system's worker.
	childArgs() []string
	// enqueueCalls and workerCalls count the Redis commands the producer and the
	// workers wrote.
	enqueueCalls() int64
	workerCalls() int64
	// cleanup deletes every key of the run; close releases connections.
	cleanup(ctx context.Context) error
	close()
}

// ---- brisk ----

// briskSystem is brisk on Redis (workload.Brisk) with a random key prefix of its own and
// connections that count the commands they write.
type briskSystem struct {
	*workload.Brisk
	addr, prefix string
	db           int
	enqN, workN  atomic.Int64
	ib           brisk.Broker // the Inspector's
	rdb          *redis.Client
}

func openBrisk(ctx context.Context, addr string, db int, prefix string, n *atomic.Int64) (*redisbroker.Broker, error) {
	ro := &redis.Options{Addr: addr, DB: db}
	if n != nil {
		ro.Dialer = countingDialer(n)
	}
	return redisbroker.OpenOptions(ctx, redisbroker.Options{Redis: ro, Prefix: prefix})
}

// newBriskSystem runs the workloads on queue "pb" of b; keepDead turns off the reaping of
// dead workers on this host (W4 then waits for the lease to expire).
func newBriskSystem(b brisk.Broker, queue string, keepDead bool) *workload.Brisk {
	return &workload.Brisk{Client: brisk.NewClient(b), Inspector: brisk.NewInspector(b), Queue: queue,
		Worker: brisk.WorkerConfig{KeepDeadWorkersTasks: keepDead}}
}

func newBrisk(ctx context.Context, addr string, db int) (*briskSystem, error) {
	s := &briskSystem{addr: addr, db: db, prefix: fmt.Sprintf("peerbench_%08x", rand.Uint32())}
	b, err := openBrisk(ctx, addr, db, s.prefix, &s.enqN)
	if err != nil {
		return nil, err
	}
	s.Brisk = newBriskSystem(b, "pb", false)
	ib, err := openBrisk(ctx, addr, db, s.prefix, nil)
	if err != nil {
		b.Close()
		return nil, err
	}
	s.ib, s.Inspector = ib, brisk.NewInspector(ib)
	s.OpenBroker = func(ctx context.Context) (brisk.Broker, error) {
		return openBrisk(ctx, s.addr, s.db, s.prefix, &s.workN)
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: addr, DB: db})
	return s, nil
}

// keepDead turns off the reaping of dead workers on this host, in this process and in the
// W4 worker processes.
func (s *briskSystem) keepDead() { s.Worker.KeepDeadWorkersTasks = true }

func (s *briskSystem) childArgs() []string {
	a := []string{"-system", "brisk", "-addr", s.addr, "-db", fmt.Sprint(s.db), "-prefix", s.prefix, "-queue", s.Queue}
	if s.Worker.KeepDeadWorkersTasks {
		a = append(a, "-keep-dead")
	}
	return a
}

func (s *briskSystem) enqueueCalls() int64 { return s.enqN.Load() }
func (s *briskSystem) workerCalls() int64  { return s.workN.Load() }

func (s *briskSystem) cleanup(ctx context.Context) error {
	return unlinkMatching(ctx, s.rdb, "*"+s.prefix+"*")
}

func (s *briskSystem) close() {
	s.Client.Broker().Close()
	s.ib.Close()
	s.rdb.Close()
}

// unlinkMatching deletes the keys matching pattern, by SCAN and UNLINK.
func unlinkMatching(ctx context.Context, rdb *redis.Client, pattern string) error {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) >= 1000 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return rdb.Unlink(ctx, keys...).Err()
	}
	return nil
}

// ---- asynq ----

// asynqSystem runs asynq v0.26 with its defaults (tuned: TaskCheckInterval 10 ms and
// DelayedTaskCheckInterval 100 ms instead of 1 s and 5 s) in a Redis database of its own,
// emptied at the end.
type asynqSystem struct {
	*asynqrun.System
	addr        string
	db          int
	rdb         *redis.Client
	enqN, workN atomic.Int64
}

func asynqRedis(addr string, db int, n *atomic.Int64) *redis.Client {
	ro := &redis.Options{Addr: addr, DB: db}
	if n != nil {
		ro.Dialer = countingDialer(n)
	}
	return redis.NewClient(ro)
}

func newAsynq(addr string, db int, tuned bool) *asynqSystem {
	s := &asynqSystem{addr: addr, db: db}
	s.rdb = redis.NewClient(&redis.Options{Addr: addr, DB: db})
	s.System = &asynqrun.System{Queue: "pb", Tuned: tuned,
		Client:    asynq.NewClientFromRedisClient(asynqRedis(addr, db, &s.enqN)),
		Inspector: asynq.NewInspectorFromRedisClient(s.rdb),
		NewRedis:  func() redis.UniversalClient { return asynqRedis(addr, db, &s.workN) },
	}
	return s
}

func (s *asynqSystem) childArgs() []string {
	a := []string{"-system", "asynq", "-addr", s.addr, "-db", fmt.Sprint(s.db), "-queue", s.Queue}
	if s.Tuned {
		a = append(a, "-tuned")
	}
	return a
}

func (s *asynqSystem) enqueueCalls() int64 { return s.enqN.Load() }
func (s *asynqSystem) workerCalls() int64  { return s.workN.Load() }

func (s *asynqSystem) cleanup(ctx context.Context) error {
	return s.rdb.FlushDB(ctx).Err() // its own database, checked empty at the start
}

func (s *asynqSystem) close() {
	s.Client.Close()
	s.rdb.Close()
}
