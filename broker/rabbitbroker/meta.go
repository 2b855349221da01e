package rabbitbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// What a RabbitMQ queue does not hold lives in two streams that every broker value reads
// from the start and applies to its own view: the meta stream (queue declarations and the
// delay levels in use; small, kept forever) and the live stream (worker heartbeats and
// head reports; kept an hour).
const (
	streamMeta = 0
	streamLive = 1
)

// streams are the two streams, by index.
var streams = [2]struct {
	name func(names) string
	args amqp.Table
}{
	streamMeta: {names.meta, amqp.Table{"x-queue-type": "stream"}},
	streamLive: {names.live, amqp.Table{
		"x-queue-type":                    "stream",
		"x-max-age":                       "1h",
		"x-stream-max-segment-size-bytes": int64(1 << 20),
	}},
}

// Kinds of stream entries.
const (
	kindQueue      = "queue"      // meta: a queue declared or enqueued to, with its SLA
	kindLevels     = "levels"     // meta: delay queues created for a queue
	kindMark       = "mark"       // either: a marker a broker value waits to read back
	kindHeartbeat  = "heartbeat"  // live: a worker's record
	kindDeregister = "deregister" // live: a worker stopped
	kindHead       = "head"       // live: a lower bound of a queue's head ReadyAt
)

// metaEntry is one entry of either stream.
type metaEntry struct {
	Kind   string             `json:"k"`
	Queue  string             `json:"q,omitempty"`
	SLA    time.Duration      `json:"sla,omitempty"`
	Levels uint32             `json:"l,omitempty"`
	Mark   string             `json:"m,omitempty"`
	Worker *broker.WorkerInfo `json:"w,omitempty"`
	ID     string             `json:"id,omitempty"`
	Head   int64              `json:"h,omitempty"`
}

// consumeStream declares stream i and consumes it from the entry after the last one applied.
func (b *Broker) consumeStream(s *session, i int) error {
	name := streams[i].name(b.n)
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, streams[i].args); err != nil {
		return fmt.Errorf("declaring stream %s: %w", name, err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		return err
	}
	b.mu.Lock()
	var offset any = "first"
	if last := b.offsets[i]; last >= 0 {
		offset = last + 1
	}
	b.mu.Unlock()
	deliveries, err := ch.Consume(name, "", false, false, false, false, amqp.Table{"x-stream-offset": offset})
	if err != nil {
		return fmt.Errorf("consuming stream %s: %w", name, err)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		n := 0
		for d := range deliveries {
			b.applyEntry(i, &d)
			if n++; n%100 == 0 || len(deliveries) == 0 {
				_ = d.Ack(true)
			}
		}
		// The consumer was cancelled while the connection lives on (in a cluster, the
		// stream's member went away): consume again from the next entry. A lost connection
		// is the reconnection's to handle.
		_ = ch.Close()
		for delay := 100 * time.Millisecond; !b.isClosed() && !s.conn.IsClosed(); delay = min(2*delay, 2*time.Second) {
			if err := b.consumeStream(s, i); err == nil {
				return
			}
			select {
			case <-b.closed:
			case <-time.After(delay):
			}
		}
	}()
	return nil
}

// applyEntry applies one stream entry to this broker value's view.
func (b *Broker) applyEntry(i int, d *amqp.Delivery) {
	offset, _ := d.Headers["x-stream-offset"].(int64)
	var e metaEntry
	if err := json.Unmarshal(d.Body, &e); err != nil {
		b.opts.Logger.Error("brisk: rabbitmq: unreadable stream entry; skipped", "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if offset <= b.offsets[i] {
		return // read again after a reconnection
	}
	b.offsets[i] = offset
	b.applyLocked(e)
}

func (b *Broker) applyLocked(e metaEntry) {
	switch e.Kind {
	case kindQueue:
		info := b.queueLocked(e.Queue)
		info.known, info.sla = true, e.SLA
	case kindLevels:
		b.queueLocked(e.Queue).levels |= e.Levels
	case kindMark:
		if c, ok := b.marks[e.Mark]; ok {
			close(c)
			delete(b.marks, e.Mark)
		}
	case kindHeartbeat:
		if e.Worker != nil {
			b.workers[e.Worker.ID] = *e.Worker
		}
	case kindDeregister:
		delete(b.workers, e.ID)
	case kindHead:
		if h := time.Unix(0, e.Head); h.After(b.heads[e.Queue]) {
			b.heads[e.Queue] = h
		}
	}
}

// appendEntry publishes an entry to stream i with a confirm and applies it to this broker
// value's view at once.
func (b *Broker) appendEntry(ctx context.Context, s *session, i int, e metaEntry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	msg := amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent, ContentType: "application/json"}
	if err := b.publish(ctx, s, []outMsg{{key: streams[i].name(b.n), msg: msg}}); err != nil {
		return b.unavailable("appending to stream "+streams[i].name(b.n), err)
	}
	if e.Kind != kindMark {
		b.mu.Lock()
		b.applyLocked(e)
		b.mu.Unlock()
	}
	return nil
}

func (b *Broker) appendMeta(ctx context.Context, s *session, e metaEntry) error {
	return b.appendEntry(ctx, s, streamMeta, e)
}

// barrier appends a marker to stream i and waits until this broker value has read it back,
// so that its view holds every entry appended before the call.
func (b *Broker) barrier(ctx context.Context, i int) error {
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	mark := b.token()
	seen := make(chan struct{})
	b.mu.Lock()
	b.marks[mark] = seen
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.marks, mark)
		b.mu.Unlock()
	}()
	if err := b.appendEntry(ctx, s, i, metaEntry{Kind: kindMark, Mark: mark}); err != nil {
		return err
	}
	timer := time.NewTimer(b.opts.OutageWait)
	defer timer.Stop()
	select {
	case <-seen:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closed:
		return errClosed
	case <-timer.C:
		return fmt.Errorf("brisk: rabbitmq: %w: stream %s not read back within %s", broker.ErrUnavailable, streams[i].name(b.n), b.opts.OutageWait)
	}
}

// DeclareQueue records the queue's settings in the meta stream and declares its RabbitMQ
// queues.
func (b *Broker) DeclareQueue(ctx context.Context, q broker.QueueConfig) error {
	if err := broker.ValidateQueueName(q.Name); err != nil {
		return fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	if q.SLA < 0 {
		return fmt.Errorf("brisk: rabbitmq: queue %q: negative SLA %s: %w", q.Name, q.SLA, broker.ErrInvalid)
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	if err := b.ensureQueue(ctx, s, q.Name); err != nil {
		return b.unavailable("declaring queue "+q.Name, err)
	}
	return b.appendMeta(ctx, s, metaEntry{Kind: kindQueue, Queue: q.Name, SLA: q.SLA})
}

// known makes sure that Stats lists q (a queue enqueued to without a declaration, with no
// SLA).
func (b *Broker) known(ctx context.Context, s *session, q string) error {
	b.mu.Lock()
	done := b.queueLocked(q).known
	b.mu.Unlock()
	if done {
		return nil
	}
	return b.appendMeta(ctx, s, metaEntry{Kind: kindQueue, Queue: q})
}

// Heartbeat records a worker's heartbeat in the live stream.
func (b *Broker) Heartbeat(ctx context.Context, w broker.WorkerInfo) error {
	if w.ID == "" {
		return fmt.Errorf("brisk: rabbitmq: heartbeat without a worker id: %w", broker.ErrInvalid)
	}
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	if w.LastSeen.IsZero() {
		w.LastSeen = time.Now()
	}
	return b.appendEntry(ctx, s, streamLive, metaEntry{Kind: kindHeartbeat, Worker: &w})
}

// Deregister records in the live stream that a worker stopped.
func (b *Broker) Deregister(ctx context.Context, workerID string) error {
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	return b.appendEntry(ctx, s, streamLive, metaEntry{Kind: kindDeregister, ID: workerID})
}

// Workers lists the workers whose last heartbeat in the live stream is newer than since,
// after reading the stream up to the call.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if err := b.barrier(ctx, streamLive); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.WorkerInfo
	for _, w := range b.workers {
		if w.LastSeen.After(since) {
			out = append(out, w)
		}
	}
	sortWorkers(out)
	return out, nil
}
