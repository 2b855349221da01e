package pgbroker_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/pgtest"
)

// BenchmarkEnqueueBatch: batches of 1,000 tasks, one Enqueue call each.
func BenchmarkEnqueueBatch(b *testing.B) { brokertest.BenchEnqueueBatch(b, harness(b)) }

// BenchmarkEnqueueSingle: one task per Enqueue call, serial and from 8 goroutines.
func BenchmarkEnqueueSingle(b *testing.B) { brokertest.BenchEnqueueSingle(b, harness(b)) }

// BenchmarkReserveAck: reserve 8, ack 8, with 1 and 4 consumers.
func BenchmarkReserveAck(b *testing.B) { brokertest.BenchReserveAck(b, harness(b)) }

// BenchmarkDrain: one worker with 8 handlers drains a queue of no-op tasks (the W1 drain
// inside go test).
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	_, url := pgtest.NewSchema(b, pgtest.URL(b), "drain")
	br, err := brisk.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	c := brisk.NewClient(br)
	var batch []*brisk.Task
	for i := 0; i < b.N; i++ {
		batch = append(batch, brisk.NewTask("noop", []byte(`{"t":1}`)))
		if len(batch) == 1000 || i == b.N-1 {
			if _, err := c.EnqueueBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var done atomic.Int64
	all := make(chan struct{})
	w, _ := brisk.NewWorker(br, brisk.WorkerConfig{Concurrency: 8})
	w.HandleFunc("noop", func(context.Context, *brisk.Task) error {
		if done.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	})
	b.ResetTimer()
	w.Start(ctx)
	<-all
	b.StopTimer()
	w.Stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
