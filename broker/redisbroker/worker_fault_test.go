package redisbroker_test

import (
	"context"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/testenv"
)

// TestWorkerSurvivesRedisKill drains tasks with a brisk worker (acks riding with its
// reserves) while its Redis, which writes every change to its append-only file before
// answering, is killed with SIGKILL and started again on the same port and file. Every
// task runs, none is lost; a task whose ack the outage swallowed runs again after its
// lease expires (at-least-once).
func TestWorkerSurvivesRedisKill(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "no redis-server binary to start and kill: %v", err)
	}
	port := freePort(t)
	dir := t.TempDir()
	durable := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", dir}
	srv := startRedis(t, bin, port, durable...)
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	ctx := t.Context()
	b, err := redisbroker.Open(ctx, "redis://127.0.0.1:"+strconv.Itoa(port)+"/0?prefix=wkill")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 1000
	tasks := brokertest.NewTasks("q", "t", n)
	if err := b.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	runs := map[string]int{}
	done := make(chan struct{})
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues: []brisk.QueueSpec{{Name: "q"}}, Concurrency: 8, Lease: 2 * time.Second,
		Backoff: func(int, error) time.Duration { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("t", func(_ context.Context, task *brisk.Task) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		runs[task.ID]++
		if len(runs) == n && runs[task.ID] == 1 {
			close(done)
		}
		return nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// Kill Redis when about a third has run, keep it down for a second, start it again.
	for {
		mu.Lock()
		k := len(runs)
		mu.Unlock()
		if k > n/3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	_ = srv.Process.Signal(syscall.SIGKILL)
	_ = srv.Wait()
	time.Sleep(time.Second)
	srv = startRedis(t, bin, port, durable...)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d tasks ran within 60s of the restart", len(runs), n)
	}
	// Everything acked in the end: nothing pending, running or dead.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := b.Stats(ctx)
		if err == nil && len(st) == 1 && st[0].Pending+st[0].Running+st[0].Scheduled+st[0].Dead == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after every task ran, Stats = %+v, %v; want nothing left", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, task := range tasks {
		switch c := runs[task.ID]; {
		case c == 0:
			t.Errorf("task %s never ran", task.ID)
		case c > 1:
			twice++
		}
	}
	t.Logf("%d tasks ran more than once (their ack was lost in the outage)", twice)
}
