package rabbitbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Journal generations. The journal is a chain of streams: generation 0 is
// "<prefix>.journal", generation g > 0 is "<prefix>.journal.<g>". Every generation but the
// first starts with a base: a snapshot of the whole state at the point where the one before
// ended. So the streams before the oldest one still needed can be deleted, and the disk
// the journal uses stays bounded by about two generations.
//
// A rollover from generation g to g+1:
//
//  1. When a broker value has applied Options.SnapshotEvery entries of g, it declares the
//     stream g+1, waits until RabbitMQ serves it, and publishes a "moved" entry to g. The
//     first moved entry in g wins: every reader applies g up to it, ignores whatever follows
//     it in g, and goes on reading g+1 from its start, keeping its state. The state at the
//     moved entry is the same in every copy.
//  2. Each broker value sends again its own entries that were ignored (published to g and
//     not applied before the moved entry); an ignored entry is ignored by every reader,
//     so each entry is applied once.
//  3. The broker value whose moved entry won encodes its state at that point and publishes
//     it to g+1 as a base, ahead of its other entries; other broker values go on writing
//     to g+1 at once (nobody waits for the base). A base records the offset of g+1 up to
//     which it includes the entries (-1 for the winner's). If no base has come within
//     baseWait (its writer died), any broker value with a state publishes one of its own.
//  4. Once its base is applied, the winner records g+1 in "<prefix>.snapshot" (a hint for
//     Open), deletes at once any generation before g still there if g began a grace
//     period ago or more, and after Options.RolloverGrace deletes g, oldest first. (A
//     reader that starts in a generation without a base reaches the next one through its
//     moved entry and takes its base.)
//
// A broker value that starts reading a generation without a state (Open, or a reload)
// keeps the messages it reads until the first base, loads the base, applies the kept
// messages after the offset the base includes and goes on from there.
//
// A broker value that is slow or disconnected during the grace period does not lose
// entries: when it reconnects (or its consumer is cancelled because the stream was
// deleted), it finds its generation gone and reloads the state from the oldest generation
// left, whose base includes every entry of the deleted ones. Its calls that were waiting
// for an entry already published fail with broker.ErrUnavailable (the entry may or may
// not be applied), as after a lost connection.
//
// Open reads the hint (the generation of the newest base it knows), probes upward from it
// for the oldest generation that still exists and reads it from its start.

const (
	opMoved = "moved"

	// baseWait is how long a broker value waits for the base of a new generation before it
	// publishes the base itself.
	baseWait = 2 * time.Second

	// maxProbe bounds the upward search for an existing generation from the hint.
	maxProbe = 1000
)

type hint struct {
	Gen int64 `json:"gen"`
}

func (b *Broker) streamName(gen int64) string {
	if gen == 0 {
		return b.opts.Prefix + ".journal"
	}
	return b.opts.Prefix + ".journal." + strconv.FormatInt(gen, 10)
}

var streamArgs = amqp.Table{"x-queue-type": "stream"}

// dial opens a connection for work beside the session.
func (b *Broker) dial() (*amqp.Connection, error) {
	return amqp.DialConfig(b.opts.URL, amqp.Config{
		Dial:       amqp.DefaultDial(b.opts.DialTimeout),
		Properties: amqp.Table{"connection_name": "brisk " + b.id + " (journal upkeep)"},
	})
}

// streamExists reports whether generation gen's stream exists (a passive declare on a
// channel of its own, since a failed one closes the channel).
func (b *Broker) streamExists(conn *amqp.Connection, gen int64) (bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	_, err = ch.QueueDeclarePassive(b.streamName(gen), true, false, false, false, streamArgs)
	if err == nil {
		_ = ch.Close()
		return true, nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return false, nil
	}
	return false, err
}

// findGen returns the generation a broker value that opens (or reloads) reads first: the
// oldest one that exists at or above the hint. A store that does not exist yet is created
// (generation 0 and the hint queue).
func (b *Broker) findGen() (int64, error) {
	conn, err := b.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	if _, err := ch.QueueDeclarePassive(b.snapQueue, true, false, false, false, amqp.Table{"x-max-length": int64(1)}); err != nil {
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			return 0, fmt.Errorf("declare queue %s: %w", b.snapQueue, err)
		}
		// A new store: generation 0 first, then the hint queue, so that a store whose
		// hint queue exists always had a generation 0.
		if ch, err = conn.Channel(); err != nil {
			return 0, err
		}
		if _, err := ch.QueueDeclare(b.streamName(0), true, false, false, false, streamArgs); err != nil {
			return 0, fmt.Errorf("declare stream %s: %w", b.streamName(0), err)
		}
		if _, err := ch.QueueDeclare(b.snapQueue, true, false, false, false, amqp.Table{"x-max-length": int64(1)}); err != nil {
			return 0, fmt.Errorf("declare queue %s: %w", b.snapQueue, err)
		}
		return 0, nil
	}
	deadline := time.Now().Add(max(b.opts.DialTimeout, 2*time.Second))
	for {
		// Read the hint without taking it (basic.get, then a requeue). While another broker
		// value holds it for a moment the queue looks empty: then start from generation 0.
		from, found := int64(0), false
		msg, ok, err := ch.Get(b.snapQueue, false)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", b.snapQueue, err)
		}
		if ok {
			_ = msg.Nack(false, true)
			var h hint // a snapshot written by an older brisk has no gen: generation 0
			if json.Unmarshal(msg.Body, &h) == nil && h.Gen > 0 {
				from = h.Gen
			}
			found = true
		}
		for g := from; g < from+maxProbe; g++ {
			ok, err := b.streamExists(conn, g)
			if err != nil {
				return 0, err
			}
			if ok {
				return g, nil
			}
			if !found && g > 8 {
				break // no hint seen: look for it again rather than probe far
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no journal stream %s or later found (hint %d, found %v)", b.streamName(from), from, found)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startGenLocked makes b read generation gen from its start, with no state until a base
// of it comes (generation 0 starts from the empty state).
func (b *Broker) startGenLocked(gen int64) {
	b.gen, b.offset, b.sinceGen = gen, -1, 0
	b.needBase, b.based = gen > 0, gen == 0
	b.early = nil
	b.st = newState()
}

// reload starts b again from the oldest generation left, after the one it read was
// deleted. Calls waiting for entries already published fail with ErrUnavailable; queued
// ones are published to the generation found.
func (b *Broker) reload() error {
	gen, err := b.findGen()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, o := range b.ops {
		if o.gen >= 0 {
			b.finishLocked(id, result{}, fmt.Errorf("brisk: rabbitmq: %w: the journal generation that held the entry was deleted while this broker was away; it may or may not be applied", broker.ErrUnavailable))
		}
	}
	b.startGenLocked(gen)
	b.notifyLocked()
	return nil
}

// switchLocked applies the winning moved entry of generation b.gen: b reads the next
// generation from its start, keeping its state (if it has one), which is the state at the
// start of the next generation.
func (b *Broker) switchLocked(ev *event) {
	old := b.gen
	if o := b.ops[ev.ID]; o != nil && !b.needBase {
		// This broker value won: it writes the base of the next generation.
		b.finishLocked(ev.ID, result{n: 1, snap: b.st.copyOut(ev.Gen, -1)}, nil)
	}
	b.gen, b.offset, b.sinceGen, b.based = ev.Gen, -1, 0, false
	b.genStarted = time.Now()
	b.early = nil
	// This broker value's entries published to the old generation and not applied are
	// after the moved entry, where every reader ignores them: send them again.
	var again []*op
	for id, o := range b.ops {
		if o.gen != old {
			continue
		}
		if o.kind != kindEntry {
			b.finishLocked(id, result{}, nil) // a moved or base entry that lost
			continue
		}
		o.gen, o.pub = -1, nil
		again = append(again, o)
	}
	if len(again) > 0 {
		slices.SortFunc(again, func(x, y *op) int { return x.queued.Compare(y.queued) })
		b.queue = append(again, b.queue...)
	}
	b.kickPublisher()
	if !b.needBase {
		b.wg.Add(1)
		go b.baseFallback(ev.Gen)
	}
}

// applyBaseLocked applies a base of generation b.gen (snap, which includes the entries up
// to offset covers, is decoded when b had no state).
func (b *Broker) applyBaseLocked(id string, snap *state, covers int64) {
	b.based = true
	if !b.needBase {
		b.finishLocked(id, result{n: 1}, nil)
		return
	}
	if snap == nil {
		b.opts.Logger.Error("brisk: rabbitmq: unreadable base of a journal generation; waiting for another", "gen", b.gen)
		return
	}
	b.st, b.needBase, b.loadedBase = snap, false, true
	b.finishLocked(id, result{n: 1}, nil)
	early := b.early
	b.early = nil
	for _, m := range early {
		if m.offset > covers {
			b.applyLocked(m.evs)
			b.earlyApplied++
			continue
		}
		// Already in the base: applied, but its result is not known here.
		for _, ev := range m.evs {
			if ev.Op == opSync {
				b.finishLocked(ev.ID, result{}, nil)
			} else {
				b.finishLocked(ev.ID, result{}, fmt.Errorf("brisk: rabbitmq: %w: the %s entry was applied before the snapshot this broker loaded; its result is not known", broker.ErrUnavailable, ev.Op))
			}
		}
	}
	b.notifyLocked()
}

// maybeRollLocked starts a rollover when the current generation is due for one.
func (b *Broker) maybeRollLocked() {
	if b.opts.SnapshotEvery <= 0 || b.needBase || b.rolling || b.sinceGen < int64(b.opts.SnapshotEvery) || b.isClosed() ||
		!b.rollRetry.IsZero() && time.Now().Before(b.rollRetry) {
		return
	}
	b.rolling = true
	b.wg.Add(1)
	go b.roll(b.gen)
}

// rollCtx is a context for background work, cancelled when b is closed.
func (b *Broker) rollCtx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// roll moves the journal from generation gen to gen+1 (see the top of this file).
func (b *Broker) roll(gen int64) {
	defer b.wg.Done()
	won := false
	defer func() {
		if !won {
			b.mu.Lock()
			b.rolling = false
			if b.gen == gen {
				b.rollRetry = time.Now().Add(time.Second) // failed: not at every entry
			}
			b.mu.Unlock()
		}
	}()
	b.mu.Lock()
	started := b.genStarted // when this broker value entered gen (zero: at Open)
	b.mu.Unlock()
	ctx, cancel := b.rollCtx(time.Minute)
	defer cancel()
	// A connection of its own: RabbitMQ 3.10 may close the connection when a consume
	// races with the creation or deletion of a stream.
	conn, err := b.dial()
	if err != nil {
		return
	}
	defer conn.Close()
	// Declare the next stream only while this one exists: a broker value far behind
	// must not create a stream that was already deleted.
	if ok, err := b.streamExists(conn, gen); err != nil || !ok {
		return
	}
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	_, err = ch.QueueDeclare(b.streamName(gen+1), true, false, false, false, streamArgs)
	_ = ch.Close()
	if err != nil {
		b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: cannot declare the next stream", "stream", b.streamName(gen+1), "err", err)
		return
	}
	if err := b.waitStreamReady(ctx, conn, gen+1); err != nil {
		b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: the next stream is not ready", "stream", b.streamName(gen+1), "err", err)
		return
	}
	res, err := b.do(ctx, &event{Op: opMoved, Gen: gen + 1})
	if err != nil || res.n != 1 {
		return // failed, or another broker value's moved entry came first
	}
	won = true // this broker value rolls no more before its base is in
	body, err := res.snap.marshal()
	if err == nil && len(body) > maxEntryBytes {
		err = fmt.Errorf("the base is %d bytes, more than a message may be (%d)", len(body), maxEntryBytes)
	}
	if err == nil {
		_, err = b.submit(ctx, &op{id: b.nextID(), kind: kindBase, forGen: gen + 1, body: body}, true)
	}
	b.mu.Lock()
	b.rolling = false
	b.mu.Unlock()
	if err != nil {
		if !b.isClosed() {
			b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: base not written; another broker value will write one", "gen", gen+1, "err", err)
		}
		return
	}
	if err := b.writeHint(ctx, conn, gen+1); err != nil && !b.isClosed() {
		b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: hint not written", "gen", gen+1, "err", err)
	}
	_ = conn.Close()
	// The generations before g were left when g started; if that is a grace period ago,
	// delete them now, so that a store whose processes do not stay for a grace period
	// keeps at most g and g+1.
	if gen > 0 && !started.IsZero() && time.Since(started) >= b.opts.RolloverGrace {
		if err := b.dropBefore(gen); err != nil && !b.isClosed() {
			b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: old generations not deleted", "before", gen, "err", err)
		}
	}
	select {
	case <-b.closed:
		return
	case <-time.After(b.opts.RolloverGrace):
	}
	if err := b.dropBefore(gen + 1); err != nil && !b.isClosed() {
		b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: old generations not deleted", "before", gen+1, "err", err)
	}
}

// waitStreamReady returns once the stream of generation gen, just declared, accepts a
// consumer. RabbitMQ 3.10 starts a new stream's writer a few milliseconds after the
// declare returns; a consume before fails ("does not have a replica on the local node")
// and a publish before can crash the publishing channel and close the connection. So
// nobody learns of the generation (through the moved entry) before it is ready.
func (b *Broker) waitStreamReady(ctx context.Context, conn *amqp.Connection, gen int64) error {
	for {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		err = ch.Qos(1, 0, false)
		if err == nil {
			_, err = ch.Consume(b.streamName(gen), "", false, false, false, false, amqp.Table{"x-stream-offset": "next"})
		}
		_ = ch.Close()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// baseFallback publishes a base of generation gen, the state at this broker value's place
// in it, if none has come within baseWait.
func (b *Broker) baseFallback(gen int64) {
	defer b.wg.Done()
	t := time.NewTimer(baseWait)
	defer t.Stop()
	select {
	case <-b.closed:
		return
	case <-t.C:
	}
	ctx, cancel := b.rollCtx(time.Minute)
	defer cancel()
	conn, err := b.dial()
	if err != nil {
		return
	}
	// Only while the generation before exists: if it is gone, so may be this one, and a
	// base written into a stream declared again by mistake would split the store.
	ok, err := b.streamExists(conn, gen-1)
	_ = conn.Close()
	if err != nil || !ok {
		return
	}
	b.mu.Lock()
	if b.gen != gen || b.based || b.needBase {
		b.mu.Unlock()
		return
	}
	snap := b.st.copyOut(gen, b.offset)
	b.mu.Unlock()
	body, err := snap.marshal()
	if err != nil || len(body) > maxEntryBytes {
		b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: base not written", "gen", gen, "bytes", len(body), "err", err)
		return
	}
	b.opts.Logger.Warn("brisk: rabbitmq: journal rollover: no base came; writing it", "gen", gen)
	_, _ = b.submit(ctx, &op{id: b.nextID(), kind: kindBase, forGen: gen, body: body}, true)
}

// writeHint records gen, a generation whose base is applied, in the hint queue.
func (b *Broker) writeHint(ctx context.Context, conn *amqp.Connection, gen int64) error {
	body, _ := json.Marshal(hint{Gen: gen})
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", b.snapQueue, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Body: body,
	})
	if err != nil {
		return err
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("not confirmed: %v", err)
	}
	return nil
}

// dropBefore deletes the streams of the generations before gen, oldest first.
func (b *Broker) dropBefore(gen int64) error {
	conn, err := b.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	low := gen
	for g := gen - 1; g >= 0; g-- {
		ok, err := b.streamExists(conn, g)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		low = g
	}
	for g := low; g < gen; g++ {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		_, err = ch.QueueDelete(b.streamName(g), false, false, false)
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("delete %s: %w", b.streamName(g), err)
		}
		b.opts.Logger.Info("brisk: rabbitmq: journal generation deleted", "stream", b.streamName(g))
	}
	return nil
}
