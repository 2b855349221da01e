package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/wake"
)

// Wake-up. Every script that makes a task ready (enqueue, release, retry, retry dead,
// release worker) publishes the queue's name on one channel per prefix, inside the script.
// Each Broker holds one Pub/Sub connection, opened by its first Wait, whose messages a hub
// fans out to the waiters of that queue. A Wait registers first and then looks up the
// earliest ready time and lease expiry of its queues, so that a task made ready between a
// worker's empty Reserve and its Wait is never missed; it sleeps until that time at most.
// When the Pub/Sub connection drops, every waiter is woken (a spurious return, which the
// contract allows) and Waits poll every wake.DownPoll until it is back.

const (
	// receiveTimeout is how long the listener reads before it pings to check the connection.
	receiveTimeout = 15 * time.Second
	maxBackoff     = time.Second
)

// hub fans wake-ups out to waiters (wake.Hub) and owns the listener.
type hub struct {
	*wake.Hub
	mu      sync.Mutex
	once    sync.Once
	done    chan struct{} // closed when the listener has returned
	started bool
	ps      *redis.PubSub // the listener's; closed by stop to unblock its read
	stopped bool
}

func newHub() *hub {
	return &hub{Hub: wake.New(), done: make(chan struct{})}
}

// stop closes the listener's connection and waits for it, if it was started, to return.
func (h *hub) stop() {
	h.mu.Lock()
	started, ps := h.started, h.ps
	h.stopped = true
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
	if started {
		<-h.done
	}
}

// setPubSub hands the listener's PubSub to the hub; false when stop came first.
func (h *hub) setPubSub(ps *redis.PubSub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.ps = ps
	return true
}

// startListener starts the Pub/Sub listener once.
func (b *Broker) startListener() {
	b.hub.once.Do(func() {
		b.hub.mu.Lock()
		b.hub.started = true
		b.hub.mu.Unlock()
		go b.listen()
	})
}

// listen reads the wake channel until Close. go-redis reconnects and subscribes again by
// itself on the next read after an error; the loop backs off so that it never spins while
// the server is away.
func (b *Broker) listen() {
	defer close(b.hub.done)
	ctx := b.bgCtx
	ps := b.rdb.Subscribe(ctx, b.k.wake())
	defer ps.Close()
	if !b.hub.setPubSub(ps) {
		return
	}
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, receiveTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = ps.Ping(ctx) // a dead connection fails here or on the next read
				continue
			}
			if b.hub.Up() {
				b.log.Warn("brisk: redis: wake-up subscription lost; reconnecting", "err", err)
			}
			b.hub.NotifyAll(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			b.hub.Notify(m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				backoff = 10 * time.Millisecond
				b.hub.NotifyAll(true) // what was published while away is looked up again
			}
		}
	}
}

// Wait blocks until a task may be ready in one of queues (a wake-up, or the earliest
// scheduled task or lease expiry falls due), max passes, ctx is done or the broker is closed.
func (b *Broker) Wait(ctx context.Context, queues []string, max time.Duration) error {
	if b.closed.Load() {
		return errClosed("wait")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, q := range queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("brisk: redis: wait: %w", err)
		}
	}
	b.startListener()
	err := b.hub.Wait(ctx, queues, max, b.closedCh, func(ctx context.Context) (time.Time, error) {
		return b.nextDue(ctx, queues)
	})
	switch {
	case errors.Is(err, wake.ErrClosed) || b.closed.Load():
		return errClosed("wait")
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return b.fail(ctx, "wait", err)
	}
	return nil
}

// nextDue returns the earliest ReadyAt of a ready task or lease expiry of the queues (zero
// when there is none), in one round trip. Paused queues have nothing due (resuming one
// publishes a wake-up).
func (b *Broker) nextDue(ctx context.Context, queues []string) (time.Time, error) {
	if len(queues) == 0 {
		return time.Time{}, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, 0, 2*len(queues))
	paused := make([]*redis.SliceCmd, 0, len(queues))
	for _, q := range queues {
		cmds = append(cmds, pipe.ZRangeWithScores(ctx, b.k.ready(q), 0, 0), pipe.ZRangeWithScores(ctx, b.k.running(q), 0, 0))
		paused = append(paused, pipe.HMGet(ctx, b.k.meta(q), "paused"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return time.Time{}, err
	}
	best := math.Inf(1)
	t := now()
	for i, c := range cmds {
		if p := paused[i/2].Val(); len(p) == 1 && asString(p[0]) == "1" {
			continue
		}
		z := c.Val()
		if len(z) != 1 {
			continue
		}
		score := z[0].Score
		if i%2 == 0 { // the ready ZSET: limits may hold its tasks back
			score = float64(b.hints.Later(queues[i/2], time.UnixMicro(int64(score)), t).UnixMicro())
		}
		best = min(best, score)
	}
	if math.IsInf(best, 1) {
		return time.Time{}, nil
	}
	return time.UnixMicro(int64(best)), nil
}
