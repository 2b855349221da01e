package brokertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testPause checks the optional broker.Pauser: a paused queue gives Reserve nothing while
// other queues still deliver and Enqueue still stores; Stats reports Paused; resuming makes
// the tasks reservable again and wakes a waiting Wait; pausing is idempotent, creates an
// unknown queue, refuses an invalid name and fails with ErrClosed after Close.
func (s *suite) testPause(t *testing.T) {
	pauser := func(e *env) broker.Pauser {
		e.t.Helper()
		return optional[broker.Pauser](e, e.b, "broker.Pauser", "its queues cannot be paused")
	}
	pause := func(e *env, p broker.Pauser, queue string, paused bool) {
		e.t.Helper()
		if err := p.PauseQueue(e.ctx, queue, paused); err != nil {
			e.t.Fatalf("PauseQueue(%q, %v): %v", queue, paused, err)
		}
	}

	s.test(t, "PausedQueueNotReserved", func(e *env) {
		p := pauser(e)
		e.enqueue(NewTasks("paused", "t", 2)...)
		e.enqueue(NewTasks("open", "t", 2)...)
		pause(e, p, "paused", true)
		pause(e, p, "paused", true) // idempotent
		got := e.reserve(broker.ReserveParams{Queues: queues("paused", "open"), Limit: 10, Lease: longLease})
		for _, task := range got {
			if task.Queue == "paused" {
				e.t.Errorf("Reserve returned task %s of the paused queue", fmtTask(task))
			}
		}
		if len(got) != 2 {
			e.t.Errorf("Reserve from a paused and an open queue: got %d tasks, want the 2 of the open queue", len(got))
		}
		if got := e.reserveFrom("paused", 10, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from the paused queue alone: got %d tasks, want none", len(got))
		}
		// Enqueue into a paused queue still stores.
		late := NewTask("paused", "t", []byte("late"))
		e.enqueue(late)
		e.wantState(late.ID, broker.StatePending)
		st := e.mustStats("paused")
		if !st.Paused {
			e.t.Errorf("Stats of the paused queue: Paused = false, want true")
		}
		if st.Pending != 3 {
			e.t.Errorf("Stats of the paused queue: pending = %d, want 3 (paused tasks are still counted)", st.Pending)
		}
		if st := e.mustStats("open"); st.Paused {
			e.t.Errorf("Stats of an open queue: Paused = true, want false")
		}
		if got := e.reserveFrom("paused", 10, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from the paused queue after an Enqueue: got %d tasks, want none", len(got))
		}

		pause(e, p, "paused", false)
		pause(e, p, "paused", false) // idempotent
		if st := e.mustStats("paused"); st.Paused {
			e.t.Errorf("Stats of the resumed queue: Paused = true, want false")
		}
		if got := e.reserveFrom("paused", 10, longLease); len(got) != 3 {
			e.t.Errorf("Reserve from the resumed queue: got %d tasks, want 3", len(got))
		}
	})

	s.test(t, "ExpiredLeaseKeptWhilePaused", func(e *env) {
		p := pauser(e)
		e.enqueue(NewTask("pl", "t", nil))
		held := e.reserveOne("pl", 50*time.Millisecond)
		pause(e, p, "pl", true)
		sleepUntil(held.LeaseUntil.Add(20 * time.Millisecond))
		if got := e.reserveFrom("pl", 10, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from a paused queue with an expired lease: got %d tasks, want none", len(got))
		}
		pause(e, p, "pl", false)
		got, _ := e.reserveEventually("pl", longLease, "the expired lease of the resumed queue")
		if got.ID != held.ID {
			e.t.Errorf("Reserve after resume: got task %s, want %s", got.ID, held.ID)
		}
	})

	s.test(t, "ResumeWakesWait", func(e *env) {
		p := pauser(e)
		pause(e, p, "w", true)
		e.enqueue(NewTasks("w", "t", 2)...)
		// Wait on the paused queue blocks although tasks are ready (wantWake checks that it
		// does not return at once), and resuming wakes it.
		e.wantWake(e.b, "PauseQueue(w, false)", func() { pause(e, p, "w", false) })
		if got := e.reserveFrom("w", 10, longLease); len(got) != 2 {
			e.t.Errorf("Reserve after resume: got %d tasks, want 2", len(got))
		}
	})

	s.test(t, "ResumeWakesWaitOfOtherBroker", func(e *env) {
		p := pauser(e)
		other := e.open()
		pause(e, p, "w", true)
		e.enqueue(NewTask("w", "t", nil))
		e.wantWake(other, "PauseQueue(w, false) through another broker on the store", func() { pause(e, p, "w", false) })
	})

	s.test(t, "PauseCreatesQueue", func(e *env) {
		p := pauser(e)
		pause(e, p, "fresh", true)
		st := e.mustStats("fresh")
		if !st.Paused || countsOf(st) != (counts{}) {
			e.t.Errorf("Stats of a queue created by PauseQueue: %v paused=%v, want empty and paused", countsOf(st), st.Paused)
		}
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "fresh", SLA: time.Second}); err != nil {
			e.t.Fatalf("DeclareQueue: %v", err)
		}
		if st := e.mustStats("fresh"); !st.Paused || st.SLA != time.Second {
			e.t.Errorf("after DeclareQueue: paused=%v SLA=%s, want paused (DeclareQueue keeps it) and 1s", st.Paused, st.SLA)
		}
	})

	s.test(t, "InvalidQueue", func(e *env) {
		p := pauser(e)
		for _, name := range []string{"", "has space", "bad/name", strings.Repeat("q", 129)} {
			for _, paused := range []bool{true, false} {
				err := p.PauseQueue(e.ctx, name, paused)
				if !errors.Is(err, broker.ErrInvalid) {
					e.t.Errorf("PauseQueue(%q, %v) = %v, want an error wrapping ErrInvalid", shorten(name), paused, err)
				}
			}
		}
	})

	s.test(t, "AfterClose", func(e *env) {
		pauser(e)
		b := e.open()
		p := b.(broker.Pauser)
		if err := b.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		ctx, cancel := context.WithTimeout(e.ctx, slack)
		defer cancel()
		for _, paused := range []bool{true, false} {
			if err := p.PauseQueue(ctx, "q", paused); !errors.Is(err, broker.ErrClosed) {
				e.t.Errorf("PauseQueue(q, %v) after Close = %v, want an error wrapping ErrClosed", paused, err)
			}
		}
	})
}
