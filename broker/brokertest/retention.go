package brokertest

import (
	"errors"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// retainer returns the broker as a broker.Retainer, or skips the test out loud.
func retainer(e *env) broker.Retainer {
	e.t.Helper()
	return optional[broker.Retainer](e, e.b, "broker.Retainer", "completed tasks are removed at once and results are refused (ErrUnsupported)")
}

// complete completes one reserved task with result and fails the test on error.
func (e *env) complete(r broker.Retainer, task *broker.Task, result []byte) {
	e.t.Helper()
	if err := r.Complete(e.ctx, []broker.Completion{{Lease: task.Lease, Result: result}}); err != nil {
		e.t.Fatalf("Complete(%s): %v", task.ID, err)
	}
}

// testRetention checks the optional broker.Retainer's retention: a task with a retention
// of its own, or of its queue, is kept completed after Complete (and Ack) with its finish
// time, expiry and attempts, listed and counted as retained but never pending nor
// reserved, and not for ever; one without a retention is removed; a cancelled task with
// a retention is kept until it expires; a broker without the interface refuses a task
// with a retention.
func (s *suite) testRetention(t *testing.T) {
	s.test(t, "Refused", func(e *env) {
		if _, ok := e.b.(broker.Retainer); ok {
			e.t.Skip("the broker keeps completed tasks (broker.Retainer); see the other Retention tests")
		}
		_, err := brisk.NewClient(e.b).Enqueue(e.ctx, brisk.NewTask("t", nil, brisk.InQueue("r"), brisk.Retain(time.Minute)))
		wantErr(e.t, "brisk's Enqueue of a task with a retention on a broker without broker.Retainer", err, broker.ErrUnsupported)
		task := NewTask("r", "t", nil)
		task.Retention = time.Minute
		wantErr(e.t, "the broker's own Enqueue of a task with a retention", e.b.Enqueue(e.ctx, []*broker.Task{task}), broker.ErrUnsupported)
		e.wantCounts("r", counts{})
	})

	s.test(t, "KeptPerTaskAndQueue", func(e *env) {
		r := retainer(e)
		if err := r.SetRetention(e.ctx, "rq", time.Hour); err != nil {
			e.t.Fatalf("SetRetention: %v", err)
		}
		own := NewTask("r", "t", []byte("own"))
		own.Retention = time.Hour
		plain := NewTask("r", "t", []byte("plain"))
		byQueue := NewTask("rq", "t", []byte("queue"))
		e.enqueue(own, plain, byQueue)
		got := e.reserveFrom("r", 2, longLease)
		gotQ := e.reserveOne("rq", longLease)
		if len(got) != 2 || gotQ == nil {
			e.t.Fatalf("reserved %d tasks of r and %v of rq, want 2 and 1", len(got), gotQ)
		}
		before := time.Now()
		for _, task := range got {
			e.complete(r, task, nil)
		}
		// Ack of a Retainer keeps a task of a queue with a retention too.
		if err := e.b.Ack(e.ctx, []broker.Lease{gotQ.Lease}); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		after := time.Now()
		for _, id := range []string{own.ID, byQueue.ID} {
			kept := e.wantState(id, broker.StateCompleted)
			if kept == nil {
				continue
			}
			if kept.FinishedAt.Before(before.Add(-timeTolerance)) || kept.FinishedAt.After(after.Add(timeTolerance)) {
				e.t.Errorf("Task(%s).FinishedAt = %s, want between %s and %s", id, fmtTime(kept.FinishedAt), fmtTime(before), fmtTime(after))
			}
			wantTime(e.t, "ExpiresAt of "+id, kept.ExpiresAt, kept.FinishedAt.Add(time.Hour), timeTolerance)
			if kept.Attempt != 1 || kept.Result != nil || kept.StartedAt.IsZero() || kept.Duration() < 0 {
				e.t.Errorf("kept task %s: attempt %d result %q started %s, want 1, none, set", id, kept.Attempt, kept.Result, fmtTime(kept.StartedAt))
			}
		}
		e.wantGone("a completed task without a retention is removed", plain.ID)
		st := e.mustStats("r")
		if st.Retained != 1 || countsOf(st) != (counts{}) || st.Latency != 0 {
			e.t.Errorf("Stats(r) = %v retained=%d latency=%s, want nothing waiting and 1 retained", countsOf(st), st.Retained, st.Latency)
		}
		if st := e.mustStats("rq"); st.Retention != time.Hour || st.Retained != 1 || st.Completed != 1 {
			e.t.Errorf("Stats(rq): retention %s retained %d completed %d, want 1h, 1, 1", st.Retention, st.Retained, st.Completed)
		}
		if again := e.reserveFrom("r", 10, longLease); len(again) != 0 {
			e.t.Errorf("Reserve after completing every task: got %v, want none", ids(again))
		}
		list, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "r", State: broker.StateCompleted})
		if err != nil || !sameSet(ids(list), []string{own.ID}) {
			e.t.Errorf("Tasks(completed) = %v, %v; want %s", ids(list), err, own.ID)
		}
		if pending, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "r", State: broker.StatePending}); err != nil || len(pending) != 0 {
			e.t.Errorf("Tasks(pending) = %v, %v; want none (completed tasks are not pending)", ids(pending), err)
		}
		n, err := e.b.Delete(e.ctx, "r", broker.StateCompleted, []string{own.ID})
		if err != nil || n != 1 {
			e.t.Errorf("Delete of a completed task = %d, %v; want 1", n, err)
		}
		e.wantGone("a deleted completed task", own.ID)
		if err := r.SetRetention(e.ctx, "rq", -time.Second); !errors.Is(err, broker.ErrInvalid) {
			e.t.Errorf("SetRetention of a negative retention = %v, want ErrInvalid", err)
		}
	})

	s.test(t, "Expires", func(e *env) {
		r := retainer(e)
		const retention = 300 * time.Millisecond
		short := NewTask("x", "t", nil)
		short.Retention = retention
		e.enqueue(short)
		e.complete(r, e.reserveOne("x", longLease), []byte("r"))
		e.wantState(short.ID, broker.StateCompleted)
		sleepUntil(time.Now().Add(retention + 50*time.Millisecond))
		e.wantGone("a completed task after its retention", short.ID)
		if list, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "x", State: broker.StateCompleted}); err != nil || len(list) != 0 {
			e.t.Errorf("Tasks(completed) after the retention = %v, %v; want none", ids(list), err)
		}
		// The store drops the row itself, on its own paths: completing another task is one.
		next := NewTask("x", "t", nil)
		e.enqueue(next)
		e.complete(r, e.reserveOne("x", longLease), nil)
		e.eventually("the expired task is no longer counted", func() bool { return e.mustStats("x").Retained == 0 })
	})

	s.test(t, "Cancelled", func(e *env) {
		r := retainer(e)
		c := optional[broker.Canceler](e, e.b, "broker.Canceler", "its tasks cannot be cancelled")
		if err := r.SetRetention(e.ctx, "c", time.Hour); err != nil {
			e.t.Fatalf("SetRetention: %v", err)
		}
		task := NewTask("c", "t", nil)
		e.enqueue(task)
		if _, err := c.Cancel(e.ctx, task.ID); err != nil {
			e.t.Fatalf("Cancel: %v", err)
		}
		kept := e.wantState(task.ID, broker.StateCancelled)
		if kept != nil && (kept.FinishedAt.IsZero() || !near(kept.ExpiresAt, kept.FinishedAt.Add(time.Hour), timeTolerance)) {
			e.t.Errorf("cancelled task with a retention: finished %s expires %s, want set and 1h later", fmtTime(kept.FinishedAt), fmtTime(kept.ExpiresAt))
		}
		done := NewTask("c", "t", nil)
		e.enqueue(done)
		e.complete(r, e.reserveOne("c", longLease), nil)
		if _, err := c.Cancel(e.ctx, done.ID); !errors.Is(err, broker.ErrInvalid) {
			e.t.Errorf("Cancel of a completed task = %v, want ErrInvalid", err)
		}
	})
}

// testResults checks results kept with completed tasks: Task and Tasks return them, the
// lease fences Complete, and a result over the limit is refused.
func (s *suite) testResults(t *testing.T) {
	s.test(t, "Kept", func(e *env) {
		r := retainer(e)
		tasks := NewTasks("res", "t", 3)
		for _, task := range tasks {
			task.Retention = time.Hour
		}
		e.enqueue(tasks...)
		got := e.reserveFrom("res", 3, longLease)
		if len(got) != 3 {
			e.t.Fatalf("reserved %d tasks, want 3", len(got))
		}
		results := [][]byte{[]byte(`{"n":0}`), nil, {0, 1, 2, 255}}
		done := make([]broker.Completion, len(got))
		for i, task := range got {
			done[i] = broker.Completion{Lease: task.Lease, Result: results[i]}
		}
		// One lease given twice: the second is no longer held.
		err := r.Complete(e.ctx, append(done, done[0]))
		wantErr(e.t, "Complete with a lease given twice", err, broker.ErrLeaseLost, got[0].ID)
		for i, task := range got {
			kept := e.wantState(task.ID, broker.StateCompleted)
			if kept != nil && string(kept.Result) != string(results[i]) {
				e.t.Errorf("Task(%s).Result = %q, want %q", task.ID, kept.Result, results[i])
			}
		}
		list, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "res", State: broker.StateCompleted, Limit: 10})
		if err != nil || len(list) != 3 {
			e.t.Fatalf("Tasks(completed) = %v, %v; want 3", ids(list), err)
		}
		for _, task := range list {
			for i, g := range got {
				if g.ID == task.ID && string(task.Result) != string(results[i]) {
					e.t.Errorf("listed %s: Result %q, want %q", task.ID, task.Result, results[i])
				}
			}
		}
		if st := e.mustStats("res"); st.Completed != 3 || st.Retained != 3 {
			e.t.Errorf("Stats: completed %d retained %d, want 3 and 3", st.Completed, st.Retained)
		}
	})

	s.test(t, "TooLarge", func(e *env) {
		r := retainer(e)
		task := NewTask("big", "t", nil)
		task.Retention = time.Hour
		e.enqueue(task)
		held := e.reserveOne("big", longLease)
		err := r.Complete(e.ctx, []broker.Completion{{Lease: held.Lease, Result: make([]byte, broker.MaxResult+1)}})
		wantErr(e.t, "Complete with a result over MaxResult", err, broker.ErrInvalid)
		e.wantState(task.ID, broker.StateRunning)
	})
}

// testProgress checks the optional broker.ProgressReporter: progress is visible while the
// task runs, replaced by each report, fenced by the lease, cleared by a new attempt, kept
// when the task completes, and checked.
func (s *suite) testProgress(t *testing.T) {
	s.test(t, "WhileRunning", func(e *env) {
		p := optional[broker.ProgressReporter](e, e.b, "broker.ProgressReporter", "progress reports are refused (ErrUnsupported)")
		e.requires(listAll, "ListAll", "a running task's progress is read through Task")
		task := NewTask("p", "t", nil)
		r, keeps := e.b.(broker.Retainer)
		if keeps {
			task.Retention = time.Hour
		}
		e.enqueue(task)
		if got := e.task(task.ID); got.Progress != nil {
			e.t.Errorf("progress of a task that never ran = %+v, want nil", got.Progress)
		}
		held := e.reserveOne("p", shortLease)
		at := time.Now().Round(0)
		for _, pr := range []broker.Progress{{Percent: 10, Message: "started", At: at}, {Percent: 42.5, Message: "halfway", At: at}} {
			if err := p.SetProgress(e.ctx, held.Lease, pr); err != nil {
				e.t.Fatalf("SetProgress(%v): %v", pr, err)
			}
		}
		if got := e.wantState(task.ID, broker.StateRunning); got != nil {
			if got.Progress == nil || got.Progress.Percent != 42.5 || got.Progress.Message != "halfway" {
				e.t.Errorf("progress while running = %+v, want the last report, 42.5 halfway", got.Progress)
			} else {
				wantTime(e.t, "Progress.At", got.Progress.At, at, timeTolerance)
			}
		}
		for _, bad := range []broker.Progress{{Percent: -1}, {Percent: 101}, {Percent: 1, Message: string(make([]byte, 201))}} {
			if err := p.SetProgress(e.ctx, held.Lease, bad); !errors.Is(err, broker.ErrInvalid) {
				e.t.Errorf("SetProgress(%v%%, %d bytes) = %v, want ErrInvalid", bad.Percent, len(bad.Message), err)
			}
		}
		// The lease expires and another delivery takes the task: the old lease is fenced
		// off, and the new attempt starts without the old progress.
		sleepUntil(time.Now().Add(shortLease + 50*time.Millisecond))
		again := e.reserveOne("p", longLease)
		if again.ID != task.ID {
			e.t.Fatalf("reserved %s after the lease expired, want %s", again.ID, task.ID)
		}
		err := p.SetProgress(e.ctx, held.Lease, broker.Progress{Percent: 99})
		wantErr(e.t, "SetProgress under an expired lease taken over", err, broker.ErrLeaseLost)
		if got := e.task(task.ID); got.Progress != nil {
			e.t.Errorf("progress of a new attempt = %+v, want none before it reports", got.Progress)
		}
		if err := p.SetProgress(e.ctx, again.Lease, broker.Progress{Percent: 100, Message: "done"}); err != nil {
			e.t.Fatalf("SetProgress: %v", err)
		}
		if keeps {
			e.complete(r, again, nil)
			if got := e.wantState(task.ID, broker.StateCompleted); got != nil && (got.Progress == nil || got.Progress.Percent != 100 || got.Progress.At.IsZero()) {
				e.t.Errorf("progress of the completed task = %+v, want 100%% done with its time", got.Progress)
			}
		}
	})
}
