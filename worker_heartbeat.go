package brisk

import (
	"context"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/proc"
	"github.com/briskq/brisk/internal/service"
)

// heartbeater is the worker's service that records the worker in the broker every
// HeartbeatInterval and reaps dead workers of its host.
type heartbeater struct {
	service.Base
	w *Worker
}

// Start starts the heartbeat loop.
func (h *heartbeater) Start(ctx context.Context) error {
	return h.StartLoop(ctx, func(ctx context.Context) { service.Every(ctx, h.w.cfg.HeartbeatInterval, h.beat) })
}

// beat records the worker and reaps dead workers of its host once.
func (h *heartbeater) beat(ctx context.Context) {
	w := h.w
	if err := w.b.Heartbeat(ctx, w.info()); err != nil && ctx.Err() == nil {
		h.Logger.WarnContext(ctx, "heartbeat", "err", err)
	}
	w.reapDeadWorkers(ctx)
}

// reapDeadWorkers hands back the tasks of workers on this host whose process is gone, so
// that a crashed worker restarted at once does not wait for its old leases to expire.
func (w *Worker) reapDeadWorkers(ctx context.Context) {
	if w.cfg.KeepDeadWorkersTasks {
		return
	}
	reaper, ok := w.b.(broker.Reaper)
	if !ok {
		return
	}
	workers, err := w.b.Workers(ctx, time.Time{})
	if err != nil {
		return
	}
	for _, o := range workers {
		if o.ID == w.cfg.ID || o.Host != w.host || proc.Alive(o.PID) {
			continue
		}
		n, err := reaper.ReleaseWorker(ctx, o.ID)
		if err != nil {
			w.log.WarnContext(ctx, "reap dead worker", "dead", o.ID, "err", err)
			continue
		}
		w.log.InfoContext(ctx, "reaped dead worker", "dead", o.ID, "pid", o.PID, "tasks", n)
	}
}
