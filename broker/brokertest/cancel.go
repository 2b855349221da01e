package brokertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// roleCancel is the child that runs a brisk worker whose handler waits for its context.
const roleCancel = "cancelworker"

func init() { roles[roleCancel] = runCancelWorker }

// cancelBound is how soon a running handler in another process must see its task's
// cancellation. The promise is a second (the worker checks every 500 ms); the bound is
// looser because the machines that run the suite are noisy, and the test logs the time.
const cancelBound = 2 * time.Second

// testCancel checks the optional broker.Canceler: pending, scheduled and running tasks
// are cancelled (kept in StateCancelled, listed, counted, deletable, never reserved); a
// running task's lease is revoked at once (Ack, Extend and Revoked say so); cancelling is
// idempotent; a dead task and an unknown ID are refused; and a brisk worker in another
// process stops the handler of a cancelled task within a second.
func (s *suite) testCancel(t *testing.T) {
	canceler := func(e *env) broker.Canceler {
		e.t.Helper()
		return optional[broker.Canceler](e, e.b, "broker.Canceler", "its tasks cannot be cancelled")
	}
	cancel := func(e *env, c broker.Canceler, id string, was broker.State) {
		e.t.Helper()
		got, err := c.Cancel(e.ctx, id)
		if err != nil {
			e.t.Fatalf("Cancel(%q): %v", id, err)
		}
		if got != was {
			e.t.Errorf("Cancel(%q) = %q, want the state it was in, %q", id, got, was)
		}
	}

	s.test(t, "PendingAndScheduled", func(e *env) {
		c := canceler(e)
		pending := NewTask("c", "t", []byte("p"))
		scheduled := NewTask("c", "t", []byte("s"))
		scheduled.ReadyAt = scheduled.ReadyAt.Add(time.Hour)
		keep := NewTask("c", "t", []byte("k"))
		e.enqueue(pending, scheduled, keep)
		cancel(e, c, pending.ID, broker.StatePending)
		cancel(e, c, scheduled.ID, broker.StateScheduled)
		cancel(e, c, pending.ID, broker.StateCancelled) // idempotent
		got := e.reserveFrom("c", 10, longLease)
		if len(got) != 1 || got[0].ID != keep.ID {
			e.t.Errorf("Reserve after cancelling two of three tasks: got %v, want only %s", ids(got), keep.ID)
		}
		stored := e.wantState(pending.ID, broker.StateCancelled)
		if stored.Attempt != 0 || string(stored.Payload) != "p" {
			e.t.Errorf("cancelled task %s: attempt %d payload %q, want 0 and p", fmtTask(stored), stored.Attempt, stored.Payload)
		}
		st := e.mustStats("c")
		if st.Cancelled != 2 || countsOf(st) != (counts{running: 1}) {
			e.t.Errorf("Stats: %v cancelled=%d, want running=1 and cancelled=2", countsOf(st), st.Cancelled)
		}
		list, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "c", State: broker.StateCancelled})
		if err != nil || !sameSet(ids(list), []string{pending.ID, scheduled.ID}) {
			e.t.Errorf("Tasks(cancelled) = %v, %v; want %s and %s", ids(list), err, pending.ID, scheduled.ID)
		}
		n, err := e.b.Delete(e.ctx, "c", broker.StateCancelled, []string{scheduled.ID})
		if err != nil || n != 1 {
			e.t.Errorf("Delete of one cancelled task = %d, %v; want 1", n, err)
		}
		if st := e.mustStats("c"); st.Cancelled != 1 {
			e.t.Errorf("Stats after deleting a cancelled task: cancelled=%d, want 1", st.Cancelled)
		}
		e.wantGone("deleted", scheduled.ID)
	})

	s.test(t, "RunningLeaseRevoked", func(e *env) {
		c := canceler(e)
		other := e.open()
		e.enqueue(NewTask("c", "t", nil))
		held := e.reserveOne("c", longLease)
		before, err := c.Revoked(e.ctx, []broker.Lease{held.Lease})
		if err != nil || len(before) != 0 {
			e.t.Fatalf("Revoked of a held lease = %v, %v; want none", before, err)
		}
		cancel(e, other.(broker.Canceler), held.ID, broker.StateRunning)
		revs, err := c.Revoked(e.ctx, []broker.Lease{held.Lease})
		if err != nil || len(revs) != 1 || !revs[0].Cancelled || revs[0].Lease != held.Lease {
			e.t.Errorf("Revoked after Cancel = %+v, %v; want the lease, Cancelled", revs, err)
		}
		lost, err := e.b.Extend(e.ctx, []broker.Lease{held.Lease}, longLease)
		if err != nil || len(lost) != 1 {
			e.t.Errorf("Extend of a cancelled task's lease = %v, %v; want it lost", lost, err)
		}
		wantErr(e.t, "Ack of a cancelled task", e.b.Ack(e.ctx, []broker.Lease{held.Lease}), broker.ErrLeaseLost)
		wantErr(e.t, "Retry of a cancelled task", e.b.Retry(e.ctx, held.Lease, time.Now(), "x"), broker.ErrLeaseLost)
		wantErr(e.t, "Kill of a cancelled task", e.b.Kill(e.ctx, held.Lease, "x"), broker.ErrLeaseLost)
		if err := e.b.Release(e.ctx, []broker.Lease{held.Lease}); err != nil {
			e.t.Errorf("Release of a cancelled task's lease: %v (leases not held are skipped)", err)
		}
		e.wantState(held.ID, broker.StateCancelled)
		if st := e.mustStats("c"); countsOf(st) != (counts{}) || st.Cancelled != 1 {
			e.t.Errorf("Stats: %v cancelled=%d, want nothing but cancelled=1", countsOf(st), st.Cancelled)
		}
		if got := e.reserveFrom("c", 10, longLease); len(got) != 0 {
			e.t.Errorf("Reserve after Cancel: %v, want nothing", ids(got))
		}
	})

	s.test(t, "RevokedOtherwise", func(e *env) {
		c := canceler(e)
		e.enqueue(NewTask("c", "t", nil))
		held := e.reserveOne("c", shortLease)
		sleepUntil(held.LeaseUntil)
		again := e.reserveOne("c", longLease)
		revs, err := c.Revoked(e.ctx, []broker.Lease{held.Lease, again.Lease})
		if err != nil || len(revs) != 1 || revs[0].Lease != held.Lease || revs[0].Cancelled {
			e.t.Errorf("Revoked of an expired and taken-over lease and the new one = %+v, %v; want the old one, not Cancelled", revs, err)
		}
	})

	s.test(t, "Refused", func(e *env) {
		c := canceler(e)
		_, err := c.Cancel(e.ctx, NewID())
		wantErr(e.t, "Cancel of an unknown id", err, broker.ErrNotFound)
		e.enqueue(NewTask("c", "t", nil))
		held := e.reserveOne("c", longLease)
		if err := e.b.Kill(e.ctx, held.Lease, "boom"); err != nil {
			e.t.Fatalf("Kill: %v", err)
		}
		_, err = c.Cancel(e.ctx, held.ID)
		wantErr(e.t, "Cancel of a dead task", err, broker.ErrInvalid)
		e.wantState(held.ID, broker.StateDead)
		if st := e.mustStats("c"); st.Cancelled != 0 || st.Dead != 1 {
			e.t.Errorf("Stats after a refused Cancel: dead=%d cancelled=%d, want 1 and 0", st.Dead, st.Cancelled)
		}
	})

	s.test(t, "RunningHandlerInOtherProcess", func(e *env) {
		c := canceler(e)
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts a worker process")
		}
		ctx, stop := context.WithTimeout(e.ctx, childTimeout(e.t))
		defer stop()
		child := s.startChild(e.t, ctx, roleCancel, e.url)
		if err := child.waitReady(ctx); err != nil {
			e.t.Fatalf("worker process did not start: %v%s", err, child.output())
		}
		child.start()
		task := NewTask("cancel", "wait", nil)
		e.enqueue(task)
		e.eventually("the worker process starts the task", func() bool {
			st, _ := e.stats("cancel")
			return st.Running == 1
		})
		start := time.Now()
		cancel(e, c, task.ID, broker.StateRunning)
		var line string
		e.eventually("the worker process reports the handler stopped", func() bool {
			line = child.lastGot()
			return line != ""
		})
		took := time.Since(start)
		e.t.Logf("a handler in another process saw its task cancelled %s after Cancel was called", took.Round(time.Millisecond))
		if f := strings.Fields(line); len(f) != 3 || f[1] != task.ID || f[2] != "cancelled" {
			e.t.Errorf("worker process wrote %q, want %s %s cancelled (context.Cause = brisk.ErrCancelled)", line, lineGot, task.ID)
		}
		if took > cancelBound {
			e.t.Errorf("the handler stopped %s after Cancel, want within a second (at most %s here)", took, cancelBound)
		}
		_ = child.cmd.Process.Signal(syscall.SIGTERM)
		if err := child.finish(); err != nil {
			e.t.Errorf("worker process: %v%s", err, child.output())
		}
		e.wantState(task.ID, broker.StateCancelled)
	})
}

// lastGot returns the child's last lineGot line so far ("" when none).
func (c *child) lastGot() string {
	c.gotMu.Lock()
	defer c.gotMu.Unlock()
	if len(c.got) == 0 {
		return ""
	}
	return c.got[len(c.got)-1]
}

// runCancelWorker runs a brisk worker on queue "cancel" whose handler of type "wait"
// blocks until its context ends and then writes "brisktest-got <id> cancelled" (when the
// cause is brisk.ErrCancelled) or "brisktest-got <id> <cause>"; it stops at SIGTERM.
func runCancelWorker(t *testing.T, h Harness, url string) {
	ctx, b, log, done := openUntilTerm(t, h, url)
	defer done()
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{
		Queues: []brisk.QueueSpec{{Name: "cancel"}}, Concurrency: 2, Lease: 30 * time.Second,
		ShutdownTimeout: time.Second,
		Logger:          log,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("wait", func(ctx context.Context, task *brisk.Task) error {
		<-ctx.Done()
		cause := context.Cause(ctx)
		word := cause.Error()
		if errors.Is(cause, brisk.ErrCancelled) {
			word = "cancelled"
		}
		fmt.Println(lineGot, task.ID, strings.ReplaceAll(word, " ", "_"))
		return ctx.Err()
	})
	fmt.Println(lineReady)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("no go from the parent: %v", err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
