package brisk

import (
	"errors"
	"fmt"
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
	// ErrDuplicate: a task with that ID is already stored in its queue.
	ErrDuplicate = broker.ErrDuplicate
	// ErrNotFound: no task has that ID.
	ErrNotFound = broker.ErrNotFound
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
)

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
