package dashboard

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/briskq/brisk"
)

// sample is one queue's state at one moment.
type sample struct {
	at        time.Time
	latency   time.Duration
	completed int64
	failed    int64
}

// sampler records every queue's latency and counters at a fixed interval and keeps them
// for a window (an hour): the charts and the throughput come from it, so pages never ask
// the broker for more than its cheap Stats.
type sampler struct {
	in       *brisk.Inspector
	interval time.Duration
	keep     time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	history map[string][]sample // oldest first
}

func newSampler(in *brisk.Inspector, interval, keep time.Duration, log *slog.Logger) *sampler {
	return &sampler{in: in, interval: interval, keep: keep, log: log, history: map[string][]sample{}}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if err := s.sampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("brisk dashboard: sample queues", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sampleOnce(ctx context.Context) error {
	qs, err := s.in.Queues(ctx)
	if err != nil {
		return err
	}
	s.record(time.Now(), qs)
	return nil
}

func (s *sampler) record(now time.Time, qs []brisk.QueueInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.keep)
	seen := make(map[string]bool, len(qs))
	for _, q := range qs {
		seen[q.Name] = true
		h := s.history[q.Name]
		i := 0
		for i < len(h) && h[i].at.Before(cut) {
			i++
		}
		h = append(h[i:], sample{at: now, latency: q.Latency, completed: q.Completed, failed: q.Failed})
		s.history[q.Name] = h
	}
	for name := range s.history {
		if !seen[name] {
			delete(s.history, name)
		}
	}
}

// series returns a copy of a queue's samples, oldest first.
func (s *sampler) series(queue string) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.history[queue]...)
}

// rates returns how many tasks of the queue completed and failed per minute over the
// window ending with cur (the counters just read), measured from the oldest sample within
// the window; ok is false while there is no such sample at least a second old.
func (s *sampler) rates(q brisk.QueueInfo, now time.Time, window time.Duration) (completed, failed float64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.history[q.Name] {
		if now.Sub(x.at) > window {
			continue
		}
		dt := now.Sub(x.at).Minutes()
		if dt < 1.0/60 || q.Completed < x.completed || q.Failed < x.failed {
			return 0, 0, false
		}
		return float64(q.Completed-x.completed) / dt, float64(q.Failed-x.failed) / dt, true
	}
	return 0, 0, false
}
