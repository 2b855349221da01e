package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/briskq/brisk/broker"
)

// ?1 id, ?2 now. A running task's lease token is cleared, which revokes its lease. With a
// retention (its own or its queue's) the task is kept until then, else until deleted.
const qCancel = `UPDATE tasks SET state = 'cancelled', lease_until = NULL, lease_token = NULL, worker_id = NULL,
		finished_at = ?2, expires_at = ?2 + nullif(` + retentionOf + `, 0)
	WHERE id = ?1 AND state IN ('pending', 'running')`

// Cancel moves the task with id to cancelled in one transaction and returns the state it
// was in; a running task's lease is revoked at once.
func (b *Broker) Cancel(ctx context.Context, id string) (broker.State, error) {
	if err := b.checkOpen("cancel"); err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("brisk: sqlite: cancel: empty task id: %w", broker.ErrInvalid)
	}
	var (
		was   broker.State
		queue string
	)
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			state   string
			readyAt int64
		)
		err := tx.QueryRowContext(ctx, `SELECT queue, state, ready_at FROM tasks WHERE id = ?`, id).Scan(&queue, &state, &readyAt)
		if err == sql.ErrNoRows {
			return broker.ErrNotFound
		}
		if err != nil {
			return err
		}
		switch state {
		case "cancelled":
			was = broker.StateCancelled
			return nil
		case "dead":
			return fmt.Errorf("the task is dead (it has ended; delete it instead): %w", broker.ErrInvalid)
		case "completed":
			return fmt.Errorf("the task has completed (delete it instead): %w", broker.ErrInvalid)
		case "running":
			was = broker.StateRunning
		default:
			was = broker.StatePending
			if readyAt > nanos(b.now()) {
				was = broker.StateScheduled
			}
		}
		now := nanos(b.now())
		if _, err := tx.ExecContext(ctx, qCancel, id, now); err != nil {
			return err
		}
		return b.purgeSlice(ctx, tx, now)
	})
	if err != nil {
		return "", b.fail(ctx, fmt.Sprintf("cancel task id=%q", id), err)
	}
	if was == broker.StateRunning {
		b.slotsFreed(queue)
	}
	return was, nil
}

// Revoked reads, in one query on the read pool, which of leases are no longer held.
func (b *Broker) Revoked(ctx context.Context, leases []broker.Lease) ([]broker.Revocation, error) {
	if err := b.checkOpen("revoked"); err != nil {
		return nil, err
	}
	if len(leases) == 0 {
		return nil, nil
	}
	ids := make([]string, len(leases))
	for i, l := range leases {
		ids[i] = l.TaskID
	}
	data, _ := json.Marshal(ids) // a []string always marshals
	rows, err := b.r.QueryContext(ctx, `SELECT id, state, coalesce(lease_token, '') FROM tasks
		WHERE id IN (SELECT value FROM json_each(?))`, string(data))
	if err != nil {
		return nil, b.fail(ctx, "revoked", err)
	}
	defer rows.Close()
	type row struct{ state, token string }
	now := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.state, &r.token); err != nil {
			return nil, b.fail(ctx, "revoked", err)
		}
		now[id] = r
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "revoked", err)
	}
	var out []broker.Revocation
	for _, l := range leases {
		r, ok := now[l.TaskID]
		if ok && r.state == "running" && r.token == l.Token {
			continue
		}
		out = append(out, broker.Revocation{Lease: l, Cancelled: ok && r.state == "cancelled"})
	}
	return out, nil
}
