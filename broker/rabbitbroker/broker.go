package rabbitbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Broker is a brisk broker on RabbitMQ: one queue per brisk queue. It is safe for
// concurrent use.
type Broker struct {
	opts Options
	n    names
	id   string // this broker value: lease tokens, consumer tags, the connection name
	seq  atomic.Uint64
	mgmt *management // nil when the management API is off

	connMu  sync.Mutex // guards cur, up, lastErr
	cur     *session   // nil while disconnected
	up      chan struct{}
	lastErr error

	mu        sync.Mutex // guards everything below
	queues    map[string]*queueInfo
	consumers map[string]*consumer
	leases    map[string]*lease
	workers   map[string]broker.WorkerInfo
	heads     map[string]time.Time     // queue → lower bound of its head's ReadyAt (stats.go)
	marks     map[string]chan struct{} // stream markers waited for (meta.go)
	offsets   [2]int64                 // last offsets applied of the meta and live streams
	reported  map[string]time.Time     // queue → head bound last published by this value
	wake      chan struct{}            // closed and replaced when a Wait may return
	deadMu    map[string]*sync.Mutex   // one browse of a dead queue at a time per queue
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// queueInfo is what the store knows of a brisk queue.
type queueInfo struct {
	sla    time.Duration
	known  bool   // declared or enqueued to (listed by Stats)
	levels uint32 // delay levels whose queues exist
}

var _ broker.Broker = (*Broker)(nil)

// session is one connection to RabbitMQ and the channels made on it.
type session struct {
	conn *amqp.Connection

	pubMu sync.Mutex
	pub   *amqp.Channel // confirm mode; see publisher

	opsMu sync.Mutex
	ops   *amqp.Channel // declarations and passive declares; reopened after a channel error

	topoMu   sync.Mutex
	declared map[string]bool   // ready queues whose topology was declared on this connection
	levels   map[string]uint32 // delay queues declared on this connection
	prefixOK bool              // the exchanges of the store were declared on this connection
}

var errClosed = fmt.Errorf("brisk: rabbitmq: %w", broker.ErrClosed)

// OpenOptions connects to RabbitMQ, declares the store's exchanges and streams if needed,
// reads the store's queue declarations, and returns.
func OpenOptions(ctx context.Context, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	b := &Broker{
		opts:      opts,
		n:         names{opts.Prefix},
		id:        hex.EncodeToString(idb[:]),
		queues:    map[string]*queueInfo{},
		consumers: map[string]*consumer{},
		leases:    map[string]*lease{},
		workers:   map[string]broker.WorkerInfo{},
		heads:     map[string]time.Time{},
		marks:     map[string]chan struct{}{},
		offsets:   [2]int64{-1, -1},
		reported:  map[string]time.Time{},
		wake:      make(chan struct{}),
		deadMu:    map[string]*sync.Mutex{},
		up:        make(chan struct{}),
		closed:    make(chan struct{}),
	}
	if opts.Management != managementOff {
		b.mgmt = newManagement(opts.Management, opts.URL, opts.DialTimeout)
	}
	// A connection that drops while the store is being set up (RabbitMQ restarting) is tried
	// again within OutageWait; a server that cannot be reached fails at once.
	s, err := b.connect()
	for delay, deadline := 50*time.Millisecond, time.Now().Add(opts.OutageWait); err != nil && !errors.Is(err, errDial) && time.Now().Before(deadline); delay = min(2*delay, time.Second) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("brisk: rabbitmq: %w: %s: %v", broker.ErrUnavailable, redact(opts.URL), ctx.Err())
		case <-time.After(delay):
		}
		s, err = b.connect()
	}
	if err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w: %s: %v", broker.ErrUnavailable, redact(opts.URL), err)
	}
	b.setSession(s, nil)
	b.wg.Add(2)
	go b.watch(s)
	go b.sweep()
	// Read the declarations other processes made before returning, so that Stats of a
	// fresh broker value lists every queue.
	if err := b.barrier(ctx, streamMeta); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("brisk: rabbitmq: reading the queue declarations of %s: %w", opts.Prefix, err)
	}
	return b, nil
}

// Capabilities declares none of the optional behaviours: a RabbitMQ queue is FIFO, a
// delivery belongs to the channel that received it, and a message can be read only by
// taking it (see the package documentation).
func (b *Broker) Capabilities() broker.Capabilities { return broker.Capabilities{} }

func (b *Broker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// Close hands the tasks this broker value holds unreserved back to their queues, closes the
// connection (RabbitMQ then delivers the tasks it reserved again, with the attempt counted)
// and returns. It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		s := b.current()
		if s != nil {
			b.returnAllBuffered(s)
		}
		close(b.closed)
		b.connMu.Lock()
		if b.cur != nil {
			_ = b.cur.conn.Close()
		}
		b.connMu.Unlock()
		b.wg.Wait()
		if b.mgmt != nil {
			b.mgmt.client.CloseIdleConnections()
		}
		b.mu.Lock()
		for _, l := range b.leases {
			l.timer.Stop()
		}
		b.leases = map[string]*lease{}
		b.mu.Unlock()
	})
	return nil
}

// connect dials RabbitMQ and opens the channels of a session.
func (b *Broker) connect() (*session, error) {
	cfg := amqp.Config{
		Dial:       amqp.DefaultDial(b.opts.DialTimeout),
		Heartbeat:  5 * time.Second,
		Properties: amqp.Table{"connection_name": "brisk " + b.opts.Prefix + " " + b.id},
	}
	conn, err := amqp.DialConfig(b.opts.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDial, err)
	}
	s := &session{conn: conn, declared: map[string]bool{}, levels: map[string]uint32{}}
	fail := func(err error) (*session, error) {
		_ = conn.Close()
		return nil, err
	}
	if s.pub, err = conn.Channel(); err != nil {
		return fail(err)
	}
	if err := s.pub.Confirm(false); err != nil {
		return fail(err)
	}
	if s.ops, err = conn.Channel(); err != nil {
		return fail(err)
	}
	if err := b.declarePrefix(s); err != nil {
		return fail(err)
	}
	for i := range streams {
		if err := b.consumeStream(s, i); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

func (b *Broker) setSession(s *session, err error) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	b.cur, b.lastErr = s, err
	if s != nil {
		close(b.up)
	}
}

func (b *Broker) current() *session {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	return b.cur
}

// watch waits for the connection of s to drop, then reconnects with backoff until the
// broker is closed.
func (b *Broker) watch(s *session) {
	defer b.wg.Done()
	for {
		lost := s.conn.NotifyClose(make(chan *amqp.Error, 1))
		var err *amqp.Error
		select {
		case err = <-lost:
		case <-b.closed:
			return
		}
		b.lose(s, err)
		delay := 50 * time.Millisecond
		for {
			select {
			case <-b.closed:
				return
			case <-time.After(delay):
			}
			next, cerr := b.connect()
			if cerr == nil {
				s = next
				b.setSession(s, nil)
				b.opts.Logger.Info("brisk: rabbitmq: reconnected", "prefix", b.opts.Prefix)
				b.mu.Lock()
				b.wakeLocked()
				b.mu.Unlock()
				break
			}
			b.connMu.Lock()
			b.lastErr = cerr
			b.connMu.Unlock()
			delay = min(delay*2, 2*time.Second)
		}
	}
}

// lose forgets a dropped session: RabbitMQ gives every delivery of its channels to other
// consumers again, so the leases held on them are lost.
func (b *Broker) lose(s *session, err *amqp.Error) {
	b.connMu.Lock()
	if b.cur == s {
		b.cur = nil
		b.up = make(chan struct{})
		if err != nil {
			b.lastErr = err
		} else {
			b.lastErr = errors.New("connection closed")
		}
	}
	b.connMu.Unlock()
	_ = s.conn.Close()
	b.opts.Logger.Warn("brisk: rabbitmq: connection lost; reconnecting", "prefix", b.opts.Prefix, "err", err)
	b.mu.Lock()
	defer b.mu.Unlock()
	for token, l := range b.leases {
		if l.c.s == s {
			l.timer.Stop()
			delete(b.leases, token)
		}
	}
	for q, c := range b.consumers {
		if c.s == s {
			delete(b.consumers, q)
		}
	}
	b.wakeLocked()
}

// session returns the connected session, waiting for a lost connection to come back within
// ctx but no longer than OutageWait.
func (b *Broker) session(ctx context.Context) (*session, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	b.connMu.Lock()
	s, up := b.cur, b.up
	b.connMu.Unlock()
	if s != nil {
		return s, nil
	}
	timer := time.NewTimer(b.opts.OutageWait)
	defer timer.Stop()
	select {
	case <-up:
		return b.session(ctx)
	case <-b.closed:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		b.connMu.Lock()
		err := b.lastErr
		b.connMu.Unlock()
		return nil, fmt.Errorf("brisk: rabbitmq: %w: %s: no connection for %s: %v", broker.ErrUnavailable, redact(b.opts.URL), b.opts.OutageWait, err)
	}
}

// unavailable wraps an error of a call to RabbitMQ.
func (b *Broker) unavailable(what string, err error) error {
	if b.isClosed() {
		return errClosed
	}
	var amqpErr *amqp.Error
	if errors.Is(err, amqp.ErrClosed) || (errors.As(err, &amqpErr) && !amqpErr.Recover) || errors.Is(err, errNacked) {
		return fmt.Errorf("brisk: rabbitmq: %s: %w: %v", what, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("brisk: rabbitmq: %s: %w", what, err)
}

var (
	errNacked = errors.New("the server refused the message (publisher nack)")
	// errDial marks a connection that could not be made at all.
	errDial = errors.New("cannot connect")
)

// publish publishes messages with publisher confirms and waits until RabbitMQ has taken
// every one of them.
func (b *Broker) publish(ctx context.Context, s *session, msgs []outMsg) error {
	pub, err := s.publisher()
	if err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, m.exchange, m.key, false, false, m.msg)
		if err != nil {
			return err
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		select {
		case <-dc.Done():
		case <-ctx.Done():
			return ctx.Err()
		case <-b.closed:
			return errClosed
		}
		if !dc.Acked() {
			if pub.IsClosed() {
				return amqp.ErrClosed
			}
			return errNacked
		}
	}
	return nil
}

// publisher returns the session's confirm-mode channel, opening a new one when a channel
// error closed it while the connection lives on.
func (s *session) publisher() (*amqp.Channel, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if !s.pub.IsClosed() {
		return s.pub, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	s.pub = ch
	return ch, nil
}

// outMsg is a message to publish.
type outMsg struct {
	exchange, key string
	msg           amqp.Publishing
}

func (b *Broker) wakeLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

func (b *Broker) token() string {
	return b.id + "." + fmt.Sprint(b.seq.Add(1))
}
