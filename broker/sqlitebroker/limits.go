package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/limithint"
)

// Uniqueness locks, taken in the enqueue transaction.
const (
	// ?1 queue, ?2 key, ?3 now.
	qUniqueHeld = `SELECT task_id FROM unique_locks WHERE queue = ?1 AND key = ?2 AND until > ?3`
	// ?1 queue, ?2 key, ?3 task id, ?4 until.
	qUniqueLock = `INSERT INTO unique_locks (queue, key, task_id, until) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (queue, key) DO UPDATE SET task_id = excluded.task_id, until = excluded.until`
	// ?1 now: a few expired locks at a time, so that the table does not grow without end.
	qUniquePurge = `DELETE FROM unique_locks WHERE (queue, key) IN
		(SELECT queue, key FROM unique_locks WHERE until <= ?1 LIMIT 64)`
)

// lockUnique takes the uniqueness locks of the batch's tasks that carry a key. It returns
// a *broker.DuplicateError naming the holder when a key is held, and nil, nil otherwise.
func (b *Broker) lockUnique(ctx context.Context, tx *sql.Tx, tasks []*broker.Task) (*broker.DuplicateError, error) {
	now := nanos(b.now())
	locked := false
	for _, t := range tasks {
		if t.Unique.Key == "" {
			continue
		}
		if !locked {
			locked = true
			if _, err := b.ws(ctx, tx, qUniquePurge).ExecContext(ctx, now); err != nil {
				return nil, err
			}
		}
		var holder string
		err := b.ws(ctx, tx, qUniqueHeld).QueryRowContext(ctx, t.Queue, t.Unique.Key, now).Scan(&holder)
		if err == nil {
			return &broker.DuplicateError{Queue: t.Queue, ID: holder, Key: t.Unique.Key}, nil
		}
		if err != sql.ErrNoRows {
			return nil, err
		}
		if _, err := b.ws(ctx, tx, qUniqueLock).ExecContext(ctx, t.Queue, t.Unique.Key, t.ID, nanos(t.Unique.Until)); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// limitRow is a stored limit with its bucket.
type limitRow struct {
	l      broker.Limit
	bucket broker.TokenBucket // At zero: full
	taken  int
}

// Limits, read and written in the reserve transaction.
const (
	qQueueLimits = `SELECT type, rate, per_ns, burst, max_running, tokens, refilled_at FROM limits WHERE queue = ?`
	// ?1 queue, ?2 now, ?3 how many to look at.
	qReadyTypes = `SELECT seq, type FROM tasks WHERE state = 'pending' AND queue = ?1 AND ready_at <= ?2 ORDER BY ready_at, seq LIMIT ?3`
	// ?1 queue (reclaimed first, so every running lease is unexpired).
	qRunningOf     = `SELECT count(*) FROM tasks WHERE state = 'running' AND queue = ?1`
	qRunningOfType = `SELECT count(*) FROM tasks WHERE state = 'running' AND queue = ?1 AND type = ?2`
	// ?1 queue, ?2 now, ?3 lease until, ?4 worker id, ?5 JSON array of seqs.
	qTakeSeqs = `UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ?2, lease_until = ?3,
			lease_token = lower(hex(randomblob(16))), worker_id = ?4` + clearProgress + `
		WHERE seq IN (SELECT value FROM json_each(?5)) AND state = 'pending' AND queue = ?1
		RETURNING ` + taskCols
	// ?1 queue, ?2 type, ?3 tokens, ?4 at.
	qSaveBucket = `UPDATE limits SET tokens = ?3, refilled_at = ?4 WHERE queue = ?1 AND type = ?2`
)

// limitScan is how many ready tasks beyond what it may take Reserve looks at in a queue
// with limits per task type, to find tasks of types whose limits allow them.
const limitScan = 256

func (b *Broker) queueLimits(ctx context.Context, tx *sql.Tx, queue string) (map[string]*limitRow, error) {
	rows, err := b.ws(ctx, tx, qQueueLimits).QueryContext(ctx, queue)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out map[string]*limitRow
	for rows.Next() {
		var (
			r      limitRow
			per    int64
			tokens sql.NullFloat64
			at     sql.NullInt64
		)
		if err := rows.Scan(&r.l.Type, &r.l.Rate, &per, &r.l.Burst, &r.l.MaxRunning, &tokens, &at); err != nil {
			return nil, err
		}
		r.l.Queue, r.l.Per = queue, time.Duration(per)
		if tokens.Valid && at.Valid {
			r.bucket = broker.TokenBucket{Tokens: tokens.Float64, At: time.Unix(0, at.Int64)}
		}
		if out == nil {
			out = map[string]*limitRow{}
		}
		out[r.l.Type] = &r
	}
	return out, rows.Err()
}

// allowance returns how many tasks r lets Reserve take now (counting running ones
// through count), and when it lets none, the hint of when that may change.
func (r *limitRow) allowance(now time.Time, count func() (int, error)) (int, limithint.Hint, error) {
	allow := int(^uint(0) >> 1)
	var h limithint.Hint
	if r.l.MaxRunning > 0 {
		running, err := count()
		if err != nil {
			return 0, h, err
		}
		if allow = r.l.MaxRunning - running; allow <= 0 {
			h = limithint.Hint{Until: now.Add(limithint.SlotPoll), Slot: true}
		}
	}
	if r.l.Rate > 0 {
		r.bucket = r.bucket.Refill(r.l, now)
		if k := int(r.bucket.Tokens); k < allow {
			allow = k
			if k <= 0 && !h.Slot {
				h = limithint.Hint{Until: r.bucket.NextToken(r.l)}
			}
		}
	}
	return max(allow, 0), h, nil
}

// takeLimited is take for a queue with limits: it takes at most what the queue's own limit
// allows and, among the oldest ready tasks, only those whose type's limit allows them;
// then it stores the buckets it drew from, and records a hint for Wait when limits left
// ready tasks behind and nothing was taken.
func (b *Broker) takeLimited(ctx context.Context, tx *sql.Tx, queue string, n int, now time.Time, until int64, worker any, lims map[string]*limitRow) ([]*broker.Task, error) {
	nowNs := nanos(now)
	count := func(q string, args ...any) func() (int, error) {
		return func() (int, error) {
			var c int
			err := b.ws(ctx, tx, q).QueryRowContext(ctx, args...).Scan(&c)
			return c, err
		}
	}
	var blocked limithint.Hint
	block := func(h limithint.Hint) {
		if h.Until.IsZero() {
			return
		}
		if blocked.Until.IsZero() || h.Until.Before(blocked.Until) {
			blocked = h
		}
	}
	if whole := lims[""]; whole != nil {
		allow, h, err := whole.allowance(now, count(qRunningOf, queue))
		if err != nil {
			return nil, err
		}
		block(h)
		n = min(n, allow)
	}
	var seqs []int64
	if n > 0 {
		rows, err := b.ws(ctx, tx, qReadyTypes).QueryContext(ctx, queue, nowNs, n+limitScan)
		if err != nil {
			return nil, err
		}
		type cand struct {
			seq int64
			typ string
		}
		var cands []cand
		for rows.Next() {
			var c cand
			var typ sql.NullString
			if err := rows.Scan(&c.seq, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			c.typ = typ.String
			cands = append(cands, c)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		left := map[string]int{}
		for _, c := range cands {
			if len(seqs) == n {
				break
			}
			r := lims[c.typ]
			if c.typ == "" || r == nil {
				seqs = append(seqs, c.seq)
				continue
			}
			a, seen := left[c.typ]
			if !seen {
				var h limithint.Hint
				if a, h, err = r.allowance(now, count(qRunningOfType, queue, c.typ)); err != nil {
					return nil, err
				}
				block(h)
			}
			if a <= 0 {
				left[c.typ] = 0
				continue
			}
			left[c.typ] = a - 1
			r.taken++
			seqs = append(seqs, c.seq)
		}
	}
	var got []*broker.Task
	if len(seqs) > 0 {
		data, _ := json.Marshal(seqs) // an []int64 always marshals
		var err error
		if got, err = b.takeWith(ctx, tx, queue, nowNs, qTakeSeqs, queue, nowNs, until, worker, string(data)); err != nil {
			return nil, err
		}
	}
	if whole := lims[""]; whole != nil {
		whole.taken = len(got)
	}
	for typ, r := range lims {
		if r.l.Rate == 0 || r.bucket.At.IsZero() {
			continue
		}
		r.bucket.Tokens -= float64(r.taken)
		if _, err := b.ws(ctx, tx, qSaveBucket).ExecContext(ctx, queue, typ, r.bucket.Tokens, nanos(r.bucket.At)); err != nil {
			return nil, err
		}
	}
	if len(got) == 0 && !blocked.Until.IsZero() {
		b.hints.Set(queue, blocked)
	} else {
		b.hints.Clear(queue)
	}
	return got, nil
}

// SetLimit stores l in one transaction, creating its queue, with a full bucket.
func (b *Broker) SetLimit(ctx context.Context, l broker.Limit) error {
	if err := b.checkOpen("set limit"); err != nil {
		return err
	}
	l, err := broker.ValidateLimit(l)
	if err != nil {
		return fmt.Errorf("brisk: sqlite: set %w", err)
	}
	err = b.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := b.ws(ctx, tx, qEnsureQueue).ExecContext(ctx, l.Queue); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO limits (queue, type, rate, per_ns, burst, max_running, tokens, refilled_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)
			ON CONFLICT (queue, type) DO UPDATE SET rate = excluded.rate, per_ns = excluded.per_ns,
				burst = excluded.burst, max_running = excluded.max_running, tokens = NULL, refilled_at = NULL`,
			l.Queue, l.Type, l.Rate, int64(l.Per), l.Burst, l.MaxRunning)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("set limit of queue %q", l.Queue), err)
	}
	b.hints.Clear(l.Queue)
	b.hub.notify() // a raised limit may let waiting workers take tasks
	return nil
}

// DeleteLimit removes the limit of queue and typ.
func (b *Broker) DeleteLimit(ctx context.Context, queue, typ string) error {
	if err := b.checkOpen("delete limit"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: sqlite: delete limit: %w", err)
	}
	var n int64
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM limits WHERE queue = ? AND type = ?`, queue, typ)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("delete limit of queue %q", queue), err)
	}
	if n == 0 {
		return fmt.Errorf("brisk: sqlite: delete limit: %w", limitNotFound(queue, typ))
	}
	b.hints.Clear(queue)
	b.hub.notify()
	return nil
}

// limitNotFound is the error of a limit that is not stored.
func limitNotFound(queue, typ string) error {
	if typ == "" {
		return fmt.Errorf("%w: no limit on queue %q", broker.ErrNotFound, queue)
	}
	return fmt.Errorf("%w: no limit on type %q of queue %q", broker.ErrNotFound, typ, queue)
}

// Limits lists every limit, by queue then type.
func (b *Broker) Limits(ctx context.Context) ([]broker.Limit, error) {
	if err := b.checkOpen("limits"); err != nil {
		return nil, err
	}
	rows, err := b.r.QueryContext(ctx, `SELECT queue, type, rate, per_ns, burst, max_running FROM limits ORDER BY queue, type`)
	if err != nil {
		return nil, b.fail(ctx, "limits", err)
	}
	defer rows.Close()
	var out []broker.Limit
	for rows.Next() {
		var (
			l   broker.Limit
			per int64
		)
		if err := rows.Scan(&l.Queue, &l.Type, &l.Rate, &per, &l.Burst, &l.MaxRunning); err != nil {
			return nil, b.fail(ctx, "limits", err)
		}
		l.Per = time.Duration(per)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "limits", err)
	}
	return out, nil
}

// slotsFreed wakes this process's waiters when one of queues was held back by a
// concurrency limit: a task of it has just left the running state. (Waiters in other
// processes see the commit through PRAGMA data_version.)
func (b *Broker) slotsFreed(queues ...string) {
	for _, q := range queues {
		if b.hints.SlotBlocked(q) {
			b.hints.Clear(q)
			b.hub.notify()
			return
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
