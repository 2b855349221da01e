package sqlitebroker

import (
	"context"
	"database/sql"
	"database/sql/driver"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/limithint"
)

var (
	_ broker.Broker           = (*Broker)(nil)
	_ broker.Reaper           = (*Broker)(nil)
	_ broker.Pauser           = (*Broker)(nil)
	_ broker.Canceler         = (*Broker)(nil)
	_ broker.Leader           = (*Broker)(nil)
	_ broker.ScheduleStore    = (*Broker)(nil)
	_ broker.Limiter          = (*Broker)(nil)
	_ broker.QueueDeleter     = (*Broker)(nil)
	_ broker.SampleStore      = (*Broker)(nil)
	_ broker.Retainer         = (*Broker)(nil)
	_ broker.ProgressReporter = (*Broker)(nil)
)

// ErrCorrupt is wrapped by the errors about a stored row the broker cannot decode (one
// written by hand with a NULL type, an unknown state or a time that is not an integer).
// Such a row never breaks the other tasks: Reserve moves it to dead, and Tasks and Task
// name its id in the error.
var ErrCorrupt = errors.New("corrupt task row")

//go:embed schema.sql
var schemaSQL string

//go:embed sched.sql
var schedSQL string

//go:embed retain.sql
var retainSQL string

const (
	// schemaVersion is stored in PRAGMA user_version. Version 2 added queues.paused,
	// version 3 the samples table, version 4 the tables of sched.sql, version 5
	// tasks.headers, version 6 the completed tasks of retain.sql; see migrations.
	schemaVersion = 6
	// baseVersion is the version schema.sql and samplesSchema create; a new file then
	// takes the migrations from it on.
	baseVersion = 3
	// applicationID ("brsk") is stored in PRAGMA application_id and marks the file as
	// brisk's, so that Open never writes into another application's database.
	applicationID = 0x6272736b
	// readConns is the size of the read pool (plus one connection Wait keeps).
	readConns = 4
)

// migrations[v] upgrades a file of schema version v to v+1, inside the transaction of
// setup. A file created by an older brisk is migrated when it is opened.
var migrations = map[int64]string{
	1: `ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0`,
	2: samplesSchema,
	3: schedSQL,
	4: `ALTER TABLE tasks ADD COLUMN headers TEXT`, // a JSON object, NULL for none
	5: retainSQL,
}

// samplesSchema is the table of the dashboard's samples (broker.SampleStore), created by
// schema.sql in a new file and by the migration from version 2.
const samplesSchema = `
CREATE TABLE IF NOT EXISTS samples (
    queue      TEXT    NOT NULL,
    second     INTEGER NOT NULL,  -- at_ms / 1000: one sample per queue and second
    at_ms      INTEGER NOT NULL,  -- Unix milliseconds
    latency_ns INTEGER NOT NULL,
    completed  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    PRIMARY KEY (queue, second)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_at ON samples (at_ms);`

// Broker is a broker.Broker, broker.Reaper, broker.Pauser, broker.QueueDeleter,
// broker.SampleStore, broker.Canceler, broker.Leader, broker.ScheduleStore,
// broker.Limiter, broker.Retainer and broker.ProgressReporter that keeps tasks in a SQLite file, with unique tasks. Create it with
// Open; it is safe for concurrent use.
type Broker struct {
	path string // absolute and cleaned; names the file in errors
	opts Options
	log  *slog.Logger
	now  func() time.Time

	w      *sql.DB // writes: one connection, transactions BEGIN IMMEDIATE
	wlock  *writeLock
	r      *sql.DB // reads
	wstmts map[string]*sql.Stmt

	rmu    sync.Mutex
	rstmts map[string]*sql.Stmt

	hub   *hub
	hints limithint.Hints // why limits left ready tasks behind, per queue

	purgeMu   sync.Mutex
	purgeAt   int64 // Unix ns: when the next slice of expired tasks is due (purgeSlice)
	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error

	watch watcher
}

// Open opens (creating if needed) the SQLite file at path and returns a broker on it.
// An unreachable or unwritable path, or a file that is not a brisk SQLite database, is an
// error wrapping broker.ErrUnavailable, and the file is left as it was.
func Open(ctx context.Context, path string, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("brisk: sqlite: open %q: want the path of a file (not :memory: or a file: URI): %w", path, broker.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("brisk: sqlite: open %q: %w: %w", path, broker.ErrUnavailable, err)
	}
	fail := func(err error) error {
		return fmt.Errorf("brisk: sqlite: open %q: %w: %w", abs, broker.ErrUnavailable, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
		return nil, fail(errors.New("is a directory"))
	case err == nil && fi.Size() == 0 && opts.NoCreate:
		return nil, fail(errors.New("an empty file (0 bytes), not a brisk store (was it truncated?), and this open does not create one (mode=rw)"))
	case err == nil && fi.Size() == 0:
		// SQLite takes an empty file for an empty database. A store truncated by accident
		// looks the same, so say that a new one is made rather than serve "no queues".
		opts.Logger.Warn("sqlite: empty file (0 bytes): a new store is created in it (if it held brisk's tasks, they were lost before this open)", "path", abs)
	case errors.Is(err, os.ErrNotExist) && opts.NoCreate:
		return nil, fail(fmt.Errorf("%w (mode=rw does not create a store)", fs.ErrNotExist))
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Dir(abs)); err != nil {
			return nil, fail(fmt.Errorf("directory %s: %w", filepath.Dir(abs), unwrapPathError(err)))
		}
	}

	b := &Broker{
		path:   abs,
		opts:   opts,
		log:    opts.Logger,
		now:    time.Now,
		wstmts: map[string]*sql.Stmt{},
		rstmts: map[string]*sql.Stmt{},
		closed: make(chan struct{}),
	}
	if b.w, err = sql.Open("sqlite", dsn(abs, opts, true)); err != nil {
		return nil, fail(err)
	}
	b.w.SetMaxOpenConns(1)
	b.w.SetMaxIdleConns(1)
	if err := setup(ctx, b.w); err != nil {
		b.w.Close()
		return nil, fail(err)
	}
	for _, q := range writeQueries {
		s, err := b.w.PrepareContext(ctx, q)
		if err != nil {
			b.w.Close()
			return nil, fail(fmt.Errorf("prepare %q: %w", q, err))
		}
		b.wstmts[q] = s
	}
	if b.r, err = sql.Open("sqlite", dsn(abs, opts, false)); err != nil {
		b.w.Close()
		return nil, fail(err)
	}
	b.r.SetMaxOpenConns(readConns + 1)
	b.r.SetMaxIdleConns(readConns + 1)
	if err := b.watch.open(ctx, b.r, opts.PollInterval); err != nil {
		b.r.Close()
		b.w.Close()
		return nil, fail(err)
	}
	key := abs
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		key = real
	}
	if b.wlock, err = newWriteLock(abs, opts.BusyTimeout); err != nil {
		b.watch.stop()
		b.r.Close()
		b.w.Close()
		return nil, fail(err)
	}
	b.hub = acquireHub(key)
	b.watch.start(b.hub)
	return b, nil
}

// dsn is the modernc.org/sqlite data source name for the file: a file: URI (so that any
// character in the path is escaped) carrying the driver's connection settings.
func dsn(abs string, o Options, write bool) string {
	busy := o.BusyTimeout.Milliseconds()
	if busy < 1 {
		busy = 1
	}
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busy, 10))
	q.Set("_synchronous", strings.ToUpper(o.Synchronous))
	if write {
		q.Set("_txlock", "immediate")
	} else {
		q.Set("_query_only", "1")
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String() + "?" + q.Encode()
}

// setup checks that the file is a brisk database (or empty), switches it to WAL and creates
// or checks the schema. It reads before it writes anything, so that a file that is not a
// SQLite database, or is another application's, is left untouched.
func setup(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var appID, version, objects int64
	if err := conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return err
	}
	if appID != applicationID && (appID != 0 || objects > 0) {
		return fmt.Errorf("the file is a SQLite database of another application (application_id %#x, %d schema objects); brisk will not write to it", appID, objects)
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this brisk understands (%d)", version, schemaVersion)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("cannot use WAL mode (journal_mode is %s)", mode)
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE: waits for a concurrent Open
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version == 0 {
		if _, err := tx.ExecContext(ctx, schemaSQL+samplesSchema); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return err
		}
		version = baseVersion
	}
	for v := version; v < schemaVersion; v++ {
		m, ok := migrations[v]
		if !ok {
			return fmt.Errorf("no migration from schema version %d", v)
		}
		if _, err := tx.ExecContext(ctx, m); err != nil {
			return fmt.Errorf("migrate schema from version %d to %d: %w", v, v+1, err)
		}
	}
	// Setting user_version writes the header even when the schema exists: it proves the
	// file is writable now rather than at the first Enqueue.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// unwrapPathError drops the operation and path of an *os.PathError, which the caller
// already names.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Capabilities declares every optional behaviour: the whole task state machine lives in
// the store, and Enqueue keeps uniqueness locks.
func (b *Broker) Capabilities() broker.Capabilities {
	c := broker.AllCapabilities()
	c.Unique = true
	return c
}

// Path returns the absolute path of the broker's database file (its write-ahead log is
// Path()+"-wal").
func (b *Broker) Path() string { return b.path }

// Close releases the broker's connections and wakes its Wait calls, which return an error
// wrapping broker.ErrClosed, as every later call does. It is idempotent. Tasks stay stored.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.watch.stop()
		b.hub.release()
		b.rmu.Lock()
		for _, s := range b.rstmts {
			s.Close()
		}
		b.rmu.Unlock()
		for _, s := range b.wstmts {
			s.Close()
		}
		err := errors.Join(b.r.Close(), b.w.Close())
		b.wlock.close()
		if err != nil {
			b.closeErr = fmt.Errorf("brisk: sqlite: close %q: %w", b.path, err)
		}
	})
	return b.closeErr
}

func (b *Broker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// checkOpen returns an error wrapping broker.ErrClosed after Close.
func (b *Broker) checkOpen(op string) error {
	if b.isClosed() {
		return fmt.Errorf("brisk: sqlite: %s: %w", op, broker.ErrClosed)
	}
	return nil
}

// fail wraps an error from the database for the operation op ("reserve from queue \"q\"").
// It says ErrClosed when the broker was closed meanwhile, the context's error when the
// context ended, and ErrUnavailable when the engine cannot do the work (locked, I/O error,
// disk full, read-only or corrupt file).
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case b.isClosed():
		return fmt.Errorf("brisk: sqlite: %s: %w", op, broker.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("brisk: sqlite: %s: %w", op, ctx.Err())
	case unavailable(err):
		return fmt.Errorf("brisk: sqlite: %s %q: %w: %w", op, b.path, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("brisk: sqlite: %s: %w", op, err)
}

// unavailable reports whether err means the engine could not do the work, rather than
// that the request was wrong.
func unavailable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM:
		return true
	}
	return false
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// ws returns the statement q, prepared at Open on the write connection, bound to tx.
func (b *Broker) ws(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	s, ok := b.wstmts[q]
	if !ok {
		panic("sqlitebroker: write statement not prepared at Open: " + q) // a bug in this package
	}
	return tx.StmtContext(ctx, s)
}

// rs returns the statement q prepared on the read pool, preparing it on first use. Never
// call it while holding a read connection (inside a read transaction): preparing may need
// another connection of the pool.
func (b *Broker) rs(ctx context.Context, q string) (*sql.Stmt, error) {
	b.rmu.Lock()
	s := b.rstmts[q]
	b.rmu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := b.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if old := b.rstmts[q]; old != nil {
		s.Close()
		return old, nil
	}
	if b.isClosed() {
		s.Close()
		return nil, sql.ErrConnDone
	}
	b.rstmts[q] = s
	return s, nil
}

// writeTx runs fn in one write transaction (BEGIN IMMEDIATE) and commits it.
func (b *Broker) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := b.wlock.lock(ctx); err != nil {
		return err
	}
	defer b.wlock.unlock()
	tx, err := b.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as INTEGER Unix nanoseconds; a zero time as NULL where it may be zero.

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos converts t to Unix nanoseconds, clamped to what an int64 holds (years 1678–2262).
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}
