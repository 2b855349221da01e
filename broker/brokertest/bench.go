package brokertest

import (
	"fmt"
	"testing"
	"time"

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
