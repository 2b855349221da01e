package pgbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/briskq/brisk/broker"
)

// statements lists every statement template, so that Open fills in the schema once.
var statements = func() []string {
	s := []string{
		qEnsureQueues, qDeclare, qPause, qEnqueue, qEnqueueDeferWake, qWake, qReserve, qExtend, qAck, qRelease, qRetry, qKill,
		qReleaseWorker, qRetryDead, qCountRows, qCompact, qDeadRows, qStats, qTask, qHeartbeat, qDeregister, qWorkers, qNextDue,
	}
	for _, m := range []map[broker.State]string{deleteQueries, listQueries} {
		for _, q := range m {
			s = append(s, q)
		}
	}
	return s
}()

// scanTasks reads the rows of a statement that selects taskCols (err is the statement's).
func scanTasks(rows pgx.Rows, err error) ([]*broker.Task, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*broker.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// scanTask reads the columns taskCols.
func scanTask(r pgx.Row) (*broker.Task, error) {
	var (
		t                           broker.Task
		seq, timeout                int64
		attempt, maxAttempts        int32
		state                       string
		started, leaseUntil, failed *time.Time
		token, lastError            *string
		enqueued, ready             time.Time
		payload                     []byte
		id, queue, typ              string
		headers                     map[string]string
	)
	if err := r.Scan(&seq, &id, &queue, &typ, &payload, &state, &attempt, &maxAttempts, &timeout,
		&enqueued, &ready, &started, &leaseUntil, &token, &lastError, &failed, &headers); err != nil {
		return nil, err
	}
	t.ID, t.Queue, t.Type, t.Headers = id, queue, typ, headers
	if len(payload) > 0 {
		t.Payload = payload
	}
	t.Attempt, t.MaxAttempts, t.Timeout = int(attempt), int(maxAttempts), time.Duration(timeout)
	t.EnqueuedAt, t.ReadyAt = enqueued, ready
	if started != nil {
		t.StartedAt = *started
	}
	if leaseUntil != nil {
		t.LeaseUntil = *leaseUntil
	}
	if failed != nil {
		t.FailedAt = *failed
	}
	if lastError != nil {
		t.LastError = *lastError
	}
	switch state {
	case "pending":
		t.State = broker.StatePending
	case "running":
		t.State = broker.StateRunning
		if token != nil {
			t.Lease = broker.Lease{TaskID: id, Queue: queue, Token: *token}
		}
	case "dead":
		t.State = broker.StateDead
	default:
		return nil, fmt.Errorf("task id=%q has the unknown state %q", id, state)
	}
	return &t, nil
}

// scheduledOf turns a pending task whose ReadyAt is after now into a scheduled one.
func scheduledOf(t *broker.Task, now time.Time) *broker.Task {
	if t.State == broker.StatePending && t.ReadyAt.After(now) {
		t.State = broker.StateScheduled
	}
	return t
}

// qStats reads every queue with its counters (the sum of its delta rows), its scheduled
// count (through the pending index) and its oldest ready task (the first entry of the
// pending index): one statement, one snapshot. $1 now.
const qStats = `SELECT q.name, q.sla_ns, q.paused,
		coalesce(c.waiting, 0), coalesce(c.running, 0), coalesce(c.dead, 0), coalesce(c.completed, 0), coalesce(c.failed, 0),
		(SELECT count(*) FROM {{schema}}.tasks t WHERE t.state = 'pending' AND t.queue = q.name AND t.ready_at > $1),
		(SELECT t.ready_at FROM {{schema}}.tasks t WHERE t.state = 'pending' AND t.queue = q.name AND t.ready_at <= $1
			ORDER BY t.ready_at, t.seq LIMIT 1)
	FROM {{schema}}.queues q
	LEFT JOIN (
		SELECT queue, sum(waiting) AS waiting, sum(running) AS running, sum(dead) AS dead,
			sum(completed) AS completed, sum(failed) AS failed
		FROM {{schema}}.counts GROUP BY queue
	) c ON c.queue = q.name
	ORDER BY q.name`

// Stats returns the statistics of every known queue, sorted by name, from one statement:
// counts from the counters, scheduled through the pending index (pending = waiting −
// scheduled), queue latency from one indexed lookup per queue.
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	if b.closed.Load() {
		return nil, errClosed("stats")
	}
	now := b.now()
	var out []broker.QueueStats
	err := b.query(ctx, qStats, []any{now}, func(r pgx.Rows) error {
		var (
			s       broker.QueueStats
			sla     int64
			waiting int64
			oldest  *time.Time
		)
		if err := r.Scan(&s.Name, &sla, &s.Paused, &waiting, &s.Running, &s.Dead, &s.Completed, &s.Failed, &s.Scheduled, &oldest); err != nil {
			return err
		}
		s.SLA = time.Duration(sla)
		s.Pending = max(waiting-s.Scheduled, 0)
		s.Running, s.Dead = max(s.Running, 0), max(s.Dead, 0)
		if oldest != nil {
			s.OldestReadyAt = *oldest
			s.Latency = max(now.Sub(s.OldestReadyAt), 0)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, b.fail(ctx, "stats", err)
	}
	return out, nil
}

// Tasks lists the tasks of one queue in one state, oldest ReadyAt first (FIFO among equal
// ReadyAt), with their payloads.
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("list tasks")
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return nil, fmt.Errorf("brisk: postgres: list tasks: %w", err)
	}
	t, ok := listQueries[p.State]
	if !ok {
		return nil, fmt.Errorf("brisk: postgres: list tasks of queue %q: unknown state %q: %w", p.Queue, p.State, broker.ErrInvalid)
	}
	if p.Limit < 0 || p.Offset < 0 {
		return nil, fmt.Errorf("brisk: postgres: list tasks of queue %q: negative limit or offset: %w", p.Queue, broker.ErrInvalid)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	now := b.now()
	var out []*broker.Task
	err := b.query(ctx, t, []any{p.Queue, now, limit, p.Offset}, func(r pgx.Rows) error {
		task, err := scanTask(r)
		if err == nil {
			out = append(out, scheduledOf(task, now))
		}
		return err
	})
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("list %s tasks of queue %q", p.State, p.Queue), err)
	}
	return out, nil
}

const qTask = `SELECT ` + taskCols + ` FROM {{schema}}.tasks WHERE id = $1`

// Task returns one task by ID, or an error wrapping broker.ErrNotFound.
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("get task")
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("get task id=%q", id), err)
	}
	defer c.Release()
	t, err := scanTask(c.QueryRow(ctx, b.q(qTask), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("brisk: postgres: task id=%q: %w", id, broker.ErrNotFound)
	}
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("get task id=%q", id), err)
	}
	return scheduledOf(t, b.now()), nil
}

const (
	qHeartbeat = `INSERT INTO {{schema}}.workers (id, host, pid, queues, concurrency, busy, started_at, last_seen, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
			concurrency = excluded.concurrency, busy = excluded.busy, started_at = excluded.started_at,
			last_seen = excluded.last_seen, version = excluded.version`
	qDeregister = `DELETE FROM {{schema}}.workers WHERE id = $1`
	qWorkers    = `SELECT id, host, pid, queues, concurrency, busy, started_at, last_seen, version
		FROM {{schema}}.workers WHERE last_seen > $1 ORDER BY id`
)

// Heartbeat records that a worker is alive, replacing its previous record. A zero LastSeen
// is recorded as now.
func (b *Broker) Heartbeat(ctx context.Context, w broker.WorkerInfo) error {
	if b.closed.Load() {
		return errClosed("heartbeat")
	}
	if w.ID == "" {
		return fmt.Errorf("brisk: postgres: heartbeat: empty worker id: %w", broker.ErrInvalid)
	}
	seen := w.LastSeen
	if seen.IsZero() {
		seen = b.now()
	}
	var started *time.Time
	if !w.StartedAt.IsZero() {
		started = &w.StartedAt
	}
	queues := w.Queues
	if queues == nil {
		queues = []string{}
	}
	_, err := b.exec(ctx, qHeartbeat, w.ID, w.Host, w.PID, queues, w.Concurrency, w.Busy, started, seen, w.Version)
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("heartbeat worker %q", w.ID), err)
	}
	return nil
}

// Deregister removes a worker's record.
func (b *Broker) Deregister(ctx context.Context, workerID string) error {
	if b.closed.Load() {
		return errClosed("deregister")
	}
	if _, err := b.exec(ctx, qDeregister, workerID); err != nil {
		return b.fail(ctx, fmt.Sprintf("deregister worker %q", workerID), err)
	}
	return nil
}

// Workers lists the worker records whose last heartbeat is newer than since, by ID.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if b.closed.Load() {
		return nil, errClosed("list workers")
	}
	var out []broker.WorkerInfo
	err := b.query(ctx, qWorkers, []any{since}, func(r pgx.Rows) error {
		var (
			w               broker.WorkerInfo
			pid, conc, busy int32
			started         *time.Time
		)
		if err := r.Scan(&w.ID, &w.Host, &pid, &w.Queues, &conc, &busy, &started, &w.LastSeen, &w.Version); err != nil {
			return err
		}
		w.PID, w.Concurrency, w.Busy = int(pid), int(conc), int(busy)
		if started != nil {
			w.StartedAt = *started
		}
		out = append(out, w)
		return nil
	})
	if err != nil {
		return nil, b.fail(ctx, "list workers", err)
	}
	return out, nil
}
