package rabbitbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// maxEntryBytes bounds one journal entry (one Enqueue batch, encoded), below RabbitMQ's
// default max_message_size of 128 MiB.
const maxEntryBytes = 120 << 20

// consumePrefetch is how many journal entries RabbitMQ sends ahead of the acks of one
// broker's stream consumer (a stream consumer must have a prefetch; acks only give credit).
const consumePrefetch = 1000

// session is one connection to RabbitMQ: a channel in confirm mode that publishes to the
// journal and a channel that consumes it.
type session struct {
	conn       *amqp.Connection
	pub        *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     chan *amqp.Error
	pubClosed  chan *amqp.Error // the publishing channel closed (a refused message closes it)
	lost       chan struct{}    // closed when the session is over
}

// connect dials RabbitMQ, declares the journal stream and starts consuming it after offset
// from (or from its first entry when from < 0).
func (b *Broker) connect(from int64) (*session, error) {
	cfg := amqp.Config{
		Dial:       amqp.DefaultDial(b.opts.DialTimeout),
		Heartbeat:  5 * time.Second,
		Properties: amqp.Table{"connection_name": "brisk " + b.id},
	}
	conn, err := amqp.DialConfig(b.opts.URL, cfg)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*session, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if _, err := pub.QueueDeclare(b.stream, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		return fail("declare stream "+b.stream, err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	con, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if err := con.Qos(consumePrefetch, 0, false); err != nil {
		return fail("qos", err)
	}
	var offset any = "first"
	if from >= 0 {
		offset = from + 1
	}
	deliveries, err := con.Consume(b.stream, "", false, false, false, false, amqp.Table{"x-stream-offset": offset})
	if err != nil {
		return fail("consume stream "+b.stream, err)
	}
	s := &session{conn: conn, pub: pub, deliveries: deliveries, lost: make(chan struct{})}
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.pubClosed = pub.NotifyClose(make(chan *amqp.Error, 1))
	return s, nil
}

// run applies the journal as it arrives and reconnects, with backoff, when the connection
// is lost. The new session consumes from the entry after the last one applied, so no entry
// is missed or applied twice.
func (b *Broker) run(s *session) {
	defer b.wg.Done()
	for {
		err := b.consume(s)
		b.setSession(nil, err)
		close(s.lost)
		_ = s.conn.Close()
		if b.isClosed() {
			return
		}
		b.opts.Logger.Warn("brisk: rabbitmq: connection lost; reconnecting", "err", err)
		backoff := 50 * time.Millisecond
		for {
			select {
			case <-b.closed:
				return
			case <-time.After(backoff):
			}
			b.mu.Lock()
			from := b.offset
			b.mu.Unlock()
			s, err = b.connect(from)
			if err == nil {
				break
			}
			b.setSession(nil, err)
			backoff = min(2*backoff, 2*time.Second)
		}
		if b.isClosed() {
			_ = s.conn.Close()
			return
		}
		b.opts.Logger.Info("brisk: rabbitmq: reconnected")
		b.setSession(s, nil)
	}
}

// consume applies entries until the session ends or the broker is closed.
func (b *Broker) consume(s *session) error {
	for {
		select {
		case d, ok := <-s.deliveries:
			if !ok {
				return errors.New("journal consumer cancelled")
			}
			b.applyDelivery(d)
			if err := d.Ack(false); err != nil {
				return err
			}
		case err := <-s.closed:
			if err == nil {
				return errors.New("connection closed")
			}
			return err
		case err := <-s.pubClosed:
			// RabbitMQ closed the publishing channel (a refused message): start a new
			// session rather than publish into a dead channel.
			if err == nil {
				return errors.New("publishing channel closed")
			}
			return err
		case <-b.closed:
			return broker.ErrClosed
		}
	}
}

func (b *Broker) applyDelivery(d amqp.Delivery) {
	offset, ok := d.Headers["x-stream-offset"].(int64)
	if !ok {
		b.opts.Logger.Error("brisk: rabbitmq: journal entry without x-stream-offset; skipped")
		return
	}
	var ev event
	err := json.Unmarshal(d.Body, &ev)
	b.mu.Lock()
	defer b.mu.Unlock()
	if offset <= b.offset {
		return // a stream may resend the start of a chunk
	}
	b.offset = offset
	if err != nil {
		b.opts.Logger.Error("brisk: rabbitmq: unreadable journal entry; skipped", "offset", offset, "err", err)
		return
	}
	res := b.st.apply(&ev)
	b.maybeSnapshotLocked()
	if ch := b.ops[ev.ID]; ch != nil {
		ch <- res
		delete(b.ops, ev.ID)
	}
	switch ev.Op {
	case opSync, opHeartbeat, opDeregister, opSnapshot:
	default:
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

func (b *Broker) setSession(s *session, err error) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if err != nil {
		b.lastErr = err
	}
	if s == nil {
		if b.cur != nil {
			b.cur = nil
			b.up = make(chan struct{})
		}
		return
	}
	b.cur = s
	close(b.up)
}

// session returns the current session, waiting for a reconnection within ctx, but no
// longer than Options.OutageWait.
func (b *Broker) session(ctx context.Context) (*session, error) {
	var timeout <-chan time.Time
	for {
		b.connMu.Lock()
		s, up, lastErr := b.cur, b.up, b.lastErr
		b.connMu.Unlock()
		if s != nil {
			return s, nil
		}
		if timeout == nil {
			t := time.NewTimer(b.opts.OutageWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-up:
		case <-b.closed:
			return nil, errClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("brisk: rabbitmq: %w: not connected (%v): %w", broker.ErrUnavailable, lastErr, ctx.Err())
		case <-timeout:
			return nil, fmt.Errorf("brisk: rabbitmq: %w: not connected for %s (%v)", broker.ErrUnavailable, b.opts.OutageWait, lastErr)
		}
	}
}

var errClosed = fmt.Errorf("brisk: rabbitmq: %w", broker.ErrClosed)

// do publishes ev to the journal, waits until this broker has applied it, and returns the
// result of applying it. An error wrapping broker.ErrUnavailable after the publish means
// that the connection was lost before RabbitMQ confirmed the entry: it may or may not be
// applied later.
func (b *Broker) do(ctx context.Context, ev *event) (result, error) {
	if b.isClosed() {
		return result{}, errClosed
	}
	if ev.Now.IsZero() {
		ev.Now = time.Now().Round(0)
	}
	ev.ID = fmt.Sprintf("%s.%d", b.id, b.seq.Add(1))
	body, err := json.Marshal(ev)
	if err != nil {
		return result{}, fmt.Errorf("brisk: rabbitmq: encode %s: %v", ev.Op, err)
	}
	if len(body) > maxEntryBytes {
		return result{}, fmt.Errorf("brisk: rabbitmq: %w: a batch of %d task(s) is %d bytes as one journal entry, limit %d; enqueue it in smaller batches",
			broker.ErrPayloadTooLarge, len(ev.Tasks), len(body), maxEntryBytes)
	}
	ch := make(chan result, 1)
	b.mu.Lock()
	b.ops[ev.ID] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.ops, ev.ID)
		b.mu.Unlock()
	}()

	var (
		s  *session
		dc *amqp.DeferredConfirmation
	)
	for {
		if s, err = b.session(ctx); err != nil {
			return result{}, err
		}
		msg := amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Timestamp:    ev.Now,
			Type:         ev.Op,
			Body:         body,
		}
		dc, err = s.pub.PublishWithDeferredConfirmWithContext(ctx, "", b.stream, false, false, msg)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("brisk: rabbitmq: publish %s: %w", ev.Op, ctx.Err())
		}
		// The channel is closed: nothing was sent. Wait for the next session.
		select {
		case <-s.lost:
		case <-b.closed:
			return result{}, errClosed
		case <-time.After(100 * time.Millisecond):
			// A channel closed while its connection stays up (rare): try again.
		}
	}
	confirmed, lost := dc.Done(), s.lost
	for {
		select {
		case res := <-ch:
			return res, nil
		case <-confirmed:
			if !dc.Acked() {
				return result{}, fmt.Errorf("brisk: rabbitmq: %w: RabbitMQ did not confirm the %s entry (connection lost or message refused); it may or may not be applied", broker.ErrUnavailable, ev.Op)
			}
			confirmed = nil
		case <-lost:
			if confirmed != nil && !dc.Acked() {
				return result{}, fmt.Errorf("brisk: rabbitmq: %w: connection lost before RabbitMQ confirmed the %s entry; it may or may not be applied", broker.ErrUnavailable, ev.Op)
			}
			lost = nil // confirmed: it is in the journal; this broker applies it once reconnected
		case <-ctx.Done():
			return result{}, fmt.Errorf("brisk: rabbitmq: %s: %w (the entry may still be applied)", ev.Op, ctx.Err())
		case <-b.closed:
			return result{}, errClosed
		}
	}
}

// sync returns once this broker has applied every entry that RabbitMQ confirmed before the
// call: a read barrier, so that reads see the writes of every other broker value.
func (b *Broker) sync(ctx context.Context) error {
	_, err := b.do(ctx, &event{Op: opSync})
	return err
}

func newInstanceID() string {
	var x [6]byte
	_, _ = rand.Read(x[:])
	return hex.EncodeToString(x[:])
}
