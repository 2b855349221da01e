// Package wake fans the wake-ups that a broker receives from its engine (Redis Pub/Sub,
// PostgreSQL LISTEN) out to the Wait calls of its workers, queue by queue.
package wake

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Hub holds the waiters of one broker value. The zero value is not ready; use New.
type Hub struct {
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	up      bool
}

// New returns an empty hub whose subscription is down.
func New() *Hub {
	return &Hub{waiters: map[string]map[chan struct{}]struct{}{}}
}

// Add registers a waiter for queues. Its channel receives (without blocking the sender) at
// every Notify of one of them and at every NotifyAll; remove unregisters it. A waiter
// registers before it looks at the store, so that a wake-up sent after the look is never
// missed.
func (h *Hub) Add(queues []string) (ch <-chan struct{}, remove func()) {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	for _, q := range queues {
		m := h.waiters[q]
		if m == nil {
			m = map[chan struct{}]struct{}{}
			h.waiters[q] = m
		}
		m[c] = struct{}{}
	}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, q := range queues {
			if m := h.waiters[q]; m != nil {
				delete(m, c)
				if len(m) == 0 {
					delete(h.waiters, q)
				}
			}
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Notify wakes the waiters of queue q.
func (h *Hub) Notify(q string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[q] {
		signal(ch)
	}
}

// NotifyAll wakes every waiter and records whether the subscription that delivers
// wake-ups is up (waiters poll while it is down).
func (h *Hub) NotifyAll(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up = up
	for _, m := range h.waiters {
		for ch := range m {
			signal(ch)
		}
	}
}

// Up reports whether the subscription is up, as last recorded by NotifyAll.
func (h *Hub) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

// DownPoll caps a Wait while the subscription is down.
const DownPoll = 100 * time.Millisecond

// ErrClosed is returned by Wait when its closed channel is closed.
var ErrClosed = errors.New("closed")

// Wait is the body of a broker's Wait: it registers a waiter for queues, asks nextDue for
// the earliest time a task of theirs falls due (zero: none), and sleeps until then, max, a
// wake-up, the end of ctx or the closing of closed, whichever is first; while the
// subscription is down, at most DownPoll. It returns nil at once when something is due
// already, ctx's error when ctx ends, ErrClosed when closed is closed, and nextDue's error
// as it is. Registering before asking means that a wake-up sent after the store was looked
// at is never missed.
func (h *Hub) Wait(ctx context.Context, queues []string, max time.Duration, closed <-chan struct{},
	nextDue func(context.Context) (time.Time, error)) error {
	ch, remove := h.Add(queues)
	defer remove()
	due, err := nextDue(ctx)
	select {
	case <-closed:
		return ErrClosed
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	d := max
	if !due.IsZero() {
		until := time.Until(due)
		if until <= 0 {
			return nil
		}
		d = min(d, until)
	}
	if !h.Up() {
		d = min(d, DownPoll)
	}
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return ErrClosed
	}
}
