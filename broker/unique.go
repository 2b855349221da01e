package broker

import (
	"fmt"
	"time"
)

// Unique is a task's uniqueness lock: while a task of a queue holds Key (from its enqueue
// until Until), Enqueue refuses any other task of that queue with the same Key, with a
// *DuplicateError that names the holder. The check and the lock are atomic with the
// enqueue, in every process on the store.
//
// The lock lasts until Until whatever happens to the task meanwhile (done, dead,
// cancelled or deleted): a key is "one task per window", which is what makes a periodic
// tick enqueued twice by two leaders one task. Keys are unique within a queue (a Redis
// queue's keys live in its Cluster slot), so the same key in two queues locks twice.
type Unique struct {
	// Key is the uniqueness key (1–256 bytes, any bytes); "" means no lock.
	Key string
	// Until is when the lock ends; it must be after the task's EnqueuedAt.
	Until time.Time
}

// maxUniqueKeyLen bounds a uniqueness key.
const maxUniqueKeyLen = 256

// DuplicateError is the error of an Enqueue refused because a task of the batch has an ID,
// or a uniqueness key, that its queue already holds. It wraps ErrDuplicate.
type DuplicateError struct {
	// Queue of the refused task.
	Queue string
	// ID is the ID of the task stored earlier that holds the key (or the refused ID).
	ID string
	// Key is the uniqueness key that was held; "" for a duplicate ID.
	Key string
}

func (e *DuplicateError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: queue=%q id=%q", ErrDuplicate, e.Queue, e.ID)
	}
	return fmt.Sprintf("%s: queue=%q unique key %q is held by task id=%q", ErrDuplicate, e.Queue, e.Key, e.ID)
}

// Unwrap makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// validateUnique checks the uniqueness lock of task i.
func validateUnique(t *Task) error {
	if t.Unique.Key == "" {
		if !t.Unique.Until.IsZero() {
			return fmt.Errorf("%w: task id=%q: a unique window without a unique key", ErrInvalid, t.ID)
		}
		return nil
	}
	if len(t.Unique.Key) > maxUniqueKeyLen {
		return fmt.Errorf("%w: task id=%q: unique key of %d bytes, at most %d", ErrInvalid, t.ID, len(t.Unique.Key), maxUniqueKeyLen)
	}
	if !t.Unique.Until.After(t.EnqueuedAt) {
		return fmt.Errorf("%w: task id=%q: unique window must end after the enqueue (a window of at least 1ms)", ErrInvalid, t.ID)
	}
	return nil
}

// CheckUnique returns an error wrapping ErrUnsupported, naming the broker, when a task of
// the batch carries a uniqueness key and b does not declare Capabilities.Unique; brokers
// without the capability call it from Enqueue, and the brisk client calls it first.
func CheckUnique(b Broker, tasks []*Task) error {
	if b.Capabilities().Unique {
		return nil
	}
	for _, t := range tasks {
		if t != nil && t.Unique.Key != "" {
			return fmt.Errorf("%w: %T cannot keep unique tasks (task type %q, unique key %q)", ErrUnsupported, b, t.Type, t.Unique.Key)
		}
	}
	return nil
}
