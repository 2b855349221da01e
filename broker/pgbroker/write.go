package pgbroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/briskq/brisk/broker"
)

// taskCols are the columns scanTask reads, in its order.
const taskCols = `seq, id, queue, type, payload, state, attempt, max_attempts, timeout_ns,
	enqueued_at, ready_at, started_at, lease_until, lease_token, last_error, failed_at, headers`

// The statements. {{schema}} is filled in at Open; every statement is one round trip and,
// outside EnqueueTx, one transaction of its own. {{async}} marks the statements of workers
// (reserve, extend, ack, retry, kill, release): it is a condition that is always true and
// makes the statement's transaction commit without waiting for the WAL flush
// (synchronous_commit off), unless Options.SyncWorkerCommits. Such a statement only moves
// a task that is durably stored already between states, so a server crash that loses the
// last of them (a fraction of a second) can only make a task run again, which at-least-once
// delivery allows; enqueues and the calls of people and tools stay synchronous.
const (
	qEnsureQueues = `INSERT INTO {{schema}}.queues (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`
	qDeclare      = `INSERT INTO {{schema}}.queues (name, sla_ns) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET sla_ns = excluded.sla_ns`
	qPause        = `INSERT INTO {{schema}}.queues (name, paused) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`

	// enqueueTemplate is qEnqueue and qEnqueueDeferWake (with {{defer}} filled in): it
	// stores a batch given as a JSON array ($1), in its order, unless one of its IDs is
	// stored already: then it stores nothing and returns that ID. Refusing a duplicate
	// without an error keeps an application's transaction usable (an error aborts it). A
	// duplicate enqueued by a concurrent transaction still fails on the unique index.
	enqueueTemplate = `WITH input AS (
			SELECT e->>'id' AS id, e->>'queue' AS queue, e->>'type' AS type, decode(e->>'payload', 'base64') AS payload,
				(e->>'max_attempts')::integer AS max_attempts, (e->>'timeout_ns')::bigint AS timeout_ns,
				(e->>'enqueued_at')::timestamptz AS enqueued_at, (e->>'ready_at')::timestamptz AS ready_at, e->'headers' AS headers, n
			FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(e, n) {{defer}}
		), dup AS (
			SELECT t.id FROM {{schema}}.tasks t WHERE t.id IN (SELECT id FROM input) LIMIT 1
		), ins AS (
			INSERT INTO {{schema}}.tasks (id, queue, type, payload, state, max_attempts, timeout_ns, enqueued_at, ready_at, headers)
			SELECT id, queue, type, payload, 'pending', max_attempts, timeout_ns, enqueued_at, ready_at, headers
			FROM input WHERE NOT EXISTS (SELECT 1 FROM dup) ORDER BY n
			RETURNING 1
		)
		SELECT (SELECT id FROM dup), (SELECT count(*) FROM ins)`

	// qWake wakes the workers of queues $2 on channel $1, in a transaction of its own that
	// does not wait for the WAL flush: it stores nothing.
	qWake = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, q) FROM unnest($2::text[]) AS q`

	// qReserve leases up to $3 ready tasks of queue $1 at time $2 under lease $4 until
	// $5, for worker $6, unless the queue is paused: expired leases (tasks a lost worker
	// held) and pending tasks whose ready_at has passed, oldest ready_at first. An expired
	// lease on the final attempt is moved to dead instead. SKIP LOCKED lets concurrent
	// reservers take different tasks instead of waiting for each other.
	qReserve = `WITH open AS (
			SELECT {{async}} AND NOT EXISTS (SELECT 1 FROM {{schema}}.queues WHERE name = $1 AND paused) AS ok
		), killed AS (
			UPDATE {{schema}}.tasks SET state = 'dead', last_error = '` + broker.MsgLeaseExpired + `', failed_at = $2,
				lease_until = NULL, lease_token = NULL, worker_id = NULL
			WHERE state = 'running' AND queue = $1 AND lease_until <= $2 AND attempt >= max_attempts AND (SELECT ok FROM open)
			RETURNING 1
		), expired AS (
			SELECT ctid, seq, ready_at, true AS lost FROM {{schema}}.tasks
			WHERE state = 'running' AND queue = $1 AND lease_until <= $2 AND attempt < max_attempts AND (SELECT ok FROM open)
			ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
		), ready AS (
			SELECT ctid, seq, ready_at, false AS lost FROM {{schema}}.tasks
			WHERE state = 'pending' AND queue = $1 AND ready_at <= $2 AND (SELECT ok FROM open)
			ORDER BY ready_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
		), pick AS (
			SELECT ctid, lost FROM (SELECT * FROM expired UNION ALL SELECT * FROM ready) c ORDER BY ready_at, seq LIMIT $3
		), taken AS (
			UPDATE {{schema}}.tasks t SET state = 'running', attempt = t.attempt + 1, started_at = $2,
				lease_until = $4, lease_token = $5, worker_id = $6
			FROM pick WHERE t.ctid = pick.ctid
			RETURNING t.*, pick.lost
		), failed AS (
			INSERT INTO {{schema}}.counts (queue, failed)
			SELECT $1, n FROM (SELECT (SELECT count(*) FROM killed) + (SELECT count(*) FROM taken WHERE lost) AS n) f WHERE n > 0
		)
		SELECT ` + taskCols + ` FROM taken ORDER BY ready_at, seq`

	// Fenced by id, lease token and state. $1 ids, $2 tokens.
	qExtend = `UPDATE {{schema}}.tasks t SET lease_until = $3
		FROM unnest($1::text[], $2::text[]) AS l(id, token)
		WHERE t.id = l.id AND t.lease_token = l.token AND t.state = 'running' AND (SELECT {{async}})
		RETURNING t.id, l.token`
	qAck = `WITH done AS (
			DELETE FROM {{schema}}.tasks t USING unnest($1::text[], $2::text[]) AS l(id, token)
			WHERE t.id = l.id AND t.lease_token = l.token AND t.state = 'running' AND (SELECT {{async}})
			RETURNING t.id, l.token, t.queue
		), counted AS (
			INSERT INTO {{schema}}.counts (queue, completed) SELECT queue, count(*) FROM done GROUP BY queue
		)
		SELECT id, token FROM done`
	qRelease = `UPDATE {{schema}}.tasks t SET state = 'pending', attempt = greatest(t.attempt - 1, 0),
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		FROM unnest($1::text[], $2::text[]) AS l(id, token)
		WHERE t.id = l.id AND t.lease_token = l.token AND t.state = 'running' AND (SELECT {{async}})`
	// $1 id, $2 token, $3 ready at, $4 error, $5 now.
	qRetry = `WITH r AS (
			UPDATE {{schema}}.tasks SET state = 'pending', ready_at = $3, last_error = $4, failed_at = $5,
				lease_until = NULL, lease_token = NULL, worker_id = NULL
			WHERE id = $1 AND lease_token = $2 AND state = 'running' AND (SELECT {{async}})
			RETURNING queue
		), f AS (INSERT INTO {{schema}}.counts (queue, failed) SELECT queue, 1 FROM r)
		SELECT count(*) FROM r`
	// $1 id, $2 token, $3 error, $4 now.
	qKill = `WITH r AS (
			UPDATE {{schema}}.tasks SET state = 'dead', last_error = $3, failed_at = $4,
				lease_until = NULL, lease_token = NULL, worker_id = NULL
			WHERE id = $1 AND lease_token = $2 AND state = 'running' AND (SELECT {{async}})
			RETURNING queue
		), f AS (INSERT INTO {{schema}}.counts (queue, failed) SELECT queue, 1 FROM r)
		SELECT count(*) FROM r`
	// $1 worker id, $2 now.
	qReleaseWorker = `WITH r AS (
			UPDATE {{schema}}.tasks SET
				state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
				last_error = CASE WHEN attempt >= max_attempts THEN '` + broker.MsgWorkerLost + `' ELSE last_error END,
				failed_at = CASE WHEN attempt >= max_attempts THEN $2 ELSE failed_at END,
				lease_until = NULL, lease_token = NULL, worker_id = NULL
			WHERE state = 'running' AND worker_id = $1
			RETURNING queue
		), f AS (
			INSERT INTO {{schema}}.counts (queue, failed) SELECT queue, count(*) FROM r GROUP BY queue
		), w AS (
			DELETE FROM {{schema}}.workers WHERE id = $1
		)
		SELECT count(*) FROM r`
	// $1 queue, $2 now, $3 ids or NULL for all.
	qRetryDead = `UPDATE {{schema}}.tasks SET state = 'pending', attempt = 0, ready_at = $2,
			lease_until = NULL, lease_token = NULL, worker_id = NULL
		WHERE state = 'dead' AND queue = $1 AND ($3::text[] IS NULL OR id = ANY($3::text[]))`
)

var (
	// qEnqueue stores a batch; its trigger wakes workers when its transaction commits.
	qEnqueue = strings.Replace(enqueueTemplate, "{{defer}}", "", 1)
	// qEnqueueDeferWake is qEnqueue that leaves waking workers to the caller, after the
	// commit (migration 3): it sets brisk.defer_wake for its transaction while it reads its
	// input, before the statement's trigger runs, and the caller runs qWake.
	qEnqueueDeferWake = strings.Replace(enqueueTemplate, "{{defer}}", "WHERE set_config('brisk.defer_wake', 'on', true) = 'on'", 1)
)

// Enqueue stores tasks atomically in one statement, creating unknown queues, and wakes
// waiting workers after the statement's durable commit. A task ID already stored fails
// the whole batch with an error wrapping broker.ErrDuplicate.
func (b *Broker) Enqueue(ctx context.Context, tasks []*broker.Task) error {
	if b.closed.Load() {
		return errClosed("enqueue")
	}
	doc, err := b.prepareEnqueue(ctx, tasks)
	if err != nil {
		return err
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("enqueue %d tasks", len(tasks)), err)
	}
	defer c.Release()
	res, wakeErr := b.enqueueThenWake(ctx, c.Conn(), doc, queuesOf(tasks))
	if err := b.enqueueResult(ctx, len(tasks), res); err != nil {
		return err
	}
	// A wake-up that fails is not the enqueue's failure (the caller would enqueue again):
	// workers find the tasks at their next poll.
	if wakeErr != nil {
		b.log.WarnContext(ctx, "brisk: postgres: enqueue: waking workers after the commit", "err", wakeErr)
	}
	return nil
}

// enqueueThenWake runs qEnqueueDeferWake with doc and then qWake for queues on conn in one
// round trip: a pipeline of the enqueue, a Sync, the wake-up and a Sync, written at once.
// Each Sync ends an implicit transaction, and the server runs the messages in order, so
// the enqueue has committed (with the WAL flushed, synchronous_commit permitting) before
// the wake-up's statement starts, and the wake-up, in a transaction of its own, does not
// hold up the commit of concurrent enqueues (migration 3). When the enqueue fails, the
// server skips to its Sync, rolls its transaction back and still runs the wake-up (a
// spurious wake-up, which Wait allows); the connection ends up idle either way, or is
// closed when the network or ctx failed. res is the enqueue's outcome, wakeErr the
// wake-up's.
func (b *Broker) enqueueThenWake(ctx context.Context, conn *pgx.Conn, doc string, queues []string) (res enqueueRow, wakeErr error) {
	enq, err := conn.Prepare(ctx, b.q(qEnqueueDeferWake), b.q(qEnqueueDeferWake))
	if err != nil {
		return enqueueRow{err: fmt.Errorf("prepare the enqueue: %w", err)}, nil
	}
	wake, err := conn.Prepare(ctx, b.q(qWake), b.q(qWake))
	if err != nil {
		return enqueueRow{err: fmt.Errorf("prepare the wake-up: %w", err)}, nil
	}
	if len(wake.ParamOIDs) != 2 || len(enq.ParamOIDs) != 1 {
		return enqueueRow{err: fmt.Errorf("prepared statements take %d and %d parameters, want 1 and 2", len(enq.ParamOIDs), len(wake.ParamOIDs))}, nil
	}
	list, err := conn.TypeMap().Encode(wake.ParamOIDs[1], pgtype.TextFormatCode, queues, nil)
	if err != nil {
		return enqueueRow{err: fmt.Errorf("encode the queues to wake: %w", err)}, nil
	}
	p := conn.PgConn().StartPipeline(ctx)
	p.SendQueryStatement(enq, [][]byte{[]byte(doc)}, nil, nil)
	p.SendPipelineSync()
	p.SendQueryStatement(wake, [][]byte{[]byte(channel(b.schema)), list}, nil, nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		_ = p.Close() // the connection is closed already
		return enqueueRow{err: err}, nil
	}
	r, err := p.GetResults()
	if err == nil {
		res = readEnqueueRow(r)
	} else {
		res.err = err
	}
	if err := untilSync(p); res.err == nil {
		res.err = err // the commit failed
	}
	wakeErr = untilSync(p)
	if err := p.Close(); err != nil {
		if res.err == nil && wakeErr == nil {
			wakeErr = err
		}
	}
	return res, wakeErr
}

// enqueueRow is the row of qEnqueue, or the statement's error.
type enqueueRow struct {
	dup    *string // an ID of the batch stored already
	stored int64
	err    error
}

// readEnqueueRow reads the result of qEnqueue (text format) from r, a result of a pipeline.
func readEnqueueRow(r any) enqueueRow {
	rr, ok := r.(*pgconn.ResultReader)
	if !ok {
		return enqueueRow{err: fmt.Errorf("pipeline: got %T for the enqueue, want its rows", r)}
	}
	var res enqueueRow
	rows := 0
	for rr.NextRow() {
		rows++
		v := rr.Values()
		if len(v) != 2 {
			res.err = fmt.Errorf("the enqueue returned %d columns, want 2", len(v))
			continue
		}
		if v[0] != nil {
			dup := string(v[0])
			res.dup = &dup
		}
		n, err := strconv.ParseInt(string(v[1]), 10, 64)
		if err != nil {
			res.err = fmt.Errorf("the enqueue's count: %w", err)
		}
		res.stored = n
	}
	if _, err := rr.Close(); err != nil {
		return enqueueRow{err: err}
	}
	if res.err == nil && rows != 1 {
		res.err = fmt.Errorf("the enqueue returned %d rows, want 1", rows)
	}
	return res
}

// untilSync reads the results of a pipeline up to and including its next Sync and returns
// the first error among them. It stops early when the connection failed (every later read
// fails too).
func untilSync(p *pgconn.Pipeline) error {
	var first error
	for {
		r, err := p.GetResults()
		if err != nil {
			if first == nil {
				first = err
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				return first
			}
			continue
		}
		switch r := r.(type) {
		case *pgconn.PipelineSync:
			return first
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil && first == nil {
				first = err
			}
		case nil:
			if first == nil {
				first = errors.New("pipeline: no result where a Sync was expected")
			}
			return first
		}
	}
}

// queuesOf returns the distinct queues of tasks, in order of first appearance.
func queuesOf(tasks []*broker.Task) []string {
	var out []string
	for _, t := range tasks {
		if !slices.Contains(out, t.Queue) {
			out = append(out, t.Queue)
		}
	}
	return out
}

// EnqueueTx does what Enqueue does inside tx, the application's own transaction on the
// broker's database: a pgx.Tx (github.com/jackc/pgx/v5, also from a pgxpool) or a
// *sql.Tx of database/sql (with any PostgreSQL driver, such as pgx's stdlib or lib/pq).
// The tasks are visible to workers, and workers are woken, when tx commits; a rollback
// leaves no trace of them (an unknown queue is created outside tx, at once, and stays).
// A duplicate ID is refused with broker.ErrDuplicate and tx stays usable; any other
// failure of the statement aborts tx, as every failed statement does in PostgreSQL. The
// statement runs under tx's own settings (the broker's statement timeout is not applied).
func (b *Broker) EnqueueTx(ctx context.Context, tx any, tasks []*broker.Task) error {
	if b.closed.Load() {
		return errClosed("enqueue in a transaction")
	}
	var scan func(ctx context.Context, doc string) func(dest ...any) error
	switch tx := tx.(type) {
	case pgx.Tx:
		if tx == nil {
			break
		}
		scan = func(ctx context.Context, doc string) func(dest ...any) error {
			return tx.QueryRow(ctx, b.q(qEnqueue), doc).Scan
		}
	case *sql.Tx:
		if tx == nil {
			break
		}
		scan = func(ctx context.Context, doc string) func(dest ...any) error {
			return tx.QueryRowContext(ctx, b.q(qEnqueue), doc).Scan
		}
	}
	if scan == nil {
		return fmt.Errorf("brisk: postgres: enqueue in a transaction: the transaction is %T, want a non-nil pgx.Tx or *sql.Tx: %w", tx, broker.ErrInvalid)
	}
	doc, err := b.prepareEnqueue(ctx, tasks)
	if err != nil {
		return err
	}
	return b.enqueueResult(ctx, len(tasks), scanEnqueue(scan(ctx, doc)))
}

// prepareEnqueue validates a batch, makes sure its queues exist (outside any transaction
// of the application's: creating a queue row would otherwise hold its lock until that
// transaction ends) and returns the batch as the JSON document of qEnqueue.
func (b *Broker) prepareEnqueue(ctx context.Context, tasks []*broker.Task) (string, error) {
	if err := broker.ValidateTasks(tasks, b.opts.MaxPayload); err != nil {
		return "", fmt.Errorf("brisk: postgres: enqueue: %w", err)
	}
	if err := broker.CheckRetention(b, tasks); err != nil { // no completed tasks kept here
		return "", fmt.Errorf("brisk: postgres: enqueue: %w", err)
	}
	if err := broker.CheckUnique(b, tasks); err != nil { // no uniqueness locks here
		return "", err
	}
	var unknown []string
	for _, t := range tasks {
		if _, ok := b.known.Load(t.Queue); !ok && !slices.Contains(unknown, t.Queue) {
			unknown = append(unknown, t.Queue)
		}
	}
	if len(unknown) > 0 {
		if _, err := b.exec(ctx, qEnsureQueues, unknown); err != nil {
			return "", b.fail(ctx, fmt.Sprintf("enqueue %d tasks: create queues %s", len(tasks), strings.Join(unknown, ", ")), err)
		}
		for _, q := range unknown {
			b.known.Store(q, true)
		}
	}
	type row struct {
		ID          string            `json:"id"`
		Queue       string            `json:"queue"`
		Type        string            `json:"type"`
		Payload     []byte            `json:"payload"`
		MaxAttempts int               `json:"max_attempts"`
		TimeoutNs   int64             `json:"timeout_ns"`
		EnqueuedAt  string            `json:"enqueued_at"`
		ReadyAt     string            `json:"ready_at"`
		Headers     map[string]string `json:"headers,omitempty"`
	}
	rows := make([]row, len(tasks))
	for i, t := range tasks {
		p := t.Payload
		if p == nil {
			p = []byte{}
		}
		rows[i] = row{t.ID, t.Queue, t.Type, p, t.MaxAttempts, int64(t.Timeout), timestamp(t.EnqueuedAt), timestamp(t.ReadyAt), t.Headers}
	}
	data, err := json.Marshal(rows)
	if err != nil {
		return "", fmt.Errorf("brisk: postgres: enqueue: %w", err)
	}
	return string(data), nil
}

// scanEnqueue reads the row of qEnqueue through scan.
func scanEnqueue(scan func(dest ...any) error) enqueueRow {
	var res enqueueRow
	res.err = scan(&res.dup, &res.stored)
	return res
}

// enqueueResult turns the outcome of qEnqueue for a batch of n tasks into Enqueue's error.
func (b *Broker) enqueueResult(ctx context.Context, n int, res enqueueRow) error {
	if err := res.err; err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "tasks_pkey" {
			return fmt.Errorf("brisk: postgres: enqueue: %s (stored by a concurrent transaction): %w", pe.Detail, broker.ErrDuplicate)
		}
		return b.fail(ctx, fmt.Sprintf("enqueue %d tasks", n), err)
	}
	if res.dup != nil {
		return fmt.Errorf("brisk: postgres: enqueue: id=%q: %w", *res.dup, broker.ErrDuplicate)
	}
	if res.stored != int64(n) {
		return fmt.Errorf("brisk: postgres: enqueue: stored %d of %d tasks", res.stored, n) // cannot happen
	}
	return nil
}

// Times cross into PostgreSQL with microseconds, its precision, and within the years it
// and Go's formatting share.
var (
	minStored = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxStored = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// timestamp formats t for a timestamptz in a JSON document.
func timestamp(t time.Time) string {
	t = t.UTC()
	switch {
	case t.Before(minStored):
		t = minStored
	case t.After(maxStored):
		t = maxStored
	}
	return t.Format("2006-01-02T15:04:05.999999Z07:00")
}

// PauseQueue pauses (paused=true) or resumes the queue, creating it if needed: while it is
// paused, Reserve takes nothing from it, neither ready tasks nor expired leases, and Wait
// does not return for its due times. Resuming wakes waiting workers. It is idempotent.
func (b *Broker) PauseQueue(ctx context.Context, queue string, paused bool) error {
	op := "resume queue"
	if paused {
		op = "pause queue"
	}
	if b.closed.Load() {
		return errClosed(op)
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: postgres: %s: %w", op, err)
	}
	if _, err := b.exec(ctx, qPause, queue, paused); err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	b.known.Store(queue, true)
	if !paused {
		if _, err := b.exec(ctx, qWake, channel(b.schema), []string{queue}); err != nil {
			return b.fail(ctx, fmt.Sprintf("%s %q: wake workers", op, queue), err)
		}
	}
	return nil
}

// DeclareQueue creates the queue if needed and stores its SLA (idempotent).
func (b *Broker) DeclareQueue(ctx context.Context, q broker.QueueConfig) error {
	if b.closed.Load() {
		return errClosed("declare queue")
	}
	if err := broker.ValidateQueueName(q.Name); err != nil {
		return fmt.Errorf("brisk: postgres: declare queue: %w", err)
	}
	if q.SLA < 0 {
		return fmt.Errorf("brisk: postgres: declare queue %q: negative SLA %s: %w", q.Name, q.SLA, broker.ErrInvalid)
	}
	if _, err := b.exec(ctx, qDeclare, q.Name, int64(q.SLA)); err != nil {
		return b.fail(ctx, fmt.Sprintf("declare queue %q", q.Name), err)
	}
	b.known.Store(q.Name, true)
	return nil
}

// Reserve leases up to p.Limit ready tasks, queue by queue in the given order, one
// statement per queue (see qReserve). Paused queues are skipped. Concurrent reservers
// skip each other's locked rows instead of waiting.
func (b *Broker) Reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("reserve")
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, fmt.Errorf("brisk: postgres: reserve: %w", err)
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return nil, b.fail(ctx, "reserve", err)
	}
	defer c.Release()
	token := newToken()
	var out []*broker.Task
	for _, q := range p.Queues {
		left := p.Limit - len(out)
		if left == 0 {
			break
		}
		if q.Max > 0 {
			left = min(left, q.Max)
		}
		rows, err := c.Query(ctx, b.q(qReserve), b.reserveArgs(q.Name, left, p, token)...)
		got, err := scanTasks(rows, err)
		if err != nil {
			b.handBack(ctx, out)
			return nil, b.fail(ctx, fmt.Sprintf("reserve from queue %q", q.Name), err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// reserveArgs are the arguments of qReserve.
func (b *Broker) reserveArgs(queue string, n int, p broker.ReserveParams, token string) []any {
	now := b.now()
	var worker *string
	if p.WorkerID != "" {
		worker = &p.WorkerID
	}
	return []any{queue, now, n, now.Add(p.Lease), token, worker}
}

// handBack releases tasks a failed call reserved, so they need not wait for their leases.
func (b *Broker) handBack(ctx context.Context, tasks []*broker.Task) {
	if len(tasks) > 0 {
		_ = b.Release(context.WithoutCancel(ctx), leasesOf(tasks))
	}
}

func leasesOf(tasks []*broker.Task) []broker.Lease {
	out := make([]broker.Lease, len(tasks))
	for i, t := range tasks {
		out[i] = t.Lease
	}
	return out
}

// AckReserve acks leases and reserves from p's first queue in one round trip and one
// transaction (a pipeline of the two statements); when that queue gives fewer than
// p.Limit tasks, the others are tried as Reserve tries them. If the pipeline fails, the
// acks did not take effect either, and ackErr says so.
func (b *Broker) AckReserve(ctx context.Context, acks []broker.Lease, p broker.ReserveParams) ([]*broker.Task, error, error) {
	if len(acks) == 0 {
		tasks, err := b.Reserve(ctx, p)
		return tasks, nil, err
	}
	if b.closed.Load() {
		return nil, errClosed("ack"), errClosed("reserve")
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, b.Ack(ctx, acks), fmt.Errorf("brisk: postgres: reserve: %w", err)
	}
	c, err := b.acquire(ctx)
	if err != nil {
		err = b.fail(ctx, "ack and reserve", err)
		return nil, err, err
	}
	ids, tokens := leaseArrays(acks)
	first := p.Queues[0]
	n := p.Limit
	if first.Max > 0 {
		n = min(n, first.Max)
	}
	token := newToken()
	batch := &pgx.Batch{}
	batch.Queue(b.q(qAck), ids, tokens)
	batch.Queue(b.q(qReserve), b.reserveArgs(first.Name, n, p, token)...)
	res := c.SendBatch(ctx, batch)
	var acked []broker.Lease
	rows, err := res.Query()
	if err == nil {
		acked, err = pgx.CollectRows(rows, scanLease)
	}
	var out []*broker.Task
	if err == nil {
		rows, err = res.Query()
		out, err = scanTasks(rows, err)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	c.Release()
	if err != nil {
		err = b.fail(ctx, fmt.Sprintf("ack %d tasks and reserve from queue %q", len(acks), first.Name), err)
		return nil, err, err
	}
	ackErr := lostError("ack", acks, acked)
	out, err = broker.ReserveRest(ctx, b, p, out)
	if err != nil {
		b.handBack(ctx, out)
		return nil, ackErr, err
	}
	return out, ackErr, nil
}

// leaseArrays splits leases into the id and token arrays of the fenced statements.
func leaseArrays(leases []broker.Lease) (ids, tokens []string) {
	ids = make([]string, len(leases))
	tokens = make([]string, len(leases))
	for i, l := range leases {
		ids[i], tokens[i] = l.TaskID, l.Token
	}
	return ids, tokens
}

// scanLease reads the task ID and lease token that a fenced statement returns.
func scanLease(r pgx.CollectableRow) (broker.Lease, error) {
	var l broker.Lease
	err := r.Scan(&l.TaskID, &l.Token)
	return l, err
}

// notIn returns the leases that are not in done (compared by task ID and token).
func notIn(leases, done []broker.Lease) []broker.Lease {
	if len(done) == len(leases) {
		return nil
	}
	type key struct{ id, token string }
	held := make(map[key]bool, len(done))
	for _, l := range done {
		held[key{l.TaskID, l.Token}] = true
	}
	var lost []broker.Lease
	for _, l := range leases {
		if !held[key{l.TaskID, l.Token}] {
			lost = append(lost, l)
		}
	}
	return lost
}

// lostError names the leases that are not in done, wrapping broker.ErrLeaseLost, or is
// nil when there are none.
func lostError(op string, leases, done []broker.Lease) error {
	lost := notIn(leases, done)
	if len(lost) == 0 {
		return nil
	}
	ids := make([]string, len(lost))
	for i, l := range lost {
		ids[i] = l.TaskID
	}
	return fmt.Errorf("brisk: postgres: %s: %s: %w", op, broker.IDList(ids), broker.ErrLeaseLost)
}

// leases runs a fenced statement that returns the leases it changed.
func (b *Broker) leases(ctx context.Context, t string, args ...any) ([]broker.Lease, error) {
	var out []broker.Lease
	err := b.query(ctx, t, args, func(r pgx.Rows) error {
		l, err := scanLease(r)
		out = append(out, l)
		return err
	})
	return out, err
}

// Extend moves the lease expiry of each held lease to now + d in one statement and
// returns the leases no longer held. A lease that has expired but whose task no Reserve
// has taken back yet is still held, and is extended.
func (b *Broker) Extend(ctx context.Context, leases []broker.Lease, d time.Duration) ([]broker.Lease, error) {
	if b.closed.Load() {
		return nil, errClosed("extend")
	}
	if d < time.Millisecond {
		return nil, fmt.Errorf("brisk: postgres: extend: lease %s, must be at least 1ms: %w", d, broker.ErrInvalid)
	}
	if len(leases) == 0 {
		return nil, nil
	}
	ids, tokens := leaseArrays(leases)
	held, err := b.leases(ctx, qExtend, ids, tokens, b.now().Add(d))
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("extend %d leases", len(leases)), err)
	}
	return notIn(leases, held), nil
}

// Ack deletes the tasks whose leases are held and counts them completed, in one statement.
// Leases no longer held are reported in an error wrapping broker.ErrLeaseLost after the
// others are acked.
func (b *Broker) Ack(ctx context.Context, leases []broker.Lease) error {
	if b.closed.Load() {
		return errClosed("ack")
	}
	if len(leases) == 0 {
		return nil
	}
	ids, tokens := leaseArrays(leases)
	done, err := b.leases(ctx, qAck, ids, tokens)
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("ack %d tasks", len(leases)), err)
	}
	return lostError("ack", leases, done)
}

// Retry ends the attempt under l with errMsg and makes the task pending again with ReadyAt
// at (scheduled while at is in the future), counting a failed attempt; waiting workers are
// woken. It returns an error wrapping broker.ErrLeaseLost when l is not held.
func (b *Broker) Retry(ctx context.Context, l broker.Lease, at time.Time, errMsg string) error {
	if b.closed.Load() {
		return errClosed("retry")
	}
	if at.IsZero() {
		return fmt.Errorf("brisk: postgres: retry id=%q: zero ready time: %w", l.TaskID, broker.ErrInvalid)
	}
	return b.endAttempt(ctx, "retry", l, qRetry, at, errMsg, b.now())
}

// Kill ends the attempt under l with errMsg and moves the task to dead, counting a failed
// attempt. It returns an error wrapping broker.ErrLeaseLost when l is not held.
func (b *Broker) Kill(ctx context.Context, l broker.Lease, errMsg string) error {
	if b.closed.Load() {
		return errClosed("kill")
	}
	return b.endAttempt(ctx, "kill", l, qKill, errMsg, b.now())
}

// endAttempt runs the fenced statement t (qRetry or qKill) for l with args after the id
// and token.
func (b *Broker) endAttempt(ctx context.Context, op string, l broker.Lease, t string, args ...any) error {
	var n int64
	if err := b.queryRow(ctx, t, append([]any{l.TaskID, l.Token}, args...), &n); err != nil {
		return b.fail(ctx, fmt.Sprintf("%s id=%q", op, l.TaskID), err)
	}
	if n == 0 {
		return fmt.Errorf("brisk: postgres: %s: id=%q: %w", op, l.TaskID, broker.ErrLeaseLost)
	}
	return nil
}

// Release hands tasks back unrun in one statement: each becomes pending with its ReadyAt
// unchanged and the attempt it was reserved with given back. Leases not held are skipped.
func (b *Broker) Release(ctx context.Context, leases []broker.Lease) error {
	if b.closed.Load() {
		return errClosed("release")
	}
	if len(leases) == 0 {
		return nil
	}
	ids, tokens := leaseArrays(leases)
	if _, err := b.exec(ctx, qRelease, ids, tokens); err != nil {
		return b.fail(ctx, fmt.Sprintf("release %d tasks", len(leases)), err)
	}
	return nil
}

// ReleaseWorker makes every task running under workerID ready again (a task on its final
// attempt goes to dead with last_error "worker lost on the final attempt"; the attempts
// stay counted and are counted failed), removes the worker's record and returns how many
// tasks it took back, in one statement.
func (b *Broker) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("release worker")
	}
	if workerID == "" {
		return 0, fmt.Errorf("brisk: postgres: release worker: empty worker id: %w", broker.ErrInvalid)
	}
	var n int64
	if err := b.queryRow(ctx, qReleaseWorker, []any{workerID, b.now()}, &n); err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("release worker %q", workerID), err)
	}
	return int(n), nil
}

// RetryDead makes dead tasks of queue pending again with Attempt 0 and ReadyAt now (ids
// selects some, nil all) and wakes waiting workers. It returns how many moved.
func (b *Broker) RetryDead(ctx context.Context, queue string, ids []string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("retry dead")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: postgres: retry dead: %w", err)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	tag, err := b.exec(ctx, qRetryDead, queue, b.now(), ids)
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("retry dead tasks of queue %q", queue), err)
	}
	return int(tag.RowsAffected()), nil
}

// Delete removes tasks of queue in state (pending, scheduled or dead; not running); ids
// selects some, nil all of that state. It returns how many were removed.
func (b *Broker) Delete(ctx context.Context, queue string, state broker.State, ids []string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("delete")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: postgres: delete: %w", err)
	}
	t, ok := deleteQueries[state]
	if !ok {
		return 0, fmt.Errorf("brisk: postgres: delete from queue %q: unknown state %q: %w", queue, state, broker.ErrInvalid)
	}
	if state == broker.StateRunning {
		return 0, fmt.Errorf("brisk: postgres: delete from queue %q: running tasks cannot be deleted (wait for them, or kill them from the worker): %w", queue, broker.ErrInvalid)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	tag, err := b.exec(ctx, t, queue, b.now(), ids)
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("delete %s tasks of queue %q", state, queue), err)
	}
	return int(tag.RowsAffected()), nil
}

// stateWhere selects the tasks of one queue ($1) in a state at a time ($2), written so
// that PostgreSQL uses the partial index of the state.
var stateWhere = map[broker.State]string{
	broker.StatePending:   `state = 'pending' AND queue = $1 AND ready_at <= $2`,
	broker.StateScheduled: `state = 'pending' AND queue = $1 AND ready_at > $2`,
	broker.StateRunning:   `state = 'running' AND queue = $1 AND $2::timestamptz IS NOT NULL`,
	broker.StateDead:      `state = 'dead' AND queue = $1 AND $2::timestamptz IS NOT NULL`,
}

// deleteQueries and listQueries are the statements of Delete ($3: ids or NULL) and Tasks
// ($3 limit, $4 offset) per state.
var deleteQueries, listQueries = func() (map[broker.State]string, map[broker.State]string) {
	del, list := map[broker.State]string{}, map[broker.State]string{}
	for s, where := range stateWhere {
		del[s] = `DELETE FROM {{schema}}.tasks WHERE ` + where + ` AND ($3::text[] IS NULL OR id = ANY($3::text[]))`
		list[s] = `SELECT ` + taskCols + ` FROM {{schema}}.tasks WHERE ` + where + ` ORDER BY ready_at, seq LIMIT $3 OFFSET $4`
	}
	return del, list
}()
