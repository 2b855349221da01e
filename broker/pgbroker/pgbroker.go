package pgbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/wake"
)

var (
	_ broker.Broker      = (*Broker)(nil)
	_ broker.Reaper      = (*Broker)(nil)
	_ broker.Pauser      = (*Broker)(nil)
	_ broker.AckReserver = (*Broker)(nil)
	_ broker.TxEnqueuer  = (*Broker)(nil)
)

// Broker is a broker.Broker on PostgreSQL, with the optional broker.Reaper, broker.Pauser,
// broker.AckReserver and broker.TxEnqueuer. Create it with Open or OpenOptions; it is safe
// for concurrent use.
type Broker struct {
	opts   Options
	schema string
	pool   *pgxpool.Pool
	listen *pgx.ConnConfig // the notification connection's settings
	log    *slog.Logger
	now    func() time.Time
	sql    map[string]string // statement templates with the schema filled in

	known sync.Map // queue names known to have a row in queues

	hub      *wake.Hub
	listener sync.Once
	bgCtx    context.Context
	bgStop   context.CancelFunc
	bg       sync.WaitGroup

	closed    atomic.Bool
	closedCh  chan struct{}
	closeOnce sync.Once
}

// connConfig is the configuration of one connection of the broker's own: the pool's, with
// the statement timeout and an application name.
func connConfig(o Options) *pgx.ConnConfig {
	cc := o.Pool.ConnConfig.Copy()
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if _, ok := cc.RuntimeParams["statement_timeout"]; !ok {
		cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "brisk"
	}
	return cc
}

// OpenOptions opens a broker with opts: it connects, checks the schema's version and
// applies the migrations it lacks (unless NoMigrate). A server that cannot be reached is an
// error wrapping broker.ErrUnavailable; refused credentials, a missing database and a
// schema of another version are errors wrapping broker.ErrInvalid.
func OpenOptions(ctx context.Context, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	pc := opts.Pool.Copy()
	pc.ConnConfig = connConfig(opts)
	where := fmt.Sprintf("%s:%d/%s schema %s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database, opts.Schema)
	fail := func(err error) error {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000") {
			return fmt.Errorf("brisk: postgres: open %s: %w: %w", where, broker.ErrInvalid, err)
		}
		if errors.Is(err, errNewer) || errors.Is(err, broker.ErrInvalid) {
			return fmt.Errorf("brisk: postgres: open %s: %w: %w", where, broker.ErrInvalid, err)
		}
		return fmt.Errorf("brisk: postgres: open %s: %w: %w", where, broker.ErrUnavailable, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fail(err)
	}
	if err := setup(ctx, pool, opts); err != nil {
		pool.Close()
		return nil, fail(err)
	}
	b := &Broker{
		opts:     opts,
		schema:   opts.Schema,
		pool:     pool,
		listen:   pc.ConnConfig.Copy(),
		log:      opts.Logger,
		now:      time.Now,
		sql:      map[string]string{},
		hub:      wake.New(),
		closedCh: make(chan struct{}),
	}
	async := asyncCommit
	if opts.SyncWorkerCommits {
		async = "true"
	}
	r := strings.NewReplacer("{{schema}}", opts.Schema, "{{async}}", async)
	for _, q := range statements {
		b.sql[q] = r.Replace(q)
	}
	b.bgCtx, b.bgStop = context.WithCancel(context.WithoutCancel(ctx))
	b.bg.Add(1)
	go b.compactLoop()
	return b, nil
}

// setup checks the schema's version on one connection and migrates it if needed.
func setup(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	v, err := storedVersion(ctx, conn, opts.Schema)
	if err != nil {
		return err
	}
	switch {
	case v == SchemaVersion:
		return nil
	case v > SchemaVersion:
		return fmt.Errorf("schema %s is at version %d, newer than this brisk knows (%d): %w", opts.Schema, v, SchemaVersion, errNewer)
	case opts.NoMigrate:
		return fmt.Errorf("schema %s is at version %d, this brisk needs %d, and migrate=false (run brisk migrate): %w", opts.Schema, v, SchemaVersion, broker.ErrInvalid)
	}
	_, err = migrate(ctx, conn.Conn(), opts.Schema, SchemaVersion)
	return err
}

// Capabilities declares every optional behaviour: the whole task state machine lives in
// the database.
func (b *Broker) Capabilities() broker.Capabilities { return broker.AllCapabilities() }

// Schema returns the schema that holds the broker's tables.
func (b *Broker) Schema() string { return b.schema }

// Close wakes the broker's Wait calls (they return an error wrapping broker.ErrClosed, as
// every later call does), closes the notification connection and the pool (waiting for
// statements in flight). It is idempotent. Tasks stay stored.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		close(b.closedCh)
		b.bgStop()
		b.bg.Wait()
		b.pool.Close()
	})
	return nil
}

func errClosed(op string) error {
	return fmt.Errorf("brisk: postgres: %s: %w", op, broker.ErrClosed)
}

// fail wraps an error from the database for the operation op. It says ErrClosed when the
// broker was closed meanwhile, the context's error when the context ended, and
// ErrUnavailable when the server could not do the work (unreachable, restarting, out of
// connections, statement timeout).
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case b.closed.Load():
		return errClosed(op)
	case ctx.Err() != nil:
		return fmt.Errorf("brisk: postgres: %s: %w", op, ctx.Err())
	case errors.Is(err, broker.ErrUnavailable):
		return fmt.Errorf("brisk: postgres: %s: %w", op, err)
	case unavailable(err):
		return fmt.Errorf("brisk: postgres: %s (schema %s): %w: %w", op, b.schema, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("brisk: postgres: %s: %w", op, err)
}

// unavailable reports whether err means the server could not do the work, rather than that
// the request was wrong.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources (too many connections, disk full)
			"57", // operator intervention: shutdown, statement timeout (57014)
			"58", // system error
			"40", // serialization failure, deadlock
			"55": // lock not available, object in use
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}

// acquire takes a connection of the pool, waiting at most AcquireTimeout. When every
// connection is busy for that long the error says the pool is exhausted, instead of
// letting the caller hang.
func (b *Broker) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	actx, cancel := context.WithTimeout(ctx, b.opts.AcquireTimeout)
	defer cancel()
	c, err := b.pool.Acquire(actx)
	if err == nil {
		return c, nil
	}
	if ctx.Err() == nil && actx.Err() != nil {
		st := b.pool.Stat()
		if st.AcquiredConns() >= st.MaxConns() {
			return nil, fmt.Errorf("%w: connection pool exhausted: all %d connections busy for %s (raise pool_max_conns or acquire_timeout)",
				broker.ErrUnavailable, st.MaxConns(), b.opts.AcquireTimeout)
		}
		return nil, fmt.Errorf("%w: no connection to the server within %s: %w", broker.ErrUnavailable, b.opts.AcquireTimeout, err)
	}
	return nil, err
}

// asyncCommit is what {{async}} becomes in the statements of workers (see write.go).
const asyncCommit = `set_config('synchronous_commit', 'off', true) IS NOT NULL`

// q returns the statement template t with the schema filled in.
func (b *Broker) q(t string) string {
	s, ok := b.sql[t]
	if !ok {
		panic("pgbroker: statement not listed in statements: " + t) // a bug in this package
	}
	return s
}

// exec runs a statement on a connection of the pool.
func (b *Broker) exec(ctx context.Context, t string, args ...any) (pgconn.CommandTag, error) {
	c, err := b.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, b.q(t), args...)
}

// query runs a statement on a connection of the pool and calls each for every row.
func (b *Broker) query(ctx context.Context, t string, args []any, each func(pgx.Rows) error) error {
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	rows, err := c.Query(ctx, b.q(t), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// queryRow runs a statement that returns one row and scans it into dest.
func (b *Broker) queryRow(ctx context.Context, t string, args []any, dest ...any) error {
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return c.QueryRow(ctx, b.q(t), args...).Scan(dest...)
}

// newToken returns a fresh lease token. One Reserve call leases all its tasks under one
// token: a lease is the pair of task ID and token, and every new reservation of a task
// gets a new token.
func newToken() string {
	var buf [12]byte
	_, _ = rand.Read(buf[:]) // never fails
	return hex.EncodeToString(buf[:])
}

// compactEvery is how often a broker folds the delta rows of the counts table.
const compactEvery = 2 * time.Second

// vacuumOver is how many dead rows tasks or counts may have before a broker vacuums it.
const vacuumOver = 10000

// compactLoop folds the delta rows of counts into one row per queue every compactEvery,
// when there are enough of them to be worth it, and vacuums the tables that churn every
// Options.VacuumInterval, until Close.
func (b *Broker) compactLoop() {
	defer b.bg.Done()
	t := time.NewTicker(compactEvery)
	defer t.Stop()
	lastVacuum := time.Now()
	for {
		select {
		case <-b.bgCtx.Done():
			return
		case <-t.C:
		}
		if err := b.compact(b.bgCtx, 200); err != nil && b.bgCtx.Err() == nil {
			b.log.Debug("brisk: postgres: folding the counters failed; will try again", "schema", b.schema, "err", err)
		}
		if b.opts.VacuumInterval > 0 && time.Since(lastVacuum) >= b.opts.VacuumInterval {
			lastVacuum = time.Now()
			if err := b.vacuum(b.bgCtx, vacuumOver); err != nil && b.bgCtx.Err() == nil {
				b.log.Warn("brisk: postgres: vacuum failed; will try again", "schema", b.schema, "err", err)
			}
		}
	}
}

// vacuum runs VACUUM on tasks and counts when one of them has more than over dead rows
// (the server's statistics). Every task row is inserted, updated a few times and deleted
// within seconds, so dead rows pile up at the head of the pending index, which every
// reserve walks, unless something reclaims them: autovacuum where it runs (it is off on
// some servers, and wakes once a minute where it is on), and this. SKIP_LOCKED: when
// another broker (or autovacuum) is vacuuming the table, this one does not wait. TRUNCATE
// false (as the tables' vacuum_truncate, migration 4): no ACCESS EXCLUSIVE lock that would
// stall every writer while empty tail pages are given back.
func (b *Broker) vacuum(ctx context.Context, over int64) error {
	var tables []string
	err := b.query(ctx, qDeadRows, []any{b.schema, over}, func(r pgx.Rows) error {
		var name string
		err := r.Scan(&name)
		tables = append(tables, b.schema+"."+name)
		return err
	})
	if err != nil || len(tables) == 0 {
		return err
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	_, err = c.Exec(ctx, `VACUUM (SKIP_LOCKED, TRUNCATE false) `+strings.Join(tables, ", "))
	return err
}

// compact folds the delta rows of counts when there are more than over of them. Brokers
// in several processes may fold at once: each delta row is deleted by one of them, which
// adds it into the row it inserts, so the sums never change.
func (b *Broker) compact(ctx context.Context, over int) error {
	var n int
	if err := b.queryRow(ctx, qCountRows, []any{over + 1}, &n); err != nil {
		return err
	}
	if n <= over {
		return nil
	}
	_, err := b.exec(ctx, qCompact)
	return err
}

// qDeadRows names the tables of schema $1 that churn and have more than $2 dead rows.
const qDeadRows = `SELECT relname FROM pg_stat_user_tables
	WHERE schemaname = $1 AND relname IN ('tasks', 'counts') AND n_dead_tup > $2 ORDER BY relname`

const (
	qCountRows = `SELECT count(*) FROM (SELECT 1 FROM {{schema}}.counts LIMIT $1) c`
	qCompact   = `WITH gone AS (DELETE FROM {{schema}}.counts RETURNING *)
		INSERT INTO {{schema}}.counts (queue, waiting, running, dead, completed, failed)
		SELECT queue, sum(waiting), sum(running), sum(dead), sum(completed), sum(failed) FROM gone GROUP BY queue`
)
