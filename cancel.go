package brisk

import (
	"context"
	"fmt"

	"github.com/briskq/brisk/broker"
)

// CancelTask cancels the task with id, wherever it is: a pending or scheduled task is
// never run, and a running one's handler has its context cancelled (cause ErrCancelled)
// within a second, in whatever process runs it; its outcome is then ignored. The task is
// kept in state cancelled (listed, counted, deletable) and never retried. It returns the
// state the task was in. An unknown id is an error wrapping ErrNotFound, a dead task one
// wrapping ErrInvalid; cancelling a cancelled task is fine. A broker that cannot cancel
// tasks (it does not implement broker.Canceler) gives an error wrapping ErrUnsupported.
func (i *Inspector) CancelTask(ctx context.Context, id string) (State, error) {
	return cancelTask(ctx, i.b, id)
}

// Cancel cancels the task with id; see Inspector.CancelTask.
func (c *Client) Cancel(ctx context.Context, id string) (State, error) {
	return cancelTask(ctx, c.b, id)
}

// CanCancel reports whether the broker can cancel tasks (CancelTask works).
func (i *Inspector) CanCancel() bool {
	_, ok := i.b.(broker.Canceler)
	return ok
}

func cancelTask(ctx context.Context, b Broker, id string) (State, error) {
	c, ok := b.(broker.Canceler)
	if !ok {
		return "", fmt.Errorf("brisk: cancel task %s: %w", id, unsupported(b, "cancel tasks"))
	}
	st, err := c.Cancel(ctx, id)
	if err != nil {
		return "", fmt.Errorf("brisk: cancel task %s: %w", id, err)
	}
	return st, nil
}

// unsupported is the error of a call that needs a capability b lacks: it wraps
// ErrUnsupported and ErrInvalid, and names the broker and what it cannot do.
func unsupported(b Broker, what string) error {
	return fmt.Errorf("this broker (%T) cannot %s: %w: %w", b, what, ErrUnsupported, ErrInvalid)
}
