package brokertest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testEnqueue checks Enqueue: FIFO order, ordering by ReadyAt, all-or-nothing batches,
// duplicates and delayed tasks.
func (s *suite) testEnqueue(t *testing.T) {
	s.test(t, "FIFOOneByOne", func(e *env) {
		e.wantFIFO(NewTasks("fifo", "t", 50), false)
	})
	s.test(t, "FIFOBatch", func(e *env) {
		e.wantFIFO(NewTasks("fifo", "t", 50), true)
	})
	s.test(t, "EqualReadyAtKeepsEnqueueOrder", func(e *env) {
		// All tasks share one ReadyAt and have random IDs, so only the enqueue order can tell
		// them apart. Half are enqueued one by one, then the rest in one batch.
		tasks := NewTasks("same", "t", 30)
		at := time.Now().Add(-time.Second).Round(0)
		for _, task := range tasks {
			task.EnqueuedAt, task.ReadyAt = at, at
		}
		e.enqueueEach(tasks[:15]...)
		e.enqueue(tasks[15:]...)
		e.wantReserveOrder("same", payloads(tasks))
	})
	s.test(t, "OldestReadyAtFirst", func(e *env) {
		// Enqueue order and ReadyAt order disagree: ReadyAt wins.
		e.requires(readyAtOrder, "ReadyAtOrder", "tasks come in the order the engine received them")
		now := time.Now().Round(0)
		tasks := NewTasks("old", "t", 4)
		for i, offset := range []time.Duration{-1 * time.Second, -4 * time.Second, -2 * time.Second, -3 * time.Second} {
			tasks[i].ReadyAt = now.Add(offset)
			tasks[i].EnqueuedAt = tasks[i].ReadyAt
		}
		e.enqueueEach(tasks[0], tasks[1])
		e.enqueue(tasks[2], tasks[3])
		e.wantReserveOrder("old", []string{"1", "3", "2", "0"})
	})
	s.test(t, "CreatesQueue", func(e *env) {
		if _, ok := e.stats("fresh"); ok {
			e.t.Fatal(`Stats lists queue "fresh" of a fresh store`)
		}
		e.enqueue(NewTask("fresh", "t", nil))
		st := e.mustStats("fresh")
		if st.SLA != 0 {
			e.t.Errorf("queue created by Enqueue has SLA %s, want 0", st.SLA)
		}
		if got := countsOf(st); got != (counts{pending: 1}) {
			e.t.Errorf("Stats of %q after one Enqueue: %v, want pending=1", "fresh", got)
		}
	})

	t.Run("BatchAllOrNothing", func(t *testing.T) {
		t.Parallel()
		bad := []struct {
			name   string
			spoil  func(batch []*broker.Task)
			want   []error
			wantIn func(batch []*broker.Task) string // a string the error must contain
		}{
			{"BadQueueName", func(b []*broker.Task) { b[1].Queue = "has space" },
				[]error{broker.ErrInvalid}, func([]*broker.Task) string { return "has space" }},
			{"BadTypeName", func(b []*broker.Task) { b[1].Type = "bad type!" },
				[]error{broker.ErrInvalid}, func([]*broker.Task) string { return "bad type!" }},
			{"OversizedPayload", func(b []*broker.Task) { b[1].Payload = make([]byte, broker.DefaultMaxPayload+1) },
				[]error{broker.ErrPayloadTooLarge}, func(b []*broker.Task) string { return b[1].ID }},
			{"ZeroMaxAttempts", func(b []*broker.Task) { b[1].MaxAttempts = 0 },
				[]error{broker.ErrInvalid}, func(b []*broker.Task) string { return b[1].ID }},
			{"NilTask", func(b []*broker.Task) { b[1] = nil },
				[]error{broker.ErrInvalid}, nil},
			// broker.ValidateTasks reports a duplicate within a batch as ErrDuplicate; a broker
			// that calls it ErrInvalid is not wrong either.
			{"DuplicateIDInBatch", func(b []*broker.Task) { b[2].ID = b[0].ID },
				[]error{broker.ErrDuplicate, broker.ErrInvalid}, func(b []*broker.Task) string { return b[0].ID }},
		}
		for _, c := range bad {
			s.test(t, c.name, func(e *env) {
				batch := NewTasks("batch", "t", 3)
				good := []string{batch[0].ID, batch[2].ID}
				c.spoil(batch)
				err := e.b.Enqueue(e.ctx, batch)
				wantEither(e.t, "Enqueue of a batch with one bad task", err, c.want...)
				if c.wantIn != nil && err != nil {
					wantMention(e.t, "Enqueue of a batch with one bad task", err, c.wantIn(batch))
				}
				e.wantCounts("batch", counts{})
				e.wantGone("after a refused batch", good...)
			})
		}
		s.test(t, "IDAlreadyStored", func(e *env) {
			e.requires(uniqueIDs, "UniqueIDs", "a task enqueued again with a stored ID is stored twice and runs twice")
			old := NewTask("batch", "t", []byte("original"))
			e.enqueue(old)
			batch := NewTasks("batch", "t", 3)
			batch[1].ID = old.ID
			batch[1].Payload = []byte("impostor")
			err := e.b.Enqueue(e.ctx, batch)
			wantErr(e.t, "Enqueue of a batch holding a stored ID", err, broker.ErrDuplicate, old.ID)
			e.wantCounts("batch", counts{pending: 1})
			e.wantGone("after a refused batch", batch[0].ID, batch[2].ID)
			again := *old
			again.Payload = []byte("impostor")
			err = e.b.Enqueue(e.ctx, []*broker.Task{&again})
			wantErr(e.t, "Enqueue of one task with a stored ID", err, broker.ErrDuplicate, old.ID)
			if got := e.task(old.ID); !bytes.Equal(got.Payload, old.Payload) {
				e.t.Errorf("stored task's payload became %q after a refused duplicate, want %q", got.Payload, old.Payload)
			}
		})
	})

	s.test(t, "Delayed", func(e *env) {
		early := NewTask("delay", "t", []byte("delayed"))
		early.ReadyAt = early.EnqueuedAt.Add(shortDelay)
		e.enqueue(early)

		st, ok := e.stats("delay")
		var task *broker.Task
		if e.can(listAll, "ListAll", "Task of a delayed task shows it scheduled with its ReadyAt") {
			task = e.task(early.ID)
		}
		inTime := time.Now().Before(early.ReadyAt)
		if inTime {
			if !ok || countsOf(st) != (counts{scheduled: 1}) {
				e.t.Errorf("Stats of a queue with one delayed task: %v, want scheduled=1", countsOf(st))
			}
			if st.Latency != 0 || !st.OldestReadyAt.IsZero() {
				e.t.Errorf("Stats of a queue with only a delayed task: Latency %s, OldestReadyAt %s; want 0 and zero", st.Latency, fmtTime(st.OldestReadyAt))
			}
			if task != nil && task.State != broker.StateScheduled {
				e.t.Errorf("delayed task has State %q before its ReadyAt, want %q", task.State, broker.StateScheduled)
			}
		}
		if task != nil {
			wantTime(e.t, "delayed task's ReadyAt", task.ReadyAt, early.ReadyAt, timeTolerance)
		}

		got := e.reserveFrom("delay", 10, longLease)
		if time.Now().Before(early.ReadyAt) && len(got) > 0 {
			e.t.Fatalf("Reserve returned a task %s before its ReadyAt %s", fmtTask(got[0]), fmtTime(early.ReadyAt))
		}
		if !inTime || len(got) > 0 {
			e.t.Skipf("this machine took longer than the %s delay to check the scheduled state; the rest of the test cannot tell", shortDelay)
		}

		reserved, _ := e.reserveEventually("delay", longLease, "delayed task after its ReadyAt")
		if reserved.ID != early.ID {
			e.t.Fatalf("reserved %s, want the delayed task %s", reserved.ID, early.ID)
		}
		if reserved.StartedAt.Before(early.ReadyAt.Add(-timeTolerance)) {
			e.t.Errorf("delayed task reserved with StartedAt %s before its ReadyAt %s", fmtTime(reserved.StartedAt), fmtTime(early.ReadyAt))
		}
		if reserved.Attempt != 1 {
			e.t.Errorf("delayed task's first delivery has Attempt %d, want 1", reserved.Attempt)
		}
		wantTime(e.t, "delayed task's ReadyAt as delivered", reserved.ReadyAt, early.ReadyAt, timeTolerance)
	})
}

// wantFIFO enqueues tasks (one call each, or in one batch) and checks that Reserve with
// Limit 1 returns them in the same order.
func (e *env) wantFIFO(tasks []*broker.Task, batch bool) {
	e.t.Helper()
	if batch {
		e.enqueue(tasks...)
	} else {
		e.enqueueEach(tasks...)
	}
	e.wantReserveOrder(tasks[0].Queue, payloads(tasks))
}

// wantReserveOrder reserves one task at a time from queue and checks that the payloads come
// in the order given, and that nothing is left after them.
func (e *env) wantReserveOrder(queue string, want []string) {
	e.t.Helper()
	var got []string
	for range want {
		got = append(got, string(e.reserveOne(queue, longLease).Payload))
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("order of Reserve with Limit 1 from %q:\n got %q\nwant %q", queue, got, want)
	}
	if rest := e.reserveFrom(queue, 10, longLease); len(rest) != 0 {
		e.t.Errorf("Reserve after taking all %d tasks returned %d more", len(want), len(rest))
	}
}
