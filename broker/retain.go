package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/briskq/brisk/brisktype"
)

// StateCompleted is the state of a completed task kept for a retention (brisktype).
const StateCompleted = brisktype.StateCompleted

// Progress is how far a running task has come (brisktype.Progress).
type Progress = brisktype.Progress

// MaxResult bounds a task's result in bytes (1 MiB, as DefaultMaxPayload).
const MaxResult = DefaultMaxPayload

// MaxRetention bounds a retention, of a queue or of a task: 3650 days, as MaxReadyAhead.
const MaxRetention = MaxReadyAhead

// Completion is one finished task for Retainer.Complete: its lease and what its handler
// stored.
type Completion struct {
	Lease Lease
	// Result is kept with the task when it is kept for a retention; nil for none.
	Result []byte
}

// Retainer is implemented by brokers that keep completed tasks with their results for a
// retention window, per task (TaskInfo.Retention, given at Enqueue) or per queue
// (SetRetention), and let a handler report its progress (see ProgressReporter). A broker
// without it refuses a task with a Retention with an error wrapping ErrUnsupported that
// names it (CheckRetention; brisk's client checks before it calls Enqueue), and its Ack
// removes every task.
//
// A kept task is in StateCompleted with FinishedAt, ExpiresAt (FinishedAt + retention),
// its attempts, Result and last Progress: Task finds it, Tasks lists it (oldest FinishedAt
// first), Delete removes it, and Stats counts it in QueueStats.Retained, never in Pending
// nor the queue latency; Reserve never looks at it. A cancelled task with a retention is
// kept until its ExpiresAt too (without one, until deleted). Once ExpiresAt has passed,
// Task and Tasks no longer return the task (Stats may count it until it is removed), and
// the broker removes it in small slices on paths that write anyway, so that no sweep
// holds up workers. Ack of a Retainer is Complete without results.
type Retainer interface {
	// Complete does what Ack does, in one round trip for the whole batch, and keeps each
	// task whose retention (its own, else its queue's) is positive in StateCompleted with
	// its Result; one without a retention is removed as Ack removes it. Leases no longer
	// held are skipped and reported in an error wrapping ErrLeaseLost after the others are
	// completed. A result over MaxResult fails the call with ErrInvalid before anything
	// changes.
	Complete(ctx context.Context, done []Completion) error

	// SetRetention sets how long queue keeps its completed and cancelled tasks from the
	// time they finish (0: completed tasks are removed at once, cancelled ones kept until
	// deleted), creating the queue if needed. It applies to tasks that finish afterwards.
	// A negative or over-MaxRetention d is an error wrapping ErrInvalid.
	SetRetention(ctx context.Context, queue string, d time.Duration) error
}

// ProgressReporter is implemented by brokers that store a running task's progress, so
// that an inspector sees it while the handler runs (TaskInfo.Progress).
type ProgressReporter interface {
	// SetProgress replaces the progress of the task held under l, fenced by the lease: it
	// returns an error wrapping ErrLeaseLost when l is not held, and ErrInvalid for a
	// Percent outside 0–100 (or NaN) or a Message over brisktype.MaxProgressMessage bytes.
	// A zero p.At is stored as now.
	SetProgress(ctx context.Context, l Lease, p Progress) error
}

// ValidateCompletions checks a call of Retainer.Complete.
func ValidateCompletions(done []Completion) error {
	for _, c := range done {
		if len(c.Result) > MaxResult {
			return fmt.Errorf("%w: result of task id=%q is %d bytes, limit %d", ErrInvalid, c.Lease.TaskID, len(c.Result), MaxResult)
		}
	}
	return nil
}

// ValidateRetention checks a retention, of a queue or of a task.
func ValidateRetention(d time.Duration) error {
	if d < 0 || d > MaxRetention {
		return fmt.Errorf("%w: retention %s: must be between 0 and 3650 days", ErrInvalid, d)
	}
	return nil
}

// ValidateProgress checks a progress report.
func ValidateProgress(p Progress) error {
	if math.IsNaN(p.Percent) || p.Percent < 0 || p.Percent > 100 {
		return fmt.Errorf("%w: progress %v%%: must be between 0 and 100", ErrInvalid, p.Percent)
	}
	if len(p.Message) > brisktype.MaxProgressMessage {
		return fmt.Errorf("%w: progress message of %d bytes, at most %d", ErrInvalid, len(p.Message), brisktype.MaxProgressMessage)
	}
	return nil
}

// CheckRetention returns an error wrapping ErrUnsupported, naming the broker, when a task
// of the batch sets a Retention and b is not a Retainer; brokers without the capability
// call it from Enqueue, and the brisk client calls it first.
func CheckRetention(b Broker, tasks []*Task) error {
	if _, ok := b.(Retainer); ok {
		return nil
	}
	for _, t := range tasks {
		if t != nil && t.Retention != 0 {
			return fmt.Errorf("%w: %T cannot keep completed tasks (task type %q, retention %s)", ErrUnsupported, b, t.Type, t.Retention)
		}
	}
	return nil
}

// Leases returns the leases of done, for a broker whose Complete has nothing to keep.
func Leases(done []Completion) []Lease {
	out := make([]Lease, len(done))
	for i, c := range done {
		out[i] = c.Lease
	}
	return out
}
