package brisk

import (
	"sync"

	"github.com/briskq/brisk/broker"
)

// ackQueue holds the leases of tasks whose handlers succeeded until they are acked. Two
// loops take them: the fetch loop, in the same round trip as its next Reserve when the
// broker is a broker.AckReserver, and the ack loop, whenever the fetch loop is not about to
// reserve (it waits for work or for a free slot), so an ack never waits for a reserve that
// is not coming.
type ackQueue struct {
	mu       sync.Mutex
	leases   []broker.Lease
	fetching bool // the fetch loop takes the leases with its next reserve
	closed   bool
	wake     chan struct{} // the ack loop has something to do
}

// ackLoopBatch bounds one Ack call of the ack loop.
const ackLoopBatch = 256

func newAckQueue() *ackQueue {
	return &ackQueue{wake: make(chan struct{}, 1), leases: make([]broker.Lease, 0, 16)}
}

func (q *ackQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues l; it reports false after close (every outcome is written before close).
func (q *ackQueue) push(l broker.Lease) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.leases = append(q.leases, l)
	if !q.fetching {
		q.signal()
	}
	return true
}

// takeForReserve hands every queued lease to the fetch loop, which from now on takes the
// leases queued while it reserves, until setIdle.
func (q *ackQueue) takeForReserve() []broker.Lease {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fetching = true
	out := q.leases
	// A fresh slice of the same size, made here rather than by append in push: push runs
	// on a handler's goroutine, whose small new stack would have to grow for growslice.
	q.leases = make([]broker.Lease, 0, max(cap(out), 16))
	return out
}

// setIdle tells that the fetch loop will not reserve soon: the ack loop takes over.
func (q *ackQueue) setIdle() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fetching = false
	if len(q.leases) > 0 {
		q.signal()
	}
}

// close makes the ack loop write what is queued and end.
func (q *ackQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// next returns up to ackLoopBatch leases for the ack loop (none while the fetch loop takes
// them), and whether the ack loop is done: closed and nothing left.
func (q *ackQueue) next() (batch []broker.Lease, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fetching && !q.closed {
		return nil, false
	}
	n := min(len(q.leases), ackLoopBatch)
	if n == 0 {
		return nil, q.closed
	}
	batch = append([]broker.Lease(nil), q.leases[:n]...)
	rest := copy(q.leases, q.leases[n:])
	q.leases = q.leases[:rest]
	return batch, false
}
