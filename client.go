package brisk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// Client enqueues tasks. It is safe for concurrent use.
type Client struct {
	b     Broker
	mu    sync.RWMutex
	hooks hookList
}

// NewClient returns a client that enqueues into broker b.
func NewClient(b Broker) *Client { return &Client{b: b} }

// Broker returns the client's broker.
func (c *Client) Broker() Broker { return c.b }

// AddHooks adds hooks whose Enqueue is called for every task the client enqueues, in the
// order added (see Hooks; Start and Finish are a worker's).
func (c *Client) AddHooks(h Hooks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks = append(c.hooks, h)
}

// Enqueue stores one task, with opts applied on top of the task's own options, and returns
// its ID. The task itself is not modified. A unique task (see Unique) whose key is held, or
// a task whose ID its queue holds, is not stored: Enqueue returns the ID of the task that
// holds it and an error wrapping ErrDuplicate (a *DuplicateError).
func (c *Client) Enqueue(ctx context.Context, t *Task, opts ...Option) (string, error) {
	if t == nil {
		return "", fmt.Errorf("%w: nil task", ErrInvalid)
	}
	if len(opts) > 0 {
		cp := *t
		for _, o := range opts {
			o(&cp)
		}
		t = &cp
	}
	ids, err := c.EnqueueBatch(ctx, []*Task{t})
	if err != nil {
		var dup *DuplicateError
		if errors.As(err, &dup) {
			return dup.ID, err
		}
		return "", err
	}
	return ids[0], nil
}

// EnqueueBatch stores tasks atomically, in one round trip or transaction: all of them, or
// none with an error. It returns their IDs in order.
func (c *Client) EnqueueBatch(ctx context.Context, tasks []*Task) ([]string, error) {
	stored, ids, err := c.toBrokerBatch(ctx, tasks)
	if err != nil {
		return nil, err
	}
	if err := c.b.Enqueue(ctx, stored); err != nil {
		return nil, enqueueError(tasks, err)
	}
	return ids, nil
}

// toBrokerBatch runs the hooks on a batch and converts it for the broker; it returns the
// tasks' IDs in order.
func (c *Client) toBrokerBatch(ctx context.Context, tasks []*Task) ([]*broker.Task, []string, error) {
	if len(tasks) == 0 {
		return nil, nil, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	now := time.Now()
	stored := make([]*broker.Task, len(tasks))
	ids := make([]string, len(tasks))
	c.mu.RLock()
	hooks := c.hooks
	c.mu.RUnlock()
	for i, t := range tasks {
		if t == nil {
			return nil, nil, fmt.Errorf("%w: task %d of the batch is nil", ErrInvalid, i)
		}
		if len(hooks) > 0 {
			cp := *t
			cp.Headers = maps.Clone(t.Headers) // a hook may set headers: not in the caller's map
			if cp.ID == "" {
				cp.ID = newID() // the hooks see the ID the task will have
			}
			if err := hooks.enqueue(ctx, &cp); err != nil {
				return nil, nil, fmt.Errorf("brisk: enqueue %s: %w", t.Type, err)
			}
			t = &cp
		}
		bt, err := toBroker(t, now)
		if err != nil {
			return nil, nil, wrapf(err, "enqueue %s", t.Type)
		}
		stored[i] = bt
		ids[i] = bt.ID
	}
	if err := broker.CheckUnique(c.b, stored); err != nil {
		return nil, nil, fmt.Errorf("brisk: enqueue: %w: %w", err, ErrInvalid)
	}
	if err := broker.CheckRetention(c.b, stored); err != nil {
		return nil, nil, fmt.Errorf("brisk: enqueue: %w: %w", err, ErrInvalid)
	}
	return stored, ids, nil
}

// enqueueError wraps the broker's error for a batch.
func enqueueError(tasks []*Task, err error) error {
	if len(tasks) == 1 {
		return wrapf(err, "enqueue %s", tasks[0].Type)
	}
	return wrapf(err, "enqueue batch of %d", len(tasks))
}

func toBroker(t *Task, now time.Time) (*broker.Task, error) {
	if t.Delay < 0 {
		return nil, fmt.Errorf("%w: negative delay %s", ErrInvalid, t.Delay)
	}
	if t.MaxAttempts < 0 {
		return nil, fmt.Errorf("%w: negative max attempts %d", ErrInvalid, t.MaxAttempts)
	}
	if err := broker.ValidateRetention(t.Retention); err != nil {
		return nil, err
	}
	if t.UniqueFor < 0 || (t.UniqueFor == 0 && t.UniqueKey != "") {
		return nil, fmt.Errorf("%w: unique window %s, must be positive", ErrInvalid, t.UniqueFor)
	}
	bt := &broker.Task{
		TaskInfo: brisktype.TaskInfo{
			ID:          t.ID,
			Queue:       t.Queue,
			Type:        t.Type,
			Payload:     t.Payload,
			Headers:     maps.Clone(t.Headers),
			MaxAttempts: t.MaxAttempts,
			Timeout:     t.Timeout,
			Retention:   t.Retention,
			EnqueuedAt:  now,
			ReadyAt:     now,
		},
	}
	if bt.ID == "" {
		bt.ID = newID()
	}
	if bt.Queue == "" {
		bt.Queue = DefaultQueue
	}
	if bt.MaxAttempts == 0 {
		bt.MaxAttempts = DefaultMaxAttempts
	}
	if t.UniqueFor > 0 {
		bt.Unique = broker.Unique{Key: uniqueKey(t), Until: now.Add(t.UniqueFor)}
	}
	switch {
	case !t.ProcessAt.IsZero():
		// A time in the past means now: the task's latency counts from its enqueue, and
		// it does not jump ahead of the tasks already waiting.
		ahead := t.ProcessAt.Sub(now)
		if ahead > MaxScheduleAhead {
			return nil, fmt.Errorf("%w: process at %s: %s", ErrInvalid, t.ProcessAt.UTC().Format(time.RFC3339), ScheduleAheadRule)
		}
		if ahead > 0 {
			bt.ReadyAt = t.ProcessAt
		}
	case t.Delay > 0:
		if t.Delay > MaxScheduleAhead {
			return nil, fmt.Errorf("%w: delay %s: %s", ErrInvalid, t.Delay, ScheduleAheadRule)
		}
		bt.ReadyAt = now.Add(t.Delay)
	}
	return bt, nil
}

// DeclareQueue creates queue name if needed and sets its SLA (0: none). A queue named after
// its SLA, such as "five_second", gets that SLA when sla is 0 (see SLAFromName).
func (c *Client) DeclareQueue(ctx context.Context, name string, sla time.Duration) error {
	if sla == 0 {
		sla, _ = SLAFromName(name)
	}
	if err := c.b.DeclareQueue(ctx, broker.QueueConfig{Name: name, SLA: sla}); err != nil {
		return wrapf(err, "declare queue %s", name)
	}
	return nil
}
