package broker

import "context"

// Canceler is implemented by brokers that can cancel a task by ID, in any process: a
// pending or scheduled task is never delivered, and a running one's lease is revoked at
// once, so that its worker's later Extend, Ack, Retry, Kill or Release gets ErrLeaseLost.
// A cancelled task is kept in StateCancelled (listed by Tasks, counted by Stats, removed
// by Delete) and never retried.
type Canceler interface {
	// Cancel moves the task with id to StateCancelled and returns the state it was in
	// (pending, scheduled or running). Cancelling a cancelled task does nothing and
	// returns StateCancelled. An unknown id is an error wrapping ErrNotFound; a dead task
	// (it has ended already) one wrapping ErrInvalid. It wakes waiting workers where a
	// queue's concurrency limit frees a slot.
	Cancel(ctx context.Context, id string) (State, error)

	// Revoked reports which of leases are no longer held, and whether each was revoked
	// by Cancel, without changing anything. It is a cheap read that a worker calls often
	// (every 500 ms while it holds tasks) to stop the handlers of cancelled tasks within
	// a second.
	Revoked(ctx context.Context, leases []Lease) ([]Revocation, error)
}

// Revocation is a lease that is no longer held.
type Revocation struct {
	Lease Lease
	// Cancelled is true when the task was cancelled (else it was acked, taken over after
	// its lease expired, or removed).
	Cancelled bool
}
