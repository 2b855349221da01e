package brisk

import (
	"context"
	"fmt"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// Limit caps how fast and how many tasks of a queue, or of one task type within a queue,
// start, across every worker and process (see SetLimit).
type Limit = brisktype.Limit

// SetLimit stores a rate or concurrency limit (or both) in the broker, replacing the one
// of the same queue and type: from then on every worker of every process reserves the
// queue's tasks (of that type) only as the limit allows. Rate N per Per with Burst is a
// token bucket (Burst 0 means N); MaxRunning caps the tasks running at once. A worker never
// waits for a token while another of its queues has work. A zero, negative or
// inconsistent limit is refused with ErrInvalid and nothing is stored. A broker that
// cannot keep limits (it does not implement broker.Limiter) gives ErrUnsupported.
func (i *Inspector) SetLimit(ctx context.Context, l Limit) error {
	lim, err := limiter(i.b, "set limit")
	if err != nil {
		return err
	}
	if err := lim.SetLimit(ctx, l); err != nil {
		return fmt.Errorf("brisk: set limit: %w", err)
	}
	return nil
}

// DeleteLimit removes the limit of queue and typ ("" for the queue's own); an unknown one
// is an error wrapping ErrNotFound.
func (i *Inspector) DeleteLimit(ctx context.Context, queue, typ string) error {
	lim, err := limiter(i.b, "delete limit")
	if err != nil {
		return err
	}
	if err := lim.DeleteLimit(ctx, queue, typ); err != nil {
		return fmt.Errorf("brisk: delete limit: %w", err)
	}
	return nil
}

// Limits lists every limit, by queue and type.
func (i *Inspector) Limits(ctx context.Context) ([]Limit, error) {
	lim, err := limiter(i.b, "limits")
	if err != nil {
		return nil, err
	}
	ls, err := lim.Limits(ctx)
	if err != nil {
		return nil, fmt.Errorf("brisk: limits: %w", err)
	}
	return ls, nil
}

// CanLimit reports whether the broker keeps rate and concurrency limits.
func (i *Inspector) CanLimit() bool {
	_, ok := i.b.(broker.Limiter)
	return ok
}

func limiter(b Broker, op string) (broker.Limiter, error) {
	lim, ok := b.(broker.Limiter)
	if !ok {
		return nil, fmt.Errorf("brisk: %s: %w", op, unsupported(b, "keep rate or concurrency limits"))
	}
	return lim, nil
}
