package brisk

import (
	"context"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/service"
)

// leaseKeeper is the worker's service that extends the leases of every held task every
// Lease/3, and stops the handlers of tasks whose lease another worker has taken.
type leaseKeeper struct {
	service.Base
	w *Worker
}

// Start starts the lease loop.
func (k *leaseKeeper) Start(ctx context.Context) error {
	return k.StartLoop(ctx, func(ctx context.Context) { service.Every(ctx, k.w.cfg.Lease/3, k.extend) })
}

// extend extends every held lease once.
func (k *leaseKeeper) extend(ctx context.Context) {
	w := k.w
	w.mu.Lock()
	leases := make([]broker.Lease, 0, len(w.held))
	for _, h := range w.held {
		leases = append(leases, h.lease)
	}
	w.mu.Unlock()
	if len(leases) == 0 {
		return
	}
	lost, err := w.b.Extend(ctx, leases, w.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			k.Logger.ErrorContext(ctx, "extend leases", "err", err, "tasks", len(leases))
		}
		return
	}
	if len(lost) == 0 {
		return
	}
	taken := 0
	w.mu.Lock()
	for _, l := range lost {
		// A task acked while the extension was under way shows up as lost: not a loss.
		if h := w.held[l.TaskID]; h != nil && h.lease == l && !h.returned {
			// Another worker has the task now: stop our run and ignore its outcome.
			h.released = true
			if h.cancel != nil {
				h.cancel()
			}
			delete(w.held, l.TaskID)
			taken++
		}
	}
	w.mu.Unlock()
	if taken > 0 {
		k.Logger.WarnContext(ctx, "leases lost: tasks taken over by another worker", "tasks", taken)
	}
}
