package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/briskq/brisk/broker"
)

// rowError says why a stored task row cannot be decoded.
type rowError struct {
	seq  int64
	id   string
	what string
}

func (e rowError) Error() string {
	return fmt.Sprintf("corrupt task row id=%q (seq %d): %s", e.id, e.seq, e.what)
}

func (e rowError) Unwrap() error { return ErrCorrupt }

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanTask reads the columns taskCols. A row with a value it cannot use (a hand-written
// NULL type, an unknown state, a time that is not an integer) gives a rowError, never a
// panic; any other error is the driver's.
func scanTask(s scanner) (int64, *broker.Task, error) {
	var v [24]any
	dest := make([]any, len(v))
	for i := range v {
		dest[i] = &v[i]
	}
	if err := s.Scan(dest...); err != nil {
		return 0, nil, err
	}
	seq, ok := v[0].(int64)
	if !ok {
		return 0, nil, rowError{id: fmt.Sprint(v[1]), what: fmt.Sprintf("seq is %s", describe(v[0]))}
	}
	d := decoder{seq: seq}
	t := &broker.Task{}
	t.ID = d.text(v[1], "id", false)
	d.id = t.ID
	t.Queue = d.text(v[2], "queue", false)
	t.Type = d.text(v[3], "type", false)
	t.Payload = d.blob(v[4], "payload")
	state := d.text(v[5], "state", false)
	t.Attempt = int(d.integer(v[6], "attempt", false))
	t.MaxAttempts = int(d.integer(v[7], "max_attempts", false))
	t.Timeout = time.Duration(d.integer(v[8], "timeout_ns", false))
	t.EnqueuedAt = d.time(v[9], "enqueued_at", false)
	t.ReadyAt = d.time(v[10], "ready_at", false)
	t.StartedAt = d.time(v[11], "started_at", true)
	t.LeaseUntil = d.time(v[12], "lease_until", true)
	token := d.text(v[13], "lease_token", true)
	t.LastError = d.text(v[14], "last_error", true)
	t.FailedAt = d.time(v[15], "failed_at", true)
	if hs := d.text(v[16], "headers", true); hs != "" && d.err == nil {
		if err := json.Unmarshal([]byte(hs), &t.Headers); err != nil {
			d.bad("headers are not a JSON object of strings: %v", err)
		}
	}
	t.Retention = time.Duration(d.integer(v[17], "retention_ns", false))
	t.FinishedAt = d.time(v[18], "finished_at", true)
	t.ExpiresAt = d.time(v[19], "expires_at", true)
	t.Result = d.blob(v[20], "result")
	if v[21] != nil || v[23] != nil {
		t.Progress = &broker.Progress{
			Percent: d.real(v[21], "progress_pct"),
			Message: d.text(v[22], "progress_msg", true),
			At:      d.time(v[23], "progress_at", false),
		}
	}
	switch {
	case d.err != nil:
	case state == "pending":
		t.State = broker.StatePending
	case state == "running":
		t.State = broker.StateRunning
		if token == "" || t.LeaseUntil.IsZero() {
			d.bad("running without a lease")
		}
		t.Lease = broker.Lease{TaskID: t.ID, Queue: t.Queue, Token: token}
	case state == "dead":
		t.State = broker.StateDead
	case state == "cancelled":
		t.State = broker.StateCancelled
	case state == "completed":
		t.State = broker.StateCompleted
	default:
		d.bad("unknown state %q", state)
	}
	if d.err == nil {
		switch {
		case t.Attempt < 0:
			d.bad("negative attempt %d", t.Attempt)
		case t.MaxAttempts < 1:
			d.bad("max_attempts %d is less than 1", t.MaxAttempts)
		case t.Timeout < 0:
			d.bad("negative timeout_ns %d", t.Timeout)
		}
	}
	if d.err != nil {
		return seq, nil, *d.err
	}
	return seq, t, nil
}

// encodeHeaders gives the headers column: a JSON object, or NULL for none.
func encodeHeaders(h map[string]string) (any, error) {
	if len(h) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return string(b), nil
}

// decoder collects the first problem of a row.
type decoder struct {
	seq int64
	id  string
	err *rowError
}

func (d *decoder) bad(format string, args ...any) {
	if d.err == nil {
		d.err = &rowError{seq: d.seq, id: d.id, what: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) text(v any, col string, null bool) string {
	switch x := v.(type) {
	case string:
		if x == "" && !null {
			d.bad("%s is empty", col)
		}
		return x
	case []byte:
		return string(x)
	case nil:
		if !null {
			d.bad("%s is NULL", col)
		}
		return ""
	}
	d.bad("%s is %s, not text", col, describe(v))
	return ""
}

// blob reads a BLOB (or TEXT) column; NULL and empty read as nil.
func (d *decoder) blob(v any, col string) []byte {
	switch x := v.(type) {
	case nil:
	case []byte:
		if len(x) > 0 {
			return x
		}
	case string:
		if x != "" {
			return []byte(x)
		}
	default:
		d.bad("%s is %s, not a blob", col, describe(x))
	}
	return nil
}

// real reads a REAL column (an INTEGER is taken as its value); NULL reads as 0.
func (d *decoder) real(v any, col string) float64 {
	switch x := v.(type) {
	case nil:
		return 0
	case float64:
		return x
	case int64:
		return float64(x)
	}
	d.bad("%s is %s, not a number", col, describe(v))
	return 0
}

func (d *decoder) integer(v any, col string, null bool) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case nil:
		if !null {
			d.bad("%s is NULL", col)
		}
		return 0
	}
	d.bad("%s is %s, not an integer", col, describe(v))
	return 0
}

func (d *decoder) time(v any, col string, null bool) time.Time {
	if v == nil && null {
		return time.Time{}
	}
	n := d.integer(v, col, false)
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// describe names a stored value's type and shows a short form of it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the real %g", x)
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the text %q", x)
	case []byte:
		return fmt.Sprintf("a blob of %d bytes", len(x))
	}
	return fmt.Sprintf("a %T", v)
}

// scheduledOf turns a pending task whose ReadyAt is after now into a scheduled one.
func scheduledOf(t *broker.Task, now time.Time) *broker.Task {
	if t.State == broker.StatePending && t.ReadyAt.After(now) {
		t.State = broker.StateScheduled
	}
	return t
}

// Stats returns the statistics of every known queue, sorted by name, from one snapshot.
// Counts come from the counters in the queues table, except scheduled, which is counted
// through the pending index (pending = waiting − scheduled); queue latency is one indexed
// lookup per queue.
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	if err := b.checkOpen("stats"); err != nil {
		return nil, err
	}
	out, err := b.stats(ctx)
	if err != nil {
		return nil, b.fail(ctx, "stats", err)
	}
	return out, nil
}

// Stats statements, ?1 queue, ?2 now: scheduled counts the scheduled tasks through the
// pending index; oldest is the queue latency's oldest ready task, the first index entry.
const (
	qScheduled = `SELECT count(*) FROM tasks WHERE state = 'pending' AND queue = ?1 AND ready_at > ?2`
	qOldest    = `SELECT ready_at FROM tasks WHERE state = 'pending' AND queue = ?1 AND ready_at <= ?2 ORDER BY ready_at, seq LIMIT 1`
)

func (b *Broker) stats(ctx context.Context) ([]broker.QueueStats, error) {
	tx, err := b.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := b.now()
	rows, err := tx.QueryContext(ctx, `SELECT name, sla_ns, waiting, running, dead, completed, failed, paused, cancelled,
		retained, retention_ns FROM queues ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var out []broker.QueueStats
	for rows.Next() {
		var (
			s       broker.QueueStats
			sla     int64
			waiting int64
			keep    int64
		)
		if err := rows.Scan(&s.Name, &sla, &waiting, &s.Running, &s.Dead, &s.Completed, &s.Failed, &s.Paused, &s.Cancelled,
			&s.Retained, &keep); err != nil {
			rows.Close()
			return nil, err
		}
		s.SLA = time.Duration(sla)
		s.Retention = time.Duration(keep)
		s.Pending = waiting // minus scheduled, below
		out = append(out, s)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	scheduled, err := tx.PrepareContext(ctx, qScheduled)
	if err != nil {
		return nil, err
	}
	defer scheduled.Close()
	oldest, err := tx.PrepareContext(ctx, qOldest)
	if err != nil {
		return nil, err
	}
	defer oldest.Close()
	nowNs := nanos(now)
	for i := range out {
		s := &out[i]
		if err := scheduled.QueryRowContext(ctx, s.Name, nowNs).Scan(&s.Scheduled); err != nil {
			return nil, err
		}
		s.Pending = max(s.Pending-s.Scheduled, 0)
		s.Running = max(s.Running, 0)
		s.Dead = max(s.Dead, 0)
		s.Cancelled = max(s.Cancelled, 0)
		s.Retained = max(s.Retained, 0)
		var v any
		err := oldest.QueryRowContext(ctx, s.Name, nowNs).Scan(&v)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n, ok := v.(int64); ok {
			s.OldestReadyAt = time.Unix(0, n)
			s.Latency = max(now.Sub(s.OldestReadyAt), 0)
		}
	}
	return out, nil
}

// Tasks lists the tasks of one queue in one state, oldest ReadyAt first (FIFO among equal
// ReadyAt), with their payloads. A row it cannot decode fails the call with an error
// wrapping ErrCorrupt that names the row's id.
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if err := b.checkOpen("list tasks"); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return nil, fmt.Errorf("brisk: sqlite: list tasks: %w", err)
	}
	if _, err := stateWhere(p.State); err != nil {
		return nil, fmt.Errorf("brisk: sqlite: list tasks of queue %q: %w", p.Queue, err)
	}
	if p.Limit < 0 || p.Offset < 0 {
		return nil, fmt.Errorf("brisk: sqlite: list tasks of queue %q: negative limit or offset: %w", p.Queue, broker.ErrInvalid)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	op := fmt.Sprintf("list %s tasks of queue %q", p.State, p.Queue)
	s, err := b.rs(ctx, listQuery(p.State))
	if err != nil {
		return nil, b.fail(ctx, op, err)
	}
	now := b.now()
	rows, err := s.QueryContext(ctx, p.Queue, nanos(now), limit, p.Offset)
	if err != nil {
		return nil, b.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []*broker.Task
	for rows.Next() {
		_, t, err := scanTask(rows)
		if err != nil {
			return nil, b.fail(ctx, op, err)
		}
		out = append(out, scheduledOf(t, now))
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, op, err)
	}
	return out, nil
}

// listQuery lists the tasks of one queue (?1) in state s at a time (?2), with a limit (?3)
// and offset (?4), oldest ReadyAt first and FIFO among equal ReadyAt; completed tasks
// oldest FinishedAt first.
func listQuery(s broker.State) string {
	where, _ := stateWhere(s)
	order := `ready_at, seq`
	if s == broker.StateCompleted {
		order = `finished_at, seq`
	}
	return `SELECT ` + taskCols + ` FROM tasks WHERE ` + where + ` ORDER BY ` + order + ` LIMIT ?3 OFFSET ?4`
}

// Task returns one task by ID, or an error wrapping broker.ErrNotFound.
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if err := b.checkOpen("get task"); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("get task id=%q", id)
	s, err := b.rs(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?1 AND `+notExpired)
	if err != nil {
		return nil, b.fail(ctx, op, err)
	}
	_, t, err := scanTask(s.QueryRowContext(ctx, id, nanos(b.now())))
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("brisk: sqlite: task id=%q: %w", id, broker.ErrNotFound)
	}
	if errors.As(err, new(rowError)) {
		return nil, fmt.Errorf("brisk: sqlite: get task: %w", err)
	}
	if err != nil {
		return nil, b.fail(ctx, op, err)
	}
	return scheduledOf(t, b.now()), nil
}

// heartbeatPurge is how many expired tasks a Heartbeat removes at most: a slice small
// enough to keep the write short (a few milliseconds) and, at one heartbeat per worker every
// few seconds, enough to empty a store that no longer completes tasks.
const heartbeatPurge = 500

// Heartbeat records that a worker is alive, replacing its previous record. A zero LastSeen
// is recorded as now.
func (b *Broker) Heartbeat(ctx context.Context, w broker.WorkerInfo) error {
	if err := b.checkOpen("heartbeat"); err != nil {
		return err
	}
	if w.ID == "" {
		return fmt.Errorf("brisk: sqlite: heartbeat: empty worker id: %w", broker.ErrInvalid)
	}
	queues, err := json.Marshal(w.Queues)
	if err != nil {
		return fmt.Errorf("brisk: sqlite: heartbeat worker %q: %w", w.ID, err)
	}
	seen := w.LastSeen
	if seen.IsZero() {
		seen = b.now()
	}
	var started int64
	if !w.StartedAt.IsZero() {
		started = nanos(w.StartedAt)
	}
	err = b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := b.ws(ctx, tx, qHeartbeat).ExecContext(ctx, w.ID, w.Host, w.PID, string(queues),
			w.Concurrency, w.Busy, started, nanos(seen), w.Version)
		if err != nil {
			return err
		}
		// Every worker's periodic write: expired tasks go even while none completes.
		_, err = b.purgeExpired(ctx, tx, nanos(b.now()), heartbeatPurge)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("heartbeat worker %q", w.ID), err)
	}
	return nil
}

// Deregister removes a worker's record.
func (b *Broker) Deregister(ctx context.Context, workerID string) error {
	if err := b.checkOpen("deregister"); err != nil {
		return err
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := b.ws(ctx, tx, qDeleteWorker).ExecContext(ctx, workerID)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("deregister worker %q", workerID), err)
	}
	return nil
}

// Workers lists the worker records whose last heartbeat is newer than since, by ID.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if err := b.checkOpen("list workers"); err != nil {
		return nil, err
	}
	s, err := b.rs(ctx, `SELECT id, host, pid, queues, concurrency, busy, started_at, last_seen, version
		FROM workers WHERE last_seen > ? ORDER BY id`)
	if err != nil {
		return nil, b.fail(ctx, "list workers", err)
	}
	rows, err := s.QueryContext(ctx, nanos(since))
	if err != nil {
		return nil, b.fail(ctx, "list workers", err)
	}
	defer rows.Close()
	var out []broker.WorkerInfo
	for rows.Next() {
		var (
			w             broker.WorkerInfo
			queues        string
			started, seen int64
		)
		if err := rows.Scan(&w.ID, &w.Host, &w.PID, &queues, &w.Concurrency, &w.Busy, &started, &seen, &w.Version); err != nil {
			return nil, b.fail(ctx, "list workers", err)
		}
		if err := json.Unmarshal([]byte(queues), &w.Queues); err != nil {
			return nil, fmt.Errorf("brisk: sqlite: list workers: worker %q: queues %q: %w", w.ID, queues, ErrCorrupt)
		}
		if started != 0 {
			w.StartedAt = time.Unix(0, started)
		}
		w.LastSeen = time.Unix(0, seen)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "list workers", err)
	}
	return out, nil
}
