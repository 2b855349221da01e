package rabbitbroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// maxEntryBytes bounds one journal entry (one Enqueue batch, encoded), below RabbitMQ's
// default max_message_size of 128 MiB.
const maxEntryBytes = 120 << 20

// maxBatchBytes bounds a group-commit message (several entries of one broker value): entries
// are added while the message stays below it (a single larger entry goes alone).
const maxBatchBytes = 4 << 20

// A broker value publishes its next group-commit message at once when no message of its
// waits for a publisher confirm; while one does, calls gather into the next message, which
// is published without waiting for the confirm (pipelined) as soon as it holds fullBatch
// entries or fullBatchBytes, up to maxInFlight unconfirmed messages. Measured on one
// machine, more small messages in flight only cost RabbitMQ more work per entry.
const (
	maxInFlight    = 4
	fullBatch      = 32
	fullBatchBytes = 256 << 10
)

// ackEvery is how many journal messages the consumer takes before it acks them (one
// multiple ack), well below consumePrefetch.
const ackEvery = 100

// consumePrefetch is how many journal messages RabbitMQ sends ahead of the acks of one
// broker's stream consumer (a stream consumer must have a prefetch; acks only give credit).
const consumePrefetch = 1000

// AMQP message types of the journal. Any other type is one event (the type is its op).
const (
	typeBatch = "batch" // a JSON array of events, applied in order
	typeBase  = "base"  // a snapshot: the state at the start of a generation
)

// op kinds: a moved or base op is never republished into another generation.
const (
	kindEntry = iota
	kindMoved
	kindBase
)

// op is one call's entry on its way through the journal.
type op struct {
	id     string
	kind   int
	ev     *event
	body   []byte
	done   chan opResult // receives once
	gen    int64         // generation it was published to; -1 while queued
	forGen int64         // a base: the generation it is a base of
	pub    *publication  // the message that carried it last
	queued time.Time
}

type opResult struct {
	res result
	err error
}

// publication is one published journal message.
type publication struct {
	dc  *amqp.DeferredConfirmation
	ops []*op
}

// session is one connection to RabbitMQ: a channel in confirm mode that publishes to the
// journal and a channel that consumes the current generation.
type session struct {
	conn       *amqp.Connection
	pub        *amqp.Channel
	con        *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     chan *amqp.Error
	pubClosed  chan *amqp.Error // the publishing channel closed (a refused message closes it)
	lost       chan struct{}    // closed when the session is over
}

// errGenGone means that the generation a broker was reading has been deleted (the broker
// was away for longer than the rollover grace period).
var errGenGone = errors.New("journal generation deleted")

// connect dials RabbitMQ and starts consuming generation gen after offset from (or from its
// first entry when from < 0).
func (b *Broker) connect(gen, from int64) (*session, error) {
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
	if err := pub.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	s := &session{conn: conn, pub: pub, lost: make(chan struct{})}
	if err := b.consumeGen(s, gen, from); err != nil {
		_ = conn.Close()
		return nil, err
	}
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.pubClosed = pub.NotifyClose(make(chan *amqp.Error, 1))
	return s, nil
}

// consumeGen opens a consuming channel on s for generation gen, after offset from. It
// returns errGenGone when the generation's stream does not exist.
func (b *Broker) consumeGen(s *session, gen, from int64) error {
	name := b.streamName(gen)
	con, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if _, err := con.QueueDeclarePassive(name, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("%w: %s", errGenGone, name)
		}
		return fmt.Errorf("declare stream %s: %w", name, err)
	}
	if err := con.Qos(consumePrefetch, 0, false); err != nil {
		_ = con.Close()
		return fmt.Errorf("qos: %w", err)
	}
	var offset any = "first"
	if from >= 0 {
		offset = from + 1
	}
	deliveries, err := con.Consume(name, "", false, false, false, false, amqp.Table{"x-stream-offset": offset})
	if err != nil {
		return fmt.Errorf("consume stream %s: %w", name, err)
	}
	if s.con != nil {
		_ = s.con.Close()
	}
	s.con, s.deliveries = con, deliveries
	return nil
}

// run applies the journal as it arrives and reconnects, with backoff, when the connection
// is lost. The new session consumes from the entry after the last one applied, so no entry
// is missed or applied twice. When the generation it was reading is gone, it reloads the
// store from the oldest generation left (see rollover.go).
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
			gen, from, hold := b.gen, b.offset, b.holdConnect
			b.mu.Unlock()
			if hold != nil {
				select { // a test keeps this broker value away
				case <-hold:
				case <-b.closed:
					return
				}
			}
			s, err = b.connect(gen, from)
			if err == nil {
				break
			}
			if errors.Is(err, errGenGone) {
				b.opts.Logger.Warn("brisk: rabbitmq: the journal generation this broker was reading is gone; reloading the store", "err", err)
				if err = b.reload(); err == nil {
					backoff = 10 * time.Millisecond // reconnect at once to the generation found
					continue
				}
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
		b.kickPublisher()
	}
}

// consume applies entries until the session ends or the broker is closed.
func (b *Broker) consume(s *session) error {
	unacked := 0
	for {
		select {
		case d, ok := <-s.deliveries:
			if !ok {
				return errors.New("journal consumer cancelled")
			}
			next := b.applyDelivery(d)
			if next >= 0 {
				// The generation moved: read the next one from its start.
				if err := b.consumeGen(s, next, -1); err != nil {
					return err
				}
				unacked = 0
				continue
			}
			// Acks only give the consumer credit: one for many messages.
			if unacked++; unacked >= ackEvery || len(s.deliveries) == 0 {
				if err := d.Ack(true); err != nil {
					return err
				}
				unacked = 0
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

// applyDelivery applies one journal message. It returns the next generation when the
// message moved the journal there (-1 otherwise).
func (b *Broker) applyDelivery(d amqp.Delivery) int64 {
	offset, ok := d.Headers["x-stream-offset"].(int64)
	if !ok {
		b.opts.Logger.Error("brisk: rabbitmq: journal entry without x-stream-offset; skipped")
		return -1
	}
	var (
		evs     []*event
		snap    *state
		snapGen int64
		covers  int64
		err     error
	)
	switch d.Type {
	case typeBase:
		b.mu.Lock()
		need := b.needBase
		b.mu.Unlock()
		if need {
			snap, snapGen, covers, err = decodeState(d.Body)
		}
	case typeBatch:
		err = json.Unmarshal(d.Body, &evs)
	default:
		var ev event
		err = json.Unmarshal(d.Body, &ev)
		evs = []*event{&ev}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if offset <= b.offset {
		return -1 // a stream may resend the start of a chunk
	}
	b.offset = offset
	if err != nil {
		b.opts.Logger.Error("brisk: rabbitmq: unreadable journal entry; skipped", "gen", b.gen, "offset", offset, "err", err)
		return -1
	}
	if d.Type == typeBase {
		if snap != nil && snapGen != b.gen {
			b.opts.Logger.Error("brisk: rabbitmq: a base of another journal generation; skipped", "gen", b.gen, "base of", snapGen)
			return -1
		}
		b.applyBaseLocked(d.MessageId, snap, covers)
		return -1
	}
	if b.needBase {
		// No state yet: keep the message until a base of this generation comes, unless
		// the generation moves on first.
		for _, ev := range evs {
			if ev.Op == opMoved && ev.Gen == b.gen+1 {
				b.switchLocked(ev)
				return b.gen
			}
		}
		b.early = append(b.early, earlyMsg{offset, evs})
		return -1
	}
	return b.applyLocked(evs)
}

// earlyMsg is a message read before a base by a broker value that has no state yet.
type earlyMsg struct {
	offset int64
	evs    []*event
}

// applyLocked applies the entries of one message. It returns the next generation when one
// of them moved the journal there (-1 otherwise).
func (b *Broker) applyLocked(evs []*event) int64 {
	changed := false
	next := int64(-1)
	for _, ev := range evs {
		if ev.Op == opMoved {
			if ev.Gen != b.gen+1 {
				b.finishLocked(ev.ID, result{}, nil) // a stale request: lost
				continue
			}
			b.switchLocked(ev)
			next = b.gen
			break // the rest of the message is ignored by every reader
		}
		res := b.st.apply(ev)
		b.sinceGen++
		b.finishLocked(ev.ID, res, nil)
		switch ev.Op {
		case opSync, opHeartbeat, opDeregister, opSnapshot:
		default:
			changed = true
		}
	}
	if changed {
		b.notifyLocked()
	}
	if next < 0 {
		b.maybeRollLocked()
	}
	return next
}

// notifyLocked wakes every Wait.
func (b *Broker) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// finishLocked hands res to the call waiting for op id, if any.
func (b *Broker) finishLocked(id string, res result, err error) {
	o := b.ops[id]
	if o == nil {
		return
	}
	delete(b.ops, id)
	o.done <- opResult{res, err}
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
// result of applying it. Calls made at the same time by goroutines of one broker value
// share journal messages (group commit, see publisher). An error wrapping
// broker.ErrUnavailable after the publish means that the connection was lost before
// RabbitMQ confirmed the entry: it may or may not be applied later.
func (b *Broker) do(ctx context.Context, ev *event) (result, error) {
	if b.isClosed() {
		return result{}, errClosed
	}
	if ev.Now.IsZero() {
		ev.Now = time.Now().Round(0)
	}
	ev.ID = b.nextID()
	body, err := json.Marshal(ev)
	if err != nil {
		return result{}, fmt.Errorf("brisk: rabbitmq: encode %s: %v", ev.Op, err)
	}
	if len(body) > maxEntryBytes {
		return result{}, fmt.Errorf("brisk: rabbitmq: %w: a batch of %d task(s) is %d bytes as one journal entry, limit %d; enqueue it in smaller batches",
			broker.ErrPayloadTooLarge, len(ev.Tasks), len(body), maxEntryBytes)
	}
	kind := kindEntry
	if ev.Op == opMoved {
		kind = kindMoved
	}
	return b.submit(ctx, &op{id: ev.ID, kind: kind, ev: ev, body: body}, false)
}

func (b *Broker) nextID() string {
	return fmt.Sprintf("%s.%d", b.id, b.seq.Add(1))
}

// submit queues o for the publisher (at the front of the queue if front) and waits for
// its result.
func (b *Broker) submit(ctx context.Context, o *op, front bool) (result, error) {
	if _, err := b.session(ctx); err != nil {
		return result{}, err
	}
	o.done = make(chan opResult, 1)
	o.gen = -1
	o.queued = time.Now()
	b.mu.Lock()
	b.ops[o.id] = o
	if front {
		b.queue = append([]*op{o}, b.queue...)
	} else {
		b.queue = append(b.queue, o)
	}
	b.mu.Unlock()
	b.kickPublisher()
	what := "entry"
	if o.ev != nil {
		what = o.ev.Op
	}
	select {
	case r := <-o.done:
		return r.res, r.err
	case <-ctx.Done():
		b.abandon(o)
		return result{}, fmt.Errorf("brisk: rabbitmq: %s: %w (the entry may still be applied)", what, ctx.Err())
	case <-b.closed:
		b.abandon(o)
		return result{}, errClosed
	}
}

// abandon forgets o: its caller no longer waits. If it was not published yet, it never is.
func (b *Broker) abandon(o *op) {
	b.mu.Lock()
	if b.ops[o.id] == o {
		delete(b.ops, o.id)
	}
	b.mu.Unlock()
}

func (b *Broker) kickPublisher() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// publisher sends the queued entries of this broker value, in order, several to a message
// (group commit): the calls queued while a message waits for its confirm go together into
// the next one, which is published without waiting for that confirm (pipelined) once it
// is full, or else when the confirm comes (see maxInFlight). It runs until the broker is
// closed.
func (b *Broker) publisher() {
	defer b.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.closed:
			return
		case <-b.kick:
		case <-tick.C:
		}
		for b.publishOnce() {
		}
	}
}

// publishOnce publishes one message of queued entries and reports whether it did.
func (b *Broker) publishOnce() bool {
	b.connMu.Lock()
	s := b.cur
	b.connMu.Unlock()
	b.mu.Lock()
	if s == nil {
		// Disconnected: calls that have waited OutageWait for the connection give up.
		cutoff := time.Now().Add(-b.opts.OutageWait)
		keep := b.queue[:0]
		for _, o := range b.queue {
			if b.ops[o.id] != o {
				continue
			}
			if o.queued.Before(cutoff) {
				b.finishLocked(o.id, result{}, fmt.Errorf("brisk: rabbitmq: %w: not connected for %s", broker.ErrUnavailable, b.opts.OutageWait))
				continue
			}
			keep = append(keep, o)
		}
		clear(b.queue[len(keep):])
		b.queue = keep
		b.mu.Unlock()
		return false
	}
	if b.inFlight >= maxInFlight || b.inFlight > 0 && !b.fullLocked() {
		b.mu.Unlock()
		return false
	}
	// Drop the calls that no longer wait (abandoned, or finished by a failure).
	b.queue = slices.DeleteFunc(b.queue, func(o *op) bool { return b.ops[o.id] != o })
	var (
		batch []*op
		size  int
		base  *op
	)
	for len(b.queue) > 0 && b.queue[0].kind == kindBase && b.queue[0].forGen != b.gen {
		// A base of a generation that has moved on meanwhile: it must not go anywhere else.
		stale := b.queue[0]
		b.queue = b.queue[1:]
		b.finishLocked(stale.id, result{}, errors.New("brisk: rabbitmq: the journal moved on before this base was written"))
	}
	if len(b.queue) > 0 && b.queue[0].kind == kindBase {
		base = b.queue[0] // a base goes alone
		b.queue = b.queue[1:]
		batch = []*op{base}
	} else {
		i := 0
		for ; i < len(b.queue) && b.queue[i].kind != kindBase; i++ {
			o := b.queue[i]
			if len(batch) > 0 && size+len(o.body)+1 > maxBatchBytes {
				break
			}
			batch = append(batch, o)
			size += len(o.body) + 1
		}
		clear(b.queue[:i])
		b.queue = b.queue[i:]
	}
	if len(batch) == 0 {
		b.mu.Unlock()
		return false
	}
	gen := b.gen
	for _, o := range batch {
		o.gen = gen
	}
	b.inFlight++
	b.mu.Unlock()

	msg := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Timestamp: time.Now()}
	switch {
	case base != nil:
		msg.Type, msg.MessageId, msg.Body = typeBase, base.id, base.body
	case len(batch) == 1:
		msg.Type, msg.Body = batch[0].ev.Op, batch[0].body
	default:
		var buf bytes.Buffer
		buf.Grow(size + 1)
		buf.WriteByte('[')
		for j, o := range batch {
			if j > 0 {
				buf.WriteByte(',')
			}
			buf.Write(o.body)
		}
		buf.WriteByte(']')
		msg.Type, msg.Body = typeBatch, buf.Bytes()
	}
	dc, err := s.pub.PublishWithDeferredConfirm("", b.streamName(gen), false, false, msg)
	if err != nil {
		// The channel is closed: nothing was sent. The entries go back to the front of the
		// queue for the next session.
		b.mu.Lock()
		b.inFlight--
		for _, o := range batch {
			o.gen = -1
		}
		b.queue = append(batch, b.queue...)
		b.mu.Unlock()
		// run notices the closed channel and connects again; until then the publisher
		// tries again on its next tick.
		return false
	}
	p := &publication{dc: dc, ops: batch}
	b.mu.Lock()
	for _, o := range batch {
		o.pub = p
	}
	b.mu.Unlock()
	b.wg.Add(1)
	go b.track(s, p)
	return true
}

// fullLocked reports whether the queued entries make a full message.
func (b *Broker) fullLocked() bool {
	if len(b.queue) >= fullBatch {
		return true
	}
	size := 0
	for _, o := range b.queue {
		if size += len(o.body); size >= fullBatchBytes || o.kind == kindBase {
			return true
		}
	}
	return false
}

// track waits for the confirm of p. Entries that RabbitMQ did not confirm fail with
// ErrUnavailable (they may or may not be in the journal); confirmed ones are finished when
// applied.
func (b *Broker) track(s *session, p *publication) {
	defer b.wg.Done()
	acked := false
	select {
	case <-p.dc.Done():
		acked = p.dc.Acked()
	case <-s.lost:
		select {
		case <-p.dc.Done():
			acked = p.dc.Acked()
		default:
		}
	case <-b.closed:
	}
	b.mu.Lock()
	b.inFlight--
	if !acked {
		for _, o := range p.ops {
			if b.ops[o.id] == o && o.pub == p {
				what := "entry"
				if o.ev != nil {
					what = o.ev.Op
				}
				b.finishLocked(o.id, result{}, fmt.Errorf("brisk: rabbitmq: %w: RabbitMQ did not confirm the %s entry (connection lost or message refused); it may or may not be applied", broker.ErrUnavailable, what))
			}
		}
	}
	b.mu.Unlock()
	b.kickPublisher()
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
