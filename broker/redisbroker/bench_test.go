package redisbroker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/redisbroker"
)

// payload is about the 100 bytes of JSON of the benchmark workloads.
var payload = []byte(`{"enqueued_unix_nano":1732406400000000000,"user":"user-000042","action":"email.send","n":1}`)

func openBench(b *testing.B) *redisbroker.Broker {
	b.Helper()
	br, err := redisbroker.Open(b.Context(), newURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

func tasksPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueBatch enqueues batches of 1,000 tasks (one script call each).
func BenchmarkEnqueueBatch(b *testing.B) {
	br := openBench(b)
	ctx := b.Context()
	const batch = 1000
	n := 0
	for b.Loop() {
		b.StopTimer()
		tasks := make([]*broker.Task, batch)
		for i := range tasks {
			tasks[i] = brokertest.NewTask("bench", "t", payload)
		}
		b.StartTimer()
		if err := br.Enqueue(ctx, tasks); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	tasksPerSecond(b, n)
}

// BenchmarkEnqueueSingle enqueues one task per call, from one goroutine and in parallel.
func BenchmarkEnqueueSingle(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		br := openBench(b)
		ctx := b.Context()
		n := 0
		for b.Loop() {
			if err := br.Enqueue(ctx, []*broker.Task{brokertest.NewTask("bench", "t", payload)}); err != nil {
				b.Fatal(err)
			}
			n++
		}
		tasksPerSecond(b, n)
	})
	b.Run("parallel8", func(b *testing.B) {
		br := openBench(b)
		ctx := b.Context()
		b.SetParallelism(4) // 4 × GOMAXPROCS (2) = 8 goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Enqueue(ctx, []*broker.Task{brokertest.NewTask("bench", "t", payload)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		tasksPerSecond(b, b.N)
	})
}

// BenchmarkReserveAck reserves 8 tasks at a time and acks them in one call: the loop of a
// worker with 8 free slots. The tasks are enqueued before the timer starts.
func BenchmarkReserveAck(b *testing.B) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("consumers%d", conc), func(b *testing.B) {
			br := openBench(b)
			ctx := b.Context()
			const per = 8
			total := b.N * per
			for i := 0; i < total; i += 1000 {
				tasks := make([]*broker.Task, min(1000, total-i))
				for j := range tasks {
					tasks[j] = brokertest.NewTask("bench", "t", payload)
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
