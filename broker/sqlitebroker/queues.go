package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/briskq/brisk/broker"
)

// Statements of DeleteQueue and the sample store, prepared at Open (writeQueries).
const (
	// qQueueCounts reads a queue's counters (the message of a refused delete).
	qQueueCounts = `SELECT waiting, running, dead, cancelled FROM queues WHERE name = ?`
	// qQueueHolds says whether any task of the queue is stored, through the partial
	// indexes of each state rather than the counters, which a hand-made change could skew.
	qQueueHolds = `SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'pending' AND queue = ?1)
		OR EXISTS (SELECT 1 FROM tasks WHERE state = 'running' AND queue = ?1)
		OR EXISTS (SELECT 1 FROM tasks WHERE state = 'dead' AND queue = ?1)
		OR EXISTS (SELECT 1 FROM tasks WHERE state = 'cancelled' AND queue = ?1)`
	qDeleteQueue   = `DELETE FROM queues WHERE name = ?`
	qDeleteLimits  = `DELETE FROM limits WHERE queue = ?`
	qDeleteSamples = `DELETE FROM samples WHERE queue = ?`
	// qDeleteCompleted removes the completed tasks a deleted queue kept.
	qDeleteCompleted = `DELETE FROM tasks WHERE state = 'completed' AND queue = ?`
	// ?1 queue, ?2 second, ?3 at ms, ?4 latency ns, ?5 completed, ?6 failed.
	qAddSample = `INSERT INTO samples (queue, second, at_ms, latency_ns, completed, failed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
		ON CONFLICT (queue, second) DO UPDATE SET at_ms = excluded.at_ms, latency_ns = excluded.latency_ns,
			completed = excluded.completed, failed = excluded.failed`
	qTrimSamples = `DELETE FROM samples WHERE at_ms < ?`
)

// DeleteQueue removes a queue that holds no task, with its settings, limits, counters,
// samples and the completed tasks it keeps,
// in one write transaction (so an Enqueue is either before it, and the queue is not empty,
// or after it, and creates the queue again).
func (b *Broker) DeleteQueue(ctx context.Context, queue string) error {
	if err := b.checkOpen("delete queue"); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: sqlite: delete queue: %w", err)
	}
	var refused error
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		var waiting, running, dead, cancelled int64
		err := b.ws(ctx, tx, qQueueCounts).QueryRowContext(ctx, queue).Scan(&waiting, &running, &dead, &cancelled)
		if errors.Is(err, sql.ErrNoRows) {
			refused = fmt.Errorf("brisk: sqlite: delete queue %q: %w", queue, broker.ErrQueueNotFound)
			return refused
		}
		if err != nil {
			return err
		}
		var holds bool
		if err := b.ws(ctx, tx, qQueueHolds).QueryRowContext(ctx, queue).Scan(&holds); err != nil {
			return err
		}
		if holds {
			refused = fmt.Errorf("brisk: sqlite: delete queue %q: %w: it holds %d pending or scheduled, %d running, %d dead and %d cancelled task(s)",
				queue, broker.ErrQueueNotEmpty, waiting, running, dead, cancelled)
			return refused
		}
		if _, err := b.ws(ctx, tx, qDeleteQueue).ExecContext(ctx, queue); err != nil {
			return err
		}
		if _, err := b.ws(ctx, tx, qDeleteLimits).ExecContext(ctx, queue); err != nil {
			return err
		}
		if _, err := b.ws(ctx, tx, qDeleteCompleted).ExecContext(ctx, queue); err != nil {
			return err
		}
		_, err = b.ws(ctx, tx, qDeleteSamples).ExecContext(ctx, queue)
		return err
	})
	if refused != nil {
		return refused
	}
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("delete queue %q", queue), err)
	}
	return nil
}

// AddSamples stores the dashboard's samples in one write transaction and drops those older
// than broker.SampleRetention.
func (b *Broker) AddSamples(ctx context.Context, samples []broker.QueueSample) error {
	if err := b.checkOpen("add samples"); err != nil {
		return err
	}
	if err := broker.ValidateSamples(samples); err != nil {
		return fmt.Errorf("brisk: sqlite: add samples: %w", err)
	}
	if len(samples) == 0 {
		return nil
	}
	err := b.writeTx(ctx, func(tx *sql.Tx) error {
		add := b.ws(ctx, tx, qAddSample)
		for _, s := range samples {
			ms := s.At.UnixMilli()
			if _, err := add.ExecContext(ctx, s.Queue, s.At.Unix(), ms, int64(s.Latency), s.Completed, s.Failed); err != nil {
				return err
			}
		}
		_, err := b.ws(ctx, tx, qTrimSamples).ExecContext(ctx, b.now().Add(-broker.SampleRetention).UnixMilli())
		return err
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("add %d samples", len(samples)), err)
	}
	return nil
}

// qSamples reads the samples of known queues since ?1 (Unix milliseconds).
const qSamples = `SELECT s.queue, s.at_ms, s.latency_ns, s.completed, s.failed FROM samples s
	JOIN queues q ON q.name = s.queue WHERE s.at_ms >= ?1 ORDER BY s.queue, s.at_ms`

// Samples returns the stored samples taken at or after since.
func (b *Broker) Samples(ctx context.Context, since time.Time) ([]broker.QueueSample, error) {
	if err := b.checkOpen("samples"); err != nil {
		return nil, err
	}
	out, err := b.samples(ctx, since)
	if err != nil {
		return nil, b.fail(ctx, "samples", err)
	}
	return out, nil
}

func (b *Broker) samples(ctx context.Context, since time.Time) ([]broker.QueueSample, error) {
	st, err := b.rs(ctx, qSamples)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, since.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []broker.QueueSample
	for rows.Next() {
		var (
			s       broker.QueueSample
			ms, lat int64
		)
		if err := rows.Scan(&s.Queue, &ms, &lat, &s.Completed, &s.Failed); err != nil {
			return nil, err
		}
		s.At, s.Latency = time.UnixMilli(ms), time.Duration(lat)
		out = append(out, s)
	}
	return out, rows.Err()
}
