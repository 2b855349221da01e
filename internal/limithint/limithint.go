// Package limithint remembers, per queue, why a broker's last Reserve left ready tasks
// behind because of a rate or concurrency limit, so that its Wait sleeps until something
// can change instead of returning at once for tasks that Reserve would not take.
package limithint

import (
	"sync"
	"time"
)

// SlotPoll bounds the wait of a queue held back by a full concurrency limit, for a slot
// freed where no wake-up reaches the waiter.
const SlotPoll = 250 * time.Millisecond

// Hint says until when nothing of a queue's ready tasks can be taken.
type Hint struct {
	// Until: no token is due before it (a rate limit), or SlotPoll from the reserve (a
	// concurrency limit).
	Until time.Time
	// Slot: a concurrency limit holds the tasks back, so a task that stops running (an
	// ack, retry, kill, release or cancel) may end the hint sooner.
	Slot bool
}

// Hints maps queue names to hints; the zero value is ready to use.
type Hints struct {
	mu sync.Mutex
	m  map[string]Hint
}

// Set records the hint of queue.
func (h *Hints) Set(queue string, v Hint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]Hint{}
	}
	h.m[queue] = v
}

// Clear forgets the hint of queue.
func (h *Hints) Clear(queue string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, queue)
}

// Get returns the hint of queue if it still holds at now.
func (h *Hints) Get(queue string, now time.Time) (Hint, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[queue]
	if !ok || !v.Until.After(now) {
		return Hint{}, false
	}
	return v, true
}

// SlotBlocked reports whether queue's last Reserve found its concurrency limit full.
func (h *Hints) SlotBlocked(queue string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[queue].Slot
}

// Later returns due moved to the hint's Until when queue's hint holds at now and ends
// after due: the time Wait should treat as the queue's earliest ready task.
func (h *Hints) Later(queue string, due, now time.Time) time.Time {
	if v, ok := h.Get(queue, now); ok && due.Before(v.Until) {
		return v.Until
	}
	return due
}
