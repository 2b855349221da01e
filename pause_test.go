package brisk_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

func TestPausedQueueNotRunUntilResumed(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	in := brisk.NewInspector(b)
	if err := in.PauseQueue(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	var slowRuns, fastRuns atomic.Int32
	startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "slow"}, {Name: "fast"}}}, map[string]brisk.HandlerFunc{
		"slow.job": func(context.Context, *brisk.Task) error { slowRuns.Add(1); return nil },
		"fast.job": func(context.Context, *brisk.Task) error { fastRuns.Add(1); return nil },
	})
	for range 3 {
		if _, err := c.Enqueue(ctx, brisk.NewTask("slow.job", nil, brisk.InQueue("slow"))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enqueue(ctx, brisk.NewTask("fast.job", nil, brisk.InQueue("fast"))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the tasks of the open queue run", func() bool { return fastRuns.Load() == 3 })
	time.Sleep(200 * time.Millisecond) // time enough for the worker to take the others, were it wrong
	if n := slowRuns.Load(); n != 0 {
		t.Fatalf("%d tasks of the paused queue ran", n)
	}
	q := queueStats(t, b, "slow")
	if !q.Paused || q.Pending != 3 {
		t.Fatalf("paused queue: paused=%v pending=%d, want paused with 3 pending", q.Paused, q.Pending)
	}
	if err := in.ResumeQueue(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tasks of the resumed queue run", func() bool { return slowRuns.Load() == 3 })
	if q := queueStats(t, b, "slow"); q.Paused {
		t.Fatal("resumed queue still reports Paused")
	}
}

func TestPauseWhileWorkerWaits(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := context.Background()
	in := brisk.NewInspector(b)
	var runs atomic.Int32
	startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "q"}}}, map[string]brisk.HandlerFunc{
		"job": func(context.Context, *brisk.Task) error { runs.Add(1); return nil },
	})
	if _, err := c.Enqueue(ctx, brisk.NewTask("job", nil, brisk.InQueue("q"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first task runs", func() bool { return runs.Load() == 1 })
	if err := in.PauseQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, brisk.NewTask("job", nil, brisk.InQueue("q"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d tasks ran; the one enqueued into the paused queue must wait", n)
	}
	start := time.Now()
	if err := in.ResumeQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task runs after resume", func() bool { return runs.Load() == 2 })
	t.Logf("ran %s after ResumeQueue", time.Since(start).Round(time.Millisecond))
}

// noPauser hides the broker's optional interfaces.
type noPauser struct{ broker.Broker }

func TestPauseUnsupported(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	in := brisk.NewInspector(noPauser{b})
	for name, f := range map[string]func(context.Context, string) error{"PauseQueue": in.PauseQueue, "ResumeQueue": in.ResumeQueue} {
		err := f(context.Background(), "q")
		if !errors.Is(err, brisk.ErrUnsupported) || !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("%s on a broker without Pauser = %v, want an error wrapping ErrUnsupported and ErrInvalid", name, err)
		}
	}
	if err := brisk.NewInspector(b).PauseQueue(context.Background(), "bad name"); !errors.Is(err, brisk.ErrInvalid) {
		t.Errorf("PauseQueue of an invalid name = %v, want ErrInvalid", err)
	}
}
