package brokertest

import (
	"slices"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testStats checks Stats: counts by state, queue latency and OldestReadyAt, declared SLAs,
// the completed and failed counters, and the order of the listing.
func (s *suite) testStats(t *testing.T) {
	s.test(t, "CountsByState", func(e *env) {
		e.makeDead("mix", 1)
		tasks := NewTasks("mix", "t", 4)
		later := NewTask("mix", "t", nil)
		later.ReadyAt = later.EnqueuedAt.Add(time.Hour)
		e.enqueue(append(tasks, later)...)
		e.enqueue(NewTask("other", "t", nil))
		if got := e.reserveFrom("mix", 2, longLease); len(got) != 2 {
			e.t.Fatalf("Reserve: got %d tasks, want 2", len(got))
		}
		e.wantCounts("mix", counts{pending: 2, scheduled: 1, running: 2, dead: 1})
		e.wantCounts("other", counts{pending: 1})
	})

	s.test(t, "SortedByName", func(e *env) {
		for _, q := range []string{"zeta", "alpha"} {
			if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: q}); err != nil {
				e.t.Fatalf("DeclareQueue(%q): %v", q, err)
			}
		}
		e.enqueue(NewTask("mid", "t", nil), NewTask("beta", "t", nil))
		all, err := e.b.Stats(e.ctx)
		if err != nil {
			e.t.Fatalf("Stats: %v", err)
		}
		var names []string
		for _, st := range all {
			names = append(names, st.Name)
		}
		if want := []string{"alpha", "beta", "mid", "zeta"}; !slices.Equal(names, want) {
			e.t.Errorf("Stats lists queues %q, want %q (every known queue once, sorted by name)", names, want)
		}
	})

	s.test(t, "Latency", func(e *env) {
		e.requires(readyAtOrder, "ReadyAtOrder", "the head of a queue is the task enqueued first, not the oldest ReadyAt")
		e.requires(exactLatency, "ExactLatency", "the latency is an estimate that QueueStats.Notes describes")
		now := time.Now().Round(0)
		oldest, newer := NewTask("lat", "t", nil), NewTask("lat", "t", nil)
		oldest.EnqueuedAt, oldest.ReadyAt = now.Add(-2*time.Second), now.Add(-2*time.Second)
		newer.EnqueuedAt, newer.ReadyAt = now.Add(-time.Second), now.Add(-time.Second)
		e.enqueue(newer, oldest)
		e.wantLatency("lat", oldest.ReadyAt)
		// Once the oldest runs, the next oldest pending task sets the latency.
		if got := e.reserveOne("lat", longLease); got.ID != oldest.ID {
			e.t.Fatalf("reserved %s, want the oldest %s", got.ID, oldest.ID)
		}
		e.wantLatency("lat", newer.ReadyAt)
	})

	s.test(t, "LatencyZeroWithoutPending", func(e *env) {
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "empty"}); err != nil {
			e.t.Fatalf("DeclareQueue: %v", err)
		}
		e.wantNoLatency("empty", "an empty declared queue")

		later := NewTask("sched", "t", nil)
		later.ReadyAt = later.EnqueuedAt.Add(time.Hour)
		e.enqueue(later)
		e.wantNoLatency("sched", "a queue with only a scheduled task")

		old := NewTask("busy", "t", nil)
		old.EnqueuedAt, old.ReadyAt = old.EnqueuedAt.Add(-time.Minute), old.ReadyAt.Add(-time.Minute)
		e.enqueue(old)
		e.reserveOne("busy", longLease)
		e.wantNoLatency("busy", "a queue with only a running task")

		e.makeDead("dead", 1)
		e.wantNoLatency("dead", "a queue with only a dead task")

		e.enqueue(NewTask("acked", "t", nil))
		if err := e.b.Ack(e.ctx, []broker.Lease{e.reserveOne("acked", longLease).Lease}); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		e.wantNoLatency("acked", "a queue whose only task was acked")
	})

	s.test(t, "DeclaredSLA", func(e *env) {
		declare := func(sla time.Duration) {
			e.t.Helper()
			if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "sla", SLA: sla}); err != nil {
				e.t.Fatalf("DeclareQueue(sla, %s): %v", sla, err)
			}
		}
		wantSLA := func(want time.Duration, after string) {
			e.t.Helper()
			if got := e.mustStats("sla").SLA; got != want {
				e.t.Errorf("SLA after %s = %s, want %s", after, got, want)
			}
		}
		declare(5 * time.Second)
		wantSLA(5*time.Second, "DeclareQueue with 5s")
		declare(5 * time.Second)
		wantSLA(5*time.Second, "the same DeclareQueue twice")
		e.enqueue(NewTask("sla", "t", nil))
		wantSLA(5*time.Second, "an Enqueue to the declared queue")
		declare(time.Minute)
		wantSLA(time.Minute, "DeclareQueue with 1m")
		if got := countsOf(e.mustStats("sla")); got != (counts{pending: 1}) {
			e.t.Errorf("Stats after declaring a queue again: %v, want its task kept (pending=1)", got)
		}
		declare(0)
		wantSLA(0, "DeclareQueue with no SLA (stores the settings given)")

		// Declaring a queue that Enqueue created sets its SLA and keeps its tasks.
		e.enqueue(NewTask("implicit", "t", nil))
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "implicit", SLA: 30 * time.Second}); err != nil {
			e.t.Fatalf("DeclareQueue of a queue Enqueue created: %v", err)
		}
		if st := e.mustStats("implicit"); st.SLA != 30*time.Second || st.Pending != 1 {
			e.t.Errorf("queue created by Enqueue, then declared with 30s: SLA %s pending %d, want 30s and 1", st.SLA, st.Pending)
		}
	})

	s.test(t, "CompletedAndFailedCounters", func(e *env) {
		e.enqueue(NewTasks("ctr", "t", 4)...)
		got := e.reserveFrom("ctr", 4, longLease)
		if len(got) != 4 {
			e.t.Fatalf("Reserve: got %d tasks, want 4", len(got))
		}
		if err := e.b.Ack(e.ctx, leases(got[:2])); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		if err := e.b.Retry(e.ctx, got[2].Lease, time.Now().Add(time.Hour), "retry me"); err != nil {
			e.t.Fatalf("Retry: %v", err)
		}
		if err := e.b.Kill(e.ctx, got[3].Lease, "kill me"); err != nil {
			e.t.Fatalf("Kill: %v", err)
		}
		st := e.mustStats("ctr")
		if st.Completed == 0 && st.Failed == 0 {
			e.t.Logf("NOTE: %T reports Completed=0 and Failed=0 after 2 acks, a retry and a kill: it keeps no counters (allowed; rates will be unavailable)", e.b)
			return
		}
		if st.Completed != 2 || st.Failed != 2 {
			e.t.Errorf("counters after 2 acks, a retry and a kill: Completed %d Failed %d, want 2 and 2", st.Completed, st.Failed)
		}
		if got := countsOf(st); got != (counts{scheduled: 1, dead: 1}) {
			e.t.Errorf("Stats after 2 acks, a retry and a kill: %v, want scheduled=1 dead=1", got)
		}
	})
}

// wantLatency checks the queue latency and OldestReadyAt of a queue whose oldest pending task
// became ready at oldest. The upper bound is generous: the machine may pause.
func (e *env) wantLatency(queue string, oldest time.Time) {
	e.t.Helper()
	before := time.Now()
	st := e.mustStats(queue)
	after := time.Now()
	wantTime(e.t, "OldestReadyAt of "+queue, st.OldestReadyAt, oldest, timeTolerance)
	low, high := before.Sub(oldest)-5*time.Millisecond, after.Sub(oldest)+1500*time.Millisecond
	if st.Latency < low || st.Latency > high {
		e.t.Errorf("Latency of %q = %s, want now − oldest ReadyAt (between %s and %s)", queue, st.Latency, low, high)
	}
}

// wantNoLatency checks that a queue with no pending task has latency 0 and no OldestReadyAt.
func (e *env) wantNoLatency(queue, what string) {
	e.t.Helper()
	st := e.mustStats(queue)
	if st.Latency != 0 || !st.OldestReadyAt.IsZero() || st.Pending != 0 {
		e.t.Errorf("Stats of %s: Latency %s, OldestReadyAt %s, Pending %d; want 0, zero, 0", what, st.Latency, fmtTime(st.OldestReadyAt), st.Pending)
	}
}
