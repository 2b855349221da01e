package brisk_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// TestResultOfRetainedTask runs a handler that reports progress and stores a JSON result
// for a task enqueued with Retain, and checks what Client.Result returns: the completed
// task with its result, attempts, finish time and last progress.
func TestResultOfRetainedTask(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"sum": func(ctx context.Context, task *brisk.Task) error {
			var xs []int
			if err := task.DecodePayload(&xs); err != nil {
				return err
			}
			if err := brisk.ReportProgress(ctx, 50, "adding"); err != nil {
				return err
			}
			total := 0
			for _, x := range xs {
				total += x
			}
			return brisk.SetResultJSON(ctx, map[string]int{"sum": total})
		},
	})
	task, err := brisk.NewJSONTask("sum", []int{1, 2, 3}, brisk.Retain(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Enqueue(t.Context(), task)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	info, err := c.Result(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Sum int }
	if err := json.Unmarshal(info.Result, &got); err != nil || got.Sum != 6 {
		t.Fatalf("Result = %q (%v), want {\"sum\":6}", info.Result, err)
	}
	if info.State != brisk.StateCompleted || info.Attempt != 1 || info.FinishedAt.Before(info.StartedAt) || info.Duration() < 0 {
		t.Errorf("completed task = state %s attempt %d started %v finished %v", info.State, info.Attempt, info.StartedAt, info.FinishedAt)
	}
	if !info.ExpiresAt.Equal(info.FinishedAt.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want FinishedAt + 1h = %v", info.ExpiresAt, info.FinishedAt.Add(time.Hour))
	}
	if info.Progress == nil || info.Progress.Percent != 50 || info.Progress.Message != "adding" {
		t.Errorf("Progress = %+v, want 50%% adding", info.Progress)
	}
	listed, err := brisk.NewInspector(b).Tasks(t.Context(), brisk.DefaultQueue, brisk.StateCompleted, 10, 0)
	if err != nil || len(listed) != 1 || listed[0].ID != id {
		t.Errorf("Tasks(completed) = %v, %v; want the task", listed, err)
	}
	if q := queueStats(t, b, brisk.DefaultQueue); q.Retained != 1 || q.Pending != 0 || q.Latency != 0 {
		t.Errorf("queue stats = retained %d pending %d latency %s, want 1, 0, 0", q.Retained, q.Pending, q.Latency)
	}
}

// TestQueueRetention keeps every completed task of a queue with SetRetention, and none
// where it is 0.
func TestQueueRetention(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	if err := c.SetRetention(t.Context(), "kept", time.Minute); err != nil {
		t.Fatal(err)
	}
	startWorker(t, b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "kept"}, {Name: "gone"}}},
		map[string]brisk.HandlerFunc{"t": func(context.Context, *brisk.Task) error { return nil }})
	kept, err := c.Enqueue(t.Context(), brisk.NewTask("t", nil, brisk.InQueue("kept")))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.Enqueue(t.Context(), brisk.NewTask("t", nil, brisk.InQueue("gone")))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Result(t.Context(), kept)
	if err != nil || info.Result != nil || info.State != brisk.StateCompleted {
		t.Fatalf("Result of a task of a queue with a retention = %+v, %v; want completed without a result", info, err)
	}
	if q := queueStats(t, b, "kept"); q.Retention != time.Minute || q.Completed != 1 {
		t.Errorf("queue kept: retention %s completed %d, want 1m and 1", q.Retention, q.Completed)
	}
	eventually(t, "the task of the queue without retention is done", func() bool { return queueStats(t, b, "gone").Completed == 1 })
	if _, err := c.Result(t.Context(), gone); !errors.Is(err, brisk.ErrNotFound) {
		t.Errorf("Result of a task completed without retention = %v, want ErrNotFound", err)
	}
}

// TestResultOfDeadAndCancelledTasks checks the errors of Client.Result for tasks that did
// not complete, and that it honours its context while a task waits.
func TestResultOfDeadAndCancelledTasks(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"fail": func(ctx context.Context, _ *brisk.Task) error {
			_ = brisk.SetResult(ctx, []byte("dropped"))
			return brisk.SkipRetry(errors.New("no such user"))
		},
	})
	dead, err := c.Enqueue(t.Context(), brisk.NewTask("fail", nil, brisk.Retain(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Result(t.Context(), dead)
	if !errors.Is(err, brisk.ErrDead) || info == nil || info.State != brisk.StateDead || info.Result != nil {
		t.Errorf("Result of a dead task = %+v, %v; want it dead, no result, and ErrDead", info, err)
	}
	later, err := c.Enqueue(t.Context(), brisk.NewTask("fail", nil, brisk.Delay(time.Hour), brisk.Retain(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Result(ctx, later); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Result of a scheduled task with a short context = %v, want DeadlineExceeded", err)
	}
	if _, err := c.Cancel(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	info, err = c.Result(t.Context(), later)
	if !errors.Is(err, brisk.ErrCancelled) || info == nil || info.FinishedAt.IsZero() || !info.ExpiresAt.Equal(info.FinishedAt.Add(time.Hour)) {
		t.Errorf("Result of a cancelled task = %+v, %v; want ErrCancelled, finished, kept 1h", info, err)
	}
}

// TestProgressWhileRunning checks that an inspector sees a handler's progress while it
// runs, and that SetResult and ReportProgress refuse a context that is not a handler's.
func TestProgressWhileRunning(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	release := make(chan struct{})
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"long": func(ctx context.Context, _ *brisk.Task) error {
			if err := brisk.ReportProgress(ctx, 30, "step 3 of 10"); err != nil {
				return err
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		},
	})
	id, err := c.Enqueue(t.Context(), brisk.NewTask("long", nil))
	if err != nil {
		t.Fatal(err)
	}
	in := brisk.NewInspector(b)
	eventually(t, "the running task's progress is visible", func() bool {
		info, err := in.Task(t.Context(), id)
		return err == nil && info.State == brisk.StateRunning && info.Progress != nil &&
			info.Progress.Percent == 30 && info.Progress.Message == "step 3 of 10" && !info.Progress.At.IsZero()
	})
	close(release)
	for _, err := range []error{
		brisk.SetResult(t.Context(), []byte("x")),
		brisk.ReportProgress(t.Context(), 1, ""),
	} {
		if !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("outside a handler: %v, want ErrInvalid", err)
		}
	}
}

// bareBroker hides every optional interface of the broker it wraps.
type bareBroker struct{ broker.Broker }

// TestRetentionUnsupported checks that a broker without broker.Retainer refuses a task
// with a retention, a result and a progress report, naming itself, instead of dropping
// them.
func TestRetentionUnsupported(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	bare := bareBroker{b}
	c := brisk.NewClient(bare)
	_, err := c.Enqueue(t.Context(), brisk.NewTask("t", nil, brisk.Retain(time.Minute)))
	wantUnsupported(t, "Enqueue with Retain", err)
	_, err = c.Result(t.Context(), "x")
	wantUnsupported(t, "Result", err)
	wantUnsupported(t, "SetRetention", c.SetRetention(t.Context(), "q", time.Minute))
	_, err = brisk.NewInspector(bare).Tasks(t.Context(), "q", brisk.StateCompleted, 10, 0)
	wantUnsupported(t, "Tasks(completed)", err)

	errs := make(chan error, 2)
	startWorker(t, bare, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"t": func(ctx context.Context, _ *brisk.Task) error {
			errs <- brisk.SetResult(ctx, []byte("x"))
			errs <- brisk.ReportProgress(ctx, 1, "")
			return nil
		},
	})
	if _, err := c.Enqueue(t.Context(), brisk.NewTask("t", nil)); err != nil {
		t.Fatal(err)
	}
	wantUnsupported(t, "SetResult", <-errs)
	wantUnsupported(t, "ReportProgress", <-errs)
}

func wantUnsupported(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, brisk.ErrUnsupported) || !strings.Contains(err.Error(), "bareBroker") {
		t.Errorf("%s on a broker without results: %v, want ErrUnsupported naming the broker", what, err)
	}
}
