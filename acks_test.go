package brisk_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// ackReserving gives the embedded broker an AckReserve made of Ack then Reserve, so that
// the worker's path for brokers that have one (Redis) runs here; failFirst makes the
// first calls fail as a dropped round trip would, before anything is written.
type ackReserving struct {
	broker.Broker
	calls, carried atomic.Int64
	failFirst      atomic.Int64
}

func (b *ackReserving) AckReserve(ctx context.Context, acks []broker.Lease, p broker.ReserveParams) ([]*broker.Task, error, error) {
	b.calls.Add(1)
	if b.failFirst.Add(-1) >= 0 {
		err := fmt.Errorf("ack and reserve: connection reset: %w", broker.ErrUnavailable)
		return nil, err, err
	}
	b.carried.Add(int64(len(acks)))
	ackErr := b.Ack(ctx, acks)
	tasks, err := b.Reserve(ctx, p)
	return tasks, ackErr, err
}

func TestAcksRideWithReserve(t *testing.T) {
	for _, fail := range []int64{0, 3} {
		t.Run(fmt.Sprintf("failFirst=%d", fail), func(t *testing.T) {
			inner, client := setup(t)
			b := &ackReserving{Broker: inner}
			b.failFirst.Store(fail)
			const n = 300
			for i := 0; i < n; i++ {
				if _, err := client.Enqueue(context.Background(), &brisk.Task{Type: "t", Queue: "ar", Payload: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			runs := map[string]int{}
			w := startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "ar"}}, Concurrency: 4},
				map[string]brisk.HandlerFunc{"t": func(_ context.Context, task *brisk.Task) error {
					mu.Lock()
					runs[string(task.Payload)]++
					mu.Unlock()
					return nil
				}})
			eventually(t, "every task acked", func() bool {
				q := queueStats(t, inner, "ar")
				return q.Pending == 0 && q.Running == 0 && q.Completed == n
			})
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i := 0; i < n; i++ {
				if runs[fmt.Sprint(i)] != 1 {
					t.Errorf("task %d ran %d times, want once", i, runs[fmt.Sprint(i)])
				}
			}
			if b.carried.Load() == 0 {
				t.Errorf("AckReserve was called %d times and carried no ack: the fetch loop does not send acks with its reserve", b.calls.Load())
			}
		})
	}
}
