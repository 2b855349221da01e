package rabbitbroker

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// How a worker's demand maps onto RabbitMQ consumers.
//
// Each broker value has at most one consumer per brisk queue, on a channel of its own, with
// a per-consumer prefetch (basic.qos) that RabbitMQ keeps: it never has more deliveries
// unacked than the prefetch. Reserve takes deliveries from the consumer's buffer; when the
// buffer holds fewer than asked and the consumer's window has no room for the rest, the
// consumer is replaced by one whose prefetch is what Reserve still asks for (a prefetch
// cannot be changed on a running consumer). A worker asks for its free slots plus its
// Prefetch, so the window settles at its concurrency plus Prefetch, and RabbitMQ fills the
// buffer up to the free slots plus Prefetch: a busy worker holds no task that an idle one
// could run. When no Reserve or Wait has asked for a queue for holdBuffered (the worker is
// busy with long tasks, at its limit for that queue, or gone), what its consumer buffered
// goes back to the queue and the consumer stops until a Reserve or Wait asks again.
const (
	// holdBuffered is how long a buffer is kept while nobody asks for its queue.
	holdBuffered = time.Second
	// reserveWait bounds how long Reserve waits for deliveries RabbitMQ is sending when the
	// queue has ready messages.
	reserveWait = 250 * time.Millisecond
	// headEvery is how often a broker value publishes a new head bound of a queue (stats.go).
	headEvery = 100 * time.Millisecond
)

// consumer is a broker value's consumer of one brisk queue's ready queue.
type consumer struct {
	q  string
	s  *session
	ch *amqp.Channel

	reserveMu sync.Mutex // one Reserve at a time takes from this consumer

	// Guarded by Broker.mu.
	tag     string         // the current consumer tag ("" when not consuming)
	window  int            // its prefetch
	pending map[string]int // unacked deliveries per consumer tag (buffered and held)
	// settling holds the delivery tags taken out of the buffer or the leases whose ack or
	// reject has not been sent yet: an ack with multiple=true must not cover them.
	settling map[uint64]bool
	buf      []buffered
	held     int
	asked    time.Time // the last Reserve or Wait for this queue
	// returning counts deliveries taken out of the buffer to be published back: Stats
	// counts them pending until they are in the queue again.
	returning int
	// received counts the deliveries ever buffered, so that Stats can tell whether one
	// arrived while it counted the queue.
	received int64
}

type buffered struct {
	d  amqp.Delivery
	at time.Time
}

// lease is a task reserved by this broker value: a delivery it holds unacked.
type lease struct {
	c     *consumer
	d     amqp.Delivery
	dec   decoded
	until time.Time
	timer *time.Timer
}

// consumerFor returns the consumer of q, creating its channel (not yet consuming).
func (b *Broker) consumerFor(ctx context.Context, s *session, q string) (*consumer, error) {
	b.mu.Lock()
	c := b.consumers[q]
	b.mu.Unlock()
	if c != nil && c.s == s && !c.ch.IsClosed() {
		return c, nil
	}
	if err := b.ensureQueue(ctx, s, q); err != nil {
		return nil, b.unavailable("declaring queue "+q, err)
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, b.unavailable("opening a channel", err)
	}
	c = &consumer{q: q, s: s, ch: ch, pending: map[string]int{}, settling: map[uint64]bool{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.consumers[q]; old != nil && old.s == s && !old.ch.IsClosed() {
		_ = ch.Close()
		return old, nil
	}
	b.consumers[q] = c
	return c, nil
}

// ensureRoom makes sure that the consumer's window (its prefetch) can hold the tasks this
// broker value holds plus need more, starting a consumer with that prefetch if not
// (RabbitMQ applies a prefetch to consumers started after it). The window is thus the most
// that was held and asked for at once: a worker holds its running tasks and asks for its
// free slots plus its Prefetch, so the window settles at its concurrency plus Prefetch, plus
// the tasks whose acks it had not sent yet when it asked. It returns the room the window
// has now (less than need while acks of held tasks are on their way) and whether it started
// a consumer.
func (b *Broker) ensureRoom(c *consumer, need int) (room int, started bool, err error) {
	b.mu.Lock()
	if c.tag != "" {
		room = c.window - c.pending[c.tag]
	}
	old, enough := c.tag, c.tag != "" && c.window >= c.held+need
	window := max(c.held+need, c.window)
	b.mu.Unlock()
	if room >= need || enough {
		return room, false, nil
	}
	if old != "" {
		if err := c.ch.Cancel(old, false); err != nil {
			return 0, false, err
		}
	}
	// Until the tasks held under the old consumer are acked, the new one may be sent that
	// many more than its window.
	tag := b.token()
	if err := c.ch.Qos(window, 0, false); err != nil {
		return 0, false, err
	}
	deliveries, err := c.ch.Consume(b.n.ready(c.q), tag, false, false, false, false, nil)
	if err != nil {
		return 0, false, err
	}
	b.mu.Lock()
	c.tag, c.window = tag, window
	b.mu.Unlock()
	b.wg.Add(1)
	go b.receive(c, tag, deliveries)
	return window, true, nil
}

// receive buffers the deliveries of one consumer tag.
func (b *Broker) receive(c *consumer, tag string, deliveries <-chan amqp.Delivery) {
	defer b.wg.Done()
	for d := range deliveries {
		now := time.Now()
		b.mu.Lock()
		c.buf = append(c.buf, buffered{d: d, at: now})
		c.received++
		c.pending[tag]++
		if r := readyAtOf(&d); r.After(b.heads[c.q]) {
			b.heads[c.q] = r // the head now is at least as young as what was just delivered
		}
		b.wakeLocked()
		b.mu.Unlock()
	}
}

func readyAtOf(d *amqp.Delivery) time.Time { return headerTime(d.Headers, hReady) }

// settledLocked forgets one delivery of c (acked, rejected or republished).
func (c *consumer) settledLocked(tag string) {
	if c.pending[tag]--; c.pending[tag] <= 0 {
		delete(c.pending, tag)
	}
}

// Reserve takes up to p.Limit tasks from the consumers of p.Queues, in order.
func (b *Broker) Reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	var out []*broker.Task
	for _, ql := range p.Queues {
		want := p.Limit - len(out)
		if ql.Max > 0 && ql.Max < want {
			want = ql.Max
		}
		if want <= 0 {
			break
		}
		got, err := b.reserveFrom(ctx, s, ql.Name, want, p.Lease)
		out = append(out, got...)
		if err != nil {
			if len(out) > 0 {
				return out, nil // run what is leased; the next call meets the error again
			}
			return nil, err
		}
	}
	return out, nil
}

// reserveFrom takes up to want tasks of queue q.
func (b *Broker) reserveFrom(ctx context.Context, s *session, q string, want int, d time.Duration) ([]*broker.Task, error) {
	c, err := b.consumerFor(ctx, s, q)
	if err != nil {
		return nil, err
	}
	c.reserveMu.Lock()
	defer c.reserveMu.Unlock()
	b.mu.Lock()
	c.asked = time.Now()
	b.mu.Unlock()
	out := b.take(ctx, c, want, d)
	if len(out) == want {
		return out, nil
	}
	room, started, err := b.ensureRoom(c, want-len(out))
	if err != nil {
		return out, b.unavailable("consuming "+b.n.ready(q), err)
	}
	if len(out) > 0 && !started {
		// A consumer that was running had what was ready pushed to it as it came (and what
		// more comes wakes Wait): run these at once.
		return out, nil
	}
	if room == 0 {
		// The window is full of deliveries whose acks are on their way: the next deliveries
		// follow them. Wait for one before asking RabbitMQ anything.
		b.mu.Lock()
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return out, nil
		}
		if out = append(out, b.take(ctx, c, want, d)...); len(out) > 0 {
			return out, nil
		}
	}
	deadline := time.Now().Add(reserveWait)
	for len(out) < want {
		b.mu.Lock()
		wake := b.wake
		b.mu.Unlock()
		out = append(out, b.take(ctx, c, want-len(out), d)...)
		if len(out) == want {
			break
		}
		ready, err := c.ch.QueueDeclarePassive(b.n.ready(q), true, false, false, false, nil)
		if err != nil {
			return out, b.unavailable("counting "+b.n.ready(q), err)
		}
		if ready.Messages == 0 {
			// Nothing waits in the queue. What RabbitMQ delivered to this channel before it
			// answered is sent ahead of the answer to one more call on the channel.
			if err := c.ch.Qos(want, 0, false); err != nil {
				return out, b.unavailable("consuming "+b.n.ready(q), err)
			}
			b.observeEmpty(q, time.Now())
			// They are in the client library's buffer now: take them as they come, until
			// none came for a few milliseconds.
			for quiet := time.NewTimer(5 * time.Millisecond); len(out) < want; quiet.Reset(5 * time.Millisecond) {
				b.mu.Lock()
				wake = b.wake
				b.mu.Unlock()
				out = append(out, b.take(ctx, c, want-len(out), d)...)
				if len(out) == want {
					break
				}
				select {
				case <-wake:
					continue
				case <-quiet.C:
				}
				break
			}
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-wake:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return out, nil
		}
	}
	return out, nil
}

// take leases up to n buffered deliveries of c. Deliveries that are not due yet are
// delayed again, and deliveries past their last attempt are moved to dead.
func (b *Broker) take(ctx context.Context, c *consumer, n int, d time.Duration) []*broker.Task {
	var out []*broker.Task
	for len(out) < n {
		b.mu.Lock()
		if len(c.buf) == 0 {
			b.mu.Unlock()
			break
		}
		bd := c.buf[0]
		c.buf = c.buf[1:]
		c.settling[bd.d.DeliveryTag] = true // until it is leased or settled
		b.mu.Unlock()
		dec, err := decode(&bd.d, b.opts.QueueType)
		if err != nil {
			b.opts.Logger.Error("brisk: rabbitmq: dropping a message that is not a task", "queue", c.q, "err", err)
			b.settle(c, &bd.d, func() error { return bd.d.Ack(false) })
			continue
		}
		now := time.Now()
		if early := dec.task.ReadyAt.Sub(now); early > 0 && early <= 10*time.Millisecond {
			time.Sleep(early) // a TTL that ran out a hair before the client's clock says
			now = time.Now()
		}
		if dec.task.ReadyAt.After(now) {
			// Early: a delay longer than the levels hold, or clocks apart.
			if err := b.republish(ctx, c, &bd.d, dec.task, dec.base+dec.returns); err != nil {
				b.opts.Logger.Error("brisk: rabbitmq: delaying an early task again", "id", dec.task.ID, "err", err)
			}
			continue
		}
		if dec.attempt() > dec.task.MaxAttempts {
			// Its last attempt ended without an ack (the worker crashed or its lease ran out).
			t := dec.task
			t.Attempt, t.LastError, t.FailedAt = dec.attempt()-1, "brisk: lease expired on the last attempt", now
			if err := b.toDead(ctx, c, &bd.d, t); err != nil {
				b.opts.Logger.Error("brisk: rabbitmq: moving a task to dead", "id", t.ID, "err", err)
			}
			continue
		}
		t := dec.task
		t.State, t.Attempt, t.StartedAt = broker.StateRunning, dec.attempt(), now
		t.LeaseUntil = now.Add(d)
		t.Lease = broker.Lease{TaskID: t.ID, Queue: c.q, Token: b.token()}
		l := &lease{c: c, d: bd.d, dec: dec, until: t.LeaseUntil}
		token := t.Lease.Token
		b.mu.Lock()
		delete(c.settling, bd.d.DeliveryTag)
		c.held++
		b.leases[token] = l
		l.timer = time.AfterFunc(d, func() { b.expire(token) })
		b.mu.Unlock()
		cp := *t
		out = append(out, &cp)
	}
	return out
}

// settle runs f (an ack or a reject of d) and forgets the delivery.
func (b *Broker) settle(c *consumer, d *amqp.Delivery, f func() error) {
	_ = f() // on a closed channel RabbitMQ delivers the message again: nothing is lost
	b.mu.Lock()
	delete(c.settling, d.DeliveryTag)
	c.settledLocked(d.ConsumerTag)
	b.mu.Unlock()
}

// republish publishes t again to its queue (through the delay levels if it is not due) with
// base attempts counted, then acks the delivery d it came from.
func (b *Broker) republish(ctx context.Context, c *consumer, d *amqp.Delivery, t *broker.Task, base int) error {
	m, err := b.route(ctx, c.s, t, base)
	if err != nil {
		return err
	}
	if err := b.publish(ctx, c.s, []outMsg{m}); err != nil {
		return err
	}
	b.settle(c, d, func() error { return d.Ack(false) })
	return nil
}

// route returns the message that makes t pending at its ReadyAt in its queue: straight to
// the ready queue, or through the delay levels.
func (b *Broker) route(ctx context.Context, s *session, t *broker.Task, base int) (outMsg, error) {
	msg := publishing(t, base)
	wait := time.Until(t.ReadyAt)
	if wait <= 0 {
		return outMsg{key: b.n.ready(t.Queue), msg: msg}, nil
	}
	bits := delayBits(wait)
	if err := b.ensureLevels(ctx, s, t.Queue, bits); err != nil {
		return outMsg{}, err
	}
	return outMsg{exchange: b.n.routeDelayed(&msg, t.Queue, bits), msg: msg}, nil
}

// toDead publishes t to its queue's dead queue and acks d.
func (b *Broker) toDead(ctx context.Context, c *consumer, d *amqp.Delivery, t *broker.Task) error {
	msg := publishing(t, t.Attempt)
	if err := b.publish(ctx, c.s, []outMsg{{key: b.n.dead(t.Queue), msg: msg}}); err != nil {
		return err
	}
	b.settle(c, d, func() error { return d.Ack(false) })
	return nil
}

// expire ends a lease that was not extended in time: the delivery goes back to the queue
// with its attempt counted (or to dead after its last attempt).
func (b *Broker) expire(token string) {
	b.mu.Lock()
	l := b.leases[token]
	if l == nil || time.Now().Before(l.until) {
		b.mu.Unlock()
		return
	}
	delete(b.leases, token)
	l.c.held--
	l.c.settling[l.d.DeliveryTag] = true
	b.mu.Unlock()
	if l.dec.attempt() >= l.dec.task.MaxAttempts {
		t := *l.dec.task
		t.Attempt, t.LastError, t.FailedAt = l.dec.attempt(), "brisk: lease expired on the last attempt", time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.OutageWait)
		defer cancel()
		if err := b.toDead(ctx, l.c, &l.d, &t); err != nil {
			b.opts.Logger.Error("brisk: rabbitmq: moving a task whose lease expired to dead", "id", t.ID, "err", err)
		}
		return
	}
	b.settle(l.c, &l.d, func() error { return l.d.Nack(false, true) })
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// takeLease removes and returns the lease of l, or nil when it is not held by this value.
func (b *Broker) takeLease(l broker.Lease) *lease {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.leases[l.Token]
	if h == nil || h.dec.task.ID != l.TaskID || h.c.q != l.Queue {
		return nil
	}
	delete(b.leases, l.Token)
	h.timer.Stop()
	h.c.held--
	h.c.settling[h.d.DeliveryTag] = true
	return h
}

// putLease gives back a lease taken by takeLease whose change failed.
func (b *Broker) putLease(token string, h *lease) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.leases[token] = h
	h.c.held++
	delete(h.c.settling, h.d.DeliveryTag)
	h.timer = time.AfterFunc(time.Until(h.until), func() { b.expire(token) })
}

func lostErr(l broker.Lease) error {
	return fmt.Errorf("brisk: rabbitmq: task %s of queue %q: %w (this broker value does not hold it: acked, expired, released, or reserved by another connection)", l.TaskID, l.Queue, broker.ErrLeaseLost)
}

// Extend moves the expiry of leases this broker value holds.
func (b *Broker) Extend(ctx context.Context, leases []broker.Lease, d time.Duration) ([]broker.Lease, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if d <= 0 {
		return nil, fmt.Errorf("brisk: rabbitmq: extend by %s: %w", d, broker.ErrInvalid)
	}
	var lost []broker.Lease
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range leases {
		h := b.leases[l.Token]
		if h == nil || h.dec.task.ID != l.TaskID {
			lost = append(lost, l)
			continue
		}
		h.until = time.Now().Add(d)
		h.timer.Reset(d)
	}
	return lost, nil
}

// Ack acks the deliveries of leases this broker value holds. Acks of one channel go out as
// one basic.ack with multiple=true up to the oldest delivery of that channel that is still
// unacked and not in the call, and one basic.ack each above it: a quorum queue then settles
// them in one command.
func (b *Broker) Ack(ctx context.Context, leases []broker.Lease) error {
	if b.isClosed() {
		return errClosed
	}
	var lost []broker.Lease
	b.mu.Lock()
	defer b.mu.Unlock()
	batches := map[*consumer][]*lease{}
	for _, l := range leases {
		h := b.leases[l.Token]
		if h == nil || h.dec.task.ID != l.TaskID || h.c.q != l.Queue {
			lost = append(lost, l)
			continue
		}
		delete(b.leases, l.Token)
		h.timer.Stop()
		h.c.held--
		batches[h.c] = append(batches[h.c], h)
	}
	for c, hs := range batches {
		// The oldest delivery of c's channel that stays unacked.
		keep := uint64(math.MaxUint64)
		if len(c.buf) > 0 {
			keep = c.buf[0].d.DeliveryTag
		}
		for tag := range c.settling {
			keep = min(keep, tag)
		}
		for _, l := range b.leases {
			if l.c == c {
				keep = min(keep, l.d.DeliveryTag)
			}
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].d.DeliveryTag < hs[j].d.DeliveryTag })
		below := 0
		for below < len(hs) && hs[below].d.DeliveryTag < keep {
			below++
		}
		if below > 1 {
			_ = c.ch.Ack(hs[below-1].d.DeliveryTag, true) // on a closed channel the tasks come back
		} else if below == 1 {
			_ = hs[0].d.Ack(false)
		}
		for _, h := range hs[below:] {
			_ = h.d.Ack(false)
		}
		for _, h := range hs {
			c.settledLocked(h.d.ConsumerTag)
		}
	}
	if len(lost) > 0 {
		return lostErr(lost[0])
	}
	return nil
}

// Retry publishes the task again, due at at with the attempt counted, and acks the
// delivery.
func (b *Broker) Retry(ctx context.Context, l broker.Lease, at time.Time, errMsg string) error {
	return b.finish(ctx, l, func(h *lease) error {
		t := *h.dec.task
		t.ReadyAt, t.LastError, t.FailedAt = at.Round(0), errMsg, time.Now()
		return b.republish(ctx, h.c, &h.d, &t, h.dec.attempt())
	})
}

// Kill publishes the task to its dead queue with errMsg and acks the delivery.
func (b *Broker) Kill(ctx context.Context, l broker.Lease, errMsg string) error {
	return b.finish(ctx, l, func(h *lease) error {
		t := *h.dec.task
		t.Attempt, t.LastError, t.FailedAt = h.dec.attempt(), errMsg, time.Now()
		return b.toDead(ctx, h.c, &h.d, &t)
	})
}

// finish runs f on the lease l holds; a failed f leaves the lease held.
func (b *Broker) finish(ctx context.Context, l broker.Lease, f func(h *lease) error) error {
	if b.isClosed() {
		return errClosed
	}
	h := b.takeLease(l)
	if h == nil {
		return lostErr(l)
	}
	if err := f(h); err != nil {
		b.putLease(l.Token, h)
		return b.unavailable(fmt.Sprintf("task %s", l.TaskID), err)
	}
	return nil
}

// Release publishes the tasks again, pending with the attempt given back, and acks their
// deliveries. A released task goes to the back of its queue.
func (b *Broker) Release(ctx context.Context, leases []broker.Lease) error {
	if b.isClosed() {
		return errClosed
	}
	for _, l := range leases {
		h := b.takeLease(l)
		if h == nil {
			continue
		}
		t := *h.dec.task
		if err := b.republish(ctx, h.c, &h.d, &t, h.dec.attempt()-1); err != nil {
			b.putLease(l.Token, h)
			return b.unavailable(fmt.Sprintf("releasing task %s", l.TaskID), err)
		}
		b.mu.Lock()
		b.wakeLocked()
		b.mu.Unlock()
	}
	return nil
}

// Wait returns when a delivery arrives for one of queues, max passes, or ctx is done.
func (b *Broker) Wait(ctx context.Context, queues []string, max time.Duration) error {
	if b.isClosed() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	var cs []*consumer
	for _, q := range queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("brisk: rabbitmq: %w", err)
		}
		c, err := b.consumerFor(ctx, s, q)
		if err != nil {
			return err
		}
		if _, _, err := b.ensureRoom(c, 1); err != nil {
			return b.unavailable("consuming "+b.n.ready(q), err)
		}
		cs = append(cs, c)
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	b.mu.Lock()
	wake := b.wake
	for _, c := range cs {
		c.asked = time.Now()
	}
	for _, c := range cs {
		if len(c.buf) > 0 {
			b.mu.Unlock()
			return nil
		}
	}
	b.mu.Unlock()
	select {
	case <-wake:
		return nil
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closed:
		return errClosed
	}
}

// sweep hands back deliveries that waited unreserved for longer than holdBuffered and
// publishes head reports, until the broker is closed.
func (b *Broker) sweep() {
	defer b.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.closed:
			return
		case <-tick.C:
		}
		s := b.current()
		if s == nil {
			continue
		}
		b.returnStale(s, time.Now().Add(-holdBuffered))
		b.reportHeads(s)
	}
}

// returnStale stops the consumers that nobody asked since before and whose buffer holds a
// delivery older than that, and hands their buffered deliveries back to their queues.
func (b *Broker) returnStale(s *session, before time.Time) {
	b.mu.Lock()
	var stale []*consumer
	for _, c := range b.consumers {
		if c.s == s && len(c.buf) > 0 && c.buf[0].at.Before(before) && c.asked.Before(before) {
			stale = append(stale, c)
		}
	}
	b.mu.Unlock()
	for _, c := range stale {
		if !c.reserveMu.TryLock() {
			continue // a Reserve is taking from it
		}
		b.returnBuffered(c)
		c.reserveMu.Unlock()
	}
}

// returnAllBuffered hands back what every consumer holds unreserved (on Close).
func (b *Broker) returnAllBuffered(s *session) {
	b.mu.Lock()
	cs := make([]*consumer, 0, len(b.consumers))
	for _, c := range b.consumers {
		if c.s == s {
			cs = append(cs, c)
		}
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.reserveMu.Lock()
		b.returnBuffered(c)
		c.reserveMu.Unlock()
	}
}

// returnBuffered cancels c's consumer and publishes its buffered deliveries again with their
// attempts unchanged (a returned delivery would count one on a quorum queue), so that any
// consumer can take them.
func (b *Broker) returnBuffered(c *consumer) {
	b.mu.Lock()
	tag := c.tag
	c.tag = ""
	b.mu.Unlock()
	if tag != "" {
		_ = c.ch.Cancel(tag, false)
	}
	b.mu.Lock()
	buf := c.buf
	c.buf = nil
	for _, bd := range buf {
		c.settling[bd.d.DeliveryTag] = true
	}
	c.returning += len(buf)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		c.returning -= len(buf)
		b.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.OutageWait)
	defer cancel()
	for i := range buf {
		d := &buf[i].d
		dec, err := decode(d, b.opts.QueueType)
		if err != nil {
			b.settle(c, d, func() error { return d.Ack(false) })
			continue
		}
		if err := b.republish(ctx, c, d, dec.task, dec.base+dec.returns); err != nil {
			// The channel is gone or RabbitMQ refused: rejecting it requeues it.
			b.settle(c, d, func() error { return d.Nack(false, true) })
		}
	}
}

func sortWorkers(ws []broker.WorkerInfo) {
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
}
