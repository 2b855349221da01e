package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/service"
)

// Source samples a queue. Implementations fill what they can measure; the controller fills
// Workers, Serving and Slots when they are left at 0.
type Source interface {
	Sample(ctx context.Context, queue string) (Sample, error)
}

// Actuator makes the worker count (or one worker's concurrency) what a decision says.
type Actuator interface {
	Apply(ctx context.Context, d Decision) error
}

// ActuatorFunc adapts a function that sets a count to an Actuator.
type ActuatorFunc func(ctx context.Context, n int) error

// Apply calls f with the desired count.
func (f ActuatorFunc) Apply(ctx context.Context, d Decision) error { return f(ctx, d.Desired) }

// Concurrency returns the in-process actuator: it sets w's concurrency (handler slots) live,
// so that one "worker" of the policy is one handler slot. Handlers over a lowered limit
// finish first.
func Concurrency(w *brisk.Worker) Actuator {
	return ActuatorFunc(func(_ context.Context, n int) error {
		w.SetConcurrency(n)
		return nil
	})
}

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	// Queue is the queue to watch. Required.
	Queue string
	// Policy decides the count. Default: &SLA{} with DefaultBounds.
	Policy Policy
	// Source samples the queue. Required.
	Source Source
	// Actuator applies decisions. Required.
	Actuator Actuator
	// Interval between samples. Default 10 s; negative is an error.
	Interval time.Duration
	// Initial is the count the controller assumes at start (default 1).
	Initial int
	// Slots is the handlers per worker reported to the policy when the Source does not
	// say (default 1: the count is a concurrency).
	Slots int
	// History is how many decisions are kept for Decisions (default 100).
	History int
	// Logger receives one record per decision. Default: discard.
	Logger *slog.Logger
	// OnDecision, when set, is called with every decision after it is recorded (also when
	// sampling or applying failed), from the controller's goroutine: e.g. to print it or
	// to update Metrics.
	OnDecision func(Decision)
}

// Validate reports a configuration the controller cannot run with.
func (c ControllerConfig) Validate() error {
	switch {
	case c.Queue == "":
		return invalidf("controller: no queue")
	case c.Source == nil:
		return invalidf("controller: no source")
	case c.Actuator == nil:
		return invalidf("controller: no actuator")
	case c.Interval < 0:
		return invalidf("controller: interval %s is not positive", c.Interval)
	case c.Initial < 0:
		return invalidf("controller: initial count %d is negative", c.Initial)
	case c.History < 0:
		return invalidf("controller: history %d is negative", c.History)
	}
	return nil
}

// Controller samples a queue at an interval, asks its policy for a count, applies it and
// logs every decision with its inputs and reason. When sampling fails (a broker outage) it
// keeps the count as it is: it never scales to zero because it cannot see.
type Controller struct {
	cfg ControllerConfig

	mu      sync.Mutex
	current int
	history []Decision
	missing bool         // the last sample found no such queue
	svc     service.Base // the background loop of Start
}

// NewController checks cfg and returns a controller; Start runs it.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Policy == nil {
		cfg.Policy = &SLA{}
	}
	if cfg.Initial == 0 {
		cfg.Initial = 1
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.History == 0 {
		cfg.History = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, current: cfg.Initial}, nil
}

// Current returns the count last applied (or the initial one).
func (c *Controller) Current() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Decisions returns the last decisions, oldest first.
func (c *Controller) Decisions() []Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Decision(nil), c.history...)
}

// Step samples once, decides and applies. On a sampling error it records a decision that
// keeps the current count and returns the error: a queue that does not exist (yet) is
// waited for, logged when it goes missing, not at every step. On an actuator error the
// count is left as it was believed to be. A paused queue's backlog is no demand: the
// policy decides on a sample without it (no latency, nothing pending, no arrivals), and the
// decision reports it apart.
func (c *Controller) Step(ctx context.Context) (Decision, error) {
	now := time.Now()
	current := c.Current()
	s, err := c.cfg.Source.Sample(ctx, c.cfg.Queue)
	if err != nil {
		d := Decision{At: now, Policy: c.cfg.Policy.Name(), Current: current, Desired: current, Err: err,
			Reason: fmt.Sprintf("sample failed, count frozen: %v", err)}
		missing := errors.Is(err, brisk.ErrQueueNotFound)
		if missing {
			d.Reason = fmt.Sprintf("queue does not exist (yet), count kept at %d", current)
		}
		c.mu.Lock()
		wasMissing := c.missing
		c.missing = missing
		c.mu.Unlock()
		c.record(d)
		switch {
		case missing && !wasMissing:
			c.cfg.Logger.Info("autoscale: queue does not exist (yet): waiting for it, count kept", "queue", c.cfg.Queue, "workers", current)
		case !missing:
			c.cfg.Logger.Warn("autoscale: sample failed, count frozen", "queue", c.cfg.Queue, "workers", current, "err", err)
		}
		return d, err
	}
	c.mu.Lock()
	c.missing = false
	c.mu.Unlock()
	if s.Workers == 0 {
		s.Workers = current
	}
	if s.Serving == 0 {
		s.Serving = s.Workers
	}
	if s.Slots == 0 {
		s.Slots = c.cfg.Slots
	}
	if s.At.IsZero() {
		s.At = now
	}
	var d Decision
	if s.Paused {
		idle := s
		idle.Latency, idle.Pending, idle.ArrivalRate, idle.CompletionRate, idle.Busy = 0, 0, 0, 0, 0
		d = c.cfg.Policy.Decide(now, idle, current)
		d.Sample = s
		d.Reason = fmt.Sprintf("paused: its %d pending tasks are not counted; %s", s.Pending, d.Reason)
	} else {
		d = c.cfg.Policy.Decide(now, s, current)
	}
	if d.Desired != current {
		if err := c.cfg.Actuator.Apply(ctx, d); err != nil {
			d.Reason += fmt.Sprintf("; not applied: %v", err)
			d.Desired = current
			c.record(d)
			c.cfg.Logger.Error("autoscale: apply failed", "queue", c.cfg.Queue, "err", err)
			return d, err
		}
	}
	c.mu.Lock()
	c.current = d.Desired
	c.mu.Unlock()
	c.record(d)
	c.cfg.Logger.Info("autoscale: decision", "queue", c.cfg.Queue, "policy", d.Policy,
		"current", d.Current, "desired", d.Desired, "reason", d.Reason,
		"latency", s.Latency, "pending", s.Pending, "arrival_rate", s.ArrivalRate,
		"completion_rate", s.CompletionRate, "handler_time", s.HandlerTime)
	return d, nil
}

func (c *Controller) record(d Decision) {
	c.mu.Lock()
	c.history = append(c.history, d)
	if n := len(c.history) - c.cfg.History; n > 0 {
		c.history = append(c.history[:0], c.history[n:]...)
	}
	c.mu.Unlock()
	if c.cfg.OnDecision != nil {
		c.cfg.OnDecision(d)
	}
}

// Start runs the controller in the background until ctx is done or Stop is called.
func (c *Controller) Start(ctx context.Context) error {
	err := c.svc.StartLoop(ctx, func(loop context.Context) {
		loop, cancel := context.WithCancel(loop)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)() // ctx's end ends the loop too
		service.Every(loop, c.cfg.Interval, func(ctx context.Context) {
			_, _ = c.Step(ctx) // errors are logged and recorded
		})
	})
	if err != nil {
		return errors.New("autoscale: controller already started")
	}
	return nil
}

// Stop stops a started controller and waits for it. It is idempotent.
func (c *Controller) Stop() { c.svc.Stop() }

// BrokerSource samples queues through a brisk.Inspector. Rates come from the differences
// between two samples: completions from the Completed counter, arrivals from completions
// plus the change of the tasks the queue holds (pending, scheduled, running, dead). The
// handler time follows from Little's law: running tasks / completion rate. The first
// sample of a queue has no rates.
type BrokerSource struct {
	insp *brisk.Inspector
	now  func() time.Time

	mu   sync.Mutex
	last map[string]brokerMark
}

type brokerMark struct {
	at              time.Time
	completed, held int64
}

// NewBrokerSource returns a Source reading insp.
func NewBrokerSource(insp *brisk.Inspector) *BrokerSource {
	return &BrokerSource{insp: insp, now: time.Now, last: map[string]brokerMark{}}
}

// Sample implements Source.
func (b *BrokerSource) Sample(ctx context.Context, queue string) (Sample, error) {
	qs, err := b.insp.Queues(ctx)
	if err != nil {
		return Sample{}, err
	}
	for _, q := range qs {
		if q.Name == queue {
			return b.fromInfo(q), nil
		}
	}
	return Sample{}, fmt.Errorf("autoscale: queue %q does not exist (nothing was enqueued to it, or it was deleted): %w", queue, brisk.ErrQueueNotFound)
}

func (b *BrokerSource) fromInfo(q brisk.QueueInfo) Sample {
	now := b.now()
	s := Sample{Queue: q.Name, At: now, Latency: q.Latency, SLA: q.SLA, Pending: q.Pending, CPU: -1, Paused: q.Paused}
	mark := brokerMark{at: now, completed: q.Completed, held: q.Pending + q.Scheduled + q.Running + q.Dead}
	b.mu.Lock()
	prev, ok := b.last[q.Name]
	b.last[q.Name] = mark
	b.mu.Unlock()
	if dt := now.Sub(prev.at).Seconds(); ok && dt > 0 {
		done := float64(mark.completed - prev.completed)
		s.CompletionRate = max(0, done/dt)
		s.ArrivalRate = max(0, (done+float64(mark.held-prev.held))/dt)
		if s.CompletionRate > 0 {
			s.HandlerTime = time.Duration(float64(q.Running) / s.CompletionRate * float64(time.Second))
		}
	}
	return s
}
