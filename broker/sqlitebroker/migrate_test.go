package sqlitebroker_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// TestOpenMigratesVersion1 creates a file with the schema of version 1 (as brisk before
// pause/resume wrote it, testdata/schema_v1.sql) holding a task, opens it, and checks that
// it is migrated to version 2 and on to the current version: the queues table gains
// paused, the task and counters stay, and pausing works.
func TestOpenMigratesVersion1(t *testing.T) {
	t.Parallel()
	path, db := oldStore(t, 1, "INSERT INTO queues (name, sla_ns) VALUES ('old', 5000000000)")
	var cols int
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_info('queues') WHERE name = 'paused'").Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("the version 1 file already has queues.paused (%d, %v)", cols, err)
	}
	db.Close()

	b := open(t, path)
	wantVersion(t, path, 6)
	db = raw(t, path)
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_info('queues') WHERE name = 'paused'").Scan(&cols); err != nil || cols != 1 {
		t.Fatalf("queues.paused after migration: %d columns (%v), want 1", cols, err)
	}
	st, err := b.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Name != "old" || st[0].Pending != 1 || st[0].SLA != 5*time.Second || st[0].Paused {
		t.Fatalf("Stats after migration = %+v, want queue old, 1 pending, SLA 5s, not paused", st)
	}
	if err := b.PauseQueue(t.Context(), "old", true); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(t.Context(), broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "old"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 0 {
		t.Fatalf("Reserve from the paused migrated queue = %d tasks, %v; want none", len(got), err)
	}
	if err := b.PauseQueue(t.Context(), "old", false); err != nil {
		t.Fatal(err)
	}
	got, err = b.Reserve(t.Context(), broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "old"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != "t1" {
		t.Fatalf("Reserve after resume = %v, %v; want task t1", got, err)
	}
	// A second Open of the migrated file does nothing more.
	b.Close()
	open(t, path)
}

// TestOpenMigratesVersion2 creates a file with the schema of version 2 (as brisk before
// the store of dashboard samples wrote it, testdata/schema_v2.sql) holding a paused queue
// with a task, opens it, and checks that it is migrated to version 3: the samples table
// exists and takes samples, the queue keeps its task, SLA and pause, and DeleteQueue works.
func TestOpenMigratesVersion2(t *testing.T) {
	t.Parallel()
	path, db := oldStore(t, 2, "INSERT INTO queues (name, sla_ns, paused) VALUES ('old', 5000000000, 1)",
		"INSERT INTO queues (name) VALUES ('empty')")
	var tables int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'samples'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("the version 2 file already has a samples table (%d, %v)", tables, err)
	}
	db.Close()

	b := open(t, path)
	wantVersion(t, path, 6)
	st, err := b.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[1].Name != "old" || st[1].Pending != 1 || st[1].SLA != 5*time.Second || !st[1].Paused {
		t.Fatalf("Stats after migration = %+v, want queue old with 1 pending, SLA 5s, paused", st)
	}
	at := time.Now().Truncate(time.Millisecond)
	if err := b.AddSamples(t.Context(), []broker.QueueSample{{Queue: "old", At: at, Latency: time.Second, Completed: 3}}); err != nil {
		t.Fatalf("AddSamples after migration: %v", err)
	}
	got, err := b.Samples(t.Context(), at.Add(-time.Minute))
	if err != nil || len(got) != 1 || !got[0].At.Equal(at) || got[0].Completed != 3 {
		t.Fatalf("Samples after migration = %v, %v", got, err)
	}
	if err := b.DeleteQueue(t.Context(), "old"); !errors.Is(err, broker.ErrQueueNotEmpty) {
		t.Errorf("DeleteQueue of the migrated queue with a task = %v, want ErrQueueNotEmpty", err)
	}
	if err := b.DeleteQueue(t.Context(), "empty"); err != nil {
		t.Errorf("DeleteQueue of the migrated empty queue: %v", err)
	}
	// A second Open of the migrated file does nothing more.
	b.Close()
	open(t, path)
}

// oldStore writes a store of an older schema version: testdata/schema_v<version>.sql,
// brisk's application id, the version, then the statements given, and a pending task t1
// in queue old. It returns the file's path and the raw connection, still open.
func oldStore(t *testing.T, version int, stmts ...string) (string, *sql.DB) {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("schema_v%d.sql", version)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.db", version))
	db := raw(t, path)
	now := time.Now().UnixNano()
	for _, q := range append([]string{
		"PRAGMA journal_mode = WAL",
		string(schema),
		"PRAGMA application_id = 1651667819", // 0x6272736b, "brsk"
		fmt.Sprintf("PRAGMA user_version = %d", version),
	}, stmts...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, enqueued_at, ready_at)
		VALUES ('t1', 'old', 'x', x'7b7d', 'pending', 0, 3, ?, ?)`, now, now); err != nil {
		t.Fatal(err)
	}
	return path, db
}

// wantVersion checks the schema version of the file at path.
func wantVersion(t *testing.T, path string, want int) {
	t.Helper()
	var version int
	if err := raw(t, path).QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != want {
		t.Fatalf("user_version after Open = %d (%v), want %d", version, err, want)
	}
}

// TestOpenMigratesVersion5 creates a file with the schema of version 5 (before completed
// tasks were kept, testdata/schema_v5.sql) holding a pending task, opens it, and checks
// that it is migrated to version 6: the task is reserved and completed with a result kept
// for the queue's retention, counted as retained and not pending, and the kept row is
// removed once its retention has ended.
func TestOpenMigratesVersion5(t *testing.T) {
	t.Parallel()
	path, db := oldStore(t, 5, "INSERT INTO queues (name, sla_ns) VALUES ('old', 5000000000)")
	var cols int
	if err := db.QueryRow("SELECT count(*) FROM pragma_table_info('tasks') WHERE name = 'result'").Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("the version 5 file already has tasks.result (%d, %v)", cols, err)
	}
	db.Close()

	b := open(t, path)
	wantVersion(t, path, 6)
	ctx := t.Context()
	if err := b.SetRetention(ctx, "old", time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "old"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != "t1" {
		t.Fatalf("Reserve from the migrated queue = %v, %v; want task t1", got, err)
	}
	if err := b.Complete(ctx, []broker.Completion{{Lease: got[0].Lease, Result: []byte("42")}}); err != nil {
		t.Fatal(err)
	}
	task, err := b.Task(ctx, "t1")
	if err != nil || task.State != broker.StateCompleted || string(task.Result) != "42" || task.FinishedAt.IsZero() {
		t.Fatalf("Task(t1) after Complete = %+v, %v; want completed with result 42", task, err)
	}
	st, err := b.Stats(ctx)
	if err != nil || len(st) != 1 || st[0].Retained != 1 || st[0].Pending != 0 || st[0].Retention != time.Hour || st[0].Completed != 1 {
		t.Fatalf("Stats after Complete = %+v, %v; want 1 retained, none pending, retention 1h, 1 completed", st, err)
	}
	// The retention ends: the next write that purges removes the row.
	if _, err := raw(t, path).Exec("UPDATE tasks SET expires_at = 1 WHERE id = 't1'"); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, broker.WorkerInfo{ID: "w"}); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := raw(t, path).QueryRow("SELECT count(*) FROM tasks").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("tasks after the retention ended and a heartbeat: %d rows (%v), want 0", rows, err)
	}
	if st, err := b.Stats(ctx); err != nil || st[0].Retained != 0 {
		t.Fatalf("Stats after the purge = %+v, %v; want 0 retained", st, err)
	}
	b.Close()
	open(t, path)
}
