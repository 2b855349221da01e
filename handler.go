package brisk

import (
	"context"
)

// Handler runs tasks. A nil error acks the task; an error retries it with backoff until its
// attempts are spent, then the task is dead with that error. Errors wrapping ErrSkipRetry
// make it dead at once; a *RetryAfterError sets the delay of the next attempt.
//
// The context is cancelled when the task's timeout passes and when the worker shuts down
// past its grace period; a handler should return promptly then. Delivery is at-least-once:
// a handler may run twice for one task (after a crash), so make it idempotent.
type Handler interface {
	ProcessTask(ctx context.Context, t *Task) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *Task) error

// ProcessTask calls f(ctx, t).
func (f HandlerFunc) ProcessTask(ctx context.Context, t *Task) error { return f(ctx, t) }

// Middleware wraps a handler, for logging, metrics or tracing.
type Middleware func(Handler) Handler

// JSONHandler returns a Handler that decodes each task's JSON payload into a T and calls fn.
// A payload that does not decode makes the task dead at once (retrying cannot help).
func JSONHandler[T any](fn func(ctx context.Context, t *Task, payload T) error) Handler {
	return HandlerFunc(func(ctx context.Context, t *Task) error {
		var v T
		if err := t.DecodePayload(&v); err != nil {
			return SkipRetry(err)
		}
		return fn(ctx, t, v)
	})
}
