package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/briskq/brisk/broker"
)

// taskCols are the columns scanTask reads, in its order.
const taskCols = `seq, id, queue, type, payload, state, attempt, max_attempts, timeout_ns,
	enqueued_at, ready_at, started_at, lease_until, lease_token, last_error, failed_at, headers,
	retention_ns, finished_at, expires_at, result, progress_pct, progress_msg, progress_at`

// The statements of the write path, prepared once at Open on the write connection.
const (
	qEnsureQueue = `INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING`
	qDeclare     = `INSERT INTO queues (name, sla_ns) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sla_ns = excluded.sla_ns`
	qInsertTask  = `INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, timeout_ns, enqueued_at, ready_at, headers, retention_ns)
		VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)`
	qPause        = `INSERT INTO queues (name, paused) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`
	qIsPaused     = `SELECT paused FROM queues WHERE name = ?`
	qAddFailed    = `UPDATE queues SET failed = failed + ? WHERE name = ?`
	qAddCompleted = `UPDATE queues SET completed = completed + ? WHERE name = ?`

	// ?1 queue, ?2 now.
	qReclaimDead = `UPDATE tasks SET state = 'dead', last_error = '` + broker.MsgLeaseExpired + `', failed_at = ?2,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'running' AND queue = ?1 AND lease_until <= ?2 AND attempt >= max_attempts`
	qReclaimPending = `UPDATE tasks SET state = 'pending', lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'running' AND queue = ?1 AND lease_until <= ?2`
	// ?1 queue, ?2 now, ?3 limit, ?4 lease until, ?5 worker id.
	qTake = `UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ?2, lease_until = ?4,
			lease_token = lower(hex(randomblob(16))), worker_id = ?5` + clearProgress + `
		WHERE seq IN (` + qReadySeqs + `)
		RETURNING ` + taskCols
	// qReadySeqs picks the oldest ready tasks of a queue: ?1 queue, ?2 now, ?3 limit.
	qReadySeqs = `SELECT seq FROM tasks WHERE state = 'pending' AND queue = ?1 AND ready_at <= ?2 ORDER BY ready_at, seq LIMIT ?3`
	// ?1 seq, ?2 message, ?3 now.
	qMarkCorrupt = `UPDATE tasks SET state = 'dead', last_error = ?2, failed_at = ?3,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE seq = ?1`

	// Fenced by id, lease token and state: ?1 id, ?2 token.
	qExtend = `UPDATE tasks SET lease_until = ?3 WHERE id = ?1 AND lease_token = ?2 AND state = 'running'`
	// qAck removes a task that is not to be kept (no retention of its own nor of its
	// queue); qComplete keeps one that is, with ?3 now and ?4 its result.
	qAck = `DELETE FROM tasks WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
			AND retention_ns = 0 AND NOT EXISTS (SELECT 1 FROM queues WHERE name = tasks.queue AND retention_ns > 0)
		RETURNING queue`
	qComplete = `UPDATE tasks SET state = 'completed', finished_at = ?3, expires_at = ?3 + ` + retentionOf + `,
			result = ?4, lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running' AND ` + retentionOf + ` > 0
		RETURNING queue`
	// qKeep is qComplete for a task of queue ?6 whose retention is ?5: read once per
	// batch, it spares the statement of qAck and the lookups of retentionOf in each.
	qKeep = `UPDATE tasks SET state = 'completed', finished_at = ?3,
			expires_at = ?3 + (CASE WHEN retention_ns > 0 THEN retention_ns ELSE ?5 END),
			result = ?4, lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running' AND queue = ?6
		RETURNING queue`
	qQueueRetention = `SELECT retention_ns FROM queues WHERE name = ?`
	// qPurgeExpired removes up to ?2 tasks whose retention ended before ?1, oldest first.
	qPurgeExpired = `DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks
		WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)`
	// ?1 id, ?2 token, ?3 percent, ?4 message, ?5 at.
	qProgress = `UPDATE tasks SET progress_pct = ?3, progress_msg = ?4, progress_at = ?5
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running'`
	// ?1 queue, ?2 retention.
	qSetRetention = `INSERT INTO queues (name, retention_ns) VALUES (?1, ?2)
		ON CONFLICT (name) DO UPDATE SET retention_ns = excluded.retention_ns`
	qRetry = `UPDATE tasks SET state = 'pending', ready_at = ?3, last_error = ?4, failed_at = ?5,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running' RETURNING queue`
	qKill = `UPDATE tasks SET state = 'dead', last_error = ?3, failed_at = ?4,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running' RETURNING queue`
	qRelease = `UPDATE tasks SET state = 'pending', attempt = max(attempt - 1, 0),
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE id = ?1 AND lease_token = ?2 AND state = 'running'`

	// ?1 worker id, ?2 now (qWorkerDead).
	qWorkerDead = `UPDATE tasks SET state = 'dead', last_error = '` + broker.MsgWorkerLost + `', failed_at = ?2,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'running' AND worker_id = ?1 AND attempt >= max_attempts RETURNING queue`
	qWorkerPending = `UPDATE tasks SET state = 'pending', lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'running' AND worker_id = ?1 RETURNING queue`
	qDeleteWorker = `DELETE FROM workers WHERE id = ?`
	qHeartbeat    = `INSERT INTO workers (id, host, pid, queues, concurrency, busy, started_at, last_seen, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
			concurrency = excluded.concurrency, busy = excluded.busy, started_at = excluded.started_at,
			last_seen = excluded.last_seen, version = excluded.version`
)

var writeQueries = []string{
	qEnsureQueue, qDeclare, qInsertTask, qPause, qIsPaused, qAddFailed, qAddCompleted,
	qReclaimDead, qReclaimPending, qTake, qMarkCorrupt,
	qExtend, qAck, qComplete, qKeep, qQueueRetention, qPurgeExpired, qProgress, qSetRetention, qRetry, qKill, qRelease,
	qWorkerDead, qWorkerPending, qDeleteWorker, qHeartbeat,
	qUniqueHeld, qUniqueLock, qUniquePurge,
	qQueueLimits, qTakeSeqs, qReadyTypes, qRunningOf, qRunningOfType, qSaveBucket,
	qQueueCounts, qQueueHolds, qDeleteQueue, qDeleteCompleted, qDeleteLimits, qDeleteSamples, qAddSample, qTrimSamples,
}

// Enqueue stores tasks atomically in one transaction, creating unknown queues, and wakes
// waiting workers. A task ID already stored fails the whole batch with an error wrapping
// broker.ErrDuplicate.
func (b *Broker) Enqueue(ctx context.Context, tasks []*broker.Task) error {
	if err := b.checkOpen("enqueue"); err != nil {
		return err
	}
	if err := broker.ValidateTasks(tasks, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: sqlite: enqueue: %w", err)
	}
	var (
		dup  *broker.DuplicateError
		held *broker.DuplicateError
	)
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		if h, err := b.lockUnique(ctx, tx, tasks); err != nil {
			return err
		} else if h != nil {
			return h
		}
		ensure := b.ws(ctx, tx, qEnsureQueue)
		seen := map[string]bool{}
		for _, t := range tasks {
			if seen[t.Queue] {
				continue
			}
			seen[t.Queue] = true
			if _, err := ensure.ExecContext(ctx, t.Queue); err != nil {
				return err
			}
		}
		insert := b.ws(ctx, tx, qInsertTask)
		for _, t := range tasks {
			payload := t.Payload
			if payload == nil {
				payload = []byte{}
			}
			headers, err := encodeHeaders(t.Headers)
			if err != nil {
				return err
			}
			_, err = insert.ExecContext(ctx, t.ID, t.Queue, t.Type, payload, t.MaxAttempts,
				int64(t.Timeout), nanos(t.EnqueuedAt), nanos(t.ReadyAt), headers, int64(t.Retention))
			if err != nil {
				if isUniqueViolation(err) {
					dup = &broker.DuplicateError{Queue: t.Queue, ID: t.ID}
				}
				return err
			}
		}
		return nil
	})
	if dup != nil {
		return fmt.Errorf("brisk: sqlite: enqueue: %w", dup)
	}
	if errors.As(err, &held) {
		return fmt.Errorf("brisk: sqlite: enqueue: %w", held)
	}
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("enqueue %d tasks", len(tasks)), err)
	}
	b.hub.notify()
	return nil
}

// PauseQueue pauses (paused=true) or resumes the queue, creating it if needed: while it is
// paused, Reserve takes nothing from it, neither ready tasks nor expired leases, and Wait
// does not return for its due times. Resuming wakes waiting workers. It is idempotent.
func (b *Broker) PauseQueue(ctx context.Context, queue string, paused bool) error {
	op := "resume queue"
	if paused {
		op = "pause queue"
	}
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: sqlite: %s: %w", op, err)
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := b.ws(ctx, tx, qPause).ExecContext(ctx, queue, paused)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	if !paused {
		b.hub.notify()
	}
	return nil
}

// Reserve leases up to p.Limit ready tasks, queue by queue in the given order, in one
// write transaction. Paused queues are skipped. In each queue it first reclaims expired leases (a task on its final
// attempt goes to dead, the others become pending with their ReadyAt, so they come first),
// then takes the oldest ready tasks. A row it cannot decode is moved to dead with
// last_error "corrupt task row: …" instead of being returned. When no queue has anything
// ready it returns without taking the write lock.
func (b *Broker) Reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if err := b.checkOpen("reserve"); err != nil {
		return nil, err
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, fmt.Errorf("brisk: sqlite: reserve: %w", err)
	}
	ready, err := b.anyReady(ctx, p.Queues, b.now())
	if err != nil {
		return nil, b.fail(ctx, "reserve", err)
	}
	if !ready {
		return nil, nil
	}
	var (
		out       []*broker.Task
		reclaimed bool
	)
	err = b.writeTx(ctx, func(tx *sql.Tx) error {
		out, reclaimed = out[:0], false
		now := b.now()
		nowNs := nanos(now)
		until := nanos(now.Add(p.Lease))
		var worker any
		if p.WorkerID != "" {
			worker = p.WorkerID
		}
		left := p.Limit
		for _, q := range p.Queues {
			if left == 0 {
				break
			}
			var paused bool
			err := b.ws(ctx, tx, qIsPaused).QueryRowContext(ctx, q.Name).Scan(&paused)
			if err != nil && err != sql.ErrNoRows {
				return err
			}
			if paused {
				continue // neither reclaimed nor taken until resumed
			}
			res, err := b.ws(ctx, tx, qReclaimDead).ExecContext(ctx, q.Name, nowNs)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				if _, err := b.ws(ctx, tx, qAddFailed).ExecContext(ctx, n, q.Name); err != nil {
					return err
				}
			}
			res, err = b.ws(ctx, tx, qReclaimPending).ExecContext(ctx, q.Name, nowNs)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				reclaimed = true
				if _, err := b.ws(ctx, tx, qAddFailed).ExecContext(ctx, n, q.Name); err != nil {
					return err
				}
			}
			n := left
			if q.Max > 0 {
				n = min(n, q.Max)
			}
			lims, err := b.queueLimits(ctx, tx, q.Name)
			if err != nil {
				return err
			}
			var got []*broker.Task
			if len(lims) == 0 {
				b.hints.Clear(q.Name)
				got, err = b.take(ctx, tx, q.Name, n, nowNs, until, worker)
			} else {
				got, err = b.takeLimited(ctx, tx, q.Name, n, now, until, worker, lims)
			}
			if err != nil {
				return err
			}
			out = append(out, got...)
			left -= len(got)
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(ctx, "reserve", err)
	}
	if reclaimed {
		// Expired leases made tasks ready that this call may have left to others.
		b.hub.notify()
	}
	return out, nil
}

// qAnyReady: ?1 queue, ?2 now. A paused queue has nothing ready.
const qAnyReady = `SELECT NOT EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND paused)
	AND (EXISTS (SELECT 1 FROM tasks WHERE state = 'pending' AND queue = ?1 AND ready_at <= ?2)
	OR EXISTS (SELECT 1 FROM tasks WHERE state = 'running' AND queue = ?1 AND lease_until <= ?2))`

// anyReady reports whether a task is pending and ready, or a lease has expired, in one of
// queues: a read-only check that keeps idle pollers off the write lock.
func (b *Broker) anyReady(ctx context.Context, queues []broker.QueueLimit, now time.Time) (bool, error) {
	s, err := b.rs(ctx, qAnyReady)
	if err != nil {
		return false, err
	}
	for _, ql := range queues {
		if h, ok := b.hints.Get(ql.Name, now); ok && !h.Slot {
			continue // a rate limit has no token for it before h.until
		}
		var ok bool
		if err := s.QueryRowContext(ctx, ql.Name, nanos(now)).Scan(&ok); err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// take reserves up to n ready tasks of queue and returns them oldest first.
func (b *Broker) take(ctx context.Context, tx *sql.Tx, queue string, n int, now, until int64, worker any) ([]*broker.Task, error) {
	return b.takeWith(ctx, tx, queue, now, qTake, queue, now, n, until, worker)
}

// takeWith runs the taking statement q (qTake or qTakeSeqs) with args and returns the
// tasks it leased, oldest first; a row it cannot decode goes to dead.
func (b *Broker) takeWith(ctx context.Context, tx *sql.Tx, queue string, now int64, q string, args ...any) ([]*broker.Task, error) {
	rows, err := b.ws(ctx, tx, q).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	type taken struct {
		seq int64
		t   *broker.Task
	}
	var (
		got     []taken
		corrupt []rowError
	)
	for rows.Next() {
		seq, t, err := scanTask(rows)
		if err != nil {
			var re rowError
			if errors.As(err, &re) {
				corrupt = append(corrupt, re)
				continue
			}
			rows.Close()
			return nil, err
		}
		got = append(got, taken{seq, t})
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, re := range corrupt {
		msg := "corrupt task row: " + re.what
		if _, err := b.ws(ctx, tx, qMarkCorrupt).ExecContext(ctx, re.seq, msg, now); err != nil {
			b.log.Error("brisk: sqlite: cannot move a corrupt task row to dead; skipped",
				"path", b.path, "queue", queue, "seq", re.seq, "id", re.id, "problem", re.what, "error", err)
			continue
		}
		b.log.Warn("brisk: sqlite: moved a corrupt task row to dead",
			"path", b.path, "queue", queue, "seq", re.seq, "id", re.id, "problem", re.what)
	}
	slices.SortFunc(got, func(a, b taken) int {
		if c := a.t.ReadyAt.Compare(b.t.ReadyAt); c != 0 {
			return c
		}
		return cmpInt(a.seq, b.seq)
	})
	out := make([]*broker.Task, len(got))
	for i, g := range got {
		out[i] = g.t
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Extend moves the lease expiry of each held lease to now + d in one transaction and
// returns the leases no longer held. A lease that has expired but whose task no Reserve
// has taken back yet is still held, and is extended.
func (b *Broker) Extend(ctx context.Context, leases []broker.Lease, d time.Duration) ([]broker.Lease, error) {
	if err := b.checkOpen("extend"); err != nil {
		return nil, err
	}
	if d < time.Millisecond {
		return nil, fmt.Errorf("brisk: sqlite: extend: lease %s, must be at least 1ms: %w", d, broker.ErrInvalid)
	}
	if len(leases) == 0 {
		return nil, nil
	}
	var lost []broker.Lease
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		lost = lost[:0]
		until := nanos(b.now().Add(d))
		s := b.ws(ctx, tx, qExtend)
		for _, l := range leases {
			res, err := s.ExecContext(ctx, l.TaskID, l.Token, until)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				lost = append(lost, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("extend %d leases", len(leases)), err)
	}
	return lost, nil
}

// Ack completes the tasks whose leases are held (Complete without results): each is
// removed, or kept where it or its queue has a retention.
func (b *Broker) Ack(ctx context.Context, leases []broker.Lease) error {
	done := make([]broker.Completion, len(leases))
	for i, l := range leases {
		done[i].Lease = l
	}
	return b.complete(ctx, "ack", done)
}

// Complete completes the tasks whose leases are held and counts them completed, in one
// transaction: a task with a retention (its own, else its queue's) is kept in state
// completed with its result until finished_at + retention, the others are removed. Leases
// no longer held are reported in an error wrapping broker.ErrLeaseLost after the others
// are completed. The same transaction removes a slice of expired tasks when one is due
// (purgeSlice), so that the store stays bounded without a sweep of its own.
func (b *Broker) Complete(ctx context.Context, done []broker.Completion) error {
	if err := broker.ValidateCompletions(done); err != nil {
		return fmt.Errorf("brisk: sqlite: complete: %w", err)
	}
	return b.complete(ctx, "complete", done)
}

func (b *Broker) complete(ctx context.Context, op string, done []broker.Completion) error {
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if len(done) == 0 {
		return nil
	}
	var (
		lost   []string
		counts map[string]int64
	)
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		lost = lost[:0]
		counts = map[string]int64{}
		now := nanos(b.now())
		del, keep := b.ws(ctx, tx, qAck), b.ws(ctx, tx, qComplete)
		kept := map[string]int64{} // the retention of each queue of the batch
		for _, c := range done {
			q := c.Lease.Queue
			ret, ok := kept[q]
			if !ok {
				err := b.ws(ctx, tx, qQueueRetention).QueryRowContext(ctx, q).Scan(&ret)
				if err != nil && err != sql.ErrNoRows {
					return err
				}
				kept[q] = ret
			}
			var queue string
			err := sql.ErrNoRows
			if ret > 0 { // kept whatever the task's own retention
				err = b.ws(ctx, tx, qKeep).QueryRowContext(ctx, c.Lease.TaskID, c.Lease.Token, now, c.Result, ret, q).Scan(&queue)
			}
			if err == sql.ErrNoRows {
				err = del.QueryRowContext(ctx, c.Lease.TaskID, c.Lease.Token).Scan(&queue)
			}
			if err == sql.ErrNoRows {
				err = keep.QueryRowContext(ctx, c.Lease.TaskID, c.Lease.Token, now, c.Result).Scan(&queue)
			}
			if err == sql.ErrNoRows {
				lost = append(lost, c.Lease.TaskID)
				continue
			}
			if err != nil {
				return err
			}
			counts[queue]++
		}
		if err := b.purgeSlice(ctx, tx, now); err != nil {
			return err
		}
		return addCounts(ctx, b.ws(ctx, tx, qAddCompleted), counts)
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %d tasks", op, len(done)), err)
	}
	b.slotsFreed(keys(counts)...)
	if len(lost) > 0 {
		return fmt.Errorf("brisk: sqlite: %s: %s: %w", op, broker.IDList(lost), broker.ErrLeaseLost)
	}
	return nil
}

// Expired tasks are removed a slice at a time in a write transaction that happens anyway
// (Complete, Cancel), at most every purgeEvery while the last slice was not full: removing
// a few hundred neighbouring rows at once writes a few pages for all of them, where a few
// rows at every completion would write the pages at the store's old end in every commit.
// A full slice means more are due: the next write takes another at once.
const (
	purgeEvery = 100 * time.Millisecond
	purgeSlice = 256
)

// purgeSlice removes a slice of expired tasks in tx when one is due.
func (b *Broker) purgeSlice(ctx context.Context, tx *sql.Tx, now int64) error {
	b.purgeMu.Lock()
	due := now >= b.purgeAt
	b.purgeMu.Unlock()
	if !due {
		return nil
	}
	n, err := b.purgeExpired(ctx, tx, now, purgeSlice)
	if err != nil {
		return err
	}
	b.purgeMu.Lock()
	if n < purgeSlice {
		b.purgeAt = now + int64(purgeEvery)
	}
	b.purgeMu.Unlock()
	return nil
}

// purgeExpired removes up to n tasks whose retention ended at or before now, in tx, and
// returns how many it removed.
func (b *Broker) purgeExpired(ctx context.Context, tx *sql.Tx, now int64, n int) (int64, error) {
	res, err := b.ws(ctx, tx, qPurgeExpired).ExecContext(ctx, now, n)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SetRetention sets how long queue keeps its completed and cancelled tasks, creating the
// queue if needed.
func (b *Broker) SetRetention(ctx context.Context, queue string, d time.Duration) error {
	if err := b.checkOpen("set retention"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: sqlite: set retention: %w", err)
	}
	if err := broker.ValidateRetention(d); err != nil {
		return fmt.Errorf("brisk: sqlite: set retention of queue %q: %w", queue, err)
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := b.ws(ctx, tx, qSetRetention).ExecContext(ctx, queue, int64(d))
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("set retention of queue %q", queue), err)
	}
	return nil
}

// SetProgress stores the progress of the task held under l.
func (b *Broker) SetProgress(ctx context.Context, l broker.Lease, p broker.Progress) error {
	if err := b.checkOpen("set progress"); err != nil {
		return err
	}
	if err := broker.ValidateProgress(p); err != nil {
		return fmt.Errorf("brisk: sqlite: set progress of id=%q: %w", l.TaskID, err)
	}
	at := p.At
	if at.IsZero() {
		at = b.now()
	}
	held := false
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := b.ws(ctx, tx, qProgress).ExecContext(ctx, l.TaskID, l.Token, p.Percent, p.Message, nanos(at))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n > 0
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("set progress of id=%q", l.TaskID), err)
	}
	if !held {
		return fmt.Errorf("brisk: sqlite: set progress: id=%q: %w", l.TaskID, broker.ErrLeaseLost)
	}
	return nil
}

// addCounts adds n[queue] to a counter with s (qAddCompleted or qAddFailed), in queue
// order so that the writes are deterministic.
func addCounts(ctx context.Context, s *sql.Stmt, n map[string]int64) error {
	queues := make([]string, 0, len(n))
	for q := range n {
		queues = append(queues, q)
	}
	slices.Sort(queues)
	for _, q := range queues {
		if _, err := s.ExecContext(ctx, n[q], q); err != nil {
			return err
		}
	}
	return nil
}

// Retry ends the attempt under l with errMsg and makes the task pending again with ReadyAt
// at (scheduled while at is in the future). It counts a failed attempt and wakes waiting
// workers. It returns an error wrapping broker.ErrLeaseLost when l is not held.
func (b *Broker) Retry(ctx context.Context, l broker.Lease, at time.Time, errMsg string) error {
	if err := b.checkOpen("retry"); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("brisk: sqlite: retry id=%q: zero ready time: %w", l.TaskID, broker.ErrInvalid)
	}
	found, err := b.endAttempt(ctx, l, qRetry, nanos(at), errMsg, nanos(b.now()))
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("retry id=%q", l.TaskID), err)
	}
	if !found {
		return fmt.Errorf("brisk: sqlite: retry: id=%q: %w", l.TaskID, broker.ErrLeaseLost)
	}
	b.hub.notify()
	return nil
}

// Kill ends the attempt under l with errMsg and moves the task to dead, counting a failed
// attempt. It returns an error wrapping broker.ErrLeaseLost when l is not held.
func (b *Broker) Kill(ctx context.Context, l broker.Lease, errMsg string) error {
	if err := b.checkOpen("kill"); err != nil {
		return err
	}
	found, err := b.endAttempt(ctx, l, qKill, errMsg, nanos(b.now()))
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("kill id=%q", l.TaskID), err)
	}
	if !found {
		return fmt.Errorf("brisk: sqlite: kill: id=%q: %w", l.TaskID, broker.ErrLeaseLost)
	}
	b.slotsFreed(l.Queue)
	return nil
}

// endAttempt runs the fenced statement q (qRetry or qKill) for l with args after the id and
// token, and counts a failed attempt. It reports whether l was held.
func (b *Broker) endAttempt(ctx context.Context, l broker.Lease, q string, args ...any) (bool, error) {
	found := false
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		var queue string
		err := b.ws(ctx, tx, q).QueryRowContext(ctx, append([]any{l.TaskID, l.Token}, args...)...).Scan(&queue)
		if err == sql.ErrNoRows {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		_, err = b.ws(ctx, tx, qAddFailed).ExecContext(ctx, 1, queue)
		return err
	})
	return found, err
}

// Release hands tasks back unrun in one transaction: each becomes pending with its ReadyAt
// unchanged and the attempt it was reserved with given back. Leases not held are skipped.
func (b *Broker) Release(ctx context.Context, leases []broker.Lease) error {
	if err := b.checkOpen("release"); err != nil {
		return err
	}
	if len(leases) == 0 {
		return nil
	}
	released := false
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		released = false
		s := b.ws(ctx, tx, qRelease)
		for _, l := range leases {
			res, err := s.ExecContext(ctx, l.TaskID, l.Token)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				released = true
			}
		}
		return nil
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("release %d tasks", len(leases)), err)
	}
	if released {
		b.hub.notify()
	}
	return nil
}

// ReleaseWorker makes every task running under workerID ready again (a task on its final
// attempt goes to dead with last_error "worker lost on the final attempt"; the attempts
// stay counted and are counted failed), removes the worker's record and returns how many
// tasks it took back, in one transaction.
func (b *Broker) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	if err := b.checkOpen("release worker"); err != nil {
		return 0, err
	}
	if workerID == "" {
		return 0, fmt.Errorf("brisk: sqlite: release worker: empty worker id: %w", broker.ErrInvalid)
	}
	total := 0
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		total = 0
		failed := map[string]int64{}
		now := nanos(b.now())
		for _, q := range []struct {
			sql  string
			args []any
		}{{qWorkerDead, []any{workerID, now}}, {qWorkerPending, []any{workerID}}} {
			rows, err := b.ws(ctx, tx, q.sql).QueryContext(ctx, q.args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var queue string
				if err := rows.Scan(&queue); err != nil {
					rows.Close()
					return err
				}
				failed[queue]++
				total++
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if _, err := b.ws(ctx, tx, qDeleteWorker).ExecContext(ctx, workerID); err != nil {
			return err
		}
		return addCounts(ctx, b.ws(ctx, tx, qAddFailed), failed)
	})
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("release worker %q", workerID), err)
	}
	if total > 0 {
		b.hub.notify()
	}
	return total, nil
}

// RetryDead makes dead tasks of queue pending again with Attempt 0 and ReadyAt now (ids
// selects some, nil all) and wakes waiting workers. It returns how many moved.
func (b *Broker) RetryDead(ctx context.Context, queue string, ids []string) (int, error) {
	if err := b.checkOpen("retry dead"); err != nil {
		return 0, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: sqlite: retry dead: %w", err)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	q := `UPDATE tasks SET state = 'pending', attempt = 0, ready_at = ?2,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'dead' AND queue = ?1`
	args := []any{queue, nanos(b.now())}
	if ids != nil {
		q += ` AND id IN (SELECT value FROM json_each(?3))`
		args = append(args, jsonIDs(ids))
	}
	var n int64
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("retry dead tasks of queue %q", queue), err)
	}
	if n > 0 {
		b.hub.notify()
	}
	return int(n), nil
}

// Delete removes tasks of queue in state (pending, scheduled, dead or cancelled; not running); ids
// selects some, nil all of that state. It returns how many were removed.
func (b *Broker) Delete(ctx context.Context, queue string, state broker.State, ids []string) (int, error) {
	if err := b.checkOpen("delete"); err != nil {
		return 0, err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: sqlite: delete: %w", err)
	}
	where, err := stateWhere(state)
	if err != nil {
		return 0, fmt.Errorf("brisk: sqlite: delete from queue %q: %w", queue, err)
	}
	if state == broker.StateRunning {
		return 0, fmt.Errorf("brisk: sqlite: delete from queue %q: running tasks cannot be deleted (wait for them, or kill them from the worker): %w", queue, broker.ErrInvalid)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	q := `DELETE FROM tasks WHERE ` + where
	args := []any{queue, nanos(b.now())}
	if ids != nil {
		q += ` AND id IN (SELECT value FROM json_each(?3))`
		args = append(args, jsonIDs(ids))
	}
	var n int64
	err = b.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("delete %s tasks of queue %q", state, queue), err)
	}
	return int(n), nil
}

// retentionOf is a task's retention in SQL, within a statement on tasks: its own, else
// its queue's.
const retentionOf = `(CASE WHEN retention_ns > 0 THEN retention_ns
	ELSE coalesce((SELECT q.retention_ns FROM queues q WHERE q.name = tasks.queue), 0) END)`

// clearProgress, in the SET of a statement that starts an attempt, forgets the progress of
// the one before.
const clearProgress = `, progress_pct = NULL, progress_msg = NULL, progress_at = NULL`

// notExpired, with ?2 now, leaves out the kept tasks whose retention has ended and which
// purgeExpired has not removed yet.
const notExpired = `(expires_at IS NULL OR expires_at > ?2)`

// stateWhere is the condition selecting the tasks of one queue (?1) in state at a time
// (?2), written so that SQLite uses the partial index of the state.
func stateWhere(s broker.State) (string, error) {
	switch s {
	case broker.StatePending:
		return `state = 'pending' AND queue = ?1 AND ready_at <= ?2`, nil
	case broker.StateScheduled:
		return `state = 'pending' AND queue = ?1 AND ready_at > ?2`, nil
	case broker.StateRunning:
		return `state = 'running' AND queue = ?1`, nil
	case broker.StateDead:
		return `state = 'dead' AND queue = ?1`, nil
	case broker.StateCancelled:
		return `state = 'cancelled' AND queue = ?1 AND ` + notExpired, nil
	case broker.StateCompleted:
		return `state = 'completed' AND queue = ?1 AND ` + notExpired, nil
	}
	return "", fmt.Errorf("unknown state %q: %w", s, broker.ErrInvalid)
}

func jsonIDs(ids []string) string {
	data, _ := json.Marshal(ids) // a []string always marshals
	return string(data)
}

// DeclareQueue creates the queue if needed and stores its SLA (idempotent).
func (b *Broker) DeclareQueue(ctx context.Context, q broker.QueueConfig) error {
	if err := b.checkOpen("declare queue"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(q.Name); err != nil {
		return fmt.Errorf("brisk: sqlite: declare queue: %w", err)
	}
	if q.SLA < 0 {
		return fmt.Errorf("brisk: sqlite: declare queue %q: negative SLA %s: %w", q.Name, q.SLA, broker.ErrInvalid)
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := b.ws(ctx, tx, qDeclare).ExecContext(ctx, q.Name, int64(q.SLA))
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("declare queue %q", q.Name), err)
	}
	return nil
}
