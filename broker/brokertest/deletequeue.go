package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testDeleteQueue checks the optional broker.QueueDeleter: an empty queue is removed with
// its settings, counters and samples and is no longer listed; a queue that holds a task in
// any state is refused with ErrQueueNotEmpty and keeps everything; an unknown queue gives
// ErrQueueNotFound; an enqueue after the delete creates the queue afresh; and an enqueue
// racing the delete is never lost from Stats.
func (s *suite) testDeleteQueue(t *testing.T) {
	deleter := func(e *env) broker.QueueDeleter {
		e.t.Helper()
		return optional[broker.QueueDeleter](e, e.b, "broker.QueueDeleter", "a queue, once known, is listed for ever")
	}

	s.test(t, "EmptyQueueRemoved", func(e *env) {
		d := deleter(e)
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "gone", SLA: 7 * time.Second}); err != nil {
			e.t.Fatal(err)
		}
		task := NewTask("gone", "t", nil)
		e.enqueue(task)
		if err := e.b.Ack(e.ctx, leases(e.reserveFrom("gone", 1, longLease))); err != nil {
			e.t.Fatal(err)
		}
		if p, ok := e.b.(broker.Pauser); ok {
			if err := p.PauseQueue(e.ctx, "gone", true); err != nil {
				e.t.Fatal(err)
			}
		}
		if st := e.mustStats("gone"); st.Completed != 1 {
			e.t.Fatalf("Stats before the delete: completed %d, want 1", st.Completed)
		}
		if err := d.DeleteQueue(e.ctx, "gone"); err != nil {
			e.t.Fatalf("DeleteQueue of an empty queue: %v", err)
		}
		if _, listed := e.stats("gone"); listed {
			e.t.Errorf("Stats lists queue %q after DeleteQueue", "gone")
		}
		err := d.DeleteQueue(e.ctx, "gone")
		wantErr(e.t, "DeleteQueue of a deleted queue", err, broker.ErrQueueNotFound, "gone")
		// Created afresh: no SLA, no pause, counters from zero.
		again := NewTask("gone", "t", nil)
		e.enqueue(again)
		st := e.mustStats("gone")
		if st.SLA != 0 || st.Paused || st.Completed != 0 || st.Pending != 1 {
			e.t.Errorf("Stats of the queue enqueued to after its delete: %+v, want a fresh queue with 1 pending", st)
		}
		if got := e.reserveOne("gone", longLease); got.ID != again.ID {
			e.t.Errorf("Reserve from the re-created queue: %s, want %s", fmtTask(got), again.ID)
		}
	})

	s.test(t, "NonEmptyQueueKept", func(e *env) {
		d := deleter(e)
		e.requires(func(c broker.Capabilities) bool { return c.DeleteQueued }, "DeleteQueued",
			"the test empties the queue again by deleting its pending and scheduled tasks")
		delayed := NewTask("full", "t", nil)
		delayed.ReadyAt = delayed.EnqueuedAt.Add(time.Hour)
		cases := []struct {
			state string
			setup func() string // returns the id of the one task left in the queue
		}{
			{"pending", func() string { t := NewTask("full", "t", nil); e.enqueue(t); return t.ID }},
			{"scheduled", func() string { e.enqueue(delayed); return delayed.ID }},
			{"running", func() string { e.enqueue(NewTask("full", "t", nil)); return e.reserveOne("full", longLease).ID }},
			{"dead", func() string {
				e.enqueue(NewTask("full", "t", nil))
				r := e.reserveOne("full", longLease)
				if err := e.b.Kill(e.ctx, r.Lease, "boom"); err != nil {
					e.t.Fatal(err)
				}
				return r.ID
			}},
		}
		for _, c := range cases {
			id := c.setup()
			err := d.DeleteQueue(e.ctx, "full")
			wantErr(e.t, "DeleteQueue of a queue with one "+c.state+" task", err, broker.ErrQueueNotEmpty, "full")
			e.mustStats("full")
			// Empty the queue again for the next case.
			switch c.state {
			case "running":
				if err := e.b.Ack(e.ctx, []broker.Lease{e.task(id).Lease}); err != nil {
					e.t.Fatal(err)
				}
			default:
				if n, err := e.b.Delete(e.ctx, "full", broker.State(c.state), []string{id}); err != nil || n != 1 {
					e.t.Fatalf("Delete of the %s task: %d, %v", c.state, n, err)
				}
			}
		}
		if err := d.DeleteQueue(e.ctx, "full"); err != nil {
			e.t.Errorf("DeleteQueue once every task is gone: %v", err)
		}
	})

	s.test(t, "BadInput", func(e *env) {
		d := deleter(e)
		err := d.DeleteQueue(e.ctx, "never-seen")
		wantErr(e.t, "DeleteQueue of an unknown queue", err, broker.ErrQueueNotFound, "never-seen")
		for _, name := range []string{"", "has space", ".."} {
			err := d.DeleteQueue(e.ctx, name)
			wantErr(e.t, "DeleteQueue of "+quote(name), err, broker.ErrInvalid)
		}
		closed := e.open()
		if err := closed.Close(); err != nil {
			e.t.Fatal(err)
		}
		if cd, ok := closed.(broker.QueueDeleter); ok {
			wantErr(e.t, "DeleteQueue after Close", cd.DeleteQueue(e.ctx, "x"), broker.ErrClosed)
		}
	})

	s.test(t, "RacingEnqueue", func(e *env) {
		d := deleter(e)
		other := e.open()
		// Each round: an empty known queue, then a delete and an enqueue at once. Whatever
		// wins, the task must be stored and its queue listed.
		for i := range 30 {
			q := "race" + itoa(i)
			if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: q}); err != nil {
				e.t.Fatal(err)
			}
			task := NewTask(q, "t", nil)
			done := make(chan error, 1)
			go func() { done <- other.Enqueue(context.WithoutCancel(e.ctx), []*broker.Task{task}) }()
			delErr := d.DeleteQueue(e.ctx, q)
			if err := <-done; err != nil {
				e.t.Fatalf("Enqueue racing DeleteQueue: %v", err)
			}
			if delErr != nil {
				wantErr(e.t, "DeleteQueue racing an Enqueue", delErr, broker.ErrQueueNotEmpty, q)
			}
			e.wantState(task.ID, broker.StatePending)
			if st := e.mustStats(q); st.Pending != 1 {
				e.t.Errorf("round %d: Stats of %q after the race = %v, want 1 pending", i, q, countsOf(st))
			}
		}
	})
}
