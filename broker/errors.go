package broker

import "errors"

// Errors a broker returns, wrapped with the identifier that matters and prefixed "brisk:"
// by the wrapping message. Test with errors.Is.
var (
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker is closed")
	// ErrInvalid: a task, queue or parameter is malformed.
	ErrInvalid = errors.New("invalid input")
	// ErrPayloadTooLarge: a payload is over the broker's limit.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrDuplicate: a task ID is already stored.
	ErrDuplicate = errors.New("duplicate task id")
	// ErrNotFound: no task has that ID.
	ErrNotFound = errors.New("task not found")
	// ErrQueueNotFound: no queue has that name (see QueueDeleter).
	ErrQueueNotFound = errors.New("queue not found")
	// ErrQueueNotEmpty: the queue still holds tasks (see QueueDeleter).
	ErrQueueNotEmpty = errors.New("queue not empty")
	// ErrLeaseLost: the lease is no longer held (expired and reserved again, or the task is gone).
	ErrLeaseLost = errors.New("lease lost")
	// ErrUnknownScheme: no broker is registered for a URL's scheme.
	ErrUnknownScheme = errors.New("unknown broker url scheme")
	// ErrUnavailable: the broker's engine cannot be reached or opened.
	ErrUnavailable = errors.New("broker unavailable")
	// ErrUnsupported: the broker does not declare the capability that a call needs (see
	// Capabilities and the optional interfaces); the error names the broker.
	ErrUnsupported = errors.New("not supported by this broker")
)
