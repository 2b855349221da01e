package brokertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// The crash test: real worker processes (brisk.Worker in a child test binary) run 2,000
// tasks while one of them is killed with SIGKILL again and again and started anew. Every
// task must complete at least once, none may be lost, and a task may run twice only when a
// worker that ran it was killed.
const (
	crashTasks     = 2000
	crashWorkers   = 3
	crashKillEvery = 400 * time.Millisecond
	crashQueue     = "crash"
	crashType      = "crash.work"
	roleCrash      = "crashworker"
)

func init() { roles[roleCrash] = crashWorker }

func (s *suite) testCrash(t *testing.T) {
	ctx := t.Context()
	url := s.h.NewURL(t)
	b, err := s.h.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	defer b.Close()
	all := NewTasks(crashQueue, crashType, crashTasks)
	for _, task := range all {
		// The subject is loss, not the attempt budget: the tasks a killed worker held are
		// handed back oldest first, so the replacement started at once often takes them
		// again and may be killed with them again, many times on a slow machine (3 tasks
		// ended dead after 3 attempts in a CI run with 48 kills).
		task.MaxAttempts = 1000
	}
	for i := 0; i < len(all); i += 500 {
		if err := b.Enqueue(ctx, all[i:min(i+500, len(all))]); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}

	var (
		mu      sync.Mutex
		starts  = map[string][]int{} // task → instances that started it
		done    = map[string]bool{}
		killed  = map[int]bool{}
		readers sync.WaitGroup
	)
	instance := 0
	spawn := func() *exec.Cmd {
		instance++
		n := instance
		cmd := s.childCommand(t, roleCrash, url)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = &prefixWriter{t: t, prefix: fmt.Sprintf("worker %d: ", n)}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start worker process: %v", err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 2 {
					continue
				}
				mu.Lock()
				switch f[0] {
				case "start":
					starts[f[1]] = append(starts[f[1]], n)
				case "done":
					done[f[1]] = true
				}
				mu.Unlock()
			}
		}()
		return cmd
	}
	ids := map[*exec.Cmd]int{}
	workers := make([]*exec.Cmd, crashWorkers)
	for i := range workers {
		workers[i] = spawn()
		ids[workers[i]] = instance
	}
	// Finished when every task reported done and none is left to run: a task whose worker
	// was killed after its handler returned but before the ack runs again.
	finished := func() bool {
		mu.Lock()
		n := len(done)
		mu.Unlock()
		if n < crashTasks {
			return false
		}
		stats, err := b.Stats(ctx)
		if err != nil {
			return false
		}
		for _, q := range stats {
			if q.Name == crashQueue && q.Pending+q.Scheduled+q.Running != 0 {
				return false
			}
		}
		return true
	}
	kills := 0
	deadline := time.Now().Add(2 * time.Minute)
	for !finished() && time.Now().Before(deadline) {
		time.Sleep(crashKillEvery)
		mu.Lock()
		allDone := len(done) == crashTasks
		mu.Unlock()
		if allDone { // stop killing; let the survivors run what is left
			continue
		}
		victim := workers[0]
		_ = victim.Process.Signal(syscall.SIGKILL)
		_ = victim.Wait() // reap it, so that its pid is gone and its tasks can be reaped
		mu.Lock()
		killed[ids[victim]] = true
		mu.Unlock()
		kills++
		workers[0] = spawn()
		ids[workers[0]] = instance
	}
	for _, w := range workers {
		_ = w.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range workers {
		_ = w.Wait()
	}
	readers.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d worker processes killed with SIGKILL; %d of %d tasks done", kills, len(done), crashTasks)
	if kills == 0 {
		t.Fatalf("no worker was killed: the tasks finished too fast for the test to mean anything")
	}
	lost, twice, unexplained := 0, 0, 0
	for _, task := range all {
		if !done[task.ID] {
			lost++
			continue
		}
		runs := starts[task.ID]
		if len(runs) > 1 {
			twice++
			diedRunning := false
			for _, n := range runs[:len(runs)-1] {
				diedRunning = diedRunning || killed[n]
			}
			if !diedRunning {
				unexplained++
				if unexplained <= 5 {
					t.Errorf("task %s ran %d times (instances %v) though none of its earlier workers was killed", task.ID, len(runs), runs)
				}
			}
		}
	}
	t.Logf("tasks run more than once: %d (all by killed workers unless reported above)", twice)
	if lost > 0 {
		t.Fatalf("%d tasks never completed", lost)
	}
	stats, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stats {
		if q.Name == crashQueue && q.Pending+q.Scheduled+q.Running+q.Dead != 0 {
			dead, _ := b.Tasks(ctx, broker.ListParams{Queue: crashQueue, State: broker.StateDead, Limit: 5})
			for _, d := range dead {
				t.Errorf("dead task %s after %d attempts: %s", d.ID, d.Attempt, d.LastError)
			}
			t.Fatalf("queue not empty after every task completed: %+v", q)
		}
	}
}

// crashWorker is the child's role: run a brisk worker until SIGTERM.
func crashWorker(t *testing.T, h Harness, url string) {
	ctx, b, log, done := openUntilTerm(t, h, url)
	defer done()
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues:          []brisk.QueueSpec{{Name: crashQueue}},
		Concurrency:     4,
		Lease:           3 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		Backoff:         func(int, error) time.Duration { return 0 },
		Logger:          log,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := os.Stdout // unbuffered: every line is one write, so a SIGKILL loses no reported line
	w.HandleFunc(crashType, func(ctx context.Context, task *brisk.Task) error {
		fmt.Fprintf(out, "start %s\n", task.ID)
		time.Sleep(5 * time.Millisecond)
		fmt.Fprintf(out, "done %s\n", task.ID)
		return nil
	})
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// prefixWriter logs a child's standard error through t.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "PASS") && !strings.HasPrefix(line, "ok") {
			p.t.Log(p.prefix + line)
		}
	}
	return len(b), nil
}

var _ io.Writer = (*prefixWriter)(nil)

// openUntilTerm opens the broker of a child process whose role runs until SIGTERM: the
// context ends at SIGTERM, and the returned function closes the broker and stops
// listening for the signal. Logs go to standard error, warnings and up.
func openUntilTerm(t *testing.T, h Harness, url string) (context.Context, broker.Broker, *slog.Logger, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	b, err := h.Open(ctx, url)
	if err != nil {
		stop()
		t.Fatalf("Open: %v", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return ctx, b, log, func() { b.Close(); stop() }
}
