package brokertest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testLease checks leases: a held task is not delivered again, an expired one is (with the
// next attempt and a new token), a stale lease can change nothing, Extend keeps a task, and a
// lease that expires on the last attempt ends the task dead.
func (s *suite) testLease(t *testing.T) {
	s.test(t, "HeldWhileLeased", func(e *env) {
		task := NewTask("held", "t", nil)
		e.enqueue(task)
		got := e.reserveOne("held", longLease)
		other := e.open()
		if again := e.reserveFrom("held", 10, longLease); len(again) != 0 {
			e.t.Errorf("Reserve returned %s while its lease holds", describe(again))
		}
		again, err := other.Reserve(e.ctx, broker.ReserveParams{Queues: queues("held"), Limit: 10, Lease: longLease})
		if err != nil {
			e.t.Fatalf("Reserve on a second broker value: %v", err)
		}
		if len(again) != 0 {
			e.t.Errorf("Reserve on a second broker value returned %s while its lease holds", describe(again))
		}
		// Extend moves the expiry to now + d.
		before := time.Now()
		lost, err := e.b.Extend(e.ctx, []broker.Lease{got.Lease}, time.Hour)
		after := time.Now()
		if err != nil || len(lost) != 0 {
			e.t.Fatalf("Extend of a held lease: lost %v, error %v; want none and nil", lost, err)
		}
		until := e.task(task.ID).LeaseUntil
		if until.Before(before.Add(time.Hour-timeTolerance)) || until.After(after.Add(time.Hour+timeTolerance)) {
			e.t.Errorf("LeaseUntil after Extend by 1h = %s, want the call's time + 1h", fmtTime(until))
		}
	})

	s.test(t, "ExpiredIsDeliveredAgain", func(e *env) {
		task := NewTask("expire", "t", []byte("p"))
		bystander := NewTask("bystander", "t", nil)
		e.enqueue(task, bystander)
		held := e.reserveOne("bystander", longLease)

		start := time.Now()
		first := e.reserveOne("expire", shortLease)
		expiry := start.Add(shortLease)
		var (
			second *broker.Task
			at     time.Time
		)
		if again := e.reserveFrom("expire", 10, longLease); len(again) != 0 {
			if time.Now().Before(expiry) {
				e.t.Fatalf("Reserve returned %s before its lease of %s expired", describe(again), shortLease)
			}
			second, at = again[0], time.Now() // a slow machine: the lease had expired already
		} else {
			second, at = e.reserveEventually("expire", longLease, "task whose lease expired")
		}
		if at.Before(expiry) {
			e.t.Errorf("task delivered again at %s, before its lease expired at %s", fmtTime(at), fmtTime(expiry))
		}
		if second.ID != task.ID {
			e.t.Fatalf("reserved %s, want the task whose lease expired (%s)", second.ID, task.ID)
		}
		if second.Attempt != first.Attempt+1 {
			e.t.Errorf("second delivery has Attempt %d, want %d", second.Attempt, first.Attempt+1)
		}
		if second.Lease.Token == first.Lease.Token {
			e.t.Errorf("second delivery reuses the lease token %q of the first", first.Lease.Token)
		}

		// The first lease can no longer change anything.
		err := e.b.Ack(e.ctx, []broker.Lease{first.Lease, held.Lease})
		wantErr(e.t, "Ack of a lost lease together with a held one", err, broker.ErrLeaseLost, task.ID)
		e.wantGone("the held lease acked together with a lost one", bystander.ID)
		wantErr(e.t, "Retry under a lost lease", e.b.Retry(e.ctx, first.Lease, time.Now(), "stale"), broker.ErrLeaseLost)
		wantErr(e.t, "Kill under a lost lease", e.b.Kill(e.ctx, first.Lease, "stale"), broker.ErrLeaseLost)
		if err := e.b.Release(e.ctx, []broker.Lease{first.Lease}); err != nil {
			wantErr(e.t, "Release of a lost lease (skipped; an error, if any, must say the lease is lost)", err, broker.ErrLeaseLost)
		}
		lost, err := e.b.Extend(e.ctx, []broker.Lease{first.Lease, second.Lease}, longLease)
		if err != nil {
			e.t.Errorf("Extend of a lost and a held lease: %v", err)
		} else if !slices.Equal(lost, []broker.Lease{first.Lease}) {
			e.t.Errorf("Extend of a lost and a held lease reported lost %v, want just the first %v", lost, first.Lease)
		}
		stored := e.wantState(task.ID, broker.StateRunning)
		if stored.Attempt != 2 || stored.LastError != "" {
			e.t.Errorf("after stale Ack/Retry/Kill/Release: Attempt %d LastError %q, want 2 and none", stored.Attempt, stored.LastError)
		}
		if err := e.b.Ack(e.ctx, []broker.Lease{second.Lease}); err != nil {
			e.t.Errorf("Ack under the current lease: %v", err)
		}
		e.wantGone("acked", task.ID)
	})

	s.test(t, "ExtendKeepsTask", func(e *env) {
		task := NewTask("extend", "t", nil)
		e.enqueue(task)
		start := time.Now()
		got := e.reserveOne("extend", 2*shortLease)
		lost, err := e.b.Extend(e.ctx, []broker.Lease{got.Lease}, longLease)
		if err != nil || len(lost) != 0 {
			e.t.Fatalf("Extend right after Reserve: lost %v, error %v; want none and nil (did Reserve take longer than the %s lease?)", lost, err, 2*shortLease)
		}
		sleepUntil(start.Add(2*shortLease + 200*time.Millisecond))
		if again := e.reserveFrom("extend", 10, longLease); len(again) != 0 {
			e.t.Errorf("Reserve returned %s after its lease was extended", describe(again))
		}
		e.wantState(task.ID, broker.StateRunning)
		lost, err = e.b.Extend(e.ctx, []broker.Lease{got.Lease}, longLease)
		if err != nil || len(lost) != 0 {
			e.t.Errorf("second Extend, past the original expiry: lost %v, error %v; want none and nil", lost, err)
		}
		if err := e.b.Ack(e.ctx, []broker.Lease{got.Lease}); err != nil {
			e.t.Errorf("Ack under an extended lease, past the original expiry: %v", err)
		}
	})

	s.test(t, "ExtendReportsGone", func(e *env) {
		e.enqueue(NewTasks("gone", "t", 2)...)
		got := e.reserveFrom("gone", 2, longLease)
		if len(got) != 2 {
			e.t.Fatalf("Reserve: got %d tasks, want 2", len(got))
		}
		if err := e.b.Ack(e.ctx, []broker.Lease{got[0].Lease}); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		lost, err := e.b.Extend(e.ctx, leases(got), longLease)
		if err != nil {
			e.t.Fatalf("Extend: %v", err)
		}
		if !slices.Equal(lost, []broker.Lease{got[0].Lease}) {
			e.t.Errorf("Extend of an acked and a held lease reported lost %v, want just the acked %v", lost, got[0].Lease)
		}
		wantErr(e.t, "second Ack of one lease", e.b.Ack(e.ctx, []broker.Lease{got[0].Lease}), broker.ErrLeaseLost)
	})

	s.test(t, "ExpiredOnLastAttemptIsDead", func(e *env) {
		task := NewTask("last", "t", nil)
		task.MaxAttempts = 1
		e.enqueue(task)
		got := e.reserveOne("last", shortLease)
		sleepUntil(got.LeaseUntil)
		var stored *broker.Task
		e.eventually("task whose lease expired on its last attempt moves to dead", func() bool {
			if again := e.reserveFrom("last", 10, longLease); len(again) != 0 {
				e.t.Fatalf("Reserve returned %s again after its lease expired on its last attempt", describe(again))
			}
			var err error
			stored, err = e.b.Task(e.ctx, task.ID)
			if errors.Is(err, broker.ErrUnsupported) && !e.b.Capabilities().ListAll {
				return false // on its way to dead: a broker without ListAll cannot tell yet
			}
			if err != nil {
				e.t.Fatalf("Task(%q): %v", task.ID, err)
			}
			return stored.State == broker.StateDead
		})
		if stored.Attempt != 1 {
			e.t.Errorf("dead task has Attempt %d, want 1", stored.Attempt)
		}
		e.wantCounts("last", counts{dead: 1})
		// The expired lease cannot ack the dead task away.
		wantErr(e.t, "Ack under the expired lease of a task now dead", e.b.Ack(e.ctx, []broker.Lease{got.Lease}), broker.ErrLeaseLost)
		e.wantState(task.ID, broker.StateDead)
	})
}
