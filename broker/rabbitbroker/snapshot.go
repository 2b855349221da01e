package rabbitbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Snapshots spare a broker that opens the replay of the whole journal. Every
// Options.SnapshotEvery entries, a broker value that has applied them writes its state
// (which every copy shares) with the offset it covers to the classic queue
// "<prefix>.snapshot", which keeps only the newest message (x-max-length 1). Open reads it
// without taking it (basic.get, then a requeue) and consumes the journal from the entry
// after the one it covers. Any snapshot is a correct starting point, since the journal is
// never truncated; a broker that finds none (or finds the queue empty while another
// broker holds the message for a moment) replays from the start.

// opSnapshot records in the journal that a snapshot covering an offset was written, so
// that every broker knows when the next one is due.
const opSnapshot = "snapshot"

type snapTask struct {
	T      broker.Task `json:"t"`
	Seq    int64       `json:"seq"`
	Worker string      `json:"w,omitempty"`
}

type snapQueue struct {
	Name      string        `json:"name"`
	SLA       time.Duration `json:"sla,omitempty"`
	Paused    bool          `json:"paused,omitempty"`
	Completed int64         `json:"completed,omitempty"`
	Failed    int64         `json:"failed,omitempty"`
}

type snapshot struct {
	Version    int                 `json:"version"`
	Covers     int64               `json:"covers"` // the last journal offset applied
	Seq        int64               `json:"seq"`
	SnapCovers int64               `json:"snap_covers"`
	Queues     []snapQueue         `json:"queues"`
	Tasks      []snapTask          `json:"tasks"`
	Workers    []broker.WorkerInfo `json:"workers"`
}

const snapshotVersion = 1

// encode returns the state as a snapshot covering offset.
func (s *state) encode(offset int64) ([]byte, error) {
	snap := snapshot{Version: snapshotVersion, Covers: offset, Seq: s.seq, SnapCovers: s.snapCovers}
	for _, name := range sortedKeys(s.queues) {
		q := s.queues[name]
		snap.Queues = append(snap.Queues, snapQueue{Name: name, SLA: q.sla, Paused: q.paused, Completed: q.completed, Failed: q.failed})
	}
	for _, id := range sortedKeys(s.tasks) {
		r := s.tasks[id]
		snap.Tasks = append(snap.Tasks, snapTask{T: r.t, Seq: r.seq, Worker: r.worker})
	}
	for _, id := range sortedKeys(s.workers) {
		snap.Workers = append(snap.Workers, s.workers[id])
	}
	return json.Marshal(&snap)
}

// decodeState rebuilds a state from a snapshot and returns it with the offset it covers.
func decodeState(body []byte) (*state, int64, error) {
	var snap snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, 0, err
	}
	if snap.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d, this brisk reads %d", snap.Version, snapshotVersion)
	}
	s := newState()
	s.seq, s.snapCovers = snap.Seq, snap.SnapCovers
	for _, sq := range snap.Queues {
		q := s.queue(sq.Name)
		q.sla, q.paused, q.completed, q.failed = sq.SLA, sq.Paused, sq.Completed, sq.Failed
	}
	for _, st := range snap.Tasks {
		r := &record{t: st.T, seq: st.Seq, worker: st.Worker, idx: -1}
		q := s.queue(r.t.Queue)
		s.tasks[r.t.ID] = r
		switch r.t.State {
		case broker.StateRunning:
			q.running[r.t.ID] = r
		case broker.StateDead:
			q.dead[r.t.ID] = r
		default:
			s.wait(q, r)
		}
	}
	for _, w := range snap.Workers {
		s.workers[w.ID] = w
	}
	return s, snap.Covers, nil
}

// loadSnapshot reads the newest snapshot, if there is one, into b before b consumes the
// journal. A snapshot that cannot be read is logged and ignored (the journal is complete).
func (b *Broker) loadSnapshot() error {
	conn, err := amqp.DialConfig(b.opts.URL, amqp.Config{Dial: amqp.DefaultDial(b.opts.DialTimeout)})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(b.snapQueue, true, false, false, false, amqp.Table{"x-max-length": int64(1)}); err != nil {
		return fmt.Errorf("declare queue %s: %w", b.snapQueue, err)
	}
	msg, ok, err := ch.Get(b.snapQueue, false)
	if err != nil || !ok {
		return err
	}
	_ = msg.Nack(false, true)
	st, covers, err := decodeState(msg.Body)
	if err != nil {
		b.opts.Logger.Warn("brisk: rabbitmq: unreadable snapshot ignored; replaying the whole journal", "queue", b.snapQueue, "err", err)
		return nil
	}
	b.mu.Lock()
	b.st, b.offset, b.loaded = st, covers, covers
	b.mu.Unlock()
	return nil
}

// maybeSnapshotLocked starts writing a snapshot when one is due. b.mu is held.
func (b *Broker) maybeSnapshotLocked() {
	if b.snapping || b.opts.SnapshotEvery <= 0 || b.offset-b.st.snapCovers < int64(b.opts.SnapshotEvery) || b.isClosed() {
		return
	}
	body, err := b.st.encode(b.offset)
	if err != nil || len(body) > maxEntryBytes {
		b.opts.Logger.Warn("brisk: rabbitmq: snapshot not written", "bytes", len(body), "err", err)
		b.st.snapCovers = b.offset // try again after SnapshotEvery more entries
		return
	}
	b.snapping = true
	covers := b.offset
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.writeSnapshot(body, covers)
		if err != nil && !b.isClosed() {
			b.opts.Logger.Warn("brisk: rabbitmq: snapshot not written", "covers", covers, "err", err)
		}
		b.mu.Lock()
		b.snapping = false
		b.mu.Unlock()
	}()
}

func (b *Broker) writeSnapshot(body []byte, covers int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	s, err := b.session(ctx)
	if err != nil {
		return err
	}
	dc, err := s.pub.PublishWithDeferredConfirmWithContext(ctx, "", b.snapQueue, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Body: body,
	})
	if err != nil {
		return err
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("not confirmed: %v", err)
	}
	_, err = b.do(ctx, &event{Op: opSnapshot, Covers: covers})
	return err
}
