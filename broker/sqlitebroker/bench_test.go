package sqlitebroker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/sqlitebroker"
)

// benchPayload is about 100 bytes of JSON carrying an enqueue time, like the brief's
// benchmark workloads.
func benchPayload() []byte {
	return fmt.Appendf(nil, `{"enqueued_ns":%d,"to":"someone@example.com","subject":"welcome aboard","n":12345}`, time.Now().UnixNano())
}

func benchBroker(b *testing.B) *sqlitebroker.Broker {
	b.Helper()
	br, err := sqlitebroker.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlitebroker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

func benchTask(queue string) *broker.Task {
	now := time.Now()
	return &broker.Task{
		TaskInfo: brisktype.TaskInfo{
			ID:          uuid.Must(uuid.NewV7()).String(),
			Queue:       queue,
			Type:        "email.send",
			Payload:     benchPayload(),
			MaxAttempts: 25,
			EnqueuedAt:  now,
			ReadyAt:     now,
		},
	}
}

// BenchmarkEnqueueBatch enqueues batches of 1,000 tasks; b.N counts batches.
func BenchmarkEnqueueBatch(b *testing.B) {
	const batch = 1000
	br := benchBroker(b)
	ctx := context.Background()
	tasks := make([]*broker.Task, batch)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range tasks {
			tasks[i] = benchTask("default")
		}
		b.StartTimer()
		if err := br.Enqueue(ctx, tasks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueSingle enqueues one task per call.
func BenchmarkEnqueueSingle(b *testing.B) {
	br := benchBroker(b)
	ctx := context.Background()
	for b.Loop() {
		if err := br.Enqueue(ctx, []*broker.Task{benchTask("default")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkReserveAck reserves 8 tasks and acks them; b.N counts rounds of 8.
func BenchmarkReserveAck(b *testing.B) {
	const per = 8
	br := benchBroker(b)
	ctx := context.Background()
	fill := func(n int) {
		tasks := make([]*broker.Task, 0, 1000)
		for n > 0 {
			tasks = tasks[:0]
			for i := 0; i < min(n, 1000); i++ {
				tasks = append(tasks, benchTask("default"))
			}
			if err := br.Enqueue(ctx, tasks); err != nil {
				b.Fatal(err)
			}
			n -= len(tasks)
		}
	}
	fill(per * 1000)
	leases := make([]broker.Lease, 0, per)
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		rounds++
		if rounds%1000 == 0 {
			b.StopTimer()
			fill(per * 1000)
			b.StartTimer()
		}
		got, err := br.Reserve(ctx, broker.ReserveParams{
			Queues: []broker.QueueLimit{{Name: "default"}}, Limit: per, Lease: time.Minute, WorkerID: "w1",
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != per {
			b.Fatalf("reserved %d tasks, want %d", len(got), per)
		}
		leases = leases[:0]
		for _, t := range got {
			leases = append(leases, t.Lease)
		}
		if err := br.Ack(ctx, leases); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkSteadyRetention runs the write path of W2 one task at a time (enqueue one,
// reserve one, complete it with a 100-byte result): without a retention, and with one
// that has already ended for the first tasks (kept: 200 ms, a small store; big: 8 s, some
// 16,000 rows), so that completions also remove expired tasks, as in a long run. b.N
// counts tasks; cpu-µs/task is steadier than the wall time on a shared machine.
func BenchmarkSteadyRetention(b *testing.B) {
	for _, c := range []struct {
		name      string
		retention time.Duration
	}{{"none", 0}, {"kept", 200 * time.Millisecond}, {"big", 8 * time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			br := benchBroker(b)
			ctx := context.Background()
			if err := br.SetRetention(ctx, "default", c.retention); err != nil {
				b.Fatal(err)
			}
			result := []byte(`{"ok":true,"note":"` + strings.Repeat("x", 76) + `"}`) // 100 bytes
			one := func() {
				if err := br.Enqueue(ctx, []*broker.Task{benchTask("default")}); err != nil {
					b.Fatal(err)
				}
				got, err := br.Reserve(ctx, broker.ReserveParams{
					Queues: []broker.QueueLimit{{Name: "default"}}, Limit: 1, Lease: time.Minute, WorkerID: "w1",
				})
				if err != nil || len(got) != 1 {
					b.Fatalf("reserved %d tasks: %v", len(got), err)
				}
				if err := br.Complete(ctx, []broker.Completion{{Lease: got[0].Lease, Result: result}}); err != nil {
					b.Fatal(err)
				}
			}
			for range 2000 + int(c.retention/time.Millisecond)*2 { // past the retention: completions now also remove expired tasks
				one()
			}
			time.Sleep(min(c.retention, time.Second))
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				one()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			// The process's CPU time per task: on a shared machine a steadier figure
			// than the wall time.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/task")
		})
	}
}
