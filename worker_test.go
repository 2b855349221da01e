package brisk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envRateWorker); url != "" {
		os.Exit(runRateWorker(url)) // a worker process of BenchmarkRateLimit
	}
	goleak.VerifyTestMain(m)
}

// setup opens a fresh embedded broker for one test.
func setup(t *testing.T) (broker.Broker, *brisk.Client) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "brisk.db")
	b, err := brisk.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, brisk.NewClient(b)
}

// startWorker starts a worker with cfg and handlers, stopped at the end of the test.
func startWorker(t *testing.T, b broker.Broker, cfg brisk.WorkerConfig, handlers map[string]brisk.HandlerFunc) *brisk.Worker {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = func(int, error) time.Duration { return 0 }
	}
	w, err := brisk.NewWorker(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for typ, h := range handlers {
		w.Handle(typ, h)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func queueStats(t *testing.T, b broker.Broker, name string) brisk.QueueInfo {
	t.Helper()
	qs, err := brisk.NewInspector(b).Queues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == name {
			return q
		}
	}
	return brisk.QueueInfo{Name: name}
}

func TestRunDeliversTask(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	got := make(chan *brisk.Task, 1)
	startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "mail"}}}, map[string]brisk.HandlerFunc{
		"email.send": func(ctx context.Context, task *brisk.Task) error { got <- task; return nil },
	})
	task, err := brisk.NewJSONTask("email.send", map[string]string{"to": "a@example.com"}, brisk.InQueue("mail"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Enqueue(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		var p map[string]string
		if err := d.DecodePayload(&p); err != nil || p["to"] != "a@example.com" {
			t.Fatalf("payload %q: %v", d.Payload, err)
		}
		if d.ID != id || d.Attempt != 1 || d.Queue != "mail" || d.EnqueuedAt.IsZero() || d.ReadyAt.IsZero() {
			t.Fatalf("delivery fields wrong: %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task not delivered")
	}
	eventually(t, "ack", func() bool { q := queueStats(t, b, "mail"); return q.Pending+q.Running == 0 })
}

func TestRetryThenDeadThenRetryDead(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	var runs atomic.Int32
	var heal atomic.Bool
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"flaky": func(ctx context.Context, task *brisk.Task) error {
			runs.Add(1)
			if heal.Load() {
				return nil
			}
			return fmt.Errorf("attempt %d failed", task.Attempt)
		},
	})
	id, err := c.Enqueue(ctx, brisk.NewTask("flaky", nil, brisk.MaxAttempts(3)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "dead", func() bool { return queueStats(t, b, brisk.DefaultQueue).Dead == 1 })
	if runs.Load() != 3 {
		t.Fatalf("ran %d times, want 3", runs.Load())
	}
	in := brisk.NewInspector(b)
	info, err := in.Task(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != brisk.StateDead || info.LastError != "attempt 3 failed" || info.Attempt != 3 {
		t.Fatalf("dead task: state %s attempt %d error %q", info.State, info.Attempt, info.LastError)
	}
	heal.Store(true)
	n, err := in.RetryDead(ctx, brisk.DefaultQueue, id)
	if err != nil || n != 1 {
		t.Fatalf("RetryDead = %d, %v", n, err)
	}
	eventually(t, "retried task done", func() bool {
		_, err := in.Task(ctx, id)
		return errors.Is(err, brisk.ErrNotFound)
	})
	if runs.Load() != 4 {
		t.Fatalf("ran %d times, want 4", runs.Load())
	}
}

func TestSkipRetryKillsAtOnce(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var runs atomic.Int32
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"bad": func(ctx context.Context, task *brisk.Task) error {
			runs.Add(1)
			return brisk.SkipRetry(errors.New("malformed address"))
		},
	})
	id, _ := c.Enqueue(context.Background(), brisk.NewTask("bad", nil))
	eventually(t, "dead", func() bool { return queueStats(t, b, brisk.DefaultQueue).Dead == 1 })
	info, _ := brisk.NewInspector(b).Task(context.Background(), id)
	if runs.Load() != 1 || !strings.Contains(info.LastError, "malformed address") {
		t.Fatalf("runs %d, last error %q", runs.Load(), info.LastError)
	}
}

func TestUnknownTypeIsRetriedThenDead(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"known": func(context.Context, *brisk.Task) error { return nil },
	})
	id, _ := c.Enqueue(context.Background(), brisk.NewTask("report.build", nil, brisk.MaxAttempts(2)))
	eventually(t, "dead", func() bool { return queueStats(t, b, brisk.DefaultQueue).Dead == 1 })
	info, _ := brisk.NewInspector(b).Task(context.Background(), id)
	if info.LastError != "no handler for type report.build" || info.Attempt != 2 {
		t.Fatalf("attempt %d, last error %q", info.Attempt, info.LastError)
	}
}

func TestPanicIsAFailureWithStack(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"boom": func(context.Context, *brisk.Task) error { panic("nil map write") },
	})
	id, _ := c.Enqueue(context.Background(), brisk.NewTask("boom", nil, brisk.MaxAttempts(2)))
	eventually(t, "dead", func() bool { return queueStats(t, b, brisk.DefaultQueue).Dead == 1 })
	info, _ := brisk.NewInspector(b).Task(context.Background(), id)
	if !strings.HasPrefix(info.LastError, "handler panicked: nil map write") || !strings.Contains(info.LastError, "worker_test.go") {
		t.Fatalf("last error lacks panic value or stack: %q", info.LastError)
	}
}

func TestTimeoutCancelsHandler(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"slow": func(ctx context.Context, _ *brisk.Task) error { <-ctx.Done(); return ctx.Err() },
	})
	id, _ := c.Enqueue(context.Background(), brisk.NewTask("slow", nil, brisk.MaxAttempts(1), brisk.Timeout(50*time.Millisecond)))
	eventually(t, "dead", func() bool { return queueStats(t, b, brisk.DefaultQueue).Dead == 1 })
	info, _ := brisk.NewInspector(b).Task(context.Background(), id)
	if !strings.HasPrefix(info.LastError, "timed out after") {
		t.Fatalf("last error %q", info.LastError)
	}
}

func TestRetryAfterSetsDelay(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"later": func(ctx context.Context, _ *brisk.Task) error {
			return brisk.RetryAfter(time.Hour, errors.New("rate limited"))
		},
	})
	c.Enqueue(context.Background(), brisk.NewTask("later", nil))
	eventually(t, "scheduled", func() bool { return queueStats(t, b, brisk.DefaultQueue).Scheduled == 1 })
	ts, err := brisk.NewInspector(b).Tasks(context.Background(), brisk.DefaultQueue, brisk.StateScheduled, 10, 0)
	if err != nil || len(ts) != 1 {
		t.Fatal(ts, err)
	}
	if until := time.Until(ts[0].ReadyAt); until < 50*time.Minute {
		t.Fatalf("next attempt in %s, want about 1h", until)
	}
}

func TestGracefulShutdownLetsHandlersFinish(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	started := make(chan struct{})
	var finished atomic.Bool
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("work", func(ctx context.Context, _ *brisk.Task) error {
		close(started)
		time.Sleep(200 * time.Millisecond)
		finished.Store(true)
		return nil
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Enqueue(context.Background(), brisk.NewTask("work", nil))
	<-started
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("Stop returned before the running handler finished")
	}
	q := queueStats(t, b, brisk.DefaultQueue)
	if q.Pending+q.Running+q.Scheduled+q.Dead != 0 {
		t.Fatalf("task not acked on shutdown: %+v", q)
	}
}

func TestShutdownHandsBackUnfinishedTasks(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	started := make(chan struct{}, 1)
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{ShutdownTimeout: 100 * time.Millisecond, Concurrency: 1, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("stuck", func(ctx context.Context, _ *brisk.Task) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id1, _ := c.Enqueue(context.Background(), brisk.NewTask("stuck", nil))
	id2, _ := c.Enqueue(context.Background(), brisk.NewTask("stuck", nil))
	<-started
	eventually(t, "prefetch", func() bool { return queueStats(t, b, brisk.DefaultQueue).Running == 2 })
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	in := brisk.NewInspector(b)
	for _, id := range []string{id1, id2} {
		info, err := in.Task(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != brisk.StatePending || info.Attempt != 0 {
			t.Fatalf("task %s after shutdown: state %s attempt %d, want pending with the attempt given back", id, info.State, info.Attempt)
		}
	}
	// Another worker picks them up at once, without waiting for a lease to expire.
	var done atomic.Int32
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"stuck": func(context.Context, *brisk.Task) error { done.Add(1); return nil },
	})
	eventually(t, "handed-back tasks rerun", func() bool { return done.Load() == 2 })
}

func TestPerQueueConcurrencyLimit(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var greedyNow, greedyMax atomic.Int32
	var fastDone atomic.Int32
	release := make(chan struct{})
	startWorker(t, b, brisk.WorkerConfig{
		Concurrency: 4,
		Queues:      []brisk.QueueSpec{{Name: "greedy", MaxConcurrency: 2}, {Name: "fast"}},
	}, map[string]brisk.HandlerFunc{
		"greedy": func(ctx context.Context, _ *brisk.Task) error {
			n := greedyNow.Add(1)
			for {
				m := greedyMax.Load()
				if n <= m || greedyMax.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			greedyNow.Add(-1)
			return nil
		},
		"fast": func(context.Context, *brisk.Task) error { fastDone.Add(1); return nil },
	})
	ctx := context.Background()
	var batch []*brisk.Task
	for i := 0; i < 10; i++ {
		batch = append(batch, brisk.NewTask("greedy", nil, brisk.InQueue("greedy")))
	}
	if _, err := c.EnqueueBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "greedy running", func() bool { return greedyNow.Load() == 2 })
	for i := 0; i < 20; i++ {
		c.Enqueue(ctx, brisk.NewTask("fast", nil, brisk.InQueue("fast")))
	}
	eventually(t, "fast queue served while greedy is busy", func() bool { return fastDone.Load() == 20 })
	close(release)
	eventually(t, "greedy drained", func() bool { q := queueStats(t, b, "greedy"); return q.Pending+q.Running == 0 })
	if greedyMax.Load() > 2 {
		t.Fatalf("greedy ran %d at once, limit 2", greedyMax.Load())
	}
}

func TestStrictPriority(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		c.Enqueue(ctx, brisk.NewTask("job", []byte("low"), brisk.InQueue("low")))
		c.Enqueue(ctx, brisk.NewTask("job", []byte("high"), brisk.InQueue("high")))
	}
	var mu sync.Mutex
	var order []string
	startWorker(t, b, brisk.WorkerConfig{
		Concurrency: 1, StrictPriority: true,
		Queues: []brisk.QueueSpec{{Name: "high"}, {Name: "low"}},
	}, map[string]brisk.HandlerFunc{
		"job": func(_ context.Context, task *brisk.Task) error {
			mu.Lock()
			order = append(order, string(task.Payload))
			mu.Unlock()
			return nil
		},
	})
	eventually(t, "all run", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 10 })
	want := "high high high high high low low low low low"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func TestPrefetchZeroDoesNotStarveIdleWorker(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	block := make(chan struct{})
	defer close(block)
	busyStarted := make(chan struct{}, 1)
	startWorker(t, b, brisk.WorkerConfig{Concurrency: 1}, map[string]brisk.HandlerFunc{
		"job": func(context.Context, *brisk.Task) error { busyStarted <- struct{}{}; <-block; return nil },
	})
	c.Enqueue(ctx, brisk.NewTask("job", nil))
	<-busyStarted
	// The busy worker holds one task and reserves nothing more.
	c.Enqueue(ctx, brisk.NewTask("job", nil))
	time.Sleep(50 * time.Millisecond)
	if q := queueStats(t, b, brisk.DefaultQueue); q.Pending != 1 || q.Running != 1 {
		t.Fatalf("busy worker hoarded: %+v", q)
	}
	ran := make(chan struct{}, 1)
	startWorker(t, b, brisk.WorkerConfig{Concurrency: 1}, map[string]brisk.HandlerFunc{
		"job": func(context.Context, *brisk.Task) error { ran <- struct{}{}; return nil },
	})
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("idle worker never got the second task")
	}
}

func TestSetConcurrencyLive(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var now, peak atomic.Int32
	release := make(chan struct{})
	w := startWorker(t, b, brisk.WorkerConfig{Concurrency: 1}, map[string]brisk.HandlerFunc{
		"job": func(context.Context, *brisk.Task) error {
			n := now.Add(1)
			for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
			}
			<-release
			now.Add(-1)
			return nil
		},
	})
	var batch []*brisk.Task
	for i := 0; i < 6; i++ {
		batch = append(batch, brisk.NewTask("job", nil))
	}
	c.EnqueueBatch(context.Background(), batch)
	eventually(t, "one running", func() bool { return now.Load() == 1 })
	w.SetConcurrency(4)
	eventually(t, "four running", func() bool { return now.Load() == 4 })
	if w.Stats().Busy != 4 || w.Concurrency() != 4 {
		t.Fatalf("stats %+v", w.Stats())
	}
	close(release)
	eventually(t, "drained", func() bool { q := queueStats(t, b, brisk.DefaultQueue); return q.Pending+q.Running == 0 })
}

func TestLeaseIsExtendedWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var runs atomic.Int32
	// The handler runs over three leases; extensions come every lease/3, so a loaded
	// machine (a 2-core CI box under -race) has a second of slack for each.
	cfg := brisk.WorkerConfig{Lease: 1500 * time.Millisecond}
	handler := map[string]brisk.HandlerFunc{
		"long": func(context.Context, *brisk.Task) error { runs.Add(1); time.Sleep(5 * time.Second); return nil },
	}
	startWorker(t, b, cfg, handler)
	startWorker(t, b, cfg, handler) // would take the task if its lease lapsed
	c.Enqueue(context.Background(), brisk.NewTask("long", nil))
	eventually(t, "done", func() bool {
		q := queueStats(t, b, brisk.DefaultQueue)
		return runs.Load() > 0 && q.Pending+q.Running == 0
	})
	if runs.Load() != 1 {
		t.Fatalf("ran %d times: the lease was not extended", runs.Load())
	}
}

func TestDelayedTaskWaits(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ran := make(chan time.Time, 1)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"later": func(context.Context, *brisk.Task) error { ran <- time.Now(); return nil },
	})
	start := time.Now()
	c.Enqueue(context.Background(), brisk.NewTask("later", nil, brisk.Delay(300*time.Millisecond)))
	if q := queueStats(t, b, brisk.DefaultQueue); q.Scheduled != 1 {
		t.Fatalf("delayed task not scheduled: %+v", q)
	}
	select {
	case at := <-ran:
		if at.Sub(start) < 300*time.Millisecond {
			t.Fatalf("ran after %s, before its delay", at.Sub(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("delayed task never ran")
	}
}

func TestPickupLatencyHistogram(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var done atomic.Int32
	w := startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "five_second"}}}, map[string]brisk.HandlerFunc{
		"job": func(context.Context, *brisk.Task) error { done.Add(1); return nil },
	})
	for i := 0; i < 5; i++ {
		c.Enqueue(context.Background(), brisk.NewTask("job", nil, brisk.InQueue("five_second")))
	}
	eventually(t, "done", func() bool { return done.Load() == 5 })
	h := w.Stats().Pickup["five_second"]
	if h.Count != 5 || len(h.Counts) != len(h.Bounds)+1 || h.Quantile(0.5) <= 0 {
		t.Fatalf("histogram %+v", h)
	}
	// The worker declared the queue's SLA from its name.
	if q := queueStats(t, b, "five_second"); q.SLA != 5*time.Second {
		t.Fatalf("SLA %s, want 5s", q.SLA)
	}
}

func TestWorkerConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	cases := []struct {
		cfg  brisk.WorkerConfig
		want string
	}{
		{brisk.WorkerConfig{Concurrency: -1}, "Concurrency"},
		{brisk.WorkerConfig{Prefetch: -1}, "Prefetch"},
		{brisk.WorkerConfig{Lease: time.Millisecond}, "Lease"},
		{brisk.WorkerConfig{ShutdownTimeout: -time.Second}, "ShutdownTimeout"},
		{brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "bad name"}}}, "Queues[0]"},
		{brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "a"}, {Name: "a"}}}, "twice"},
	}
	for _, c := range cases {
		_, err := brisk.NewWorker(b, c.cfg)
		if err == nil || !errors.Is(err, brisk.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewWorker(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

func TestHandleTwicePanics(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{})
	w.HandleFunc("a", func(context.Context, *brisk.Task) error { return nil })
	defer func() {
		if recover() == nil {
			t.Fatal("second handler for one type did not panic")
		}
	}()
	w.HandleFunc("a", func(context.Context, *brisk.Task) error { return nil })
}

func TestEnqueueBadInput(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, brisk.NewTask("ok", nil)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		task *brisk.Task
		want error
	}{
		{brisk.NewTask("", nil), brisk.ErrInvalid},
		{brisk.NewTask("ok", nil, brisk.InQueue("no spaces")), brisk.ErrInvalid},
		{brisk.NewTask("ok", make([]byte, broker.DefaultMaxPayload+1)), brisk.ErrPayloadTooLarge},
		{brisk.NewTask("ok", nil, brisk.Delay(-time.Second)), brisk.ErrInvalid},
	}
	for _, cs := range cases {
		_, err := c.Enqueue(ctx, cs.task)
		if !errors.Is(err, cs.want) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "brisk: ") {
			t.Errorf("Enqueue(%q) = %v, want one line wrapping %v", cs.task.Type, err, cs.want)
		}
	}
	// A batch with one bad task stores nothing, and the task stored before is still there.
	_, err := c.EnqueueBatch(ctx, []*brisk.Task{brisk.NewTask("ok", nil), brisk.NewTask("ok", nil, brisk.InQueue("bad queue"))})
	if !errors.Is(err, brisk.ErrInvalid) {
		t.Fatalf("bad batch: %v", err)
	}
	if q := queueStats(t, b, brisk.DefaultQueue); q.Pending != 1 {
		t.Fatalf("pending %d after a refused batch, want the 1 stored before", q.Pending)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := brisk.Open(ctx, "mysql://localhost/x")
	if !errors.Is(err, brisk.ErrUnknownScheme) || !strings.Contains(err.Error(), `"mysql"`) {
		t.Errorf("unknown scheme: %v", err)
	}
	_, err = brisk.Open(ctx, "sqlite:///nonexistent-dir/sub/brisk.db")
	if !errors.Is(err, brisk.ErrUnavailable) || !strings.Contains(err.Error(), "/nonexistent-dir/sub/brisk.db") {
		t.Errorf("unreachable path: %v", err)
	}
	notDB := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDB, []byte("my precious notes, not a database\n"), 0o644)
	_, err = brisk.Open(ctx, "sqlite://"+notDB)
	if !errors.Is(err, brisk.ErrUnavailable) {
		t.Errorf("not a database: %v", err)
	}
	if data, _ := os.ReadFile(notDB); string(data) != "my precious notes, not a database\n" {
		t.Errorf("opening a non-database file changed it: %q", data)
	}
}

func TestMiddlewareWrapsEveryHandlerOutermostFirst(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	var mu sync.Mutex
	var calls []string
	record := func(s string) { mu.Lock(); calls = append(calls, s); mu.Unlock() }
	tag := func(name string) brisk.Middleware {
		return func(next brisk.Handler) brisk.Handler {
			return brisk.HandlerFunc(func(ctx context.Context, task *brisk.Task) error {
				record(name)
				return next.ProcessTask(ctx, task)
			})
		}
	}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.Use(tag("outer"), tag("inner"))
	w.HandleFunc("job", func(context.Context, *brisk.Task) error { record("handler"); return nil })
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	c.Enqueue(context.Background(), brisk.NewTask("job", nil))
	eventually(t, "handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 3 })
	if got := strings.Join(calls, " "); got != "outer inner handler" {
		t.Fatalf("calls %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Use after Start did not panic")
		}
	}()
	w.Use(tag("late"))
}

// failingReserve is a broker whose Reserve always fails, as one that lost its server would.
type failingReserve struct{ brisk.Broker }

func (failingReserve) Reserve(context.Context, broker.ReserveParams) ([]*broker.Task, error) {
	return nil, fmt.Errorf("reserve: connection refused: %w", brisk.ErrUnavailable)
}

func TestWorkerSaysWhenReserveFails(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	var mu sync.Mutex
	var logs strings.Builder
	w, err := brisk.NewWorker(failingReserve{b}, brisk.WorkerConfig{
		Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := logs.String()
		mu.Unlock()
		if strings.Contains(got, "level=ERROR") && strings.Contains(got, "msg=reserve") && strings.Contains(got, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a failing Reserve within 5 s; logs:\n%s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestHandleDefaultTakesTypesWithoutAHandler(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(who string) brisk.HandlerFunc {
		return func(ctx context.Context, task *brisk.Task) error {
			mu.Lock()
			defer mu.Unlock()
			seen[task.Type] = who
			return nil
		}
	}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "q"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("own", record("own"))
	w.HandleDefault(record("default"))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second HandleDefault did not panic")
			}
		}()
		w.HandleDefault(record("again"))
	}()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	for _, typ := range []string{"own", "other", "third"} {
		if _, err := c.Enqueue(ctx, brisk.NewTask(typ, nil, brisk.InQueue("q"))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three tasks handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 3 })
	if seen["own"] != "own" || seen["other"] != "default" || seen["third"] != "default" {
		t.Fatalf("handlers used: %v", seen)
	}
}

func TestPrefetchWaitHoldsMoreForShortTasks(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	block := make(chan struct{})
	defer close(block)
	blocked := make(chan struct{}, 1)
	startWorker(t, b, brisk.WorkerConfig{Concurrency: 1, PrefetchWait: time.Second}, map[string]brisk.HandlerFunc{
		"fast": func(context.Context, *brisk.Task) error { return nil },
		"slow": func(context.Context, *brisk.Task) error {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-block
			return nil
		},
	})
	var batch []*brisk.Task
	for range 10 {
		batch = append(batch, brisk.NewTask("fast", nil))
	}
	for range 20 {
		batch = append(batch, brisk.NewTask("slow", nil))
	}
	if _, err := c.EnqueueBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	<-blocked
	// Its handler runs took microseconds: it expects to start far more than one task a
	// second, so it holds up to 16 per slot beyond the running one (without PrefetchWait,
	// 19 slow tasks would stay pending).
	eventually(t, "tasks held beyond the free slot", func() bool {
		q := queueStats(t, b, brisk.DefaultQueue)
		return q.Pending < 19 && q.Pending >= 19-16
	})
}

func TestPrefetchWaitHoldsNothingMoreForLongTasks(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	block := make(chan struct{})
	defer close(block)
	started := make(chan string, 4)
	startWorker(t, b, brisk.WorkerConfig{Concurrency: 1, PrefetchWait: time.Millisecond}, map[string]brisk.HandlerFunc{
		"long": func(context.Context, *brisk.Task) error {
			started <- "long"
			time.Sleep(20 * time.Millisecond)
			return nil
		},
		"held": func(context.Context, *brisk.Task) error { started <- "held"; <-block; return nil },
	})
	c.Enqueue(ctx, brisk.NewTask("long", nil))
	if got := <-started; got != "long" {
		t.Fatalf("started %s first", got)
	}
	c.Enqueue(ctx, brisk.NewTask("held", nil))
	if got := <-started; got != "held" {
		t.Fatalf("started %s second", got)
	}
	// Runs of 20 ms and more, against 1 ms of PrefetchWait: no task beyond the free slots.
	c.Enqueue(ctx, brisk.NewTask("held", nil))
	time.Sleep(50 * time.Millisecond)
	if q := queueStats(t, b, brisk.DefaultQueue); q.Pending != 1 || q.Running != 1 {
		t.Fatalf("busy worker hoarded: %+v", q)
	}
}
