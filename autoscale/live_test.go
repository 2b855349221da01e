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
	// liveSlow is the handler time of the tasks that trickle in during and after the burst,
	// so that the workers the controller stops are likely to be running one.
	liveSlow = 500 * time.Millisecond
)

// liveWorker is the test binary as a brisk worker process: queue "live", concurrency 2,
// handlers that sleep 50 ms ("sleep") or liveSlow ("slow") and append "start ID PID" and
// "done ID PID" to $BRISK_TEST_LOG. SIGTERM stops it gracefully; it appends "term - PID"
// when the signal arrives.
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
	handle := func(d time.Duration) brisk.HandlerFunc {
		return func(ctx context.Context, t *brisk.Task) error {
			record("start", t.ID)
			time.Sleep(d)
			record("done", t.ID)
			return nil
		}
	}
	w.HandleFunc("sleep", handle(50*time.Millisecond))
	w.HandleFunc("slow", handle(liveSlow))
	var term sync.Once
	go func() {
		<-ctx.Done()
		term.Do(func() { record("term", "-") }) // SIGTERM: from here the worker reserves nothing new
	}()
	defer term.Do(func() { record("term", "-") }) // in case Run returned before the goroutine ran
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "live worker:", err)
		return 1
	}
	return 0
}

// TestLiveBurst runs real worker processes (this test binary) on the embedded SQLite broker,
// scaled by a Controller with the sla policy through a ProcessActuator, under a burst of
// liveTasks tasks while slow tasks trickle in. It checks that the controller scales out
// during the burst and, by itself, back to the minimum after it while the trickle keeps
// the workers busy, so that workers are stopped (SIGTERM) with tasks running; that the
// stopped processes exit; that every task started once and finished once, in the process
// that started it (none lost, none run twice); and logs the timeline.
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
	// A short stabilisation window and memory, so that the controller scales in within
	// seconds of the burst.
	policy, err := NewPolicy("sla", Bounds{Min: 1, Max: 4}, map[string]float64{
		"startup": 1, "interval": 0.2, "stabilise": 2, "memory": 3,
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
		inAt     time.Duration // when the controller first lowered the count
	)
	ctl, err := NewController(ControllerConfig{
		Queue: liveQueue, Policy: policy, Source: NewBrokerSource(brisk.NewInspector(b)),
		Actuator: act, Interval: 200 * time.Millisecond, Initial: 1, Slots: 2,
		OnDecision: func(d Decision) {
			mu.Lock()
			defer mu.Unlock()
			maxWant = max(maxWant, d.Desired)
			if d.Desired < d.Current && inAt == 0 {
				inAt = time.Since(start)
			}
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
	scaledIn := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inAt > 0
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

	// Slow tasks trickle in (8/s × 500 ms: four busy handler slots, about half of what four
	// workers have) until shortly after the controller's first scale-in.
	var (
		trickleMu  sync.Mutex
		trickleIDs []string
		trickleErr error
	)
	trickleDone := make(chan struct{})
	go func() {
		defer close(trickleDone)
		tick := time.NewTicker(125 * time.Millisecond)
		defer tick.Stop()
		var stopAt time.Time
		for range tick.C {
			if ctx.Err() != nil {
				return
			}
			if stopAt.IsZero() && scaledIn() {
				stopAt = time.Now().Add(500 * time.Millisecond)
			}
			if !stopAt.IsZero() && time.Now().After(stopAt) || time.Since(start) > 45*time.Second {
				return
			}
			id, err := client.Enqueue(ctx, brisk.NewTask("slow", nil, brisk.InQueue(liveQueue)))
			trickleMu.Lock()
			if err != nil {
				trickleErr = err
				trickleMu.Unlock()
				return
			}
			trickleIDs = append(trickleIDs, id)
			trickleMu.Unlock()
		}
	}()

	waitFor(t, "the controller to scale out", 20*time.Second, func() bool { return ctl.Current() > 1 })
	out := time.Since(start)
	waitFor(t, "the burst to complete", 90*time.Second, func() bool {
		qs, err := brisk.NewInspector(b).Queues(ctx)
		return err == nil && len(qs) > 0 && qinfo(qs, liveQueue).Completed >= liveTasks
	})
	drained := time.Since(start)
	waitFor(t, "the controller to scale back to 1", 60*time.Second, func() bool { return ctl.Current() == 1 && act.Count() == 1 })
	in := time.Since(start)
	<-trickleDone
	trickleMu.Lock()
	if trickleErr != nil {
		t.Fatal(trickleErr)
	}
	ids = append(ids, trickleIDs...)
	slow := len(trickleIDs)
	trickleMu.Unlock()
	waitFor(t, "every task to complete", 90*time.Second, func() bool {
		qs, err := brisk.NewInspector(b).Queues(ctx)
		return err == nil && qinfo(qs, liveQueue).Completed == int64(len(ids))
	})
	ctl.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := act.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if err := act.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	t.Logf("burst of %d tasks enqueued at %.1fs, %d slow ones trickling in; scaled out at %.1fs (max %d); burst done at %.1fs; first scale-in at %.1fs; back to 1 at %.1fs",
		liveTasks, burst.Seconds(), slow, out.Seconds(), maxWant, drained.Seconds(), inAt.Seconds(), in.Seconds())
	t.Logf("timeline (changes only):\n%s", strings.Join(timeline, "\n"))
	mu.Unlock()

	// Every task ran exactly once: one start and one done, by the same process. A process
	// stopped by the scale-in finished the tasks it was running at SIGTERM.
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	starts, dones := map[string]int{}, map[string]int{}
	startPID, donePID := map[string]string{}, map[string]string{}
	running := map[string]map[string]bool{} // pid -> tasks started and not yet done
	inFlight := map[string]int{}            // pid -> tasks running when its "term" line was written
	pids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad log line %q", line)
		}
		what, id, pid := f[0], f[1], f[2]
		if running[pid] == nil {
			running[pid] = map[string]bool{}
		}
		switch what {
		case "start":
			pids[pid] = true
			starts[id]++
			startPID[id] = pid
			running[pid][id] = true
		case "done":
			dones[id]++
			donePID[id] = pid
			delete(running[pid], id)
		case "term":
			inFlight[pid] = len(running[pid])
		}
	}
	for _, id := range ids {
		if starts[id] != 1 || dones[id] != 1 || startPID[id] != donePID[id] {
			t.Errorf("task %s started %d times (pid %s) and finished %d times (pid %s), want once by one process",
				id, starts[id], startPID[id], dones[id], donePID[id])
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
	// Every process got SIGTERM (the scale-in, then Close for the last one).
	if len(inFlight) < len(pids) {
		t.Errorf("%d processes wrote \"term\", want all %d that ran tasks", len(inFlight), len(pids))
	}
	total := 0
	for _, n := range inFlight {
		total += n
	}
	t.Logf("tasks ran in %d worker processes; tasks running at SIGTERM, per process: %v (%d in all, each finished once, by that process)",
		len(pids), inFlight, total)
}

func qinfo(qs []brisk.QueueInfo, name string) brisk.QueueInfo {
	for _, q := range qs {
		if q.Name == name {
			return q
		}
	}
	return brisk.QueueInfo{}
}
