package brokertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// Benchmarks shared by the brokers that talk to a server. A broker's tests call them from
// benchmarks of their own, for example
//
//	func BenchmarkEnqueueBatch(b *testing.B) { brokertest.BenchEnqueueBatch(b, harness) }
//
// Each reports tasks/s besides ns/op.

// benchPayload is about the 100 bytes of JSON of the benchmark workloads.
var benchPayload = []byte(`{"enqueued_unix_nano":1732406400000000000,"user":"user-000042","action":"email.send","n":1}`)

// openBench opens a broker on a fresh store of h, closed when b ends.
func openBench(b *testing.B, h Harness) broker.Broker {
	b.Helper()
	br, err := h.Open(b.Context(), h.NewURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

func tasksPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchEnqueueBatch enqueues batches of 1,000 tasks, one Enqueue call each.
func BenchEnqueueBatch(b *testing.B, h Harness) {
	br := openBench(b, h)
	ctx := b.Context()
	const batch = 1000
	n := 0
	for b.Loop() {
		b.StopTimer()
		tasks := make([]*broker.Task, batch)
		for i := range tasks {
			tasks[i] = NewTask("bench", "t", benchPayload)
		}
		b.StartTimer()
		if err := br.Enqueue(ctx, tasks); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	tasksPerSecond(b, n)
}

// BenchEnqueueSingle enqueues one task per call, from one goroutine (serial) and from
// 4 × GOMAXPROCS goroutines (parallel8 on two cores).
func BenchEnqueueSingle(b *testing.B, h Harness) {
	b.Run("serial", func(b *testing.B) {
		br := openBench(b, h)
		ctx := b.Context()
		n := 0
		for b.Loop() {
			if err := br.Enqueue(ctx, []*broker.Task{NewTask("bench", "t", benchPayload)}); err != nil {
				b.Fatal(err)
			}
			n++
		}
		tasksPerSecond(b, n)
	})
	b.Run("parallel8", func(b *testing.B) {
		br := openBench(b, h)
		ctx := b.Context()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Enqueue(ctx, []*broker.Task{NewTask("bench", "t", benchPayload)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		tasksPerSecond(b, b.N)
	})
}

// BenchReserveAck reserves 8 tasks at a time and acks them in one call, the loop of a
// worker with 8 free slots, with 1 and 4 consumers. The tasks are enqueued before the timer
// starts.
func BenchReserveAck(b *testing.B, h Harness) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("consumers%d", conc), func(b *testing.B) {
			br := openBench(b, h)
			ctx := b.Context()
			const per = 8
			total := b.N * per
			for i := 0; i < total; i += 1000 {
				tasks := make([]*broker.Task, min(1000, total-i))
				for j := range tasks {
					tasks[j] = NewTask("bench", "t", benchPayload)
				}
				if err := br.Enqueue(ctx, tasks); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			done := make(chan int, conc)
			for c := range conc {
				go func() {
					got := 0
					for {
						ts, err := br.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "bench"}}, Limit: per, Lease: time.Minute, WorkerID: fmt.Sprint("w", c)})
						if err != nil {
							b.Error(err)
							break
						}
						if len(ts) == 0 {
							break
						}
						ls := make([]broker.Lease, len(ts))
						for i, t := range ts {
							ls[i] = t.Lease
						}
						if err := br.Ack(ctx, ls); err != nil {
							b.Error(err)
							break
						}
						got += len(ts)
					}
					done <- got
				}()
			}
			n := 0
			for range conc {
				n += <-done
			}
			b.StopTimer()
			if n != total {
				b.Fatalf("reserved and acked %d tasks, want %d", n, total)
			}
			tasksPerSecond(b, n)
		})
	}
}

// BenchDrain measures how fast one brisk worker with 8 handlers drains a queue of b.N no-op
// tasks enqueued beforehand (the W1 drain inside go test), in tasks/s and in the worker
// process's CPU per task.
func BenchDrain(b *testing.B, h Harness) {
	ctx := b.Context()
	br := openBench(b, h)
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
	w, err := brisk.NewWorker(br, brisk.WorkerConfig{Concurrency: 8})
	if err != nil {
		b.Fatal(err)
	}
	w.HandleFunc("noop", func(context.Context, *brisk.Task) error {
		if done.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	})
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	if err := w.Start(ctx); err != nil {
		b.Fatal(err)
	}
	<-all
	cpu1, _ := processCPU()
	b.StopTimer()
	if err := w.Stop(); err != nil {
		b.Error(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	if cpuOK {
		// The worker's process CPU per task (this process's, so a server's is not in it):
		// steadier than tasks/s on a machine that runs other work.
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/task")
	}
}
