package workload

import (
	"context"
	"time"

	"github.com/briskq/brisk"
)

// Brisk is brisk as a System: tasks go to Queue through Client, and each worker is a
// brisk.Worker on the broker that OpenBroker opens (the Client's broker when nil).
type Brisk struct {
	Client    *brisk.Client
	Inspector *brisk.Inspector
	Queue     string
	// Worker configures the workers; its Queues is set to Queue, and a zero Concurrency
	// or ShutdownTimeout gets Concurrency and 5 s.
	Worker brisk.WorkerConfig
	// OpenBroker, when set, opens a broker of a worker's own (closed when it stops).
	OpenBroker func(ctx context.Context) (brisk.Broker, error)
	// Result, when set, is stored by the handler as each task's result (brisk.SetResult).
	Result []byte
}

var _ System = (*Brisk)(nil)

func (s *Brisk) task(seq int, delay time.Duration) *brisk.Task {
	now := time.Now()
	return brisk.NewTask(TaskType, Payload(seq, now, now.Add(delay)), brisk.InQueue(s.Queue), brisk.Delay(delay))
}

// Enqueue enqueues task seq with Client.Enqueue.
func (s *Brisk) Enqueue(ctx context.Context, seq int, delay time.Duration) error {
	_, err := s.Client.Enqueue(ctx, s.task(seq, delay))
	return err
}

// EnqueueBatch enqueues tasks seqs with Client.EnqueueBatch (atomic).
func (s *Brisk) EnqueueBatch(ctx context.Context, seqs []int, delays []time.Duration) error {
	batch := make([]*brisk.Task, len(seqs))
	for i, seq := range seqs {
		var d time.Duration
		if delays != nil {
			d = delays[i]
		}
		batch[i] = s.task(seq, d)
	}
	_, err := s.Client.EnqueueBatch(ctx, batch)
	return err
}

// StartWorker starts a brisk.Worker whose handler of TaskType runs h with the payload.
func (s *Brisk) StartWorker(ctx context.Context, h Handler) (func() error, error) {
	b := s.Client.Broker()
	closeBroker := func() {}
	if s.OpenBroker != nil {
		own, err := s.OpenBroker(ctx)
		if err != nil {
			return nil, err
		}
		b, closeBroker = own, func() { _ = own.Close() }
	}
	cfg := s.Worker
	cfg.Queues = []brisk.QueueSpec{{Name: s.Queue}}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = Concurrency
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	w, err := brisk.NewWorker(b, cfg)
	if err != nil {
		closeBroker()
		return nil, err
	}
	result := s.Result
	w.HandleFunc(TaskType, func(ctx context.Context, t *brisk.Task) error {
		if err := h(ctx, t.Payload); err != nil || result == nil {
			return err
		}
		return brisk.SetResult(ctx, result)
	})
	if err := w.Start(ctx); err != nil {
		closeBroker()
		return nil, err
	}
	return func() error {
		defer closeBroker()
		return w.Stop()
	}, nil
}

// Remaining counts the queue's pending, scheduled and running tasks.
func (s *Brisk) Remaining(ctx context.Context) (int, error) {
	qs, err := s.Inspector.Queues(ctx)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if q.Name == s.Queue {
			return int(q.Pending + q.Scheduled + q.Running), nil
		}
	}
	return 0, nil
}
