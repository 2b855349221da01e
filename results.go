package brisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// Results, retention and progress: a handler stores a result (SetResult) and reports its
// progress (ReportProgress) through its context; a task or queue with a retention is kept
// completed with its result, which Client.Result waits for.

// Progress is how far a running task has come, as its handler reported it.
type Progress = brisktype.Progress

// StateCompleted is the state of a completed task kept for a retention.
const StateCompleted = brisktype.StateCompleted

// MaxResult bounds a task's result in bytes (1 MiB).
const MaxResult = broker.MaxResult

// MaxProgressMessage bounds the message of ReportProgress in bytes.
const MaxProgressMessage = brisktype.MaxProgressMessage

// Retain keeps the task for d once it has completed (or been cancelled), with its result
// and last progress, whatever its queue's retention (Client.SetRetention). Only brokers
// that keep results (SQLite) accept it; elsewhere Enqueue fails with an error wrapping
// ErrUnsupported that names the broker.
func Retain(d time.Duration) Option { return func(t *Task) { t.Retention = d } }

// SetRetention sets how long queue keeps its completed and cancelled tasks, with their
// results, from the time they finish: 0 turns it off (completed tasks are removed at once,
// cancelled ones kept until deleted). A task's own retention (Retain) wins over it. It
// applies to tasks that finish afterwards. A broker that cannot keep results gives an
// error wrapping ErrUnsupported.
func (c *Client) SetRetention(ctx context.Context, queue string, d time.Duration) error {
	r, ok := c.b.(broker.Retainer)
	if !ok {
		return fmt.Errorf("brisk: set retention of %s: %w", queue, unsupported(c.b, "keep completed tasks"))
	}
	if err := r.SetRetention(ctx, queue, d); err != nil {
		return wrapf(err, "set retention of %s", queue)
	}
	return nil
}

// ErrDead is wrapped by Client.Result's error for a task that ended dead.
var ErrDead = errors.New("task dead")

// Result waits until the task with id has ended and returns it: completed, with its
// Result, FinishedAt and attempts, and a nil error; dead, with an error wrapping ErrDead
// that carries its last error; cancelled, with an error wrapping ErrCancelled. It reads
// the task now and then (from every 10 ms at first to every second), so it returns soon
// after the end, and it returns ctx's error when ctx ends first. Only a task kept for a
// retention (Retain, Client.SetRetention) can be found completed: one that completed
// without it, or whose retention has ended, is not found (an error wrapping ErrNotFound),
// as is an unknown id. A broker that cannot keep results gives an error wrapping
// ErrUnsupported at once.
func (c *Client) Result(ctx context.Context, id string) (*TaskInfo, error) {
	if _, ok := c.b.(broker.Retainer); !ok {
		return nil, fmt.Errorf("brisk: result of task %s: %w", id, unsupported(c.b, "keep completed tasks and their results"))
	}
	wait := 10 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("brisk: result of task %s: %w", id, context.Cause(ctx))
		case <-timer.C:
		}
		t, err := c.b.Task(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("brisk: result of task %s: %w", id, context.Cause(ctx))
			}
			return nil, wrapf(err, "result of task %s", id)
		}
		switch t.State {
		case StateCompleted:
			return &t.TaskInfo, nil
		case StateDead:
			return &t.TaskInfo, fmt.Errorf("brisk: result of task %s: %w after %d attempts: %s", id, ErrDead, t.Attempt, firstLine(t.LastError))
		case StateCancelled:
			return &t.TaskInfo, fmt.Errorf("brisk: result of task %s: %w", id, ErrCancelled)
		}
		timer.Reset(wait)
		wait = min(wait*3/2, time.Second)
	}
}

// taskRun is what a handler's context carries about its task: where SetResult keeps the
// result until the task is acked, and the lease that ReportProgress is fenced by.
type taskRun struct {
	w     *Worker
	lease broker.Lease

	mu     sync.Mutex
	result []byte
}

type taskRunKey struct{}

func (r *taskRun) takeResult() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

// runOf returns the task run of a handler's context, or an error naming op.
func runOf(ctx context.Context, op string) (*taskRun, error) {
	r, ok := ctx.Value(taskRunKey{}).(*taskRun)
	if !ok {
		return nil, fmt.Errorf("brisk: %s: %w: not called with a handler's context", op, ErrInvalid)
	}
	return r, nil
}

// SetResult stores data as the result of the task whose handler ctx belongs to: it is
// kept with the task when the handler returns nil and the task has a retention (its own,
// Retain, or its queue's), and written with the task's ack (batched with the others).
// A later call replaces it; a failed attempt's result is dropped. data may be at most
// MaxResult bytes. Outside a handler's context, or with a broker that cannot keep results,
// it returns an error (wrapping ErrInvalid, or ErrUnsupported naming the broker).
func SetResult(ctx context.Context, data []byte) error {
	r, err := runOf(ctx, "set result")
	if err != nil {
		return err
	}
	if r.w.retainer == nil {
		return fmt.Errorf("brisk: set result of task %s: %w", r.lease.TaskID, unsupported(r.w.b, "keep results"))
	}
	if len(data) > MaxResult {
		return fmt.Errorf("brisk: set result of task %s: %w: %d bytes, at most %d", r.lease.TaskID, ErrInvalid, len(data), MaxResult)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result = append(make([]byte, 0, len(data)), data...) // never keep the caller's slice
	return nil
}

// SetResultJSON stores v encoded as JSON as the task's result; see SetResult.
func SetResultJSON(ctx context.Context, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("brisk: set result: encode JSON: %w", err)
	}
	return SetResult(ctx, data)
}

// ReportProgress stores how far the task whose handler ctx belongs to has come: pct
// between 0 and 100 and a short message (at most MaxProgressMessage bytes, "" for none).
// Inspectors, the CLI, the HTTP API and the dashboard show it while the task runs, and it
// stays with a completed task that is kept. It writes to the broker at once (one small
// write fenced by the task's lease: ErrLeaseLost when another worker has taken the task),
// so report a few times a second at most. Outside a handler's context, or with a broker
// that cannot store progress, it returns an error (wrapping ErrInvalid, or ErrUnsupported
// naming the broker).
func ReportProgress(ctx context.Context, pct float64, msg string) error {
	r, err := runOf(ctx, "report progress")
	if err != nil {
		return err
	}
	if r.w.progress == nil {
		return fmt.Errorf("brisk: report progress of task %s: %w", r.lease.TaskID, unsupported(r.w.b, "store progress"))
	}
	p := Progress{Percent: pct, Message: msg, At: r.w.clock.Now()}
	if err := r.w.progress.SetProgress(ctx, r.lease, p); err != nil {
		return wrapf(err, "report progress of task %s", r.lease.TaskID)
	}
	return nil
}
