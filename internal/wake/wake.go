// Package wake fans the wake-ups that a broker receives from its engine (Redis Pub/Sub,
// PostgreSQL LISTEN) out to the Wait calls of its workers, queue by queue.
package wake

import "sync"

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
