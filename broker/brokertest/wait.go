package brokertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// wakeBound is the longest the suite lets Wait take to notice an Enqueue or Release before it
// calls it a failure. The contract asks for far less (at once in one process, 50 ms across
// processes); the bound is loose only because the machines are noisy. Each test logs the
// time it measured.
const wakeBound = 2 * time.Second

// testWait checks Wait: wake-up on Enqueue and Release from the same and from another broker
// value, wake-up when a scheduled task or a lease falls due, the max bound, cancellation, and
// Close.
func (s *suite) testWait(t *testing.T) {
	s.test(t, "WakesOnEnqueueSameBroker", func(e *env) {
		e.wantWake(e.b, "an Enqueue on the same broker value", func() {
			e.enqueue(NewTask("w", "t", nil))
		})
	})
	s.test(t, "WakesOnEnqueueOtherBroker", func(e *env) {
		other := e.open()
		e.wantWake(e.b, "an Enqueue on another broker value on the same store (as another process)", func() {
			if err := other.Enqueue(e.ctx, []*broker.Task{NewTask("w", "t", nil)}); err != nil {
				e.t.Fatalf("Enqueue: %v", err)
			}
		})
	})
	s.test(t, "WakesOnEnqueueOtherProcess", func(e *env) {
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts a process")
		}
		ctx, cancel := context.WithTimeout(e.ctx, childTimeout(e.t))
		defer cancel()
		c := s.startChild(e.t, ctx, "enqueuer", e.url, envQueue+"=w")
		if err := c.waitReady(ctx); err != nil {
			e.t.Fatalf("enqueuer process did not start: %v%s", err, c.output())
		}
		e.wantWake(e.b, "an Enqueue in another process", c.start)
		if err := c.finish(); err != nil {
			e.t.Errorf("enqueuer process: %v%s", err, c.output())
		}
		e.wantCounts("w", counts{pending: 1})
	})
	s.test(t, "WakesOnRelease", func(e *env) {
		other := e.open()
		e.enqueue(NewTask("w", "t", nil))
		got := e.reserveOne("w", longLease)
		e.wantWake(e.b, "a Release on another broker value on the same store", func() {
			if err := other.Release(e.ctx, []broker.Lease{got.Lease}); err != nil {
				e.t.Fatalf("Release: %v", err)
			}
		})
	})

	s.test(t, "WakesWhenScheduledTaskFallsDue", func(e *env) {
		task := NewTask("w", "t", nil)
		task.ReadyAt = task.EnqueuedAt.Add(shortDelay)
		e.enqueue(task)
		e.wantWorkerLoopGets(e.b, task.ID, task.ReadyAt, "a delayed task")
	})
	s.test(t, "WakesWhenLeaseExpires", func(e *env) {
		task := NewTask("w", "t", nil)
		e.enqueue(task)
		start := time.Now()
		e.reserveOne("w", shortLease)
		e.wantWorkerLoopGets(e.open(), task.ID, start.Add(shortLease), "a task whose lease expires")
	})

	s.test(t, "ReturnsAfterMax", func(e *env) {
		const max = 300 * time.Millisecond
		start := time.Now()
		err := e.waitWithin(e.ctx, e.b, max, max+slack, "Wait on an idle queue with max "+max.String())
		took := time.Since(start)
		if err != nil {
			e.t.Fatalf("Wait on an idle queue with max %s: %v, want nil", max, err)
		}
		if took > max+slack {
			e.t.Errorf("Wait on an idle queue with max %s returned after %s", max, took)
		}
		if took < max/2 {
			e.t.Logf("NOTE: Wait on an idle queue with max %s returned after %s (a spurious return: allowed, but a worker polls more than it needs)", max, took)
		}
	})

	s.test(t, "ContextCancelled", func(e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		if err := e.waitWithin(ctx, e.b, time.Minute, slack, "Wait with a cancelled context"); !errors.Is(err, context.Canceled) {
			e.t.Errorf("Wait with a cancelled context = %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithCancel(e.ctx)
		defer cancel()
		done := waitLoop(ctx, e.b, []string{"w"})
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				e.t.Errorf("Wait when its context is cancelled = %v, want context.Canceled", err)
			}
		case <-time.After(slack):
			e.t.Fatalf("Wait did not return within %s after its context was cancelled", slack)
		}
		ctx, cancel = context.WithTimeout(e.ctx, 200*time.Millisecond)
		defer cancel()
		select {
		case err := <-waitLoop(ctx, e.b, []string{"w"}):
			if !errors.Is(err, context.DeadlineExceeded) {
				e.t.Errorf("Wait when its context's deadline passes = %v, want context.DeadlineExceeded", err)
			}
		case <-time.After(slack):
			e.t.Fatalf("Wait did not return within %s after its context's deadline passed", slack)
		}
	})

	s.test(t, "Closed", func(e *env) {
		closed := e.open()
		if err := closed.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		wantErr(e.t, "Wait after Close", e.waitWithin(e.ctx, closed, time.Minute, slack, "Wait after Close"), broker.ErrClosed)

		waiting := e.open()
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		done := waitLoop(ctx, waiting, []string{"w"})
		time.Sleep(100 * time.Millisecond)
		if err := waiting.Close(); err != nil {
			e.t.Fatalf("Close while a Wait blocks: %v", err)
		}
		select {
		case err := <-done:
			wantErr(e.t, "Wait when the broker is closed while it blocks", err, broker.ErrClosed)
		case <-time.After(slack):
			e.t.Fatalf("Wait did not return within %s after Close", slack)
		}
	})
}

// waitWithin calls Wait on queue "w" of b and returns its error, or ends the test if Wait has
// not returned within d (it ignores its context, or its max, or Close).
func (e *env) waitWithin(ctx context.Context, b broker.Broker, max, d time.Duration, what string) error {
	e.t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, []string{"w"}, max) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		e.t.Fatalf("%s: Wait (max %s) did not return within %s", what, max, d)
		return nil
	}
}

// waitLoop calls Wait (on an idle queue, with a long max) again after every nil return, as a
// worker would, and sends the first error.
func waitLoop(ctx context.Context, b broker.Broker, queues []string) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			if err := b.Wait(ctx, queues, time.Minute); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// wantWake starts a Wait on queue "w" of waiter, lets it block, calls act, and checks that
// the Wait returns promptly.
func (e *env) wantWake(waiter broker.Broker, what string, act func()) {
	e.t.Helper()
	e.wantWakeOn(waiter, "w", what, act)
}

// wantWakeOn is wantWake on queue.
func (e *env) wantWakeOn(waiter broker.Broker, queue, what string, act func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var done chan error
	for try := 0; ; try++ {
		done = make(chan error, 1)
		go func(done chan<- error) { done <- waiter.Wait(ctx, []string{queue}, time.Minute) }(done)
		select {
		case err := <-done:
			// A spurious return: allowed. Start again, a few times.
			if err != nil {
				e.t.Fatalf("Wait on an idle queue: %v", err)
			}
			if try == 3 {
				e.t.Fatalf("Wait on an idle queue with max 1m returned at once %d times in a row", try+1)
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	start := time.Now()
	act()
	acted := time.Since(start)
	select {
	case err := <-done:
		took := time.Since(start)
		if err != nil {
			e.t.Fatalf("Wait woken by %s: %v, want nil", what, err)
		}
		e.t.Logf("Wait returned %s after the start of %s (the call that caused it returned after %s)", took.Round(time.Microsecond), what, acted.Round(time.Microsecond))
		if took > wakeBound {
			e.t.Errorf("Wait returned %s after %s, want promptly (at most %s here)", took, what, wakeBound)
		}
	case <-time.After(slack):
		e.t.Errorf("Wait (max 1m) did not return within %s after %s", slack, what)
	}
}

// wantWorkerLoopGets runs a worker's loop on b (Reserve; if nothing, Wait with a long max) on
// queue "w" and checks that it gets task id not before due and not long after.
func (e *env) wantWorkerLoopGets(b broker.Broker, id string, due time.Time, what string) {
	e.t.Helper()
	const max = 30 * time.Second
	deadline := due.Add(3 * time.Second)
	for waits := 0; ; waits++ {
		got, err := b.Reserve(e.ctx, broker.ReserveParams{Queues: queues("w"), Limit: 1, Lease: longLease})
		now := time.Now()
		if err != nil {
			e.t.Fatalf("Reserve: %v", err)
		}
		if len(got) > 0 {
			if got[0].ID != id {
				e.t.Fatalf("reserved %s, want %s", got[0].ID, id)
			}
			if now.Before(due) {
				e.t.Fatalf("reserved %s at %s, before it was due at %s", what, fmtTime(now), fmtTime(due))
			}
			e.t.Logf("a worker loop got %s %s after it fell due, after %d Wait calls", what, now.Sub(due).Round(time.Microsecond), waits)
			return
		}
		if now.After(deadline) {
			e.t.Fatalf("a worker loop (Reserve, then Wait with max %s) did not get %s within %s after it fell due", max, what, deadline.Sub(due))
		}
		ctx, cancel := context.WithDeadline(e.ctx, deadline.Add(time.Second))
		err = e.waitWithin(ctx, b, max, time.Until(deadline)+slack, "Wait with a context whose deadline passes")
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatalf("Wait (max %s) did not return within %s after %s fell due", max, deadline.Add(time.Second).Sub(due), what)
		}
		if err != nil {
			e.t.Fatalf("Wait: %v", err)
		}
	}
}
