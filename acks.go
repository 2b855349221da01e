package brisk

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/service"
)

// ackQueue holds the leases of tasks whose handlers succeeded, with their results, until
// they are acked (broker.Retainer.Complete where the broker keeps results, else Ack). Two
// loops take them: the fetch loop, in the same round trip as its next Reserve when the
// broker is a broker.AckReserver, and the ack loop, whenever the fetch loop is not about to
// reserve (it waits for work or for a free slot), so an ack never waits for a reserve that
// is not coming.
type ackQueue struct {
	mu       sync.Mutex
	leases   []broker.Completion
	fetching bool // the fetch loop takes the leases with its next reserve
	closed   bool
	wake     chan struct{} // the ack loop has something to do
}

// ackLoopBatch bounds one Ack call of the ack loop.
const ackLoopBatch = 256

func newAckQueue() *ackQueue {
	return &ackQueue{wake: make(chan struct{}, 1), leases: make([]broker.Completion, 0, 16)}
}

func (q *ackQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues l; it reports false after close (every outcome is written before close).
func (q *ackQueue) push(l broker.Completion) bool {
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
func (q *ackQueue) takeForReserve() []broker.Completion {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fetching = true
	out := q.leases
	// A fresh slice of the same size, made here rather than by append in push: push runs
	// on a handler's goroutine, whose small new stack would have to grow for growslice.
	q.leases = make([]broker.Completion, 0, max(cap(out), 16))
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
func (q *ackQueue) next() (batch []broker.Completion, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fetching && !q.closed {
		return nil, false
	}
	n := min(len(q.leases), ackLoopBatch)
	if n == 0 {
		return nil, q.closed
	}
	batch = append([]broker.Completion(nil), q.leases[:n]...)
	rest := copy(q.leases, q.leases[n:])
	q.leases = q.leases[:rest]
	return batch, false
}

// acker is the worker's service that acks finished tasks in batches while the fetch loop
// does not take them: whatever has queued up while the last batch was being written goes in
// the next one, so batching adds no delay. It stops after the handlers, once every outcome
// is written or queued, and writes what is queued before it ends.
type acker struct {
	service.Base
	w *Worker
}

// Start starts the ack loop.
func (a *acker) Start(ctx context.Context) error { return a.StartLoop(ctx, a.loop) }

// Stop closes the queue of acks, waits until the loop has written them, and ends it.
func (a *acker) Stop() {
	a.w.acks.close()
	if done := a.Done(); done != nil {
		<-done
	}
	a.Base.Stop()
}

func (a *acker) loop(context.Context) {
	w := a.w
	for range w.acks.wake {
		for {
			batch, done := w.acks.next()
			if done {
				return
			}
			if len(batch) == 0 {
				break
			}
			w.ackBatch(batch, ackFirst)
		}
	}
}

// ackTry says whether an ack is the first for its batch, or follows a round trip that
// failed after it may have acked the batch already, and why that round trip failed.
type ackTry int

const (
	ackFirst ackTry = iota
	// ackAfterFailure: the round trip failed (the broker or the network).
	ackAfterFailure
	// ackAfterStop: the worker's stop cancelled the round trip while it was in flight,
	// which most often happens after the broker acked: leases then found not held are
	// expected, not a sign of trouble.
	ackAfterStop
)

// ackBatch acks batch (Complete, with the results, where the broker keeps them), trying
// again on failure.
func (w *Worker) ackBatch(batch []broker.Completion, try ackTry) {
	ctx := w.bgCtx
	var err error
	for n := 0; n < 5; n++ {
		if w.retainer != nil {
			err = w.retainer.Complete(ctx, batch)
		} else {
			err = w.b.Ack(ctx, broker.Leases(batch))
		}
		if err == nil || errors.Is(err, broker.ErrLeaseLost) || errors.Is(err, ErrClosed) {
			break
		}
		service.Sleep(ctx, time.Duration(50<<n)*time.Millisecond)
	}
	w.acked(batch, err, try)
}

// acked logs the outcome of acking batch and forgets its tasks.
func (w *Worker) acked(batch []broker.Completion, err error, try ackTry) {
	switch {
	case err == nil:
	case try == ackAfterStop && errors.Is(err, broker.ErrLeaseLost):
		w.log.InfoContext(w.bgCtx, "acked again after stopping cut a round trip short: some were acked by it already", "err", err, "tasks", len(batch))
	case try == ackAfterFailure && errors.Is(err, broker.ErrLeaseLost):
		w.log.WarnContext(w.bgCtx, "ack after a failed round trip: some leases not held (acked by that round trip, or expired)", "err", err, "tasks", len(batch))
	default:
		// The leases run out and the tasks are delivered again: at-least-once.
		w.log.ErrorContext(w.bgCtx, "ack", "err", err, "tasks", len(batch))
	}
	w.mu.Lock()
	for _, c := range batch {
		delete(w.held, c.Lease.TaskID)
	}
	w.mu.Unlock()
}
