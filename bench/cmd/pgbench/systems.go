package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/pgbroker"
	"github.com/briskq/brisk/internal/workload"
)

// system is a task queue on PostgreSQL with a schema of its own for one workload.
type system interface {
	workload.System
	// sizes returns the bytes of the system's tables and of their indexes.
	sizes(ctx context.Context) (table, index int64, err error)
	// drop drops the schema and closes connections.
	drop(ctx context.Context) error
}

// newSchema returns a fresh schema name for system name.
func newSchema(name string) string { return fmt.Sprintf("pgbench_%s_%08x", name, rand.Uint32()) }

// dropSchema drops a schema with everything in it.
func dropSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	_, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	return err
}

// relationSizes sums pg_table_size and pg_indexes_size over the tables of a schema.
func relationSizes(ctx context.Context, pool *pgxpool.Pool, schema string) (table, index int64, err error) {
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(pg_table_size(c.oid)), 0)::bigint, coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&table, &index)
	return table, index, err
}

// ---- brisk ----

// briskSystem is brisk's PostgreSQL broker (workload.Brisk) on a schema of its own; each
// worker opens a broker of its own, as a worker process would.
type briskSystem struct {
	*workload.Brisk
	url, schema string
	b           *pgbroker.Broker
	admin       *pgxpool.Pool
}

func brokerURL(dbURL, schema string) string {
	sep := "?"
	if containsQuery(dbURL) {
		sep = "&"
	}
	return dbURL + sep + "schema=" + schema
}

func containsQuery(u string) bool {
	for i := range len(u) {
		if u[i] == '?' {
			return true
		}
	}
	return false
}

func newBrisk(ctx context.Context, dbURL, params string, admin *pgxpool.Pool) (*briskSystem, error) {
	s := &briskSystem{schema: newSchema("brisk"), admin: admin}
	s.url = brokerURL(dbURL, s.schema)
	if params != "" {
		s.url += "&" + params
	}
	b, err := pgbroker.Open(ctx, s.url)
	if err != nil {
		return nil, err
	}
	s.b = b
	s.Brisk = &workload.Brisk{Client: brisk.NewClient(b), Inspector: brisk.NewInspector(b), Queue: "pgbench"}
	s.OpenBroker = func(ctx context.Context) (brisk.Broker, error) { return pgbroker.Open(ctx, s.url) }
	return s, nil
}

func (s *briskSystem) sizes(ctx context.Context) (int64, int64, error) {
	return relationSizes(ctx, s.admin, s.schema)
}

func (s *briskSystem) drop(ctx context.Context) error {
	s.b.Close()
	return dropSchema(ctx, s.admin, s.schema)
}

// ---- River ----

// riverArgs carries a workload payload as River job args: {"p": payload}.
type riverArgs struct {
	P json.RawMessage `json:"p"`
}

func (riverArgs) Kind() string { return "bench_noop" }

// riverWorker runs the workload's handler with the payload, compacted again (River stores
// args as jsonb, whose text has spaces after the colons).
type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	h workload.Handler
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, job.Args.P); err != nil {
		return err
	}
	return w.h(ctx, buf.Bytes())
}

// riverSystem is River (riverpgxv5) on a schema of its own: an insert-only client for the
// producer and, per worker, a client with one queue of Concurrency workers and the given
// FetchCooldown (0: River's default, 100 ms).
type riverSystem struct {
	pool     *pgxpool.Pool
	schema   string
	cooldown time.Duration
	insert   *river.Client[pgx.Tx]
}

func newRiver(ctx context.Context, pool *pgxpool.Pool, cooldown time.Duration) (*riverSystem, error) {
	s := &riverSystem{pool: pool, schema: newSchema("river"), cooldown: cooldown}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA `+s.schema); err != nil {
		return nil, err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: s.schema, Logger: quiet()})
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	s.insert, err = river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: s.schema, Logger: quiet()})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func (s *riverSystem) args(seq int, delay time.Duration) (riverArgs, *river.InsertOpts) {
	now := time.Now()
	a := riverArgs{P: workload.Payload(seq, now, now.Add(delay))}
	if delay > 0 {
		return a, &river.InsertOpts{ScheduledAt: now.Add(delay)}
	}
	return a, nil
}

func (s *riverSystem) Enqueue(ctx context.Context, seq int, delay time.Duration) error {
	a, opts := s.args(seq, delay)
	_, err := s.insert.Insert(ctx, a, opts)
	return err
}

func (s *riverSystem) EnqueueBatch(ctx context.Context, seqs []int, delays []time.Duration) error {
	params := make([]river.InsertManyParams, len(seqs))
	for i, seq := range seqs {
		var d time.Duration
		if delays != nil {
			d = delays[i]
		}
		a, opts := s.args(seq, d)
		params[i] = river.InsertManyParams{Args: a, InsertOpts: opts}
	}
	_, err := s.insert.InsertMany(ctx, params)
	return err
}

func (s *riverSystem) StartWorker(ctx context.Context, h workload.Handler) (func() error, error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &riverWorker{h: h}); err != nil {
		return nil, err
	}
	c, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{
		Schema:        s.schema,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workload.Concurrency}},
		Workers:       workers,
		FetchCooldown: s.cooldown,
		Logger:        quiet(),
	})
	if err != nil {
		return nil, err
	}
	if err := c.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Stop(sctx)
	}, nil
}

func (s *riverSystem) Remaining(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.schema+`.river_job
		WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'pending')`).Scan(&n)
	return n, err
}

func (s *riverSystem) sizes(ctx context.Context) (int64, int64, error) {
	return relationSizes(ctx, s.pool, s.schema)
}

func (s *riverSystem) drop(ctx context.Context) error {
	return dropSchema(ctx, s.pool, s.schema)
}
