package brokertest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testBadInput checks that malformed input gets a clear error wrapping the right sentinel and
// stores nothing, that the limits themselves are accepted, and that a closed broker refuses
// everything with ErrClosed.
func (s *suite) testBadInput(t *testing.T) {
	s.test(t, "PayloadLimit", func(e *env) {
		over := NewTask("big", "t", bytes.Repeat([]byte{'x'}, broker.DefaultMaxPayload+1))
		err := e.b.Enqueue(e.ctx, []*broker.Task{over})
		wantErr(e.t, "Enqueue of a payload one byte over broker.DefaultMaxPayload", err, broker.ErrPayloadTooLarge, over.ID)
		e.wantGone("refused", over.ID)
		e.wantCounts("big", counts{})

		at := NewTask("big", "t", bytes.Repeat([]byte{'y'}, broker.DefaultMaxPayload))
		if err := e.b.Enqueue(e.ctx, []*broker.Task{at}); err != nil {
			e.t.Fatalf("Enqueue of a payload of exactly broker.DefaultMaxPayload bytes: %v", err)
		}
		if got := e.task(at.ID); !bytes.Equal(got.Payload, at.Payload) {
			e.t.Errorf("payload of exactly broker.DefaultMaxPayload bytes came back as %d bytes, not the same", len(got.Payload))
		}
	})

	s.test(t, "QueueNames", func(e *env) {
		for _, name := range []string{"", "has space", strings.Repeat("q", 200), "tab\there", "naïve", "a/b", ".", ".."} {
			task := NewTask(name, "t", nil)
			err := e.b.Enqueue(e.ctx, []*broker.Task{task})
			wantErr(e.t, "Enqueue to queue "+quote(name), err, broker.ErrInvalid, name)
			e.wantGone("refused", task.ID)
			if _, listed := e.stats(name); listed {
				e.t.Errorf("Stats lists the invalid queue %s after a refused Enqueue", quote(name))
			}
			_, err = e.b.Reserve(e.ctx, broker.ReserveParams{Queues: queues(name), Limit: 1, Lease: longLease})
			wantErr(e.t, "Reserve from queue "+quote(name), err, broker.ErrInvalid, name)
			err = e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: name, SLA: time.Second})
			wantErr(e.t, "DeclareQueue of "+quote(name), err, broker.ErrInvalid, name)
		}
		// The error names the offending character as a character, not its first byte.
		wantErr(e.t, "Enqueue to queue café", e.b.Enqueue(e.ctx, []*broker.Task{NewTask("café", "t", nil)}), broker.ErrInvalid, "'é'")
		for _, name := range []string{strings.Repeat("q", 128), "Az09_-.:x", "...", ".x"} {
			if err := e.b.Enqueue(e.ctx, []*broker.Task{NewTask(name, "t", nil)}); err != nil {
				e.t.Errorf("Enqueue to the valid queue %s: %v", quote(name), err)
			}
			e.wantCounts(name, counts{pending: 1})
		}
	})

	s.test(t, "TypeNames", func(e *env) {
		for _, name := range []string{"", "has space", strings.Repeat("t", 200), "bad!"} {
			task := NewTask("types", name, nil)
			err := e.b.Enqueue(e.ctx, []*broker.Task{task})
			wantErr(e.t, "Enqueue of task type "+quote(name), err, broker.ErrInvalid, name)
			e.wantGone("refused", task.ID)
		}
		for _, name := range []string{strings.Repeat("t", 128), "email/send.v2:Az09_-"} {
			task := NewTask("types", name, nil)
			if err := e.b.Enqueue(e.ctx, []*broker.Task{task}); err != nil {
				e.t.Errorf("Enqueue of the valid task type %s: %v", quote(name), err)
			} else if got := e.task(task.ID).Type; got != name {
				e.t.Errorf("task type %s came back as %s", quote(name), quote(got))
			}
		}
	})

	s.test(t, "TaskFields", func(e *env) {
		for _, c := range []struct {
			what  string
			spoil func(*broker.Task)
		}{
			{"MaxAttempts 0", func(t *broker.Task) { t.MaxAttempts = 0 }},
			{"MaxAttempts -1", func(t *broker.Task) { t.MaxAttempts = -1 }},
			{"a negative Timeout", func(t *broker.Task) { t.Timeout = -time.Second }},
			{"a zero ReadyAt", func(t *broker.Task) { t.ReadyAt = time.Time{} }},
			{"a zero EnqueuedAt", func(t *broker.Task) { t.EnqueuedAt = time.Time{} }},
			{"an empty ID", func(t *broker.Task) { t.ID = "" }},
			{"a ReadyAt past MaxReadyAhead", func(t *broker.Task) { t.ReadyAt = t.EnqueuedAt.Add(broker.MaxReadyAhead + time.Second) }},
			{"a 200-byte ID", func(t *broker.Task) { t.ID = strings.Repeat("i", 200) }},
			{"a header name with a space", func(t *broker.Task) { t.Headers = map[string]string{"trace parent": "x"} }},
			{"an empty header name", func(t *broker.Task) { t.Headers = map[string]string{"": "x"} }},
			{"a header value that is not UTF-8", func(t *broker.Task) { t.Headers = map[string]string{"h": "\xff"} }},
			{"headers over MaxHeaderBytes", func(t *broker.Task) { t.Headers = map[string]string{"h": strings.Repeat("v", broker.MaxHeaderBytes)} }},
			{"more than MaxHeaders headers", func(t *broker.Task) {
				t.Headers = map[string]string{}
				for i := range broker.MaxHeaders + 1 {
					t.Headers["h"+itoa(i)] = "v"
				}
			}},
		} {
			task := NewTask("fields", "t", nil)
			c.spoil(task)
			err := e.b.Enqueue(e.ctx, []*broker.Task{task})
			if task.ID != "" && len(task.ID) <= 128 {
				wantErr(e.t, "Enqueue of a task with "+c.what, err, broker.ErrInvalid, task.ID)
			} else {
				wantErr(e.t, "Enqueue of a task with "+c.what, err, broker.ErrInvalid)
			}
		}
		e.wantCounts("fields", counts{})
	})

	s.test(t, "EmptyBatch", func(e *env) {
		wantErr(e.t, "Enqueue(nil)", e.b.Enqueue(e.ctx, nil), broker.ErrInvalid)
		wantErr(e.t, "Enqueue of an empty slice", e.b.Enqueue(e.ctx, []*broker.Task{}), broker.ErrInvalid)
	})

	s.test(t, "UnknownTask", func(e *env) {
		id := NewID()
		_, err := e.b.Task(e.ctx, id)
		wantErr(e.t, "Task of an unknown id", err, broker.ErrNotFound, id)
	})

	s.test(t, "ReserveParams", func(e *env) {
		e.enqueue(NewTask("r", "t", nil))
		for _, c := range []struct {
			what string
			p    broker.ReserveParams
		}{
			{"Limit 0", broker.ReserveParams{Queues: queues("r"), Limit: 0, Lease: longLease}},
			{"Limit -1", broker.ReserveParams{Queues: queues("r"), Limit: -1, Lease: longLease}},
			{"no queues", broker.ReserveParams{Limit: 1, Lease: longLease}},
			{"Lease 0", broker.ReserveParams{Queues: queues("r"), Limit: 1}},
			{"a negative queue Max", broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "r", Max: -1}}, Limit: 1, Lease: longLease}},
		} {
			got, err := e.b.Reserve(e.ctx, c.p)
			wantErr(e.t, "Reserve with "+c.what, err, broker.ErrInvalid)
			if len(got) != 0 {
				e.t.Errorf("Reserve with %s returned %d tasks", c.what, len(got))
			}
		}
		e.wantCounts("r", counts{pending: 1})
	})

	s.test(t, "ListParams", func(e *env) {
		e.enqueue(NewTask("l", "t", nil))
		for _, c := range []struct {
			what string
			p    broker.ListParams
		}{
			{"no queue", broker.ListParams{State: broker.StatePending}},
			{"no state", broker.ListParams{Queue: "l"}},
			{"an unknown state", broker.ListParams{Queue: "l", State: "bogus"}},
			{"an invalid queue name", broker.ListParams{Queue: "has space", State: broker.StatePending}},
		} {
			_, err := e.b.Tasks(e.ctx, c.p)
			wantErr(e.t, "Tasks with "+c.what, err, broker.ErrInvalid)
		}
		_, err := e.b.Delete(e.ctx, "l", "bogus", nil)
		wantErr(e.t, "Delete of an unknown state", err, broker.ErrInvalid)
		e.wantCounts("l", counts{pending: 1})
	})

	s.test(t, "AfterClose", func(e *env) {
		b := e.open()
		task := NewTask("closed", "t", nil)
		if err := b.Enqueue(e.ctx, []*broker.Task{task, NewTask("closed", "t", nil)}); err != nil {
			e.t.Fatalf("Enqueue: %v", err)
		}
		got, err := b.Reserve(e.ctx, broker.ReserveParams{Queues: queues("closed"), Limit: 1, Lease: longLease})
		if err != nil || len(got) != 1 {
			e.t.Fatalf("Reserve = %d tasks, %v; want 1, nil", len(got), err)
		}
		l := got[0].Lease
		if err := b.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			e.t.Errorf("second Close = %v, want nil (Close is idempotent)", err)
		}
		ctx := e.ctx
		calls := []struct {
			name string
			call func() error
		}{
			{"Enqueue", func() error { return b.Enqueue(ctx, []*broker.Task{NewTask("closed", "t", nil)}) }},
			{"Reserve", func() error {
				_, err := b.Reserve(ctx, broker.ReserveParams{Queues: queues("closed"), Limit: 1, Lease: longLease})
				return err
			}},
			{"Extend", func() error { _, err := b.Extend(ctx, []broker.Lease{l}, longLease); return err }},
			{"Ack", func() error { return b.Ack(ctx, []broker.Lease{l}) }},
			{"Retry", func() error { return b.Retry(ctx, l, time.Now(), "x") }},
			{"Kill", func() error { return b.Kill(ctx, l, "x") }},
			{"Release", func() error { return b.Release(ctx, []broker.Lease{l}) }},
			{"Wait", func() error { return e.waitWithin(ctx, b, time.Second, slack, "Wait after Close") }},
			{"DeclareQueue", func() error { return b.DeclareQueue(ctx, broker.QueueConfig{Name: "closed"}) }},
			{"Stats", func() error { _, err := b.Stats(ctx); return err }},
			{"Tasks", func() error {
				_, err := b.Tasks(ctx, broker.ListParams{Queue: "closed", State: broker.StatePending})
				return err
			}},
			{"Task", func() error { _, err := b.Task(ctx, task.ID); return err }},
			{"RetryDead", func() error { _, err := b.RetryDead(ctx, "closed", nil); return err }},
			{"Delete", func() error { _, err := b.Delete(ctx, "closed", broker.StateDead, nil); return err }},
			{"Heartbeat", func() error { return b.Heartbeat(ctx, broker.WorkerInfo{ID: "w", LastSeen: time.Now()}) }},
			{"Deregister", func() error { return b.Deregister(ctx, "w") }},
			{"Workers", func() error { _, err := b.Workers(ctx, time.Time{}); return err }},
		}
		if r, ok := b.(broker.Reaper); ok {
			calls = append(calls, struct {
				name string
				call func() error
			}{"ReleaseWorker", func() error { _, err := r.ReleaseWorker(ctx, "w"); return err }})
		}
		for _, c := range calls {
			err := c.call()
			if !errors.Is(err, broker.ErrClosed) {
				e.t.Errorf("%s after Close = %v, want an error wrapping ErrClosed", c.name, err)
			}
		}
		// The store is intact: tasks stay stored.
		e.wantState(task.ID, broker.StateRunning)
		e.wantCounts("closed", counts{pending: 1, running: 1})
	})
}

// quote quotes a name for messages, shortened when long.
func quote(s string) string {
	return `"` + shorten(s) + `"`
}
