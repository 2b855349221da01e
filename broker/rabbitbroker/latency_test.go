package rabbitbroker_test

import (
	"context"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
)

// TestConformanceClassic runs the conformance suite on classic queues (queue_type=classic).
func TestConformanceClassic(t *testing.T) {
	if os.Getenv("BRISKTEST_ROLE") == "" {
		newURL(t) // skip or fail before the suite starts children
	}
	brokertest.Run(t, brokertest.Harness{
		NewURL: func(t testing.TB) string {
			if os.Getenv("BRISKTEST_ROLE") != "" {
				return ""
			}
			return newURL(t) + "&queue_type=classic"
		},
		Open: broker.Open,
	})
}

// TestQuorumLatencyError measures the queue latency that Stats reports for a quorum queue
// (an upper bound from head reports, see stats.go) against the truth, from another broker
// value (as a dashboard in another process): a worker serves 4 tasks at a time of 20 ms
// each (200/s) while a producer enqueues 300/s for 3 s, so a backlog and its latency grow,
// then drain. The truth at a sample is the age of the oldest task enqueued and not yet
// started. The figures are logged; the test fails only on a gross error (over 2 s).
func TestQuorumLatencyError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := newURL(t)
	wb, sb := openBroker(t, url), openBroker(t, url)

	var (
		mu      sync.Mutex
		readyAt = map[string]time.Time{} // enqueued, not yet started
	)
	oldest := func() time.Time {
		var o time.Time
		for _, r := range readyAt {
			if o.IsZero() || r.Before(o) {
				o = r
			}
		}
		return o
	}
	w, err := brisk.NewWorker(wb, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "q"}}, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("t", func(_ context.Context, task *brisk.Task) error {
		mu.Lock()
		delete(readyAt, task.ID)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	produced := make(chan struct{})
	go func() {
		defer close(produced)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range 300 {
			<-tick.C
			tasks := brokertest.NewTasks("q", "t", 3)
			mu.Lock()
			for _, task := range tasks {
				readyAt[task.ID] = task.ReadyAt
			}
			mu.Unlock()
			if err := wb.Enqueue(ctx, tasks); err != nil {
				t.Errorf("Enqueue: %v", err)
				return
			}
		}
	}()

	var errs []float64 // reported − true latency, seconds
	var notes []string
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		before, o1 := time.Now(), oldest()
		mu.Unlock()
		st, err := sb.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		mu.Lock()
		after, o2 := time.Now(), oldest()
		n := len(readyAt)
		mu.Unlock()
		if len(st) != 1 || o1.IsZero() || o2.IsZero() || n == 0 {
			select {
			case <-produced:
				if n == 0 {
					end = time.Now() // drained
				}
			default:
			}
			continue
		}
		// The truth moved during the call: take the middle, and count the spread as noise.
		truth := (before.Sub(o1) + after.Sub(o2)).Seconds() / 2
		errs = append(errs, st[0].Latency.Seconds()-truth)
		notes = st[0].Notes
	}
	if len(errs) < 10 {
		t.Fatalf("only %d samples with a backlog", len(errs))
	}
	abs := make([]float64, len(errs))
	for i, e := range errs {
		abs[i] = math.Abs(e)
	}
	slices.Sort(abs)
	slices.Sort(errs)
	q := func(s []float64, p float64) float64 { return s[int(p*float64(len(s)-1))] }
	t.Logf("quorum queue latency error over %d samples (reported − true, s): min %+.3f p50 %+.3f max %+.3f; |error| p50 %.3f p90 %.3f p99 %.3f max %.3f",
		len(errs), errs[0], q(errs, 0.5), errs[len(errs)-1], q(abs, 0.5), q(abs, 0.9), q(abs, 0.99), abs[len(abs)-1])
	t.Logf("notes: %q", notes)
	if max := abs[len(abs)-1]; max > 2 {
		t.Errorf("the latency Stats reports was off by %.3f s at worst, want within 2 s", max)
	}
}
