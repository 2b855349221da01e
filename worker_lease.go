package brisk

import (
	"context"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/service"
)

// cancelPoll is how often the lease keeper asks a broker that can cancel tasks whether
// the held ones are still held, so that a cancelled task's handler stops within a second.
const cancelPoll = 500 * time.Millisecond

// leaseKeeper is the worker's service that extends the leases of every held task every
// Lease/3, and stops the handlers of tasks whose lease was revoked: taken by another
// worker after it expired, or cancelled. When the broker can cancel tasks
// (broker.Canceler) it also checks the held leases every cancelPoll between two
// extensions, with a cheap read.
type leaseKeeper struct {
	service.Base
	w        *Worker
	canceler broker.Canceler // nil when the broker cannot cancel tasks
	every    time.Duration   // the extension interval, Lease/3
	tick     time.Duration   // the loop's interval: every, or cancelPoll when shorter
	extended time.Time       // when the leases were last extended
}

// Start starts the lease loop.
func (k *leaseKeeper) Start(ctx context.Context) error {
	k.every = k.w.cfg.Lease / 3
	k.tick = k.every
	if k.canceler, _ = k.w.b.(broker.Canceler); k.canceler != nil {
		k.tick = min(k.every, cancelPoll)
	}
	k.extended = k.Clock.Now()
	return k.StartLoop(ctx, func(ctx context.Context) { service.Every(ctx, k.tick, k.step) })
}

// step extends the leases when an extension is due, else checks them for revocation.
func (k *leaseKeeper) step(ctx context.Context) {
	if now := k.Clock.Now(); now.Sub(k.extended) >= k.every-k.tick/2 {
		k.extended = now
		k.extend(ctx)
		return
	}
	k.check(ctx)
}

// held returns the leases of every held task.
func (k *leaseKeeper) held() []broker.Lease {
	w := k.w
	w.mu.Lock()
	defer w.mu.Unlock()
	leases := make([]broker.Lease, 0, len(w.held))
	for _, h := range w.held {
		leases = append(leases, h.lease)
	}
	return leases
}

// extend extends every held lease once.
func (k *leaseKeeper) extend(ctx context.Context) {
	leases := k.held()
	if len(leases) == 0 {
		return
	}
	lost, err := k.w.b.Extend(ctx, leases, k.w.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			k.Logger.ErrorContext(ctx, "extend leases", "err", err, "tasks", len(leases))
		}
		return
	}
	revs := make([]broker.Revocation, len(lost))
	for i, l := range lost {
		revs[i] = broker.Revocation{Lease: l}
	}
	k.drop(ctx, revs)
}

// check asks the broker which held leases were revoked (cancelled tasks above all).
func (k *leaseKeeper) check(ctx context.Context) {
	leases := k.held()
	if len(leases) == 0 || k.canceler == nil {
		return
	}
	revs, err := k.canceler.Revoked(ctx, leases)
	if err != nil {
		if ctx.Err() == nil {
			k.Logger.WarnContext(ctx, "check leases", "err", err, "tasks", len(leases))
		}
		return
	}
	k.drop(ctx, revs)
}

// drop stops the handlers of revoked tasks and forgets them: their outcome is ignored.
func (k *leaseKeeper) drop(ctx context.Context, revs []broker.Revocation) {
	if len(revs) == 0 {
		return
	}
	w := k.w
	taken, cancelled := 0, 0
	w.mu.Lock()
	for _, r := range revs {
		l := r.Lease
		// A task acked while the check was under way shows up as revoked: not a loss.
		if h := w.held[l.TaskID]; h != nil && h.lease == l && !h.returned {
			h.released = true
			cause := ErrLeaseLost
			if r.Cancelled {
				cause = ErrCancelled
				cancelled++
			} else {
				taken++
			}
			if h.stop != nil {
				h.stop(cause)
			}
			delete(w.held, l.TaskID)
		}
	}
	w.mu.Unlock()
	if taken > 0 {
		k.Logger.WarnContext(ctx, "leases lost: tasks taken over by another worker", "tasks", taken)
	}
	if cancelled > 0 {
		k.Logger.InfoContext(ctx, "tasks cancelled while running: handlers stopped", "tasks", cancelled)
	}
}
