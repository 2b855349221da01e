package broker

import "context"

// TxEnqueuer is implemented by brokers that keep tasks in a database the application uses
// too (PostgreSQL), so that a task can be enqueued inside the application's own
// transaction: it becomes visible to workers when that transaction commits, together with
// the data it is about, and never exists if the transaction rolls back.
type TxEnqueuer interface {
	// EnqueueTx does what Enqueue does, inside tx: a transaction that the application
	// began on the broker's database and commits or rolls back itself. The batch is all or
	// nothing within tx, no worker sees a task before tx commits, and workers are woken
	// when it does. The broker documents the types of tx it accepts; any other (or nil) is
	// refused with an error wrapping ErrInvalid, and nothing is done in tx. An ID already
	// stored is refused with ErrDuplicate without storing any task of the batch.
	EnqueueTx(ctx context.Context, tx any, tasks []*Task) error
}
