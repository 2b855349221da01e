package brisk

import (
	"context"
	"fmt"

	"github.com/briskq/brisk/broker"
)

// EnqueueTx stores tasks inside tx, a transaction that the application began on the
// broker's own database and commits or rolls back itself, and returns their IDs in order.
// The tasks exist exactly when the data written in tx does: workers see them (and are
// woken) when tx commits, and never if it rolls back; the batch is all or nothing.
//
// The PostgreSQL broker (broker/pgbroker) accepts a pgx.Tx (github.com/jackc/pgx/v5) and
// a *sql.Tx of database/sql; other types are refused with ErrInvalid. A broker without
// transactions of the application's (SQLite, Redis, RabbitMQ) returns an error wrapping
// ErrUnsupported and ErrInvalid, and stores nothing.
func (c *Client) EnqueueTx(ctx context.Context, tx any, tasks ...*Task) ([]string, error) {
	te, ok := c.b.(broker.TxEnqueuer)
	if !ok {
		return nil, fmt.Errorf("brisk: enqueue in a transaction: this broker (%T) cannot enqueue in the application's transaction (PostgreSQL can): %w: %w", c.b, ErrUnsupported, ErrInvalid)
	}
	stored, ids, err := c.toBrokerBatch(ctx, tasks)
	if err != nil {
		return nil, err
	}
	if err := te.EnqueueTx(ctx, tx, stored); err != nil {
		return nil, enqueueError(tasks, err)
	}
	return ids, nil
}
