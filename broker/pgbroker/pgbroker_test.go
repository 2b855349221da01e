package pgbroker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/pgbroker"
	"github.com/briskq/brisk/internal/pgtest"
)

func open(t *testing.T, url string) *pgbroker.Broker {
	t.Helper()
	b, err := pgbroker.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// psql runs statements on the database of a broker URL, outside the broker.
func psql(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	conn := connect(t, url)
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	opts, err := pgbroker.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), opts.Pool.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	good := []struct {
		url    string
		schema string
		check  func(pgbroker.Options) bool
	}{
		{"postgres://u@h:5432/db", "", nil},
		{"postgresql://u@h/db?schema=jobs_2", "jobs_2", nil},
		{"postgres://u@h/db?statement_timeout=2s&acquire_timeout=1s&poll=250ms&max_payload=10",
			"", func(o pgbroker.Options) bool {
				return o.StatementTimeout == 2*time.Second && o.AcquireTimeout == time.Second && o.PollInterval == 250*time.Millisecond && o.MaxPayload == 10
			}},
		{"postgres://u@h/db?pool_max_conns=3&sslmode=disable", "", func(o pgbroker.Options) bool { return o.Pool.MaxConns == 3 }},
		{"postgres://u@h/db?migrate=false", "", func(o pgbroker.Options) bool { return o.NoMigrate }},
		{"postgres://u@h/db?sync_worker_commits=true", "", func(o pgbroker.Options) bool { return o.SyncWorkerCommits }},
		{"postgres://u@h/db?vacuum=off", "", func(o pgbroker.Options) bool { return o.VacuumInterval < 0 }},
		{"postgres://u@h/db?vacuum=1m", "", func(o pgbroker.Options) bool { return o.VacuumInterval == time.Minute }},
		{"postgres://u@h/db?search_path=x", "", func(o pgbroker.Options) bool { return o.Pool.ConnConfig.RuntimeParams["search_path"] == "x" }},
	}
	for _, c := range good {
		o, err := pgbroker.ParseURL(c.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if o.Schema != c.schema || (c.check != nil && !c.check(o)) {
			t.Errorf("ParseURL(%q) = schema %q %+v", c.url, o.Schema, o)
		}
	}
	bad := []struct{ url, mention string }{
		{"mysql://u@h/db", "scheme"},
		{"postgres://u@h/db?schema=Has-Dash", "schema"},
		{"postgres://u@h/db?schema=public", "schema"},
		{"postgres://u@h/db?schema=" + strings.Repeat("s", 49), "schema"},
		{"postgres://u@h/db?statement_timeout=soon", "statement_timeout"},
		{"postgres://u@h/db?max_payload=-1", "max_payload"},
		{"postgres://u@h/db?migrate=maybe", "migrate"},
		{"postgres://u@h/db?sync_worker_commits=sometimes", "sync_worker_commits"},
		{"postgres://u@h/db?vacuum=sometimes", "vacuum"},
		{"postgres://u@h/db?schema=a&schema=b", "schema"},
		{"postgres://u@h/db?pool_max_conns=lots", "pool_max_conns"},
	}
	for _, c := range bad {
		_, err := pgbroker.ParseURL(c.url)
		if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("ParseURL(%q) = %v, want an error wrapping ErrInvalid that mentions %s", c.url, err, c.mention)
		}
	}
}

// TestUpgradeFromFirstVersion opens a store that an older brisk left at schema version 1
// with tasks in it: Open migrates it, the tasks and counts are kept, and the wake-up of
// version 2 works.
func TestUpgradeFromFirstVersion(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "up")
	if err := pgbroker.MigrateTo(t.Context(), url, 1); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	psql(t, url, `INSERT INTO `+schema+`.queues (name, sla_ns) VALUES ('old', 5000000000)`)
	psql(t, url, `INSERT INTO `+schema+`.tasks (id, queue, type, payload, state, max_attempts, enqueued_at, ready_at)
		VALUES ('a', 'old', 't', '\x7b7d', 'pending', 3, now(), now()), ('b', 'old', 't', '', 'dead', 3, now(), now())`)

	b := open(t, url)
	var versions []int32
	rows, _ := connect(t, url).Query(t.Context(), `SELECT version FROM `+schema+`.schema_version ORDER BY version`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(versions) != pgbroker.SchemaVersion || versions[0] != 1 {
		t.Fatalf("schema_version after Open: %v (%v), want 1 to %d", versions, err, pgbroker.SchemaVersion)
	}
	stats, err := b.Stats(t.Context())
	if err != nil || len(stats) != 1 || stats[0].Pending != 1 || stats[0].Dead != 1 || stats[0].SLA != 5*time.Second {
		t.Fatalf("Stats after the upgrade: %+v (%v), want queue old with 1 pending, 1 dead, SLA 5s", stats, err)
	}
	got, err := b.Reserve(t.Context(), broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "old"}}, Limit: 5, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != "a" || string(got[0].Payload) != "{}" {
		t.Fatalf("Reserve after the upgrade: %v (%v), want task a", got, err)
	}
	// Version 2's trigger wakes a waiter on another broker value.
	other := open(t, url)
	done := make(chan error, 1)
	go func() { done <- other.Wait(t.Context(), []string{"old"}, time.Minute) }()
	time.Sleep(200 * time.Millisecond)
	if err := b.Enqueue(t.Context(), []*broker.Task{brokertest.NewTask("old", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait was not woken by an Enqueue after the upgrade")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "newer")
	open(t, url).Close()
	psql(t, url, `INSERT INTO `+schema+`.schema_version (version) VALUES (99)`)
	_, err := pgbroker.Open(t.Context(), url)
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a schema at version 99: %v, want ErrInvalid saying it is newer", err)
	}
}

// TestMigrateYourself: with migrate=false Open refuses a schema it would have to migrate;
// the script of MigrationScript, applied by the team's own tool, makes it openable.
func TestMigrateYourself(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "own")
	noMigrate := url + "&migrate=false"
	_, err := pgbroker.Open(t.Context(), noMigrate)
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "brisk migrate") {
		t.Fatalf("Open with migrate=false of an empty schema: %v, want ErrInvalid naming brisk migrate", err)
	}
	script, err := pgbroker.MigrationScript(schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), script); err != nil {
		t.Fatalf("applying the migration script: %v\n%s", err, script)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := open(t, noMigrate)
	if err := b.Enqueue(t.Context(), []*broker.Task{brokertest.NewTask("q", "t", nil)}); err != nil {
		t.Fatalf("Enqueue on a schema migrated by the script: %v", err)
	}
	from, to, err := pgbroker.Migrate(t.Context(), url)
	if err != nil || from != pgbroker.SchemaVersion || to != pgbroker.SchemaVersion {
		t.Errorf("Migrate of an up-to-date schema: %d→%d, %v", from, to, err)
	}
}

// TestConcurrentOpen: brokers that open a fresh schema at once apply the migrations once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewSchema(t, pgtest.URL(t), "conc")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := pgbroker.Open(t.Context(), url)
			if err == nil {
				b.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

// TestStatementTimeoutAndPoolExhaustion: a statement blocked by a lock held outside
// fails at the statement timeout; meanwhile a call that finds the only connection of the
// pool busy fails at the acquire timeout, saying so, instead of hanging.
func TestStatementTimeoutAndPoolExhaustion(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "pool")
	open(t, url).Close() // migrate
	b := open(t, url+"&pool_max_conns=1&statement_timeout=1500ms&acquire_timeout=200ms")

	locker := connect(t, url)
	tx, err := locker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `LOCK TABLE `+schema+`.tasks IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	start := time.Now()
	go func() { blocked <- b.Enqueue(context.Background(), []*broker.Task{brokertest.NewTask("q", "t", nil)}) }()
	time.Sleep(300 * time.Millisecond) // the Enqueue holds the pool's only connection

	_, err = b.Stats(t.Context())
	if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "pool exhausted") {
		t.Errorf("Stats while the pool's only connection is busy: %v, want ErrUnavailable saying the pool is exhausted", err)
	}
	select {
	case err := <-blocked:
		took := time.Since(start)
		if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "statement timeout") {
			t.Errorf("Enqueue blocked by a lock: %v (after %s), want ErrUnavailable from the statement timeout", err, took)
		}
		t.Logf("Enqueue blocked by a lock failed after %s: %v", took.Round(time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatal("Enqueue blocked by a lock did not fail within 30s: no statement timeout")
	}
	tx.Rollback(t.Context())
	if _, err := b.Stats(t.Context()); err != nil {
		t.Errorf("Stats after the lock is gone: %v", err)
	}
}

// TestVacuum: the broker vacuums its churning tables itself once they have dead rows (the
// server's autovacuum may be off, as on this project's machines).
func TestVacuum(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "vac")
	b := open(t, url+"&vacuum=off")
	ctx := t.Context()
	if err := b.Enqueue(ctx, brokertest.NewTasks("q", "t", 200)); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 50, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if err := b.Ack(ctx, leasesOf(got)); err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The statistics that tell dead rows reach the server within a second or so.
		if err := b.Vacuum(ctx, 0); err != nil {
			t.Fatalf("vacuum: %v", err)
		}
		var vacuums int64
		if err := conn.QueryRow(ctx, `SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'`, schema).Scan(&vacuums); err != nil {
			t.Fatal(err)
		}
		if vacuums > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker did not vacuum tasks after 200 tasks were reserved and acked")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func leasesOf(tasks []*broker.Task) []broker.Lease {
	out := make([]broker.Lease, len(tasks))
	for i, t := range tasks {
		out[i] = t.Lease
	}
	return out
}

// TestFailedEnqueueLeavesConnectionClean: Enqueue sends its statement and the wake-up in
// one pipeline; when the statement fails (a duplicate committed by a concurrent
// transaction, a statement timeout) the caller gets the error it always got, and the
// pool's only connection is idle and in use again, not left in a failed transaction.
func TestFailedEnqueueLeavesConnectionClean(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "pipe")
	app := "brisk_" + schema
	b := open(t, url+"&pool_max_conns=1&statement_timeout=1s&application_name="+app)
	outside := connect(t, url)
	backend := func() (pid int32, state string) {
		t.Helper()
		if err := outside.QueryRow(ctx, `SELECT pid, state FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&pid, &state); err != nil {
			t.Fatalf("the broker's connection in pg_stat_activity: %v", err)
		}
		return pid, state
	}
	// waitBlocked waits until the broker's statement waits for a lock.
	waitBlocked := func() {
		t.Helper()
		for range 500 {
			var n int
			if err := outside.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatal("the broker's Enqueue never waited for the lock")
	}
	first := brokertest.NewTask("q", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{first}); err != nil {
		t.Fatal(err)
	}
	pid, _ := backend()

	// A duplicate that a concurrent transaction commits while the statement waits for it.
	dup := brokertest.NewTask("q", "t", nil)
	tx, err := connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnqueueTx(ctx, tx, []*broker.Task{dup}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Enqueue(context.Background(), []*broker.Task{dup}) }()
	waitBlocked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, broker.ErrDuplicate) || !strings.Contains(err.Error(), "concurrent transaction") {
		t.Errorf("Enqueue of an ID a concurrent transaction committed: %v, want ErrDuplicate", err)
	}
	if p, state := backend(); p != pid || state != "idle" {
		t.Errorf("after the duplicate: the broker's connection is pid %d in state %q, want pid %d idle", p, state, pid)
	}

	// A statement timeout while an outside transaction locks the table.
	lock, err := outside.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE `+schema+`.tasks IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	timedOut := brokertest.NewTask("q", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{timedOut}); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "statement timeout") {
		t.Errorf("Enqueue blocked by a lock: %v, want ErrUnavailable from the statement timeout", err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if p, state := backend(); p != pid || state != "idle" {
		t.Errorf("after the statement timeout: the broker's connection is pid %d in state %q, want pid %d idle", p, state, pid)
	}

	last := brokertest.NewTask("q", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{last}); err != nil {
		t.Fatalf("Enqueue after the failures: %v", err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 10, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range got {
		ids = append(ids, task.ID)
	}
	if want := []string{first.ID, dup.ID, last.ID}; !slices.Equal(ids, want) {
		t.Errorf("reserved %q, want %q (the timed-out task not stored)", ids, want)
	}
	if p, state := backend(); p != pid || state != "idle" {
		t.Errorf("at the end: the broker's connection is pid %d in state %q, want pid %d idle", p, state, pid)
	}
}

// TestCountsMatchRows: the counting triggers and the statements that add completed and
// failed counts themselves keep Stats equal to the rows by state, through every path that
// changes a task: Enqueue and EnqueueTx, Reserve and its reclaim of expired leases (taken
// again, or dead on the last attempt), Extend, Retry, Kill, Release, AckReserve (two
// statements in one transaction), Ack, and an UPDATE written by hand.
func TestCountsMatchRows(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "counts")
	b := open(t, url)
	ctx := t.Context()
	conn := connect(t, url)
	check := func(when string) {
		t.Helper()
		var pending, scheduled, running, dead int64
		if err := conn.QueryRow(ctx, `SELECT
				count(*) FILTER (WHERE state = 'pending' AND ready_at <= now()),
				count(*) FILTER (WHERE state = 'pending' AND ready_at > now()),
				count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'dead')
			FROM `+schema+`.tasks WHERE queue = 'q'`).Scan(&pending, &scheduled, &running, &dead); err != nil {
			t.Fatal(err)
		}
		st, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got broker.QueueStats
		for _, q := range st {
			if q.Name == "q" {
				got = q
			}
		}
		if got.Pending+got.Scheduled != pending+scheduled || got.Running != running || got.Dead != dead {
			t.Fatalf("%s: Stats says waiting %d, running %d, dead %d; the rows say waiting %d, running %d, dead %d",
				when, got.Pending+got.Scheduled, got.Running, got.Dead, pending+scheduled, running, dead)
		}
	}
	reserve := func(n int, lease time.Duration) []*broker.Task {
		t.Helper()
		got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: n, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tasks := brokertest.NewTasks("q", "t", 40)
	for _, task := range tasks[:5] {
		task.MaxAttempts = 1
	}
	if err := b.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	check("after Enqueue")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnqueueTx(ctx, tx, brokertest.NewTasks("q", "t", 3)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	check("after EnqueueTx")

	// Leases that expire: the ones on their last attempt go dead, the others are taken again.
	short := reserve(10, 50*time.Millisecond)
	check("after Reserve")
	time.Sleep(100 * time.Millisecond)
	again := reserve(20, time.Minute)
	check("after a Reserve that reclaimed expired leases")
	if len(short) == 0 || len(again) == 0 {
		t.Fatalf("reserved %d, then %d", len(short), len(again))
	}
	if _, err := b.Extend(ctx, leasesOf(again[:3]), time.Minute); err != nil {
		t.Fatal(err)
	}
	check("after Extend")
	if err := b.Retry(ctx, again[0].Lease, time.Now().Add(time.Hour), "later"); err != nil {
		t.Fatal(err)
	}
	if err := b.Kill(ctx, again[1].Lease, "never"); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, leasesOf(again[2:4])); err != nil {
		t.Fatal(err)
	}
	check("after Retry, Kill and Release")
	more, ackErr, err := b.AckReserve(ctx, leasesOf(again[4:]), broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 5, Lease: time.Minute})
	if err != nil || ackErr != nil {
		t.Fatalf("AckReserve: %v, %v", ackErr, err)
	}
	check("after AckReserve")
	if err := b.Ack(ctx, leasesOf(more)); err != nil {
		t.Fatal(err)
	}
	psql(t, url, `UPDATE `+schema+`.tasks SET state = 'dead' WHERE id = (SELECT id FROM `+schema+`.tasks WHERE state = 'pending' LIMIT 1)`)
	check("after Ack and an UPDATE by hand")
}
