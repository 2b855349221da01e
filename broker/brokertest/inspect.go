package brokertest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// testInspect checks the read side used by dashboards and the CLI: Task returns every field
// as stored, Tasks lists one queue's tasks of one state in order, with paging, and two
// stores that the harness made apart (two files, two key prefixes) see nothing of each other.
func (s *suite) testInspect(t *testing.T) {
	s.test(t, "StoresAreIsolated", func(e *env) {
		other := s.newEnv(e.t)
		task := NewTask("iso", "t", nil)
		e.enqueue(task)
		if _, err := other.b.Task(e.ctx, task.ID); !errors.Is(err, broker.ErrNotFound) {
			e.t.Errorf("a task of one store is visible in another: %v", err)
		}
		if st, err := other.b.Stats(e.ctx); err != nil || len(st) != 0 {
			e.t.Errorf("Stats of an empty store = %v, %v; want none", st, err)
		}
	})
	s.test(t, "TaskFields", func(e *env) {
		payload := make([]byte, 0, 260)
		for i := range 256 {
			payload = append(payload, byte(i))
		}
		payload = append(payload, 0xff, 0xfe, 0x00, 0xc3) // not UTF-8, with a NUL
		now := time.Now().Round(0)
		want := &broker.Task{
			TaskInfo: brisktype.TaskInfo{
				ID:          NewID(),
				Queue:       "inspect",
				Type:        "report/build.v2",
				Payload:     payload,
				MaxAttempts: 7,
				Timeout:     1500 * time.Millisecond,
				EnqueuedAt:  now.Add(-3 * time.Second),
				ReadyAt:     now.Add(-time.Second),
			},
		}
		e.enqueue(want)
		got := e.task(want.ID)
		e.wantStored(got, want, broker.StatePending)
		if got.Attempt != 0 || !got.StartedAt.IsZero() || !got.LeaseUntil.IsZero() || got.LastError != "" || !got.FailedAt.IsZero() {
			e.t.Errorf("fresh task: Attempt %d StartedAt %s LeaseUntil %s LastError %q FailedAt %s; want 0, zero, zero, none, zero",
				got.Attempt, fmtTime(got.StartedAt), fmtTime(got.LeaseUntil), got.LastError, fmtTime(got.FailedAt))
		}
		listed, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "inspect", State: broker.StatePending})
		if err != nil {
			e.t.Fatalf("Tasks: %v", err)
		}
		if len(listed) != 1 {
			e.t.Fatalf("Tasks of a queue with one pending task: got %d", len(listed))
		}
		e.wantStored(listed[0], want, broker.StatePending)
	})

	s.test(t, "LargeAndEmptyPayloads", func(e *env) {
		large := make([]byte, 1<<20)
		_, _ = rand.Read(large)
		big := NewTask("payloads", "t", large)
		empty := NewTask("payloads", "t", nil)
		e.enqueue(big, empty)
		if got := e.task(big.ID); !bytes.Equal(got.Payload, large) {
			e.t.Errorf("1 MiB random payload came back as %d bytes, not the same", len(got.Payload))
		}
		if got := e.task(empty.ID); len(got.Payload) != 0 {
			e.t.Errorf("empty payload came back as %d bytes", len(got.Payload))
		}
		got := e.reserveFrom("payloads", 2, longLease)
		for _, task := range got {
			switch task.ID {
			case big.ID:
				if !bytes.Equal(task.Payload, large) {
					e.t.Errorf("1 MiB random payload delivered by Reserve as %d bytes, not the same", len(task.Payload))
				}
			case empty.ID:
				if len(task.Payload) != 0 {
					e.t.Errorf("empty payload delivered by Reserve as %d bytes", len(task.Payload))
				}
			}
		}
	})

	s.test(t, "TasksByQueueAndState", func(e *env) {
		e.makeDead("ls", 2)
		now := time.Now().Round(0)
		running := NewTask("ls", "t", []byte("running"))
		running.EnqueuedAt, running.ReadyAt = now.Add(-time.Hour), now.Add(-time.Hour)
		e.enqueue(running)
		e.reserveOne("ls", longLease)
		// Pending tasks enqueued out of ReadyAt order; two share a ReadyAt and keep enqueue order.
		var pending []*broker.Task
		for i, offset := range []time.Duration{-3, -5, -1, -4, -4} {
			task := NewTask("ls", "t", []byte("p"+itoa(i)))
			task.EnqueuedAt, task.ReadyAt = now.Add(offset*time.Second), now.Add(offset*time.Second)
			pending = append(pending, task)
		}
		var scheduled []*broker.Task
		for i, offset := range []time.Duration{2, 1} {
			task := NewTask("ls", "t", []byte("s"+itoa(i)))
			task.ReadyAt = now.Add(offset * time.Hour)
			scheduled = append(scheduled, task)
		}
		e.enqueue(pending...)
		e.enqueue(scheduled...)
		e.enqueue(NewTasks("elsewhere", "t", 3)...)

		e.wantList("ls", broker.StatePending, []string{"p1", "p3", "p4", "p0", "p2"})
		e.wantList("ls", broker.StateScheduled, []string{"s1", "s0"})
		e.wantList("ls", broker.StateRunning, []string{"running"})
		dead := e.wantList("ls", broker.StateDead, []string{"0", "1"})
		for _, task := range dead {
			if task.LastError == "" || task.FailedAt.IsZero() {
				e.t.Errorf("dead task listed without LastError or FailedAt: %q %s", task.LastError, fmtTime(task.FailedAt))
			}
		}
		e.wantList("nothing", broker.StatePending, nil)
	})

	s.test(t, "TasksPaging", func(e *env) {
		e.requires(func(c broker.Capabilities) bool { return c.ListAll }, "ListAll", "it lists what its documentation says, without offsets")
		tasks := NewTasks("page", "t", 120)
		e.enqueue(tasks...)
		all := payloads(tasks)
		list := func(limit, offset int) []string {
			e.t.Helper()
			got, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: "page", State: broker.StatePending, Limit: limit, Offset: offset})
			if err != nil {
				e.t.Fatalf("Tasks(limit %d, offset %d): %v", limit, offset, err)
			}
			return payloads(got)
		}
		if got := list(0, 0); !slices.Equal(got, all[:100]) {
			e.t.Errorf("Tasks with no Limit: got %d tasks %q…, want the first 100 (the default page)", len(got), got[:min(len(got), 5)])
		}
		var pages []string
		for offset := 0; offset < 120; offset += 25 {
			pages = append(pages, list(25, offset)...)
		}
		if !slices.Equal(pages, all) {
			e.t.Errorf("pages of 25 joined:\n got %q\nwant %q", pages, all)
		}
		if got := list(7, 115); !slices.Equal(got, all[115:]) {
			e.t.Errorf("Tasks(limit 7, offset 115) = %q, want the last 5", got)
		}
		if got := list(10, 120); len(got) != 0 {
			e.t.Errorf("Tasks past the end = %q, want none", got)
		}
	})
}

// wantStored checks a stored task's fields against the task as enqueued.
func (e *env) wantStored(got, want *broker.Task, state broker.State) {
	e.t.Helper()
	if got.ID != want.ID || got.Queue != want.Queue || got.Type != want.Type || got.State != state {
		e.t.Errorf("stored id/queue/type/state = %s/%s/%s/%s, want %s/%s/%s/%s",
			got.ID, got.Queue, got.Type, got.State, want.ID, want.Queue, want.Type, state)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		e.t.Errorf("stored payload = %x, want %x", got.Payload, want.Payload)
	}
	if got.MaxAttempts != want.MaxAttempts || got.Timeout != want.Timeout {
		e.t.Errorf("stored MaxAttempts/Timeout = %d/%s, want %d/%s", got.MaxAttempts, got.Timeout, want.MaxAttempts, want.Timeout)
	}
	wantTime(e.t, "stored EnqueuedAt", got.EnqueuedAt, want.EnqueuedAt, timeTolerance)
	wantTime(e.t, "stored ReadyAt", got.ReadyAt, want.ReadyAt, timeTolerance)
}

// wantList lists a queue's tasks in one state and checks their payloads, in order, and
// states.
func (e *env) wantList(queue string, state broker.State, want []string) []*broker.Task {
	e.t.Helper()
	got, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: queue, State: state})
	if err != nil {
		e.t.Fatalf("Tasks(%s, %s): %v", queue, state, err)
	}
	if p := payloads(got); !slices.Equal(p, want) && len(p)+len(want) > 0 {
		e.t.Errorf("Tasks(%s, %s) payloads = %q, want %q (oldest ReadyAt first)", queue, state, p, want)
	}
	for _, task := range got {
		if task.State != state || task.Queue != queue {
			e.t.Errorf("Tasks(%s, %s) lists a task with queue %s and state %s", queue, state, task.Queue, task.State)
		}
	}
	return got
}
