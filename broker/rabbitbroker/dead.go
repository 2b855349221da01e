package rabbitbroker

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Dead tasks are messages in a dead queue per brisk queue, with their last error and failure
// time in headers. A dead queue has no consumer, so it can be browsed: a browse takes every
// message on a channel of its own (basic.get), acks the ones it deletes or moves and closes
// the channel, which puts the others back in their order. Browses of one queue by one broker
// value take turns; a browse by another process at the same moment sees the queue empty.

// deadVerdict is what a browse does with one dead message.
type deadVerdict int

const (
	keepDead   deadVerdict = iota // leave it
	deleteDead                    // ack it away
	retryDead                     // publish it to the ready queue with a fresh attempt budget, then ack it
)

// browseDead takes every message of q's dead queue, asks judge what to do with each (in
// queue order, oldest failure first), does it, and puts back the rest. It returns how many
// it deleted or moved.
func (b *Broker) browseDead(ctx context.Context, q string, judge func(t *broker.Task) deadVerdict) (int, error) {
	s, err := b.session(ctx)
	if err != nil {
		return 0, err
	}
	if err := b.ensureQueue(ctx, s, q); err != nil {
		return 0, b.unavailable("declaring queue "+q, err)
	}
	b.mu.Lock()
	mu := b.deadMu[q]
	if mu == nil {
		mu = &sync.Mutex{}
		b.deadMu[q] = mu
	}
	b.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	ch, err := s.conn.Channel()
	if err != nil {
		return 0, b.unavailable("opening a channel", err)
	}
	defer ch.Close() // puts back what was not acked
	n, kept := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		d, ok, err := ch.Get(b.n.dead(q), false)
		if err != nil {
			return n, b.unavailable("browsing "+b.n.dead(q), err)
		}
		if !ok {
			return n, b.putBack(ch, q, kept)
		}
		kept++
		dec, err := decode(&d, b.opts.QueueType)
		if err != nil {
			continue // not a task: left in place
		}
		t := dec.task
		t.State, t.Attempt = broker.StateDead, dec.base
		switch judge(t) {
		case deleteDead:
			if err := d.Ack(false); err != nil {
				return n, b.unavailable("deleting a dead task", err)
			}
			n, kept = n+1, kept-1
		case retryDead:
			again := *t
			again.Attempt, again.ReadyAt = 0, time.Now().Round(0)
			msg := publishing(&again, 0)
			if err := b.publish(ctx, s, []outMsg{{key: b.n.ready(q), msg: msg}}); err != nil {
				return n, b.unavailable("retrying a dead task", err)
			}
			if err := d.Ack(false); err != nil {
				return n, b.unavailable("retrying a dead task", err)
			}
			n, kept = n+1, kept-1
		}
	}
}

// putBack returns the kept messages of a browse to the dead queue and waits until the queue
// counts them again, so that a Stats right after the browse sees them.
func (b *Broker) putBack(ch *amqp.Channel, q string, kept int) error {
	if kept == 0 {
		return nil
	}
	if err := ch.Nack(0, true, true); err != nil {
		return b.unavailable("putting back dead tasks", err)
	}
	deadline := time.Now().Add(b.opts.OutageWait)
	for {
		qi, err := ch.QueueDeclarePassive(b.n.dead(q), true, false, false, false, nil)
		if err != nil {
			return b.unavailable("putting back dead tasks", err)
		}
		if qi.Messages >= kept || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// RetryDead moves dead tasks of queue (all, or those of ids) back to its ready queue with a
// fresh attempt budget.
func (b *Broker) RetryDead(ctx context.Context, queue string, ids []string) (int, error) {
	if b.isClosed() {
		return 0, errClosed
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	n, err := b.browseDead(ctx, queue, selectIDs(ids, retryDead))
	if n > 0 {
		b.mu.Lock()
		b.wakeLocked()
		b.mu.Unlock()
	}
	return n, err
}

func selectIDs(ids []string, v deadVerdict) func(t *broker.Task) deadVerdict {
	return func(t *broker.Task) deadVerdict {
		if ids == nil || slices.Contains(ids, t.ID) {
			return v
		}
		return keepDead
	}
}

// Delete removes dead tasks (all, or those of ids), all pending tasks (a purge of the
// ready queue), or all scheduled tasks (a purge of the delay queues). Pending or scheduled
// tasks cannot be deleted by ID: a queue can only be read by taking its messages.
func (b *Broker) Delete(ctx context.Context, queue string, state broker.State, ids []string) (int, error) {
	if b.isClosed() {
		return 0, errClosed
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	switch state {
	case broker.StateDead:
		return b.browseDead(ctx, queue, selectIDs(ids, deleteDead))
	case broker.StateRunning:
		return 0, fmt.Errorf("brisk: rabbitmq: delete of running tasks of queue %q: %w (ack, retry or kill them)", queue, broker.ErrInvalid)
	case broker.StatePending, broker.StateScheduled:
		if ids != nil {
			return 0, fmt.Errorf("brisk: rabbitmq: delete by id of %s tasks of queue %q: %w: rabbitmq (capability DeleteQueued)", state, queue, broker.ErrUnsupported)
		}
		return b.purge(ctx, queue, state)
	default:
		return 0, fmt.Errorf("brisk: rabbitmq: delete: unknown state %q: %w", state, broker.ErrInvalid)
	}
}

// purge deletes every ready message of queue (pending) or every message of its delay
// queues (scheduled).
func (b *Broker) purge(ctx context.Context, queue string, state broker.State) (int, error) {
	s, err := b.session(ctx)
	if err != nil {
		return 0, err
	}
	if err := b.ensureQueue(ctx, s, queue); err != nil {
		return 0, b.unavailable("declaring queue "+queue, err)
	}
	names := []string{b.n.ready(queue)}
	if state == broker.StateScheduled {
		names = b.levelQueues(queue)
	}
	total := 0
	err = s.withOps(func(ch *amqp.Channel) error {
		for _, name := range names {
			n, err := ch.QueuePurge(name, false)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return total, b.unavailable("purging "+queue, err)
	}
	return total, nil
}

// levelQueues names the delay queues of queue that exist.
func (b *Broker) levelQueues(queue string) []string {
	b.mu.Lock()
	levels := uint32(0)
	if info := b.queues[queue]; info != nil {
		levels = info.levels
	}
	b.mu.Unlock()
	var out []string
	for k := 0; k < delayLevels; k++ {
		if levels&(1<<k) != 0 {
			out = append(out, b.n.level(queue, k))
		}
	}
	return out
}

// Tasks lists the dead tasks of a queue (oldest failure first, in queue order), or the
// running tasks this broker value holds. Pending and scheduled tasks cannot be listed: a
// RabbitMQ queue can only be read by taking its messages.
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if err := broker.ValidateList(p); err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	if p.State != broker.StateDead {
		return nil, fmt.Errorf("brisk: rabbitmq: listing %s tasks of queue %q: %w: rabbitmq lists dead tasks only (capability ListAll)", p.State, p.Queue, broker.ErrUnsupported)
	}
	var out []*broker.Task
	skipped := 0
	_, err := b.browseDead(ctx, p.Queue, func(t *broker.Task) deadVerdict {
		if skipped < p.Offset {
			skipped++
		} else if len(out) < limit {
			out = append(out, t)
		}
		return keepDead
	})
	return out, err
}

// Task returns a task this broker value holds (running) or a dead task of a known queue.
// Any other task cannot be looked up by ID on RabbitMQ: the error wraps ErrUnsupported.
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	b.mu.Lock()
	for _, l := range b.leases {
		if l.dec.task.ID == id {
			t := *l.dec.task
			t.State, t.Attempt, t.LeaseUntil = broker.StateRunning, l.dec.attempt(), l.until
			b.mu.Unlock()
			return &t, nil
		}
	}
	var qs []string
	for q, info := range b.queues {
		if info.known {
			qs = append(qs, q)
		}
	}
	b.mu.Unlock()
	sort.Strings(qs)
	var found *broker.Task
	for _, q := range qs {
		_, err := b.browseDead(ctx, q, func(t *broker.Task) deadVerdict {
			if t.ID == id {
				found = t
			}
			return keepDead
		})
		if err != nil {
			return nil, err
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("brisk: rabbitmq: task %q: %w: rabbitmq finds a task by id only while this broker value runs it or when it is dead (capability ListAll)", id, broker.ErrUnsupported)
}
