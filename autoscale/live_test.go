package autoscale

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

const (
	liveQueue = "live"
	liveTasks = 400
)

// liveWorker is the test binary as a brisk worker process: queue "live", concurrency 2, a
// handler that sleeps 50 ms and appends "start ID PID" and "done ID PID" to
// $BRISK_TEST_LOG. SIGTERM stops it gracefully.
func liveWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b, err := brisk.Open(ctx, os.Getenv("BRISK_TEST_BROKER"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "live worker:", err)
		return 1
	}
	defer b.Close()
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues: []brisk.QueueSpec{{Name: liveQueue}}, Concurrency: 2, IdleWait: 100 * time.Millisecond,
		HeartbeatInterval: time.Second, ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "live worker:", err)
		return 1
	}
	f, err := os.OpenFile(os.Getenv("BRISK_TEST_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "live worker:", err)
		return 1
	}
	defer f.Close()
	var mu sync.Mutex
	record := func(what, id string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, "%s %s %d\n", what, id, os.Getpid())
	}
	w.HandleFunc("sleep", func(ctx context.Context, t *brisk.Task) error {
		record("start", t.ID)
		time.Sleep(50 * time.Millisecond)
		record("done", t.ID)
		return nil
	})
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "live worker:", err)
		return 1
	}
	return 0
}

// TestLiveBurst runs real worker processes (this test binary) on the embedded SQLite broker,
// scaled by a Controller with the sla policy through a ProcessActuator, under a burst of
// liveTasks tasks. It checks that the count goes up during the burst and back to the
// minimum after it, that every task ran once and only once, and logs the timeline.
func TestLiveBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "live.db")
	log := filepath.Join(dir, "tasks.log")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := brisk.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	client := brisk.NewClient(b)
	const sla = 4 * time.Second
	if err := client.DeclareQueue(ctx, liveQueue, sla); err != nil {
		t.Fatal(err)
	}

	act, err := NewProcessActuator(ProcessConfig{
		Command: []string{os.Args[0], "-test.run=^$"},
		Env:     []string{"BRISK_TEST_CHILD=worker", "BRISK_TEST_LOG=" + log, "BRISK_TEST_BROKER=" + url},
		Grace:   20 * time.Second,
		Stdout:  os.Stderr, Stderr: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer act.Close()
	if err := act.Scale(ctx, 1); err != nil {
		t.Fatal(err)
	}
	policy, err := NewPolicy("sla", Bounds{Min: 1, Max: 4}, map[string]float64{
		"startup": 1, "interval": 0.2, "stabilise": 2, "memory": 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var (
		mu       sync.Mutex
		timeline []string
		maxWant  int
		lastLine string
	)
	ctl, err := NewController(ControllerConfig{
		Queue: liveQueue, Policy: policy, Source: NewBrokerSource(brisk.NewInspector(b)),
		Actuator: act, Interval: 200 * time.Millisecond, Initial: 1, Slots: 2,
		OnDecision: func(d Decision) {
			mu.Lock()
			defer mu.Unlock()
			maxWant = max(maxWant, d.Desired)
			line := fmt.Sprintf("%5.1fs  latency %5.2fs  pending %3d  workers %d -> %d  processes %d",
				time.Since(start).Seconds(), d.Sample.Latency.Seconds(), d.Sample.Pending, d.Current, d.Desired, act.Count())
			// Log the lines that differ from the one before (the time aside).
			key := line[7:]
			if key != lastLine || len(timeline) == 0 {
				rule, _, _ := strings.Cut(d.Reason, ":")
				timeline = append(timeline, line+"  "+rule)
				lastLine = key
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Let the first worker come up, then start the controller and the burst.
	waitFor(t, "the first worker to register", 30*time.Second, func() bool {
		ws, err := brisk.NewInspector(b).Workers(ctx)
		return err == nil && len(ws) == 1
	})
	start = time.Now()
	if err := ctl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ctl.Stop()
	tasks := make([]*brisk.Task, liveTasks)
	for i := range tasks {
		tasks[i] = brisk.NewTask("sleep", nil, brisk.InQueue(liveQueue))
	}
	ids, err := client.EnqueueBatch(ctx, tasks)
	if err != nil {
		t.Fatal(err)
	}
	burst := time.Since(start)

	waitFor(t, "the controller to scale out", 20*time.Second, func() bool { return ctl.Current() > 1 })
	out := time.Since(start)
	waitFor(t, "every task to complete", 90*time.Second, func() bool {
		qs, err := brisk.NewInspector(b).Queues(ctx)
		return err == nil && len(qs) > 0 && qinfo(qs, liveQueue).Completed == liveTasks
	})
	drained := time.Since(start)
	waitFor(t, "the controller to scale back to 1", 60*time.Second, func() bool { return ctl.Current() == 1 && act.Count() == 1 })
	in := time.Since(start)
	ctl.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := act.Wait(wctx); err != nil {
		t.Fatal(err)
	}

	// Scale-in under load: three workers busy with a second burst, two of them stopped
	// (SIGTERM) while they run tasks. Their graceful stop must neither lose nor repeat one.
	if err := act.Scale(ctx, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three workers to register", 30*time.Second, func() bool {
		ws, err := brisk.NewInspector(b).Workers(ctx)
		return err == nil && len(ws) == 3
	})
	more := make([]*brisk.Task, liveTasks/2)
	for i := range more {
		more[i] = brisk.NewTask("sleep", nil, brisk.InQueue(liveQueue))
	}
	moreIDs, err := client.EnqueueBatch(ctx, more)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, moreIDs...)
	waitFor(t, "the second burst to start", 30*time.Second, func() bool {
		data, _ := os.ReadFile(log)
		return strings.Count(string(data), "start ") >= liveTasks+20
	})
	if err := act.Scale(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second burst to complete", 90*time.Second, func() bool {
		qs, err := brisk.NewInspector(b).Queues(ctx)
		return err == nil && qinfo(qs, liveQueue).Completed == int64(len(ids))
	})
	if err := act.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if err := act.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	t.Logf("burst of %d tasks enqueued at %.1fs; scaled out at %.1fs (max %d); drained at %.1fs; back to 1 at %.1fs",
		liveTasks, burst.Seconds(), out.Seconds(), maxWant, drained.Seconds(), in.Seconds())
	t.Logf("timeline (changes only):\n%s", strings.Join(timeline, "\n"))
	mu.Unlock()

	// Every task ran exactly once: one start and one done, by the same process.
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	starts, dones := map[string]int{}, map[string]int{}
	pids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad log line %q", line)
		}
		pids[f[2]] = true
		if f[0] == "start" {
			starts[f[1]]++
		} else {
			dones[f[1]]++
		}
	}
	for _, id := range ids {
		if starts[id] != 1 || dones[id] != 1 {
			t.Errorf("task %s started %d times and finished %d times, want once", id, starts[id], dones[id])
		}
	}
	if len(starts) != len(ids) {
		t.Errorf("%d distinct tasks ran, want %d", len(starts), len(ids))
	}
	qs, err := brisk.NewInspector(b).Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := qinfo(qs, liveQueue)
	if q.Pending+q.Running+q.Scheduled+q.Dead != 0 || q.Completed != int64(len(ids)) {
		t.Errorf("queue after the run: %+v", q)
	}
	if len(pids) < 2 {
		t.Errorf("tasks ran in %d process(es), want several", len(pids))
	}
	t.Logf("tasks ran in %d worker processes", len(pids))
}

func qinfo(qs []brisk.QueueInfo, name string) brisk.QueueInfo {
	for _, q := range qs {
		if q.Name == name {
			return q
		}
	}
	return brisk.QueueInfo{}
}
