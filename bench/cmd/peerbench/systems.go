package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/redisbroker"
)

// errNoBatch: the system has no batch enqueue.
var errNoBatch = errors.New("no batch enqueue")

// goSystem is a task queue driven in-process by the Go harness.
type goSystem interface {
	// enqueue stores task seq, ready after delay, with one call.
	enqueue(ctx context.Context, seq int, delay time.Duration) error
	// enqueueBatch stores tasks seqs with the given delays (nil: none) atomically, or
	// returns errNoBatch.
	enqueueBatch(ctx context.Context, seqs []int, delays []time.Duration) error
	// startWorker starts one worker of `concurrency` handlers that call h with each
	// task's payload, then sleep `sleep`.
	startWorker(ctx context.Context, h func([]byte)) (stop func() error, err error)
	// remaining counts the queue's tasks not done yet (pending, scheduled, running).
	remaining(ctx context.Context) (int, error)
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

type briskSystem struct {
	addr, prefix, queue string
	db                  int
	keepDead            bool // W4: turn off same-host reaping (the lease-expiry path)
	lease               time.Duration
	c                   *brisk.Client
	in                  *brisk.Inspector
	enqN, workN         atomic.Int64
	rdb                 *redis.Client
}

func openBrisk(ctx context.Context, addr string, db int, prefix string, n *atomic.Int64) (*redisbroker.Broker, error) {
	ro := &redis.Options{Addr: addr, DB: db}
	if n != nil {
		ro.Dialer = countingDialer(n)
	}
	return redisbroker.OpenOptions(ctx, redisbroker.Options{Redis: ro, Prefix: prefix})
}

func newBrisk(ctx context.Context, addr string, db int) (*briskSystem, error) {
	s := &briskSystem{addr: addr, db: db, prefix: fmt.Sprintf("peerbench_%08x", rand.Uint32()), queue: "pb"}
	b, err := openBrisk(ctx, addr, db, s.prefix, &s.enqN)
	if err != nil {
		return nil, err
	}
	s.c = brisk.NewClient(b)
	ib, err := openBrisk(ctx, addr, db, s.prefix, nil)
	if err != nil {
		b.Close()
		return nil, err
	}
	s.in = brisk.NewInspector(ib)
	s.rdb = redis.NewClient(&redis.Options{Addr: addr, DB: db})
	return s, nil
}

func (s *briskSystem) task(seq int, delay time.Duration) *brisk.Task {
	now := time.Now()
	return brisk.NewTask(taskType, payload(seq, now, now.Add(delay)), brisk.InQueue(s.queue), brisk.Delay(delay))
}

func (s *briskSystem) enqueue(ctx context.Context, seq int, delay time.Duration) error {
	_, err := s.c.Enqueue(ctx, s.task(seq, delay))
	return err
}

func (s *briskSystem) enqueueBatch(ctx context.Context, seqs []int, delays []time.Duration) error {
	batch := make([]*brisk.Task, len(seqs))
	for i, seq := range seqs {
		var d time.Duration
		if delays != nil {
			d = delays[i]
		}
		batch[i] = s.task(seq, d)
	}
	_, err := s.c.EnqueueBatch(ctx, batch)
	return err
}

func (s *briskSystem) startWorker(ctx context.Context, h func([]byte)) (func() error, error) {
	b, err := openBrisk(ctx, s.addr, s.db, s.prefix, &s.workN)
	if err != nil {
		return nil, err
	}
	return startBriskWorker(ctx, b, s.queue, s.keepDead, s.lease, h)
}

func startBriskWorker(ctx context.Context, b *redisbroker.Broker, queue string, keepDead bool, lease time.Duration, h func([]byte)) (func() error, error) {
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues:               []brisk.QueueSpec{{Name: queue}},
		Concurrency:          concurrency,
		ShutdownTimeout:      5 * time.Second,
		KeepDeadWorkersTasks: keepDead,
		Lease:                lease,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	w.HandleFunc(taskType, func(_ context.Context, t *brisk.Task) error {
		h(t.Payload)
		return nil
	})
	if err := w.Start(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return func() error {
		err := w.Stop()
		b.Close()
		return err
	}, nil
}

func (s *briskSystem) remaining(ctx context.Context) (int, error) {
	qs, err := s.in.Queues(ctx)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if q.Name == s.queue {
			return int(q.Pending + q.Scheduled + q.Running), nil
		}
	}
	return 0, nil
}

func (s *briskSystem) childArgs() []string {
	a := []string{"-system", "brisk", "-addr", s.addr, "-db", fmt.Sprint(s.db), "-prefix", s.prefix, "-queue", s.queue}
	if s.keepDead {
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
	s.c.Broker().Close()
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
	addr, queue string
	db          int
	tuned       bool
	cl          *asynq.Client
	in          *asynq.Inspector
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
	s := &asynqSystem{addr: addr, db: db, queue: "pb", tuned: tuned}
	s.cl = asynq.NewClientFromRedisClient(asynqRedis(addr, db, &s.enqN))
	s.rdb = redis.NewClient(&redis.Options{Addr: addr, DB: db})
	s.in = asynq.NewInspectorFromRedisClient(s.rdb)
	return s
}

func (s *asynqSystem) enqueue(ctx context.Context, seq int, delay time.Duration) error {
	now := time.Now()
	opts := []asynq.Option{asynq.Queue(s.queue)}
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
	_, err := s.cl.EnqueueContext(ctx, asynq.NewTask(taskType, payload(seq, now, now.Add(delay))), opts...)
	return err
}

func (s *asynqSystem) enqueueBatch(context.Context, []int, []time.Duration) error {
	return errNoBatch
}

func asynqConfig(queue string, tuned bool) asynq.Config {
	cfg := asynq.Config{
		Concurrency:     concurrency,
		Queues:          map[string]int{queue: 1},
		ShutdownTimeout: 5 * time.Second,
		LogLevel:        asynq.WarnLevel,
		Logger:          quietLogger{},
	}
	if tuned {
		cfg.TaskCheckInterval = 10 * time.Millisecond
		cfg.DelayedTaskCheckInterval = 100 * time.Millisecond
	}
	return cfg
}

func startAsynqWorker(rdb *redis.Client, queue string, tuned bool, h func([]byte)) (func() error, error) {
	srv := asynq.NewServerFromRedisClient(rdb, asynqConfig(queue, tuned))
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(ctx context.Context, t *asynq.Task) error {
		h(t.Payload())
		return nil
	})
	if err := srv.Start(mux); err != nil {
		rdb.Close()
		return nil, err
	}
	return func() error {
		srv.Shutdown()
		return rdb.Close()
	}, nil
}

func (s *asynqSystem) startWorker(_ context.Context, h func([]byte)) (func() error, error) {
	return startAsynqWorker(asynqRedis(s.addr, s.db, &s.workN), s.queue, s.tuned, h)
}

func (s *asynqSystem) remaining(context.Context) (int, error) {
	qi, err := s.in.GetQueueInfo(s.queue)
	if err != nil {
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil
		}
		return 0, err
	}
	return qi.Pending + qi.Active + qi.Scheduled + qi.Retry, nil
}

func (s *asynqSystem) childArgs() []string {
	a := []string{"-system", "asynq", "-addr", s.addr, "-db", fmt.Sprint(s.db), "-queue", s.queue}
	if s.tuned {
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
	s.cl.Close()
	s.rdb.Close()
}

// quietLogger keeps asynq's last warnings and errors out of the output, so that a failed
// workload can say what asynq complained about (asynqLog).
type quietLogger struct{}

var asynqLog struct {
	mu   sync.Mutex
	last []string
}

func (quietLogger) keep(level string, args []any) {
	asynqLog.mu.Lock()
	defer asynqLog.mu.Unlock()
	asynqLog.last = append(asynqLog.last, level+": "+fmt.Sprint(args...))
	if len(asynqLog.last) > 3 {
		asynqLog.last = asynqLog.last[len(asynqLog.last)-3:]
	}
}

// asynqComplaints returns and forgets asynq's last warnings and errors.
func asynqComplaints() string {
	asynqLog.mu.Lock()
	defer asynqLog.mu.Unlock()
	s := strings.Join(asynqLog.last, "; ")
	asynqLog.last = nil
	return s
}

func (quietLogger) Debug(...any)     {}
func (quietLogger) Info(...any)      {}
func (l quietLogger) Warn(a ...any)  { l.keep("warn", a) }
func (l quietLogger) Error(a ...any) { l.keep("error", a) }
func (l quietLogger) Fatal(a ...any) { l.keep("fatal", a) }
