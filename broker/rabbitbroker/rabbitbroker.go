package rabbitbroker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/briskq/brisk/broker"
)

// Broker is a brisk broker whose store is a RabbitMQ stream. It is safe for concurrent use.
type Broker struct {
	opts      Options
	id        string // this broker value, for entry IDs and the connection name
	snapQueue string // the hint: the generation of the newest base (rollover.go)

	seq atomic.Uint64 // entry counter

	mu           sync.Mutex // guards everything down to loadedBase
	st           *state
	gen          int64          // the journal generation read
	offset       int64          // last offset of gen applied, -1 before the first
	needBase     bool           // b has no state yet: it waits for a base of gen
	early        []earlyMsg     // messages of gen read before its base, while needBase
	based        bool           // a base of gen is in the journal (generation 0 needs none)
	sinceGen     int64          // entries applied in gen
	ops          map[string]*op // calls waiting for their entries
	queue        []*op          // entries to publish, in order
	inFlight     int            // published messages not confirmed yet
	changed      chan struct{}  // closed and replaced after every applied change
	rolling      bool           // a rollover started by this broker value is under way
	rollRetry    time.Time      // no rollover before (after a failed one)
	genStarted   time.Time      // when b switched to gen (zero: gen was found by Open)
	loadedBase   bool           // the state was loaded from a generation's base
	earlyApplied int            // messages read before the base and applied after it (tests)
	holdConnect  chan struct{}  // tests: reconnections wait until it is closed

	kick chan struct{} // wakes the publisher

	connMu  sync.Mutex // guards cur, up, lastErr
	cur     *session   // nil while disconnected
	up      chan struct{}
	lastErr error

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ broker.Broker = (*Broker)(nil)
	_ broker.Reaper = (*Broker)(nil)
	_ broker.Pauser = (*Broker)(nil)
)

// OpenOptions connects to RabbitMQ, declares the journal stream if needed, and returns once
// the broker has caught up with the journal.
func OpenOptions(ctx context.Context, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:      opts,
		id:        newInstanceID(),
		snapQueue: opts.Prefix + ".snapshot",
		ops:       map[string]*op{},
		changed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		up:        make(chan struct{}),
		closed:    make(chan struct{}),
	}
	var s *session
	for attempt := 0; ; attempt++ {
		gen, err := b.findGen()
		if err == nil {
			b.startGenLocked(gen) // b is not shared yet
			s, err = b.connect(gen, -1)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errGenGone) || attempt >= 3 {
			return nil, fmt.Errorf("brisk: rabbitmq: %w: %s: %v", broker.ErrUnavailable, redact(opts.URL), err)
		}
		// The generation found was deleted meanwhile by a rollover: look again.
	}
	b.setSession(s, nil)
	b.wg.Add(2)
	go b.run(s)
	go b.publisher()
	if err := b.sync(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("brisk: rabbitmq: reading the journal of %s: %w", opts.Prefix, err)
	}
	return b, nil
}

func (b *Broker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// Capabilities declares every optional behaviour: the whole task state machine lives in
// the store.
func (b *Broker) Capabilities() broker.Capabilities { return broker.AllCapabilities() }

// Close closes the connection. It is idempotent. Tasks stay stored; tasks this broker value
// reserved stay running until their leases expire.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.connMu.Lock()
		if b.cur != nil {
			_ = b.cur.conn.Close()
		}
		b.connMu.Unlock()
		b.wg.Wait()
	})
	return nil
}

// Enqueue appends the batch to the journal as one entry: all of it is stored, or none.
func (b *Broker) Enqueue(ctx context.Context, tasks []*broker.Task) error {
	if b.isClosed() {
		return errClosed
	}
	if err := broker.ValidateTasks(tasks, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	res, err := b.do(ctx, &event{Op: opEnqueue, Tasks: tasks})
	if err != nil {
		return err
	}
	return res.err
}

// Reserve appends a reservation request; the tasks it gets are decided when the request is
// applied, at its place in the journal, so two brokers never get one task.
func (b *Broker) Reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	now := time.Now().Round(0)
	b.mu.Lock()
	ready := b.readyLocked(p.Queues, now)
	b.mu.Unlock()
	if !ready {
		return nil, nil // nothing in this broker's view: no journal entry for an idle poll
	}
	res, err := b.do(ctx, &event{Op: opReserve, Now: now, Queues: p.Queues, Limit: p.Limit, Dur: p.Lease, Worker: p.WorkerID})
	if err != nil {
		return nil, err
	}
	return res.tasks, res.err
}

// readyLocked reports whether one of queues has a task ready at now or a lease expired.
func (b *Broker) readyLocked(queues []broker.QueueLimit, now time.Time) bool {
	for _, ql := range queues {
		if due := b.dueLocked(ql.Name); !due.IsZero() && !due.After(now) {
			return true
		}
	}
	return false
}

// dueLocked is when queue next has something for Reserve: its oldest ReadyAt or its
// earliest lease expiry (zero when neither, or when it is paused).
func (b *Broker) dueLocked(name string) time.Time {
	q := b.st.queues[name]
	if q == nil || q.paused {
		return time.Time{}
	}
	var due time.Time
	if len(q.waiting) > 0 {
		due = q.waiting[0].t.ReadyAt
	}
	for _, r := range q.running {
		if due.IsZero() || r.t.LeaseUntil.Before(due) {
			due = r.t.LeaseUntil
		}
	}
	return due
}

// Extend moves lease expiries to now + d.
func (b *Broker) Extend(ctx context.Context, leases []broker.Lease, d time.Duration) ([]broker.Lease, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if len(leases) == 0 {
		return nil, nil
	}
	res, err := b.do(ctx, &event{Op: opExtend, Leases: leases, Dur: d})
	if err != nil {
		return nil, err
	}
	return res.lost, nil
}

// Ack removes the tasks; leases no longer held are reported in an ErrLeaseLost error.
func (b *Broker) Ack(ctx context.Context, leases []broker.Lease) error {
	if b.isClosed() {
		return errClosed
	}
	if len(leases) == 0 {
		return nil
	}
	res, err := b.do(ctx, &event{Op: opAck, Leases: leases})
	if err != nil {
		return err
	}
	return res.err
}

// Retry schedules the task again at at.
func (b *Broker) Retry(ctx context.Context, l broker.Lease, at time.Time, errMsg string) error {
	if b.isClosed() {
		return errClosed
	}
	res, err := b.do(ctx, &event{Op: opRetry, Leases: []broker.Lease{l}, At: at.Round(0), Err: errMsg})
	if err != nil {
		return err
	}
	return res.err
}

// Kill moves the task to dead.
func (b *Broker) Kill(ctx context.Context, l broker.Lease, errMsg string) error {
	if b.isClosed() {
		return errClosed
	}
	res, err := b.do(ctx, &event{Op: opKill, Leases: []broker.Lease{l}, Err: errMsg})
	if err != nil {
		return err
	}
	return res.err
}

// Release hands tasks back unrun.
func (b *Broker) Release(ctx context.Context, leases []broker.Lease) error {
	if b.isClosed() {
		return errClosed
	}
	if len(leases) == 0 {
		return nil
	}
	_, err := b.do(ctx, &event{Op: opRelease, Leases: leases})
	return err
}

// Wait blocks until a task may be ready in one of queues. Entries that other broker values
// append reach this one through its stream consumer, about a millisecond after their
// publisher confirm.
func (b *Broker) Wait(ctx context.Context, queues []string, max time.Duration) error {
	if b.isClosed() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	limit := time.NewTimer(max)
	defer limit.Stop()
	for {
		now := time.Now()
		b.mu.Lock()
		var due time.Time
		for _, name := range queues {
			if d := b.dueLocked(name); !d.IsZero() && (due.IsZero() || d.Before(due)) {
				due = d
			}
		}
		changed := b.changed
		b.mu.Unlock()
		if !due.IsZero() && !due.After(now) {
			return nil
		}
		var (
			dueC  <-chan time.Time
			timer *time.Timer
		)
		if !due.IsZero() {
			timer = time.NewTimer(due.Sub(now))
			dueC = timer.C
		}
		var err error
		woken := false
		select {
		case <-changed:
			woken = true // look again: the change may not concern these queues
		case <-dueC:
		case <-limit.C:
		case <-ctx.Done():
			err = ctx.Err()
		case <-b.closed:
			err = errClosed
		}
		if timer != nil {
			timer.Stop()
		}
		if !woken {
			return err
		}
	}
}

// DeclareQueue creates the queue if needed and stores its SLA.
func (b *Broker) DeclareQueue(ctx context.Context, q broker.QueueConfig) error {
	if b.isClosed() {
		return errClosed
	}
	if err := broker.ValidateQueueName(q.Name); err != nil {
		return fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	if q.SLA < 0 {
		return fmt.Errorf("brisk: rabbitmq: %w: queue %q: negative SLA", broker.ErrInvalid, q.Name)
	}
	_, err := b.do(ctx, &event{Op: opDeclare, Queue: q.Name, SLA: q.SLA})
	return err
}

// PauseQueue pauses or resumes a queue for every broker value on the store.
func (b *Broker) PauseQueue(ctx context.Context, queue string, paused bool) error {
	if b.isClosed() {
		return errClosed
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	_, err := b.do(ctx, &event{Op: opPause, Queue: queue, Paused: paused})
	return err
}

// Stats returns every known queue's statistics as of the call (after a read barrier).
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	if err := b.sync(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]broker.QueueStats, 0, len(b.st.queues))
	for _, name := range sortedKeys(b.st.queues) {
		q := b.st.queues[name]
		st := broker.QueueStats{
			Name: name, SLA: q.sla, Paused: q.paused,
			Running: int64(len(q.running)), Dead: int64(len(q.dead)),
			Completed: q.completed, Failed: q.failed,
		}
		for _, r := range q.waiting {
			if r.t.ReadyAt.After(now) {
				st.Scheduled++
			}
		}
		st.Pending = int64(len(q.waiting)) - st.Scheduled
		if st.Pending > 0 {
			st.OldestReadyAt = q.waiting[0].t.ReadyAt
			st.Latency = max(now.Sub(st.OldestReadyAt), 0)
		}
		out = append(out, st)
	}
	return out, nil
}

// Tasks lists one queue's tasks in one state, oldest ReadyAt first.
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	if !p.State.Valid() {
		return nil, fmt.Errorf("brisk: rabbitmq: %w: state %q", broker.ErrInvalid, p.State)
	}
	if p.Limit < 0 || p.Offset < 0 {
		return nil, fmt.Errorf("brisk: rabbitmq: %w: negative limit or offset", broker.ErrInvalid)
	}
	if p.Limit == 0 {
		p.Limit = 100
	}
	if err := b.sync(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.st.queues[p.Queue]
	if q == nil {
		return nil, nil
	}
	var set map[string]*record
	switch p.State {
	case broker.StateRunning:
		set = q.running
	case broker.StateDead:
		set = q.dead
	default:
		set = map[string]*record{}
		for _, r := range q.waiting {
			if stateAt(r, now) == p.State {
				set[r.t.ID] = r
			}
		}
	}
	recs := sortedRecords(set)
	if p.Offset >= len(recs) {
		return nil, nil
	}
	recs = recs[p.Offset:min(len(recs), p.Offset+p.Limit)]
	out := make([]*broker.Task, len(recs))
	for i, r := range recs {
		out[i] = view(r, now)
	}
	return out, nil
}

// Task returns one task by ID.
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if err := b.sync(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.st.tasks[id]
	if r == nil {
		return nil, fmt.Errorf("brisk: rabbitmq: %w: id=%q", broker.ErrNotFound, id)
	}
	return view(r, time.Now()), nil
}

// RetryDead makes dead tasks pending again with a fresh attempt budget.
func (b *Broker) RetryDead(ctx context.Context, queue string, ids []string) (int, error) {
	if b.isClosed() {
		return 0, errClosed
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	res, err := b.do(ctx, &event{Op: opRetryDead, Queue: queue, IDs: ids, All: ids == nil})
	if err != nil {
		return 0, err
	}
	return res.n, res.err
}

// Delete removes tasks of queue in state (not running).
func (b *Broker) Delete(ctx context.Context, queue string, state broker.State, ids []string) (int, error) {
	if b.isClosed() {
		return 0, errClosed
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: rabbitmq: %w", err)
	}
	if !state.Valid() {
		return 0, fmt.Errorf("brisk: rabbitmq: %w: state %q", broker.ErrInvalid, state)
	}
	if state == broker.StateRunning {
		return 0, fmt.Errorf("brisk: rabbitmq: %w: running tasks cannot be deleted (queue %q)", broker.ErrInvalid, queue)
	}
	res, err := b.do(ctx, &event{Op: opDelete, Queue: queue, State: state, IDs: ids, All: ids == nil})
	if err != nil {
		return 0, err
	}
	return res.n, res.err
}

// Heartbeat records a worker; its LastSeen is the time of the call.
func (b *Broker) Heartbeat(ctx context.Context, w broker.WorkerInfo) error {
	if b.isClosed() {
		return errClosed
	}
	if w.ID == "" {
		return fmt.Errorf("brisk: rabbitmq: %w: worker id is empty", broker.ErrInvalid)
	}
	_, err := b.do(ctx, &event{Op: opHeartbeat, Info: &w})
	return err
}

// Deregister removes a worker's record.
func (b *Broker) Deregister(ctx context.Context, workerID string) error {
	if b.isClosed() {
		return errClosed
	}
	_, err := b.do(ctx, &event{Op: opDeregister, Worker: workerID})
	return err
}

// Workers lists worker records whose last heartbeat is after since.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if err := b.sync(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.WorkerInfo
	for _, w := range b.st.workers {
		if w.LastSeen.After(since) {
			w.Queues = append([]string(nil), w.Queues...)
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ReleaseWorker makes the running tasks of workerID ready again and removes its record.
func (b *Broker) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	if b.isClosed() {
		return 0, errClosed
	}
	res, err := b.do(ctx, &event{Op: opReleaseWorker, Worker: workerID})
	if err != nil {
		return 0, err
	}
	return res.n, res.err
}

// redact hides the password of an AMQP URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "amqp://…"
	}
	return u.Redacted()
}
