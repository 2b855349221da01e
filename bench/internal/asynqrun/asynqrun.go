// Package asynqrun runs asynq as a workload.System for the harnesses of bench/ (peerbench
// on one Redis, clusterbench on a Redis Cluster), with the settings both quote.
package asynqrun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/internal/workload"
)

// System is asynq v0.26 on one queue: tasks go through Client, Remaining reads
// Inspector, and each worker is an asynq server on a connection of its own from NewRedis
// (closed when it stops).
type System struct {
	Queue string
	// Tuned sets TaskCheckInterval 10 ms and DelayedTaskCheckInterval 100 ms instead of
	// asynq's 1 s and 5 s.
	Tuned     bool
	Client    *asynq.Client
	Inspector *asynq.Inspector
	NewRedis  func() redis.UniversalClient
}

var _ workload.System = (*System)(nil)

// Enqueue enqueues task seq, one call.
func (s *System) Enqueue(ctx context.Context, seq int, delay time.Duration) error {
	now := time.Now()
	opts := []asynq.Option{asynq.Queue(s.Queue)}
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
	_, err := s.Client.EnqueueContext(ctx, asynq.NewTask(workload.TaskType, workload.Payload(seq, now, now.Add(delay))), opts...)
	return err
}

// EnqueueBatch returns workload.ErrNoBatch: asynq has no batch enqueue.
func (s *System) EnqueueBatch(context.Context, []int, []time.Duration) error {
	return workload.ErrNoBatch
}

// StartWorker starts an asynq server on a connection from NewRedis.
func (s *System) StartWorker(_ context.Context, h workload.Handler) (func() error, error) {
	return StartWorker(s.NewRedis(), s.Queue, s.Tuned, h)
}

// Remaining counts the queue's pending, active, scheduled and retry tasks.
func (s *System) Remaining(context.Context) (int, error) {
	qi, err := s.Inspector.GetQueueInfo(s.Queue)
	if err != nil {
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil
		}
		return 0, err
	}
	return qi.Pending + qi.Active + qi.Scheduled + qi.Retry, nil
}

// Config is the server configuration of the harnesses: workload.Concurrency handlers on
// queue, asynq's defaults otherwise (tuned: see System.Tuned), its log kept by
// Complaints.
func Config(queue string, tuned bool) asynq.Config {
	cfg := asynq.Config{
		Concurrency:     workload.Concurrency,
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

// StartWorker starts an asynq server on rdb whose handler of workload.TaskType runs h;
// the function it returns shuts it down and closes rdb.
func StartWorker(rdb redis.UniversalClient, queue string, tuned bool, h workload.Handler) (func() error, error) {
	srv := asynq.NewServerFromRedisClient(rdb, Config(queue, tuned))
	mux := asynq.NewServeMux()
	mux.HandleFunc(workload.TaskType, func(ctx context.Context, t *asynq.Task) error {
		return h(ctx, t.Payload())
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

// quietLogger keeps asynq's last warnings and errors out of the output, so that a failed
// workload can say what asynq complained about (Complaints).
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

// Complaints returns and forgets asynq's last warnings and errors.
func Complaints() string {
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
