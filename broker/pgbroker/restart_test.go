package pgbroker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/pgtest"
	"github.com/briskq/brisk/internal/testenv"
)

// cluster is the local PostgreSQL cluster that the restart test stops and starts.
type cluster struct{ version string }

// localCluster finds the Debian cluster "main" behind a local test URL, or stops the test
// (failing under CI) when there is none this test may restart.
func localCluster(t *testing.T, raw string) cluster {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		testenv.Missing(t, "the restart test stops and starts the local PostgreSQL; BRISK_POSTGRES_URL names %s", h)
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		testenv.Missing(t, "the restart test needs pg_ctlcluster (Debian's postgresql-common): %v", err)
	}
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(entries) != 1 {
		testenv.Missing(t, "the restart test needs exactly one PostgreSQL version under /etc/postgresql: %v", err)
	}
	return cluster{version: entries[0].Name()}
}

func (c cluster) ctl(t *testing.T, action string) {
	t.Helper()
	args := []string{"--skip-systemctl-redirect", c.version, "main", action}
	if action == "stop" {
		args = append(args, "--", "-m", "fast")
	}
	out, err := exec.Command("pg_ctlcluster", args...).CombinedOutput()
	if err != nil && !(action == "start" && strings.Contains(string(out), "already running")) {
		t.Fatalf("pg_ctlcluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestRestart stops the PostgreSQL server while a worker drains a queue and starts it
// again: calls meanwhile fail at once with ErrUnavailable, the worker resumes by itself,
// and every task runs.
//
// Not parallel: it takes the server away from every test of this package (they run
// before or after it).
func TestRestart(t *testing.T) {
	raw := pgtest.URL(t)
	pg := localCluster(t, raw)
	t.Cleanup(func() { pg.ctl(t, "start") })
	_, u := pgtest.NewSchema(t, raw, "restart")
	ctx := t.Context()
	b := open(t, u)
	const n = 3000
	c := brisk.NewClient(b)
	var all []*brisk.Task
	for i := range n {
		all = append(all, brisk.NewTask("work", fmt.Appendf(nil, `{"n":%d}`, i), brisk.InQueue("restart")))
	}
	var ids []string
	for i := 0; i < n; i += 500 {
		got, err := c.EnqueueBatch(ctx, all[i:i+500])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}

	var (
		mu   sync.Mutex
		done = map[string]int{}
		logs testenv.Buffer
	)
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues:      []brisk.QueueSpec{{Name: "restart"}},
		Concurrency: 8,
		Lease:       5 * time.Second,
		Backoff:     func(int, error) time.Duration { return 100 * time.Millisecond },
		Logger:      slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("work", func(ctx context.Context, task *brisk.Task) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		done[task.ID]++
		mu.Unlock()
		return nil
	})
	wctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(wctx) }()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(done)
	}
	for count() < n/5 {
		time.Sleep(10 * time.Millisecond)
	}
	pg.ctl(t, "stop")
	stoppedAt, doneAtStop := time.Now(), count()

	// Meanwhile: a clear error, at once.
	start := time.Now()
	err = b.Enqueue(ctx, []*broker.Task{brokertest.NewTask("restart", "work", nil)})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Enqueue while the server is stopped: %v, want an error wrapping ErrUnavailable", err)
	}
	t.Logf("Enqueue while the server is stopped failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	time.Sleep(2 * time.Second)
	pg.ctl(t, "start")
	t.Logf("server stopped for %s with %d of %d tasks done", time.Since(stoppedAt).Round(time.Millisecond), doneAtStop, n)

	// Every task runs, and the queue empties: a task whose ack was lost with the server
	// ran and stays running until its lease expires; then the worker runs it again
	// (at-least-once) and acks it.
	empty := func() bool {
		st, err := b.Stats(ctx)
		if err != nil {
			return false
		}
		for _, q := range st {
			if q.Name == "restart" && q.Pending+q.Scheduled+q.Running+q.Dead != 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for (count() < n || !empty()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	resumed := time.Since(stoppedAt)
	stop()
	if err := <-ran; err != nil {
		t.Errorf("worker Run: %v", err)
	}
	if got := count(); got < n {
		t.Fatalf("%d of %d tasks ran within 60 s after the restart; worker log:\n%s", got, n, logs.String())
	}
	if !empty() {
		st, _ := b.Stats(ctx)
		t.Fatalf("queue not empty 60 s after the restart although every task ran: %+v", st)
	}
	twice := 0
	for _, id := range ids {
		if done[id] > 1 {
			twice++
		}
	}
	t.Logf("all %d tasks ran and the queue was empty %s after the stop; %d ran twice (their acks were lost with the server)", n, resumed.Round(time.Millisecond), twice)
	if l := logs.String(); !strings.Contains(l, "broker unavailable") {
		t.Errorf("the worker logged no 'broker unavailable' error during the outage:\n%s", l)
	} else {
		t.Logf("first lines the worker logged:\n%s", firstLines(l, 4))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
