package brisk

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Hooks are told about points of tasks' lives: a Client calls Enqueue, a Worker calls Start
// and Finish. Nil fields are skipped. Hooks observe; they do not change what happens, with
// one exception: an Enqueue hook may refuse the enqueue, or set the task's headers (to carry
// trace context, a tenant or a request ID to the handler).
//
// Middleware (Worker.Use) is the way to change how a handler runs: wrap it, give it another
// context, turn its error into another. Hooks are the way to learn what became of a task,
// which middleware cannot see: whether a failure is retried or the task is dead, and tasks
// that a worker gave back without an outcome.
//
// Hooks run on the goroutine of the event and should return quickly; a hook that panics is
// recovered and logged (and, for Enqueue, refuses the enqueue with the panic as the error).
type Hooks struct {
	// Enqueue is called by Client.Enqueue and EnqueueBatch for each task before anything is
	// stored, with the task as it will be stored (a copy: the caller's task is not
	// changed), so that it may set t.Headers. An error refuses the whole call.
	Enqueue func(ctx context.Context, t *Task) error
	// Start is called when a worker is about to run a task's handler.
	Start func(ctx context.Context, t *Task)
	// Finish is called once for every Start, when the handler has returned (or been given
	// up), with what became of the task. One task's Finish calls come in the order of its
	// attempts: a retry's Finish returns before the retry is stored, so the next attempt
	// cannot start (or finish) before it.
	Finish func(ctx context.Context, t *Task, o Outcome)
}

// OutcomeKind says what became of a task after one run of its handler.
type OutcomeKind string

// The outcomes of one run.
const (
	// OutcomeDone: the handler returned nil; the task is acked (removed, counted done).
	OutcomeDone OutcomeKind = "done"
	// OutcomeRetry: the handler failed and the task runs again at Outcome.NextAttempt.
	OutcomeRetry OutcomeKind = "retried"
	// OutcomeDead: the handler failed for the last time (attempts spent, or the error
	// wraps ErrSkipRetry); the task is kept dead.
	OutcomeDead OutcomeKind = "dead"
	// OutcomeReleased: the worker gave the task back without an outcome: another worker
	// holds it now (the lease was lost), or the worker shut down before the handler
	// finished, and the task runs again elsewhere; or the task was cancelled while it ran
	// (Inspector.CancelTask), and it is kept cancelled.
	OutcomeReleased OutcomeKind = "released"
)

// Outcome is what became of a task after one run of its handler.
type Outcome struct {
	Kind OutcomeKind
	// Err is the handler's error (nil when done).
	Err error
	// Elapsed is how long the handler ran.
	Elapsed time.Duration
	// NextAttempt is when a retried task is ready again (zero otherwise).
	NextAttempt time.Time
}

// hookList is a set of Hooks called in the order added.
type hookList []Hooks

// enqueue calls every Enqueue hook on t; the first error (or panic) stops.
func (hs hookList) enqueue(ctx context.Context, t *Task) (err error) {
	for _, h := range hs {
		if h.Enqueue == nil {
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%w: enqueue hook panicked: %v", ErrInvalid, r)
				}
			}()
			err = h.Enqueue(ctx, t)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// start calls every Start hook, recovering and logging panics.
func (hs hookList) start(ctx context.Context, log *slog.Logger, t *Task) {
	for _, h := range hs {
		if h.Start != nil {
			safeHook(ctx, log, "start", t, func() { h.Start(ctx, t) })
		}
	}
}

// finish calls every Finish hook, recovering and logging panics.
func (hs hookList) finish(ctx context.Context, log *slog.Logger, t *Task, o Outcome) {
	for _, h := range hs {
		if h.Finish != nil {
			safeHook(ctx, log, "finish", t, func() { h.Finish(ctx, t, o) })
		}
	}
}

func safeHook(ctx context.Context, log *slog.Logger, name string, t *Task, f func()) {
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "hook panicked", "hook", name, "task", t.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	f()
}
