package rabbitbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/briskq/brisk/broker"
)

// Enqueue publishes each task as one persistent message with a publisher confirm, to its
// queue's ready queue or, when it is not due yet, through the delay levels, and returns once
// RabbitMQ has confirmed all of them. A batch is not atomic: see the package documentation.
func (b *Broker) Enqueue(ctx context.Context, tasks []*broker.Task) error {
	if b.isClosed() {
		return errClosed
	}
	if err := broker.ValidateTasks(tasks, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	if err := broker.CheckRetention(b, tasks); err != nil { // no completed tasks kept here
		return fmt.Errorf("brisk: rabbitmq: enqueue: %w", err)
	}
	for _, t := range tasks {
		if t.Unique.Key != "" {
			return fmt.Errorf("brisk: rabbitmq: task %s has uniqueness key %q: %w: rabbitmq keeps no uniqueness locks (capability Unique)", t.ID, t.Unique.Key, broker.ErrUnsupported)
		}
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	msgs := make([]outMsg, 0, len(tasks))
	for _, t := range tasks {
		if err := b.ensureQueue(ctx, s, t.Queue); err != nil {
			return b.unavailable("declaring queue "+t.Queue, err)
		}
		if err := b.known(ctx, s, t.Queue); err != nil {
			return err
		}
		cp := *t
		cp.EnqueuedAt, cp.ReadyAt = t.EnqueuedAt.Round(0), t.ReadyAt.Round(0)
		cp.LastError, cp.FailedAt = "", time.Time{}
		m, err := b.route(ctx, s, &cp, 0)
		if err != nil {
			return b.unavailable("declaring the delay queues of "+t.Queue, err)
		}
		msgs = append(msgs, m)
	}
	if err := b.publish(ctx, s, msgs); err != nil {
		return b.unavailable(fmt.Sprintf("enqueue of %d task(s)", len(tasks)), err)
	}
	return nil
}
