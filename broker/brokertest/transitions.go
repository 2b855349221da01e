package brokertest

import (
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testTransitions checks the moves between states: Ack, Retry, Kill, RetryDead, Delete,
// Release, and the optional Reaper.ReleaseWorker.
func (s *suite) testTransitions(t *testing.T) {
	s.test(t, "Ack", func(e *env) {
		tasks := NewTasks("ack", "t", 3)
		e.enqueue(tasks...)
		got := e.reserveFrom("ack", 2, longLease)
		if len(got) != 2 {
			e.t.Fatalf("Reserve: got %d tasks, want 2", len(got))
		}
		if err := e.b.Ack(e.ctx, leases(got)); err != nil {
			e.t.Fatalf("Ack of two held leases: %v", err)
		}
		e.wantGone("acked", ids(got)...)
		e.wantCounts("ack", counts{pending: 1})
	})

	s.test(t, "RetryLater", func(e *env) {
		task := NewTask("retry", "t", []byte("again"))
		e.enqueue(task)
		first := e.reserveOne("retry", longLease)
		at := time.Now().Add(shortDelay).Round(0)
		before := time.Now()
		if err := e.b.Retry(e.ctx, first.Lease, at, "boom"); err != nil {
			e.t.Fatalf("Retry: %v", err)
		}
		after := time.Now()
		stored := e.task(task.ID)
		st, _ := e.stats("retry")
		inTime := time.Now().Before(at)
		if inTime {
			if stored.State != broker.StateScheduled {
				e.t.Errorf("task retried for later has State %q, want %q", stored.State, broker.StateScheduled)
			}
			if got := countsOf(st); got != (counts{scheduled: 1}) {
				e.t.Errorf("Stats after a Retry for later: %v, want scheduled=1", got)
			}
		}
		if stored.LastError != "boom" || stored.Attempt != 1 {
			e.t.Errorf("after Retry: LastError %q Attempt %d, want %q and 1", stored.LastError, stored.Attempt, "boom")
		}
		if stored.FailedAt.Before(before.Add(-timeTolerance)) || stored.FailedAt.After(after.Add(timeTolerance)) {
			e.t.Errorf("after Retry: FailedAt %s, want during the Retry call (%s to %s)", fmtTime(stored.FailedAt), fmtTime(before), fmtTime(after))
		}
		wantTime(e.t, "ReadyAt after Retry", stored.ReadyAt, at, timeTolerance)
		wantTime(e.t, "EnqueuedAt after Retry (unchanged)", stored.EnqueuedAt, task.EnqueuedAt, timeTolerance)
		wantErr(e.t, "second Retry under the same lease", e.b.Retry(e.ctx, first.Lease, at, "twice"), broker.ErrLeaseLost)

		if again := e.reserveFrom("retry", 10, longLease); len(again) != 0 && time.Now().Before(at) {
			e.t.Fatalf("Reserve returned %s before the retry time", describe(again))
		} else if len(again) != 0 {
			e.t.Skipf("this machine took longer than the %s retry delay to check the scheduled state; the rest of the test cannot tell", shortDelay)
		}
		second, _ := e.reserveEventually("retry", longLease, "task retried for later, after its time")
		if second.ID != task.ID || second.Attempt != 2 || second.LastError != "boom" {
			e.t.Errorf("second delivery: id %s Attempt %d LastError %q; want %s, 2 and %q", second.ID, second.Attempt, second.LastError, task.ID, "boom")
		}
		if second.StartedAt.Before(at.Add(-timeTolerance)) {
			e.t.Errorf("second delivery started at %s, before the retry time %s", fmtTime(second.StartedAt), fmtTime(at))
		}
		if second.Lease.Token == first.Lease.Token {
			e.t.Errorf("second delivery reuses the lease token %q", first.Lease.Token)
		}
	})

	s.test(t, "RetryNow", func(e *env) {
		task := NewTask("retry", "t", nil)
		e.enqueue(task)
		first := e.reserveOne("retry", longLease)
		if err := e.b.Retry(e.ctx, first.Lease, time.Now().Add(-time.Second), "past"); err != nil {
			e.t.Fatalf("Retry for a past time: %v", err)
		}
		second := e.reserveOne("retry", longLease)
		if second.ID != task.ID || second.Attempt != 2 || second.LastError != "past" {
			e.t.Errorf("delivery after Retry for a past time: id %s Attempt %d LastError %q; want %s, 2 and %q", second.ID, second.Attempt, second.LastError, task.ID, "past")
		}
	})

	s.test(t, "Kill", func(e *env) {
		task := NewTask("kill", "t", []byte("x"))
		e.enqueue(task)
		got := e.reserveOne("kill", longLease)
		before := time.Now()
		if err := e.b.Kill(e.ctx, got.Lease, "fatal: bad input"); err != nil {
			e.t.Fatalf("Kill: %v", err)
		}
		after := time.Now()
		stored := e.wantState(task.ID, broker.StateDead)
		if stored.LastError != "fatal: bad input" {
			e.t.Errorf("dead task's LastError = %q, want %q", stored.LastError, "fatal: bad input")
		}
		if stored.FailedAt.Before(before.Add(-timeTolerance)) || stored.FailedAt.After(after.Add(timeTolerance)) {
			e.t.Errorf("dead task's FailedAt = %s, want during the Kill call (%s to %s)", fmtTime(stored.FailedAt), fmtTime(before), fmtTime(after))
		}
		if string(stored.Payload) != "x" || stored.Attempt != 1 {
			e.t.Errorf("dead task: payload %q Attempt %d, want %q and 1", stored.Payload, stored.Attempt, "x")
		}
		e.wantCounts("kill", counts{dead: 1})
		if again := e.reserveFrom("kill", 10, longLease); len(again) != 0 {
			e.t.Errorf("Reserve returned dead tasks %s", describe(again))
		}
		wantErr(e.t, "second Kill under the same lease", e.b.Kill(e.ctx, got.Lease, "again"), broker.ErrLeaseLost)
		wantErr(e.t, "Ack of a killed task's lease", e.b.Ack(e.ctx, []broker.Lease{got.Lease}), broker.ErrLeaseLost)
		e.wantState(task.ID, broker.StateDead)
	})

	s.test(t, "RetryDead", func(e *env) {
		dead := e.makeDead("rd", 3)
		pending := NewTask("rd", "t", nil)
		e.enqueue(pending)

		before := time.Now()
		if n, err := e.b.RetryDead(e.ctx, "rd", []string{dead[0].ID}); err != nil || n != 1 {
			e.t.Fatalf("RetryDead of one dead task by id = %d, %v; want 1, nil", n, err)
		}
		after := time.Now()
		stored := e.wantState(dead[0].ID, broker.StatePending)
		if stored.Attempt != 0 {
			e.t.Errorf("task made pending by RetryDead has Attempt %d, want 0", stored.Attempt)
		}
		if stored.ReadyAt.Before(before.Add(-timeTolerance)) || stored.ReadyAt.After(after.Add(timeTolerance)) {
			e.t.Errorf("task made pending by RetryDead has ReadyAt %s, want the call's time (%s to %s)", fmtTime(stored.ReadyAt), fmtTime(before), fmtTime(after))
		}
		if n, err := e.b.RetryDead(e.ctx, "rd", []string{pending.ID}); err != nil || n != 0 {
			e.t.Errorf("RetryDead of a pending task's id = %d, %v; want 0, nil", n, err)
		}
		if n, err := e.b.RetryDead(e.ctx, "elsewhere", []string{dead[1].ID}); err != nil || n != 0 {
			e.t.Errorf("RetryDead of a dead task's id under another queue = %d, %v; want 0, nil", n, err)
		}
		e.wantCounts("rd", counts{pending: 2, dead: 2})
		if n, err := e.b.RetryDead(e.ctx, "rd", nil); err != nil || n != 2 {
			e.t.Fatalf("RetryDead of all = %d, %v; want 2, nil", n, err)
		}
		e.wantCounts("rd", counts{pending: 4})
		// A fresh attempt budget: each can be delivered again (MaxAttempts is 1).
		got := e.reserveFrom("rd", 10, longLease)
		if !sameSet(ids(got), append(ids(dead), pending.ID)) {
			e.t.Errorf("Reserve after RetryDead: got %s, want all 4 tasks", describe(got))
		}
		for _, task := range got {
			if task.Attempt != 1 {
				e.t.Errorf("task %s delivered after RetryDead with Attempt %d, want 1", task.ID, task.Attempt)
			}
		}
	})

	s.test(t, "DeleteDead", func(e *env) {
		dead := e.makeDead("del", 3)
		pending := NewTask("del", "t", nil)
		e.enqueue(pending)
		if n, err := e.b.Delete(e.ctx, "del", broker.StateDead, []string{dead[0].ID}); err != nil || n != 1 {
			e.t.Fatalf("Delete of one dead task by id = %d, %v; want 1, nil", n, err)
		}
		e.wantGone("deleted", dead[0].ID)
		if n, err := e.b.Delete(e.ctx, "del", broker.StateDead, []string{pending.ID}); err != nil || n != 0 {
			e.t.Errorf("Delete of a pending task's id as dead = %d, %v; want 0, nil", n, err)
		}
		if n, err := e.b.Delete(e.ctx, "del", broker.StateDead, nil); err != nil || n != 2 {
			e.t.Fatalf("Delete of all dead = %d, %v; want 2, nil", n, err)
		}
		e.wantGone("deleted", dead[1].ID, dead[2].ID)
		e.wantCounts("del", counts{pending: 1})
		e.wantState(pending.ID, broker.StatePending)
	})

	s.test(t, "DeletePendingAndScheduled", func(e *env) {
		e.requires(func(c broker.Capabilities) bool { return c.DeleteQueued }, "DeleteQueued", "only dead tasks can be deleted")
		tasks := NewTasks("del", "t", 3)
		later := NewTask("del", "t", nil)
		later.ReadyAt = later.EnqueuedAt.Add(time.Hour)
		e.enqueue(append(tasks, later)...)
		if n, err := e.b.Delete(e.ctx, "del", broker.StatePending, []string{tasks[0].ID}); err != nil || n != 1 {
			e.t.Fatalf("Delete of one pending task by id = %d, %v; want 1, nil", n, err)
		}
		e.wantGone("deleted", tasks[0].ID)
		if n, err := e.b.Delete(e.ctx, "del", broker.StatePending, nil); err != nil || n != 2 {
			e.t.Fatalf("Delete of all pending = %d, %v; want 2, nil (a scheduled task is not pending)", n, err)
		}
		e.wantCounts("del", counts{scheduled: 1})
		if n, err := e.b.Delete(e.ctx, "del", broker.StateScheduled, nil); err != nil || n != 1 {
			e.t.Fatalf("Delete of all scheduled = %d, %v; want 1, nil", n, err)
		}
		e.wantCounts("del", counts{})
		e.wantGone("deleted", later.ID)
	})

	s.test(t, "DeleteRunningRefused", func(e *env) {
		task := NewTask("delrun", "t", nil)
		e.enqueue(task)
		e.reserveOne("delrun", longLease)
		_, err := e.b.Delete(e.ctx, "delrun", broker.StateRunning, nil)
		wantErr(e.t, "Delete of all running tasks", err, broker.ErrInvalid)
		_, err = e.b.Delete(e.ctx, "delrun", broker.StateRunning, []string{task.ID})
		wantErr(e.t, "Delete of a running task by id", err, broker.ErrInvalid)
		e.wantState(task.ID, broker.StateRunning)
	})

	s.test(t, "Release", func(e *env) {
		now := time.Now().Round(0)
		a, b := NewTask("rel", "t", []byte("a")), NewTask("rel", "t", []byte("b"))
		a.ReadyAt, b.ReadyAt = now.Add(-2*time.Second), now.Add(-time.Second)
		a.EnqueuedAt, b.EnqueuedAt = a.ReadyAt, b.ReadyAt
		once := NewTask("rel1", "t", nil)
		once.MaxAttempts = 1
		e.enqueue(a, b, once)

		got := e.reserveOne("rel", longLease)
		held := e.reserveOne("rel1", longLease)
		if got.ID != a.ID {
			e.t.Fatalf("reserved %s, want the oldest task %s", got.ID, a.ID)
		}
		if err := e.b.Release(e.ctx, []broker.Lease{got.Lease, held.Lease}); err != nil {
			e.t.Fatalf("Release: %v", err)
		}
		stored := e.wantState(a.ID, broker.StatePending)
		if stored.Attempt != 0 {
			e.t.Errorf("released task has Attempt %d, want 0 (the attempt given back)", stored.Attempt)
		}
		wantTime(e.t, "released task's ReadyAt (unchanged)", stored.ReadyAt, a.ReadyAt, timeTolerance)
		e.wantCounts("rel", counts{pending: 2})
		wantErr(e.t, "Ack under a released lease", e.b.Ack(e.ctx, []broker.Lease{got.Lease}), broker.ErrLeaseLost)

		again := e.reserveOne("rel", longLease)
		if again.ID != a.ID || again.Attempt != 1 {
			e.t.Errorf("after Release: reserved %s with Attempt %d, want the released task %s first, with Attempt 1", again.ID, again.Attempt, a.ID)
		}
		// A task on its only attempt can run after a Release: the attempt was given back.
		if got := e.reserveFrom("rel1", 1, longLease); len(got) != 1 || got[0].ID != once.ID || got[0].Attempt != 1 {
			e.t.Errorf("released task with MaxAttempts 1: Reserve got %s, want it again with Attempt 1", describe(got))
		}
	})

	s.test(t, "ReaperReleaseWorker", func(e *env) {
		r := optional[broker.Reaper](e, e.b, "broker.Reaper", "a dead worker's tasks come back only when their leases expire")
		e.enqueue(NewTasks("reap", "t", 4)...)
		mine := e.reserve(broker.ReserveParams{Queues: queues("reap"), Limit: 2, Lease: longLease, WorkerID: "w-dead"})
		theirs := e.reserve(broker.ReserveParams{Queues: queues("reap"), Limit: 1, Lease: longLease, WorkerID: "w-alive"})
		if len(mine) != 2 || len(theirs) != 1 {
			e.t.Fatalf("Reserve: got %d and %d tasks, want 2 and 1", len(mine), len(theirs))
		}
		for _, id := range []string{"w-dead", "w-alive"} {
			if err := e.b.Heartbeat(e.ctx, broker.WorkerInfo{ID: id, StartedAt: time.Now(), LastSeen: time.Now()}); err != nil {
				e.t.Fatalf("Heartbeat: %v", err)
			}
		}
		n, err := r.ReleaseWorker(e.ctx, "w-dead")
		if err != nil || n != 2 {
			e.t.Fatalf("ReleaseWorker = %d, %v; want 2, nil", n, err)
		}
		for _, task := range mine {
			stored := e.wantState(task.ID, broker.StatePending)
			if stored.Attempt != 1 {
				e.t.Errorf("task handed back by ReleaseWorker has Attempt %d, want 1 (the attempt stays counted)", stored.Attempt)
			}
		}
		e.wantState(theirs[0].ID, broker.StateRunning)
		e.wantCounts("reap", counts{pending: 3, running: 1})
		wantErr(e.t, "Ack under a lease of the reaped worker", e.b.Ack(e.ctx, leases(mine[:1])), broker.ErrLeaseLost)
		workers, err := e.b.Workers(e.ctx, time.Time{})
		if err != nil {
			e.t.Fatalf("Workers: %v", err)
		}
		var names []string
		for _, w := range workers {
			names = append(names, w.ID)
		}
		if !sameSet(names, []string{"w-alive"}) {
			e.t.Errorf("Workers after ReleaseWorker(w-dead) = %q, want just w-alive", names)
		}
		if n, err := r.ReleaseWorker(e.ctx, "w-dead"); err != nil || n != 0 {
			e.t.Errorf("second ReleaseWorker = %d, %v; want 0, nil", n, err)
		}
	})
}

// makeDead enqueues n tasks with MaxAttempts 1 to queue and kills them.
func (e *env) makeDead(queue string, n int) []*broker.Task {
	e.t.Helper()
	tasks := NewTasks(queue, "t", n)
	for _, task := range tasks {
		task.MaxAttempts = 1
	}
	e.enqueue(tasks...)
	got := e.reserveFrom(queue, n, longLease)
	if len(got) != n {
		e.t.Fatalf("Reserve: got %d tasks, want %d", len(got), n)
	}
	for _, task := range got {
		if err := e.b.Kill(e.ctx, task.Lease, "killed by the test"); err != nil {
			e.t.Fatalf("Kill: %v", err)
		}
	}
	return tasks
}
