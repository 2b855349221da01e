package pgbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/wake"
)

// Wake-up. The triggers of schema version 2 notify the channel <schema>.wake with a
// queue's name when a statement leaves tasks of that queue pending; PostgreSQL delivers
// the notification when the transaction commits. Each Broker keeps one connection of its
// own, opened by its first Wait, that LISTENs on the channel, and a wake.Hub fans the
// notifications out to the waiters of that queue. A Wait registers first and then looks
// up the earliest ready time and lease expiry of its queues, so that a task made ready
// between a worker's empty Reserve and its Wait is never missed; it sleeps until that time
// at most, and at most PollInterval in case a notification was lost. When the connection
// drops, every waiter is woken (a spurious return, which the contract allows) and Waits
// look every wake.DownPoll until it is back.

const (
	// pingEvery is how long the listener waits for a notification before it checks the
	// connection with a ping.
	pingEvery  = 15 * time.Second
	maxBackoff = time.Second
)

// startListener starts the notification listener once.
func (b *Broker) startListener() {
	b.listener.Do(func() {
		b.bg.Add(1)
		go b.listenLoop()
	})
}

// listenLoop keeps a LISTEN connection until Close, connecting again with a backoff when
// it drops.
func (b *Broker) listenLoop() {
	defer b.bg.Done()
	ctx := b.bgCtx
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, func() { backoff = 10 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		if b.hub.Up() {
			b.log.Warn("brisk: postgres: wake-up connection lost; reconnecting", "schema", b.schema, "err", err)
		}
		b.hub.NotifyAll(false)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce connects, LISTENs and hands notifications to the hub until the connection
// fails or ctx ends; up is called once it listens.
func (b *Broker) listenOnce(ctx context.Context, up func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.listen)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN "`+channel(b.schema)+`"`); err != nil {
		return err
	}
	up()
	b.hub.NotifyAll(true) // what was notified while away is looked up again
	for {
		wctx, cancel := context.WithTimeout(ctx, pingEvery)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			b.hub.Notify(n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// Wait blocks until a task may be ready in one of queues (a notification, or the earliest
// scheduled task or lease expiry falls due), max passes, ctx is done or the broker is
// closed.
func (b *Broker) Wait(ctx context.Context, queues []string, max time.Duration) error {
	if b.closed.Load() {
		return errClosed("wait")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, q := range queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("brisk: postgres: wait: %w", err)
		}
	}
	if max <= 0 {
		return nil
	}
	b.startListener()
	err := b.hub.Wait(ctx, queues, min(max, b.opts.PollInterval), b.closedCh, func(ctx context.Context) (time.Time, error) {
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

// qNextDue is the earliest ready_at of a pending task or lease expiry of a running one in
// the queues $1 that are not paused (resuming one notifies): two indexed lookups per queue.
const qNextDue = `SELECT min(least(
		(SELECT t.ready_at FROM {{schema}}.tasks t WHERE t.state = 'pending' AND t.queue = q.name ORDER BY t.ready_at, t.seq LIMIT 1),
		(SELECT t.lease_until FROM {{schema}}.tasks t WHERE t.state = 'running' AND t.queue = q.name ORDER BY t.lease_until LIMIT 1)))
	FROM unnest($1::text[]) AS q(name)
	WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.queues p WHERE p.name = q.name AND p.paused)`

// nextDue returns the earliest due time in queues (zero when there is none).
func (b *Broker) nextDue(ctx context.Context, queues []string) (time.Time, error) {
	if len(queues) == 0 {
		return time.Time{}, nil
	}
	var due *time.Time
	if err := b.queryRow(ctx, qNextDue, []any{queues}, &due); err != nil {
		return time.Time{}, err
	}
	if due == nil {
		return time.Time{}, nil
	}
	return *due, nil
}
