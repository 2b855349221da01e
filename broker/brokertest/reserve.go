package brokertest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testReserve checks Reserve: the fields of a delivery, strict priority across queues,
// per-queue and total limits, and that concurrent consumers in one process never share a
// task.
func (s *suite) testReserve(t *testing.T) {
	s.test(t, "DeliveryFields", func(e *env) {
		want := NewTask("fields", "email.send", []byte(`{"to":"a@example.com"}`))
		want.MaxAttempts = 5
		want.Timeout = 1500 * time.Millisecond
		want.Headers = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tenant": "acme ünïcode", "empty": ""}
		e.enqueue(want)

		before := time.Now()
		got := e.reserve(broker.ReserveParams{Queues: queues("fields"), Limit: 1, Lease: longLease, WorkerID: "w-fields"})
		after := time.Now()
		if len(got) != 1 {
			e.t.Fatalf("Reserve: got %d tasks, want 1", len(got))
		}
		e.wantDelivery(got[0], want, 1, before, after, longLease)
		// Task shows the same reservation.
		stored := e.task(want.ID)
		if stored.State != broker.StateRunning || stored.Attempt != 1 {
			e.t.Errorf("Task after Reserve: State %q Attempt %d, want running and 1", stored.State, stored.Attempt)
		}
		if !maps.Equal(stored.Headers, want.Headers) {
			e.t.Errorf("Task after Reserve: Headers %q, want %q", stored.Headers, want.Headers)
		}
		wantTime(e.t, "Task(…).StartedAt after Reserve", stored.StartedAt, got[0].StartedAt, timeTolerance)
		wantTime(e.t, "Task(…).LeaseUntil after Reserve", stored.LeaseUntil, got[0].LeaseUntil, timeTolerance)
		e.wantCounts("fields", counts{running: 1})
	})

	s.test(t, "EmptyAndUnknownQueue", func(e *env) {
		if got := e.reserveFrom("nothing-here", 5, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from a queue never used returned %d tasks", len(got))
		}
		e.enqueue(NewTask("other", "t", nil))
		if got := e.reserveFrom("mine", 5, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from %q returned %d tasks of another queue", "mine", len(got))
		}
		e.wantCounts("other", counts{pending: 1})
	})

	s.test(t, "StrictPriorityOneAtATime", func(e *env) {
		// The low-priority tasks are older, so only the order of Queues puts high first.
		low := NewTasks("low", "t", 5)
		e.enqueue(low...)
		high := NewTasks("high", "t", 5)
		e.enqueue(high...)
		var got []string
		for range 10 {
			task := e.reserveOne1(broker.ReserveParams{Queues: queues("high", "low"), Limit: 1, Lease: longLease})
			got = append(got, task.Queue+":"+string(task.Payload))
		}
		want := []string{"high:0", "high:1", "high:2", "high:3", "high:4", "low:0", "low:1", "low:2", "low:3", "low:4"}
		if !slices.Equal(got, want) {
			e.t.Errorf("Reserve with Queues [high low], Limit 1, ten times:\n got %q\nwant %q", got, want)
		}
	})

	s.test(t, "StrictPriorityInOneCall", func(e *env) {
		low := NewTasks("low", "t", 5)
		e.enqueue(low...)
		high := NewTasks("high", "t", 5)
		e.enqueue(high...)
		got := e.reserve(broker.ReserveParams{Queues: queues("high", "low"), Limit: 7, Lease: longLease})
		want := append(ids(high), ids(low[:2])...)
		if !sameSet(ids(got), want) {
			e.t.Errorf("Reserve with Queues [high low], Limit 7: got %s, want all 5 of high and the 2 oldest of low", describe(got))
		}
	})

	s.test(t, "QueueMax", func(e *env) {
		a := NewTasks("a", "t", 5)
		b := NewTasks("b", "t", 5)
		e.enqueue(append(slices.Clone(a), b...)...)
		got := e.reserve(broker.ReserveParams{
			Queues: []broker.QueueLimit{{Name: "a", Max: 2}, {Name: "b"}},
			Limit:  5, Lease: longLease,
		})
		want := append(ids(a[:2]), ids(b[:3])...)
		if !sameSet(ids(got), want) {
			e.t.Errorf("Reserve with Queues [a(max 2) b], Limit 5: got %s, want the 2 oldest of a and the 3 oldest of b", describe(got))
		}
		got = e.reserve(broker.ReserveParams{
			Queues: []broker.QueueLimit{{Name: "a", Max: 1}, {Name: "b", Max: 1}},
			Limit:  10, Lease: longLease,
		})
		want = []string{a[2].ID, b[3].ID}
		if !sameSet(ids(got), want) {
			e.t.Errorf("Reserve with Queues [a(max 1) b(max 1)], Limit 10: got %s, want one of each", describe(got))
		}
	})

	s.test(t, "LimitCapsTotal", func(e *env) {
		tasks := NewTasks("cap", "t", 10)
		e.enqueue(tasks...)
		got := e.reserveFrom("cap", 3, longLease)
		if !sameSet(ids(got), ids(tasks[:3])) {
			e.t.Errorf("Reserve with Limit 3 from 10 tasks: got %s, want the 3 oldest", describe(got))
		}
		e.wantCounts("cap", counts{pending: 7, running: 3})
		got = e.reserveFrom("cap", 100, longLease)
		if !sameSet(ids(got), ids(tasks[3:])) {
			e.t.Errorf("Reserve with Limit 100 from 7 tasks: got %s, want all 7", describe(got))
		}
	})

	s.test(t, "ConcurrentConsumers", func(e *env) {
		// Two broker values (as two processes would have) with three goroutines each take
		// tasks a few at a time; every task must be delivered exactly once.
		const n = 150
		tasks := NewTasks("conc", "t", n)
		e.enqueue(tasks...)
		brokers := []broker.Broker{e.b, e.open()}
		var (
			mu   sync.Mutex
			seen = map[string]int{}
			wg   sync.WaitGroup
			errs = make(chan error, 6)
		)
		for i := range 6 {
			b := brokers[i%2]
			wg.Go(func() {
				for {
					got, err := b.Reserve(e.ctx, broker.ReserveParams{Queues: queues("conc"), Limit: 1 + i%3, Lease: longLease, WorkerID: fmt.Sprint("g", i)})
					if err != nil {
						errs <- fmt.Errorf("consumer %d: Reserve: %w", i, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, task := range got {
						seen[task.ID]++
					}
					mu.Unlock()
					if err := b.Ack(e.ctx, leases(got)); err != nil {
						errs <- fmt.Errorf("consumer %d: Ack: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			e.t.Error(err)
		}
		e.wantExactlyOnce(ids(tasks), seen)
		e.wantCounts("conc", counts{})
	})
}

// reserveOne1 reserves with p and fails the test unless exactly one task comes back.
func (e *env) reserveOne1(p broker.ReserveParams) *broker.Task {
	e.t.Helper()
	got := e.reserve(p)
	if len(got) != 1 {
		e.t.Fatalf("Reserve(%s): got %d tasks, want 1", fmtParams(p), len(got))
	}
	return got[0]
}

// wantDelivery checks a task as Reserve returned it against the task as enqueued: the
// stored fields unchanged, and the reservation filled in.
func (e *env) wantDelivery(got, want *broker.Task, attempt int, before, after time.Time, lease time.Duration) {
	e.t.Helper()
	if got.ID != want.ID || got.Queue != want.Queue || got.Type != want.Type {
		e.t.Errorf("delivered id/queue/type = %s/%s/%s, want %s/%s/%s", got.ID, got.Queue, got.Type, want.ID, want.Queue, want.Type)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		e.t.Errorf("delivered payload = %q, want %q", shorten(string(got.Payload)), shorten(string(want.Payload)))
	}
	if !maps.Equal(got.Headers, want.Headers) { // nil and empty are equal
		e.t.Errorf("delivered Headers = %q, want %q", got.Headers, want.Headers)
	}
	if got.MaxAttempts != want.MaxAttempts || got.Timeout != want.Timeout {
		e.t.Errorf("delivered MaxAttempts/Timeout = %d/%s, want %d/%s", got.MaxAttempts, got.Timeout, want.MaxAttempts, want.Timeout)
	}
	if got.State != broker.StateRunning {
		e.t.Errorf("delivered State = %q, want %q", got.State, broker.StateRunning)
	}
	if got.Attempt != attempt {
		e.t.Errorf("delivered Attempt = %d, want %d", got.Attempt, attempt)
	}
	wantTime(e.t, "delivered EnqueuedAt", got.EnqueuedAt, want.EnqueuedAt, timeTolerance)
	if got.StartedAt.Before(before.Add(-timeTolerance)) || got.StartedAt.After(after.Add(timeTolerance)) {
		e.t.Errorf("delivered StartedAt = %s, want during the Reserve call (%s to %s)", fmtTime(got.StartedAt), fmtTime(before), fmtTime(after))
	}
	if got.LeaseUntil.Before(before.Add(lease-timeTolerance)) || got.LeaseUntil.After(after.Add(lease+timeTolerance)) {
		e.t.Errorf("delivered LeaseUntil = %s, want the call's time + %s (%s to %s)", fmtTime(got.LeaseUntil), lease, fmtTime(before.Add(lease)), fmtTime(after.Add(lease)))
	}
	if got.Lease.TaskID != want.ID || got.Lease.Queue != want.Queue || got.Lease.Token == "" {
		e.t.Errorf("delivered Lease = %+v, want TaskID %q, Queue %q and a token", got.Lease, want.ID, want.Queue)
	}
}

// wantExactlyOnce checks that every ID of want was seen once and nothing else was seen.
func (e *env) wantExactlyOnce(want []string, seen map[string]int) {
	e.t.Helper()
	missing, twice := 0, 0
	for _, id := range want {
		switch n := seen[id]; {
		case n == 0:
			if missing++; missing <= 5 {
				e.t.Errorf("task %s was never delivered", id)
			}
		case n > 1:
			if twice++; twice <= 5 {
				e.t.Errorf("task %s was delivered %d times under unexpired leases", id, n)
			}
		}
	}
	if missing+twice > 0 {
		e.t.Errorf("of %d tasks, %d never delivered and %d delivered more than once", len(want), missing, twice)
	}
	known := make(map[string]bool, len(want))
	for _, id := range want {
		known[id] = true
	}
	for id := range seen {
		if !known[id] {
			e.t.Errorf("task %s was delivered but never enqueued", id)
		}
	}
}

// describe names tasks by queue and payload, for messages.
func describe(tasks []*broker.Task) string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.Queue + ":" + string(t.Payload)
	}
	return fmt.Sprintf("%d tasks %q", len(tasks), out)
}
