package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk/internal/workload"
)

// minimalSystem ("pg-minimal") is the least a queue on PostgreSQL can do for W2 and W3,
// measured beside brisk on the same server: an enqueue is a durable INSERT of the payload
// followed, in the same round trip, by a NOTIFY in a transaction of its own (brisk's
// pipeline: a NOTIFY inside the durable transaction would serialise concurrent commits); the
// worker claims up to workload.Concurrency rows with one DELETE … RETURNING (asynchronous
// commit, SKIP LOCKED), runs the handler inline on each and, when it finds none, waits for a
// notification on a connection of its own. No leases, states, retries, counts or order
// beyond the key: what is left of a queue when every guarantee brisk adds is taken away,
// so that W2's tail can be told apart into PostgreSQL's and brisk's.
type minimalSystem struct {
	pool   *pgxpool.Pool
	schema string
	insert string
	notify string
	claim  string
}

func newMinimal(ctx context.Context, pool *pgxpool.Pool) (*minimalSystem, error) {
	s := &minimalSystem{pool: pool, schema: newSchema("minimal")}
	ident := pgx.Identifier{s.schema}.Sanitize()
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.jobs (id bigserial PRIMARY KEY, payload text NOT NULL)`, ident)); err != nil {
		return nil, fmt.Errorf("pg-minimal: create table: %w", err)
	}
	s.insert = fmt.Sprintf(`INSERT INTO %s.jobs (payload) VALUES ($1)`, ident)
	s.notify = fmt.Sprintf(`SELECT set_config('synchronous_commit', 'off', true), pg_notify('%s', '')`, s.schema)
	s.claim = fmt.Sprintf(`DELETE FROM %[1]s.jobs WHERE id IN (SELECT id FROM %[1]s.jobs ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED) RETURNING payload`, ident, workload.Concurrency)
	return s, nil
}

// Enqueue inserts the payload and notifies after the commit, in one round trip.
func (s *minimalSystem) Enqueue(ctx context.Context, seq int, delay time.Duration) error {
	if delay > 0 {
		return errors.New("pg-minimal: no delayed tasks")
	}
	now := time.Now()
	payload := workload.Payload(seq, now, now)
	return s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		p := c.Conn().PgConn().StartPipeline(ctx)
		p.SendQueryParams(s.insert, [][]byte{payload}, nil, nil, nil)
		p.SendPipelineSync()
		p.SendQueryParams(s.notify, nil, nil, nil, nil)
		p.SendPipelineSync()
		if err := p.Flush(); err != nil {
			_ = p.Close()
			return err
		}
		return p.Close() // reads both results; a failed statement's error is its error
	})
}

// EnqueueBatch: pg-minimal has none (W2 and W3 enqueue one task per call).
func (s *minimalSystem) EnqueueBatch(context.Context, []int, []time.Duration) error {
	return workload.ErrNoBatch
}

// StartWorker starts the claiming loop on two connections of its own.
func (s *minimalSystem) StartWorker(ctx context.Context, h workload.Handler) (func() error, error) {
	listen, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := listen.Exec(ctx, "LISTEN "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
		listen.Close(ctx)
		return nil, err
	}
	cc := s.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["synchronous_commit"] = "off"
	claimer, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		listen.Close(ctx)
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		var payloads [][]byte
		for loopCtx.Err() == nil {
			payloads = payloads[:0]
			rows, err := claimer.Query(loopCtx, s.claim)
			if err == nil {
				for rows.Next() {
					var p []byte
					if err = rows.Scan(&p); err != nil {
						break
					}
					payloads = append(payloads, p)
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			if err != nil {
				workload.SleepCtx(loopCtx, 10*time.Millisecond)
				continue
			}
			if len(payloads) == 0 {
				wctx, stop := context.WithTimeout(loopCtx, time.Second)
				_, _ = listen.WaitForNotification(wctx)
				stop()
				continue
			}
			for _, p := range payloads {
				_ = h(loopCtx, p)
			}
		}
	})
	return func() error {
		cancel()
		wg.Wait()
		listen.Close(context.Background())
		return claimer.Close(context.Background())
	}, nil
}

func (s *minimalSystem) Remaining(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{s.schema}.Sanitize()+`.jobs`).Scan(&n)
	return n, err
}

func (s *minimalSystem) sizes(ctx context.Context) (int64, int64, error) {
	return relationSizes(ctx, s.pool, s.schema)
}

func (s *minimalSystem) drop(ctx context.Context) error {
	return dropSchema(ctx, s.pool, s.schema)
}
