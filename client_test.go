package brisk_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

// TestProcessAtInThePast checks that a ProcessAt in the past means now: the task is ready at
// once, its ready time is the enqueue, and the queue's latency stays small instead of
// counting from a time long gone (which /metrics and the autoscaler would read as a vast
// backlog, and which would put the task ahead of every other).
func TestProcessAtInThePast(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	before := time.Now()
	first, err := c.Enqueue(ctx, brisk.NewTask("t", nil, brisk.InQueue("q")))
	if err != nil {
		t.Fatal(err)
	}
	old, err := c.Enqueue(ctx, brisk.NewTask("t", nil, brisk.InQueue("q"), brisk.ProcessAt(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))))
	if err != nil {
		t.Fatal(err)
	}
	in := brisk.NewInspector(b)
	task, err := in.Task(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if task.ReadyAt.Before(before) || !task.ReadyAt.Equal(task.EnqueuedAt) {
		t.Errorf("a task with ProcessAt in 2000: ready at %s, enqueued at %s; want ready at its enqueue", task.ReadyAt, task.EnqueuedAt)
	}
	qs, err := in.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Latency > time.Minute {
		t.Errorf("queue latency with a task whose ProcessAt was in 2000: %+v, want seconds at most", qs)
	}
	ts, err := in.Tasks(ctx, "q", brisk.StatePending, 10, 0)
	if err != nil || len(ts) != 2 || ts[0].ID != first {
		t.Errorf("pending tasks = %v, %v; want the first enqueued first (the past does not jump the queue)", ts, err)
	}
}

// TestScheduleBound checks the one bound on how far ahead a task may be scheduled, with
// Delay and with ProcessAt: at it the task is stored, past it the enqueue is refused with
// ErrInvalid stating the rule, and nothing is stored.
func TestScheduleBound(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, brisk.NewTask("t", nil, brisk.Delay(brisk.MaxScheduleAhead-time.Minute))); err != nil {
		t.Errorf("Delay just within MaxScheduleAhead: %v", err)
	}
	for what, opt := range map[string]brisk.Option{
		"Delay past MaxScheduleAhead":     brisk.Delay(brisk.MaxScheduleAhead + time.Minute),
		"ProcessAt past MaxScheduleAhead": brisk.ProcessAt(time.Now().Add(brisk.MaxScheduleAhead + time.Minute)),
		"ProcessAt in year 3000":          brisk.ProcessAt(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)),
	} {
		_, err := c.Enqueue(ctx, brisk.NewTask("t", nil, brisk.InQueue("far"), opt))
		if !errors.Is(err, brisk.ErrInvalid) || !strings.Contains(err.Error(), brisk.ScheduleAheadRule) {
			t.Errorf("%s: %v, want ErrInvalid stating %q", what, err, brisk.ScheduleAheadRule)
		}
	}
	qs, err := brisk.NewInspector(b).Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == "far" {
			t.Errorf("queue far exists after refused enqueues: %+v", q)
		}
	}
}

// TestOneErrorPrefix checks that an error that passes through several layers (the client,
// the broker) carries one "brisk: " prefix, and still wraps the sentinels.
func TestOneErrorPrefix(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	_, err := c.Enqueue(ctx, brisk.NewTask("a", nil, brisk.InQueue("bad queue")))
	_, err2 := brisk.NewInspector(b).Task(ctx, "nosuch")
	err3 := brisk.NewInspector(b).DeleteQueue(ctx, "nosuch")
	_, err4 := brisk.Open(ctx, "sqlite://")
	for what, c := range map[string]struct {
		err, target error
	}{
		"Enqueue to an invalid queue":   {err, brisk.ErrInvalid},
		"Task of an unknown id":         {err2, brisk.ErrNotFound},
		"DeleteQueue of an unknown one": {err3, brisk.ErrQueueNotFound},
		"Open of sqlite://":             {err4, brisk.ErrInvalid},
	} {
		if !errors.Is(c.err, c.target) {
			t.Errorf("%s: %v, want an error wrapping %v", what, c.err, c.target)
			continue
		}
		if n := strings.Count(c.err.Error(), "brisk:"); n != 1 || !strings.HasPrefix(c.err.Error(), "brisk: ") {
			t.Errorf("%s: %q has %d \"brisk:\" prefixes, want one at the start", what, c.err, n)
		}
	}
}

// TestDeleteQueue checks Inspector.DeleteQueue: an empty queue goes, a queue with tasks
// stays with ErrQueueNotEmpty, and a broker without broker.QueueDeleter gives
// ErrUnsupported.
func TestDeleteQueue(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	in := brisk.NewInspector(b)
	if err := c.DeclareQueue(ctx, "empty", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, brisk.NewTask("t", nil, brisk.InQueue("full"))); err != nil {
		t.Fatal(err)
	}
	if err := in.DeleteQueue(ctx, "empty"); err != nil {
		t.Errorf("DeleteQueue of an empty queue: %v", err)
	}
	if err := in.DeleteQueue(ctx, "full"); !errors.Is(err, brisk.ErrQueueNotEmpty) {
		t.Errorf("DeleteQueue of a queue with a task: %v, want ErrQueueNotEmpty", err)
	}
	qs, err := in.Queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Name != "full" {
		t.Errorf("Queues after the deletes = %v, %v; want full alone", qs, err)
	}
	bare := brisk.NewInspector(noPauser{b})
	if err := bare.DeleteQueue(ctx, "full"); !errors.Is(err, brisk.ErrUnsupported) {
		t.Errorf("DeleteQueue on a broker without QueueDeleter: %v, want ErrUnsupported", err)
	}
	if _, err := bare.Samples(ctx, time.Now()); !errors.Is(err, brisk.ErrUnsupported) {
		t.Errorf("Samples on a broker without SampleStore: %v, want ErrUnsupported", err)
	}
	if err := bare.AddSamples(ctx, nil); !errors.Is(err, brisk.ErrUnsupported) {
		t.Errorf("AddSamples on a broker without SampleStore: %v, want ErrUnsupported", err)
	}
}

// TestOpenExisting checks that OpenExisting refuses a SQLite path where no store exists,
// without creating one, and opens a store that does.
func TestOpenExisting(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	_, err := brisk.OpenExisting(context.Background(), "sqlite://"+path)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, brisk.ErrUnavailable) {
		t.Errorf("OpenExisting of a missing file: %v, want fs.ErrNotExist and ErrUnavailable", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenExisting created %s", path)
	}
	b, err := brisk.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if b, err = brisk.OpenExisting(context.Background(), "sqlite://"+path); err != nil {
		t.Fatalf("OpenExisting of a store: %v", err)
	}
	b.Close()
}
