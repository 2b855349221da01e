package brisk

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/briskq/brisk/broker"
)

// Errors returned by brisk and its brokers. Test with errors.Is.
var (
	// ErrClosed: the broker was closed.
	ErrClosed = broker.ErrClosed
	// ErrInvalid: a task, queue, option or URL is malformed.
	ErrInvalid = broker.ErrInvalid
	// ErrPayloadTooLarge: a payload is over the broker's limit (1 MiB by default).
	ErrPayloadTooLarge = broker.ErrPayloadTooLarge
	// ErrDuplicate: a task with that ID, or a unique task with that key within its window,
	// is already stored in its queue. The error is a *DuplicateError that names the task.
	ErrDuplicate = broker.ErrDuplicate
	// ErrNotFound: no task has that ID.
	ErrNotFound = broker.ErrNotFound
	// ErrQueueNotFound: no queue has that name (Inspector.DeleteQueue).
	ErrQueueNotFound = broker.ErrQueueNotFound
	// ErrQueueNotEmpty: the queue still holds tasks (Inspector.DeleteQueue).
	ErrQueueNotEmpty = broker.ErrQueueNotEmpty
	// ErrUnknownScheme: no broker is registered for the URL's scheme.
	ErrUnknownScheme = broker.ErrUnknownScheme
	// ErrUnavailable: the broker cannot be reached or opened.
	ErrUnavailable = broker.ErrUnavailable

	// ErrUnsupported: the broker lacks an optional capability (such as pausing queues).
	// Such errors also wrap ErrInvalid: the request cannot be served by this broker.
	ErrUnsupported = broker.ErrUnsupported

	// ErrSkipRetry, returned by a handler (wrapped or as is), makes the task dead at once
	// instead of retrying it.
	ErrSkipRetry = errors.New("skip retry")
	// ErrNoHandler is wrapped by the error of a task whose type has no handler in the
	// worker that received it. The task is retried (another worker may know the type) and
	// ends dead with reason "no handler for type X".
	ErrNoHandler = errors.New("no handler")
	// ErrPanic is wrapped by the error of a handler that panicked; the message carries the
	// panic value and the stack.
	ErrPanic = errors.New("handler panicked")
	// ErrCancelled is the cause (context.Cause) of a handler's context when its task was
	// cancelled while it ran; the task is cancelled in the broker and the handler's outcome
	// is ignored.
	ErrCancelled = errors.New("task cancelled")
	// ErrLeaseLost is the cause of a handler's context when its task was taken over by
	// another worker (its lease expired); the handler's outcome is ignored.
	ErrLeaseLost = broker.ErrLeaseLost
)

// DuplicateError is the error of an enqueue refused because its queue holds a task of
// that ID, or a unique task of that key within its window: ID names that task.
type DuplicateError = broker.DuplicateError

// SkipRetry wraps err so that the task is dead at once instead of retried.
func SkipRetry(err error) error {
	if err == nil {
		return ErrSkipRetry
	}
	return fmt.Errorf("%w: %w", ErrSkipRetry, err)
}

// RetryAfterError asks for the next attempt after a given delay instead of the backoff.
// It still counts as a failed attempt.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

// RetryAfter wraps err so that the next attempt is made after d (not the backoff).
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{Delay: d, Err: err} }

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.Delay)
	}
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// wrapped is an error of the library with the context of the call that failed. Its message
// is "brisk: ", the context, and the cause without a "brisk: " of its own, so that an error
// that passes through several layers (the client, the broker) reads with one prefix.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }

func (w *wrapped) Unwrap() error { return w.err }

// wrapf returns err with the context format (a lower-case phrase such as "enqueue x").
func wrapf(err error, format string, args ...any) error {
	return &wrapped{msg: "brisk: " + fmt.Sprintf(format, args...) + ": " + strings.TrimPrefix(err.Error(), "brisk: "), err: err}
}
