package sqlitebroker

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/briskq/brisk/broker"
)

// AcquireLeadership takes or renews the leadership name for holder in one transaction.
func (b *Broker) AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (broker.Leadership, bool, error) {
	if err := b.checkOpen("acquire leadership"); err != nil {
		return broker.Leadership{}, false, err
	}
	if err := broker.ValidateLeadership(name, holder, ttl); err != nil {
		return broker.Leadership{}, false, fmt.Errorf("brisk: sqlite: acquire leadership: %w", err)
	}
	var (
		l  broker.Leadership
		ok bool
	)
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		now := b.now()
		cur, held, err := leaderRow(ctx, tx, name)
		if err != nil {
			return err
		}
		switch {
		case held && cur.Until.After(now) && cur.Holder != holder:
			l, ok = cur, false
			return nil
		case held && cur.Until.After(now): // ours: renew
			l = cur
		default:
			l = broker.Leadership{Name: name, Holder: holder, Token: cur.Token + 1}
		}
		l.Until, ok = now.Add(ttl), true
		_, err = tx.ExecContext(ctx, `INSERT INTO leaders (name, holder, token, until) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token, until = excluded.until`,
			name, holder, l.Token, nanos(l.Until))
		return err
	})
	if err != nil {
		return broker.Leadership{}, false, b.fail(ctx, fmt.Sprintf("acquire leadership %q", name), err)
	}
	return l, ok, nil
}

// leaderRow reads the stored leadership name; held is false when there is none or it
// was released (its token stays, so the next one is larger).
func leaderRow(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (broker.Leadership, bool, error) {
	l := broker.Leadership{Name: name}
	var until int64
	err := q.QueryRowContext(ctx, `SELECT holder, token, until FROM leaders WHERE name = ?`, name).Scan(&l.Holder, &l.Token, &until)
	if err == sql.ErrNoRows {
		return l, false, nil
	}
	if err != nil {
		return l, false, err
	}
	l.Until = time.Unix(0, until)
	return l, l.Holder != "", nil
}

// RenewLeadership extends l if it is held.
func (b *Broker) RenewLeadership(ctx context.Context, l broker.Leadership, ttl time.Duration) (broker.Leadership, bool, error) {
	if err := b.checkOpen("renew leadership"); err != nil {
		return l, false, err
	}
	if err := broker.ValidateLeadership(l.Name, l.Holder, ttl); err != nil {
		return l, false, fmt.Errorf("brisk: sqlite: renew leadership: %w", err)
	}
	ok := false
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		now := b.now()
		res, err := tx.ExecContext(ctx, `UPDATE leaders SET until = ?4 WHERE name = ?1 AND holder = ?2 AND token = ?3 AND until > ?5`,
			l.Name, l.Holder, l.Token, nanos(now.Add(ttl)), nanos(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if ok = n == 1; ok {
			l.Until = now.Add(ttl)
		}
		return err
	})
	if err != nil {
		return l, false, b.fail(ctx, fmt.Sprintf("renew leadership %q", l.Name), err)
	}
	return l, ok, nil
}

// ReleaseLeadership ends l if it is held.
func (b *Broker) ReleaseLeadership(ctx context.Context, l broker.Leadership) error {
	if err := b.checkOpen("release leadership"); err != nil {
		return err
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE leaders SET holder = '', until = 0 WHERE name = ?1 AND holder = ?2 AND token = ?3`,
			l.Name, l.Holder, l.Token)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("release leadership %q", l.Name), err)
	}
	return nil
}

// CurrentLeader reads the leadership name.
func (b *Broker) CurrentLeader(ctx context.Context, name string) (broker.Leadership, bool, error) {
	if err := b.checkOpen("current leader"); err != nil {
		return broker.Leadership{}, false, err
	}
	l, held, err := leaderRow(ctx, b.r, name)
	if err != nil {
		return l, false, b.fail(ctx, fmt.Sprintf("current leader %q", name), err)
	}
	return l, held && l.Until.After(b.now()), nil
}

// PutSchedule stores s, keeping the creation time and last run of a schedule it replaces.
func (b *Broker) PutSchedule(ctx context.Context, s broker.Schedule) error {
	if err := b.checkOpen("put schedule"); err != nil {
		return err
	}
	if err := broker.ValidateSchedule(s, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: sqlite: put schedule: %w", err)
	}
	payload := s.Payload
	if payload == nil {
		payload = []byte{}
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		now := nanos(b.now())
		_, err := tx.ExecContext(ctx, `INSERT INTO schedules (name, spec, queue, type, payload, max_attempts, timeout_ns, catch_up, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
			ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, queue = excluded.queue, type = excluded.type,
				payload = excluded.payload, max_attempts = excluded.max_attempts, timeout_ns = excluded.timeout_ns,
				catch_up = excluded.catch_up, updated_at = excluded.updated_at`,
			s.Name, s.Spec, s.Queue, s.Type, payload, s.MaxAttempts, int64(s.Timeout), s.CatchUp, now)
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("put schedule %q", s.Name), err)
	}
	return nil
}

// DeleteSchedule removes the schedule name.
func (b *Broker) DeleteSchedule(ctx context.Context, name string) error {
	if err := b.checkOpen("delete schedule"); err != nil {
		return err
	}
	var n int64
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM schedules WHERE name = ?`, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("delete schedule %q", name), err)
	}
	if n == 0 {
		return fmt.Errorf("brisk: sqlite: delete schedule: %w: no schedule named %q", broker.ErrNotFound, name)
	}
	return nil
}

// Schedules lists every schedule by name.
func (b *Broker) Schedules(ctx context.Context) ([]broker.Schedule, error) {
	if err := b.checkOpen("schedules"); err != nil {
		return nil, err
	}
	rows, err := b.r.QueryContext(ctx, `SELECT name, spec, queue, type, payload, max_attempts, timeout_ns, catch_up,
		created_at, updated_at, last_run, last_task_id FROM schedules ORDER BY name`)
	if err != nil {
		return nil, b.fail(ctx, "schedules", err)
	}
	defer rows.Close()
	var out []broker.Schedule
	for rows.Next() {
		var (
			s                     broker.Schedule
			timeout               int64
			created, updated, run int64
		)
		if err := rows.Scan(&s.Name, &s.Spec, &s.Queue, &s.Type, &s.Payload, &s.MaxAttempts, &timeout, &s.CatchUp,
			&created, &updated, &run, &s.LastTaskID); err != nil {
			return nil, b.fail(ctx, "schedules", err)
		}
		if len(s.Payload) == 0 {
			s.Payload = nil
		}
		s.Timeout = time.Duration(timeout)
		s.CreatedAt, s.UpdatedAt = time.Unix(0, created), time.Unix(0, updated)
		if run != 0 {
			s.LastRun = time.Unix(0, run)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "schedules", err)
	}
	return out, nil
}

// MarkScheduleRun records a tick, fenced by the leadership l, in one transaction.
func (b *Broker) MarkScheduleRun(ctx context.Context, l broker.Leadership, name string, at time.Time, taskID string) error {
	if err := b.checkOpen("mark schedule run"); err != nil {
		return err
	}
	var held, found bool
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		cur, ok, err := leaderRow(ctx, tx, l.Name)
		if err != nil {
			return err
		}
		if held = ok && cur.Holder == l.Holder && cur.Token == l.Token && cur.Until.After(b.now()); !held {
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE schedules SET last_run = max(last_run, ?2),
				last_task_id = CASE WHEN ?2 >= last_run THEN ?3 ELSE last_task_id END WHERE name = ?1`,
			name, nanos(at), taskID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		found = n == 1
		return err
	})
	switch {
	case err != nil:
		return b.fail(ctx, fmt.Sprintf("mark run of schedule %q", name), err)
	case !held:
		return fmt.Errorf("brisk: sqlite: mark run of schedule %q: leadership %q token %d: %w", name, l.Name, l.Token, broker.ErrLeaseLost)
	case !found:
		return fmt.Errorf("brisk: sqlite: mark run of schedule: %w: no schedule named %q", broker.ErrNotFound, name)
	}
	return nil
}
