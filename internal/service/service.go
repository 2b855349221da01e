// Package service is the small base that brisk's background loops are built on (a worker's
// fetcher, acker, lease keeper and heartbeat, the dashboard's sampler): each is a service
// with Start and an idempotent Stop, a logger and a clock that tests can replace.
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Clock tells the time. Services read it instead of time.Now so that a test can set it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ErrStarted is returned by Start of a service that has been started before.
var ErrStarted = errors.New("service already started")

// Base runs one loop in a goroutine: Start starts it once with a context that Stop
// cancels, and Stop waits for it to return. Embed it and call StartLoop from Start.
type Base struct {
	// Name names the service in its logs.
	Name string
	// Logger receives the service's logs (never nil after Init).
	Logger *slog.Logger
	// Clock tells the service the time (never nil after Init).
	Clock Clock

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Init sets the name, the logger (with a "service" attribute) and the clock; nil ones get
// a logger that discards and the system clock.
func (b *Base) Init(name string, log *slog.Logger, clock Clock) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = SystemClock{}
	}
	b.Name, b.Logger, b.Clock = name, log.With("service", name), clock
}

// StartLoop runs loop in a goroutine with a context derived from ctx's values (not its
// cancellation: only Stop ends the loop). It returns ErrStarted if called twice.
func (b *Base) StartLoop(ctx context.Context, loop func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		loop(ctx)
	}()
	return nil
}

// Stop cancels the loop's context and waits for it to return. It is idempotent, and a
// no-op for a service never started.
func (b *Base) Stop() {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Done returns a channel closed when the loop has returned (nil before Start).
func (b *Base) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Every calls tick every d until ctx is done (the first call after d).
func Every(ctx context.Context, d time.Duration, tick func(ctx context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick(ctx)
		}
	}
}

// Sleep waits for d or until ctx is done, and reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
