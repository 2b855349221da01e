package sqlitebroker_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/sqlitebroker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// setup opens a broker on a fresh file and returns it with the file's path.
func setup(t *testing.T) (*sqlitebroker.Broker, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "brisk.db")
	return open(t, path), path
}

// open opens another broker on path, closed when the test ends.
func open(t *testing.T, path string) *sqlitebroker.Broker {
	t.Helper()
	b, err := sqlitebroker.Open(t.Context(), path, sqlitebroker.Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// raw opens the file with the driver alone, as another program (or a person with the
// sqlite3 shell) would.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTask(queue string) *broker.Task {
	now := time.Now()
	return &broker.Task{
		TaskInfo: brisktype.TaskInfo{
			ID:          uuid.Must(uuid.NewV7()).String(),
			Queue:       queue,
			Type:        "test.task",
			Payload:     []byte(`{"n":1}`),
			MaxAttempts: 3,
			EnqueuedAt:  now,
			ReadyAt:     now,
		},
	}
}

func enqueue(t *testing.T, b broker.Broker, tasks ...*broker.Task) {
	t.Helper()
	if err := b.Enqueue(t.Context(), tasks); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

func reserve(t *testing.T, b broker.Broker, queue string, limit int, lease time.Duration, worker string) []*broker.Task {
	t.Helper()
	got, err := b.Reserve(t.Context(), broker.ReserveParams{
		Queues: []broker.QueueLimit{{Name: queue}}, Limit: limit, Lease: lease, WorkerID: worker,
	})
	if err != nil {
		t.Fatalf("Reserve from %q: %v", queue, err)
	}
	return got
}

func wantErr(t *testing.T, what string, err, sentinel error, words ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, sentinel)
		return
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "brisk: sqlite: ") || strings.Contains(msg, "\n") {
		t.Errorf("%s: error %q is not one line starting with \"brisk: sqlite: \"", what, msg)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not mention %q", what, msg, w)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	for _, path := range []string{"/nonexistent/dir/x.db", "/proc/brisk-test.db", dir} {
		_, err := sqlitebroker.Open(ctx, path, sqlitebroker.Options{})
		wantErr(t, "Open("+path+")", err, broker.ErrUnavailable, `open "`+path+`"`)
	}
	_, err := broker.Open(ctx, "sqlite://"+filepath.Join(dir, "x.db")+"?journal=wal")
	wantErr(t, "an unknown URL parameter", err, broker.ErrInvalid, "journal")
	if _, err := os.Stat(filepath.Join(dir, "x.db")); !os.IsNotExist(err) {
		t.Errorf("Open with a bad URL created the file (stat: %v)", err)
	}
	_, err = sqlitebroker.Open(ctx, ":memory:", sqlitebroker.Options{})
	wantErr(t, "Open(:memory:)", err, broker.ErrInvalid)

	if os.Geteuid() == 0 {
		t.Log("running as root, who may write anywhere: read-only directory not checked")
		return
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err = sqlitebroker.Open(ctx, filepath.Join(ro, "x.db"), sqlitebroker.Options{})
	wantErr(t, "Open in a read-only directory", err, broker.ErrUnavailable, ro)
}

func TestOpenLeavesOtherFilesUntouched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	notDB := filepath.Join(dir, "notes.txt")
	content := bytes.Repeat([]byte("these are my notes, not a database\n"), 300)
	if err := os.WriteFile(notDB, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sqlitebroker.Open(t.Context(), notDB, sqlitebroker.Options{})
	wantErr(t, "Open of a text file", err, broker.ErrUnavailable, notDB, "not a database")
	if got, _ := os.ReadFile(notDB); !bytes.Equal(got, content) {
		t.Errorf("Open changed the text file it refused (%d bytes, had %d)", len(got), len(content))
	}
	if left, _ := filepath.Glob(notDB + "-*"); len(left) > 0 {
		t.Errorf("Open left files beside the text file it refused: %v", left)
	}

	other := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(other)
	_, err = sqlitebroker.Open(t.Context(), other, sqlitebroker.Options{})
	wantErr(t, "Open of another application's database", err, broker.ErrUnavailable, "another application")
	if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
		t.Errorf("Open changed another application's database it refused")
	}
}

func TestURLForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := t.Context()
	for _, c := range []struct{ url, file string }{
		{"sqlite://./dot.db", "dot.db"},
		{"sqlite://host.db", "host.db"},
		{"sqlite:opaque.db", "opaque.db"},
		{"sqlite://" + filepath.Join(dir, "abs.db"), "abs.db"},
		{"sqlite://./sub/../nested.db?synchronous=full&poll=5ms&busy_timeout=1s&max_payload=10", "nested.db"},
	} {
		b, err := broker.Open(ctx, c.url)
		if err != nil {
			t.Errorf("broker.Open(%q): %v", c.url, err)
			continue
		}
		b.Close()
		if _, err := os.Stat(filepath.Join(dir, c.file)); err != nil {
			t.Errorf("broker.Open(%q) did not create %s: %v", c.url, c.file, err)
		}
	}
	// The last URL set max_payload=10.
	b, err := broker.Open(ctx, "sqlite://./limited.db?max_payload=10")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	task := newTask("q")
	task.Payload = []byte("eleven byte")
	wantErr(t, "a payload over max_payload", b.Enqueue(ctx, []*broker.Task{task}), broker.ErrPayloadTooLarge)
}

func TestReopenKeepsTasks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "brisk.db")
	b, err := sqlitebroker.Open(t.Context(), path, sqlitebroker.Options{Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	task := newTask("q")
	enqueue(t, b, task)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, path)
	got, err := b.Task(t.Context(), task.ID)
	if err != nil {
		t.Fatalf("Task after reopening: %v", err)
	}
	if !bytes.Equal(got.Payload, task.Payload) || !got.ReadyAt.Equal(task.ReadyAt) || got.State != broker.StatePending {
		t.Errorf("after reopening: %+v", got)
	}
	var version, appID int
	db := raw(t, path)
	db.QueryRow("PRAGMA user_version").Scan(&version)
	db.QueryRow("PRAGMA application_id").Scan(&appID)
	var mode string
	db.QueryRow("PRAGMA journal_mode").Scan(&mode)
	if version != 6 || appID == 0 || mode != "wal" {
		t.Errorf("user_version %d, application_id %#x, journal_mode %s; want 6, brisk's, wal", version, appID, mode)
	}
}

func TestEnqueueDuplicateStoresNothing(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	first := newTask("q")
	enqueue(t, b, first)
	a, c := newTask("q"), newTask("q")
	dup := *first
	err := b.Enqueue(t.Context(), []*broker.Task{a, &dup, c})
	wantErr(t, "Enqueue with a stored id", err, broker.ErrDuplicate, first.ID)
	for _, id := range []string{a.ID, c.ID} {
		if _, err := b.Task(t.Context(), id); !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("task %s of the refused batch: %v, want ErrNotFound", id, err)
		}
	}
	stats, _ := b.Stats(t.Context())
	if len(stats) != 1 || stats[0].Pending != 1 {
		t.Errorf("stats after a refused batch: %+v", stats)
	}
}

// TestCorruptRows writes rows by hand that the broker cannot decode and checks that the
// other tasks are not affected.
func TestCorruptRows(t *testing.T) {
	t.Parallel()
	b, path := setup(t)
	ctx := t.Context()
	good1, good2 := newTask("q"), newTask("q")
	enqueue(t, b, good1, good2)
	db := raw(t, path)
	old := time.Now().Add(-time.Hour).UnixNano()
	for _, stmt := range []string{
		// Older than the good tasks, so Reserve meets it first.
		fmt.Sprintf(`INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, timeout_ns, enqueued_at, ready_at)
			VALUES ('bad-null-type', 'q', NULL, X'', 'pending', 0, 3, 0, %d, %d)`, old, old),
		fmt.Sprintf(`INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, timeout_ns, enqueued_at, ready_at)
			VALUES ('bad-state', 'q', 't', X'', 'paused', 0, 3, 0, %d, %d)`, old, old),
		fmt.Sprintf(`INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, timeout_ns, enqueued_at, ready_at)
			VALUES ('bad-time', 'q', 't', X'', 'pending', 0, 3, 0, %d, 'yesterday')`, old),
		fmt.Sprintf(`INSERT INTO tasks (id, queue, type, payload, state, attempt, max_attempts, timeout_ns, enqueued_at, ready_at)
			VALUES ('bad-attempts', 'q', 't', X'', 'pending', 0, 'many', 0, %d, %d)`, old, old+1),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}

	got := reserve(t, b, "q", 10, time.Minute, "w")
	ids := []string{}
	for _, task := range got {
		ids = append(ids, task.ID)
	}
	if !slices.Equal(ids, []string{good1.ID, good2.ID}) {
		t.Errorf("Reserve returned %v, want the two good tasks", ids)
	}
	for id, want := range map[string]string{
		"bad-null-type": "corrupt task row: type is NULL",
		"bad-attempts":  `corrupt task row: max_attempts is the text "many", not an integer`,
	} {
		var state, lastErr string
		if err := db.QueryRow(`SELECT state, last_error FROM tasks WHERE id = ?`, id).Scan(&state, &lastErr); err != nil {
			t.Fatal(err)
		}
		if state != "dead" || lastErr != want {
			t.Errorf("%s after Reserve: state %s, last_error %q; want dead, %q", id, state, lastErr, want)
		}
	}

	for id, words := range map[string][]string{
		"bad-null-type": {"type is NULL"},
		"bad-state":     {`unknown state "paused"`},
		"bad-time":      {`ready_at is the text "yesterday"`},
	} {
		_, err := b.Task(ctx, id)
		wantErr(t, "Task("+id+")", err, sqlitebroker.ErrCorrupt, append(words, id)...)
	}
	_, err := b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StateScheduled})
	wantErr(t, "listing the scheduled tasks", err, sqlitebroker.ErrCorrupt, "bad-time")
	_, err = b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StateDead})
	wantErr(t, "listing the dead tasks", err, sqlitebroker.ErrCorrupt, "bad-")

	// The rest still works.
	if _, err := b.Stats(ctx); err != nil {
		t.Errorf("Stats: %v", err)
	}
	if err := b.Wait(ctx, []string{"q"}, time.Millisecond); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if running, err := b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StateRunning}); err != nil || len(running) != 2 {
		t.Errorf("listing the running tasks: %d, %v", len(running), err)
	}
	if err := b.Ack(ctx, []broker.Lease{got[0].Lease, got[1].Lease}); err != nil {
		t.Errorf("Ack of the good tasks: %v", err)
	}
	if n, err := b.Delete(ctx, "q", broker.StateDead, nil); err != nil || n != 2 {
		t.Errorf("Delete of the dead rows: %d, %v", n, err)
	}
}

// TestCountersMatchRows runs a mix of operations and compares the counters that Stats reads
// with counts of the rows.
func TestCountersMatchRows(t *testing.T) {
	t.Parallel()
	b, path := setup(t)
	ctx := t.Context()
	if err := b.DeclareQueue(ctx, broker.QueueConfig{Name: "q1", SLA: time.Second}); err != nil {
		t.Fatal(err)
	}
	var q1, q2 []*broker.Task
	for i := range 30 {
		task := newTask("q1")
		if i%10 == 0 {
			task.ReadyAt = task.ReadyAt.Add(time.Hour)
		}
		q1 = append(q1, task)
	}
	for i := range 20 {
		task := newTask("q2")
		if i < 3 {
			task.MaxAttempts = 1
		}
		q2 = append(q2, task)
	}
	enqueue(t, b, q1...)
	for _, task := range q2 {
		enqueue(t, b, task)
	}

	r1 := reserve(t, b, "q1", 10, time.Minute, "w1")
	r2 := reserve(t, b, "q2", 5, 50*time.Millisecond, "w2")
	if len(r1) != 10 || len(r2) != 5 {
		t.Fatalf("reserved %d and %d", len(r1), len(r2))
	}
	if err := b.Ack(ctx, []broker.Lease{r1[0].Lease, r1[1].Lease, r1[2].Lease}); err != nil {
		t.Fatal(err)
	}
	if err := b.Retry(ctx, r1[3].Lease, time.Now().Add(time.Hour), "later"); err != nil {
		t.Fatal(err)
	}
	if err := b.Retry(ctx, r1[4].Lease, time.Now(), "now"); err != nil {
		t.Fatal(err)
	}
	if err := b.Kill(ctx, r1[5].Lease, "no"); err != nil {
		t.Fatal(err)
	}
	if err := b.Kill(ctx, r1[6].Lease, "no"); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, []broker.Lease{r1[7].Lease}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, broker.WorkerInfo{ID: "w1", Queues: []string{"q1"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ReleaseWorker(ctx, "w1"); err != nil || n != 2 {
		t.Fatalf("ReleaseWorker: %d, %v; want 2", n, err)
	}
	time.Sleep(60 * time.Millisecond) // r2's leases expire
	again := reserve(t, b, "q2", 2, time.Minute, "w3")
	if len(again) != 2 {
		t.Fatalf("reserved %d from q2 after the leases expired, want 2", len(again))
	}
	if n, err := b.RetryDead(ctx, "q1", []string{r1[5].ID}); err != nil || n != 1 {
		t.Fatalf("RetryDead: %d, %v", n, err)
	}
	if n, err := b.Delete(ctx, "q1", broker.StateScheduled, []string{q1[0].ID}); err != nil || n != 1 {
		t.Fatalf("Delete scheduled: %d, %v", n, err)
	}
	if n, err := b.Delete(ctx, "q2", broker.StatePending, []string{q2[19].ID, q2[18].ID}); err != nil || n != 2 {
		t.Fatalf("Delete pending: %d, %v", n, err)
	}
	if n, err := b.Delete(ctx, "q2", broker.StateDead, nil); err != nil || n == 0 {
		t.Fatalf("Delete dead: %d, %v", n, err)
	}
	if _, err := b.Delete(ctx, "q2", broker.StateRunning, nil); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("Delete of running tasks: %v, want ErrInvalid", err)
	}
	// Hand edits (an operator with the sqlite3 shell) keep the counters right too.
	db := raw(t, path)
	if _, err := db.Exec(`DELETE FROM tasks WHERE id = ?`, q2[17].ID); err != nil {
		t.Fatal(err)
	}

	stats, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for _, s := range stats {
		var pending, scheduled, running, dead int64
		db.QueryRow(`SELECT count(*) FROM tasks WHERE queue = ? AND state = 'pending' AND ready_at <= ?`, s.Name, now).Scan(&pending)
		db.QueryRow(`SELECT count(*) FROM tasks WHERE queue = ? AND state = 'pending' AND ready_at > ?`, s.Name, now).Scan(&scheduled)
		db.QueryRow(`SELECT count(*) FROM tasks WHERE queue = ? AND state = 'running'`, s.Name).Scan(&running)
		db.QueryRow(`SELECT count(*) FROM tasks WHERE queue = ? AND state = 'dead'`, s.Name).Scan(&dead)
		if s.Pending != pending || s.Scheduled != scheduled || s.Running != running || s.Dead != dead {
			t.Errorf("queue %s: Stats pending/scheduled/running/dead %d/%d/%d/%d, rows %d/%d/%d/%d",
				s.Name, s.Pending, s.Scheduled, s.Running, s.Dead, pending, scheduled, running, dead)
		}
		var waiting, cr, cd int64
		db.QueryRow(`SELECT waiting, running, dead FROM queues WHERE name = ?`, s.Name).Scan(&waiting, &cr, &cd)
		if waiting != pending+scheduled || cr != running || cd != dead {
			t.Errorf("queue %s: counters waiting/running/dead %d/%d/%d, rows %d/%d/%d", s.Name, waiting, cr, cd, pending+scheduled, running, dead)
		}
	}
	want := map[string][2]int64{"q1": {3, 6}, "q2": {0, 5}} // completed, failed
	for _, s := range stats {
		if w := want[s.Name]; s.Completed != w[0] || s.Failed != w[1] {
			t.Errorf("queue %s: completed %d failed %d, want %d %d", s.Name, s.Completed, s.Failed, w[0], w[1])
		}
	}
	if len(stats) != 2 || stats[0].Name != "q1" || stats[0].SLA != time.Second || stats[1].SLA != 0 {
		t.Errorf("stats: %+v", stats)
	}
}

func TestStatsLatency(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	ctx := t.Context()
	now := time.Now()
	a, bb, c := newTask("q"), newTask("q"), newTask("q")
	a.ReadyAt, bb.ReadyAt, c.ReadyAt = now.Add(-3*time.Second), now.Add(-time.Second), now.Add(time.Hour)
	enqueue(t, b, c, bb, a)
	if err := b.DeclareQueue(ctx, broker.QueueConfig{Name: "empty", SLA: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	check := func(oldest time.Time, pending int64) {
		t.Helper()
		stats, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Name != "empty" || stats[1].Name != "q" {
			t.Fatalf("stats: %+v", stats)
		}
		e, s := stats[0], stats[1]
		if e.Latency != 0 || !e.OldestReadyAt.IsZero() || e.SLA != 5*time.Second || e.Pending != 0 {
			t.Errorf("empty queue: %+v", e)
		}
		want := time.Since(oldest)
		if !s.OldestReadyAt.Equal(oldest) || s.Latency > want || s.Latency < want-time.Second {
			t.Errorf("queue latency %s, oldest %s; want about %s, %s", s.Latency, s.OldestReadyAt, want, oldest)
		}
		if s.Pending != pending || s.Scheduled != 1 {
			t.Errorf("pending %d scheduled %d, want %d 1", s.Pending, s.Scheduled, pending)
		}
	}
	check(a.ReadyAt, 2)
	got := reserve(t, b, "q", 1, time.Minute, "")
	if len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("reserved %v, want the oldest", got)
	}
	check(bb.ReadyAt, 1)
}

// waitReturn runs Wait in a goroutine and returns a channel that gets its result and time.
func waitReturn(ctx context.Context, b broker.Broker, queues []string, max time.Duration) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		err := b.Wait(ctx, queues, max)
		ch <- waitResult{err, time.Now()}
	}()
	return ch
}

type waitResult struct {
	err error
	at  time.Time
}

// TestWakeUpInProcess checks that an Enqueue through one Broker wakes a Wait on another
// Broker value on the same file at once.
func TestWakeUpInProcess(t *testing.T) {
	t.Parallel()
	b1, path := setup(t)
	b2 := open(t, path)
	var took []time.Duration
	for range 5 {
		ch := waitReturn(t.Context(), b1, []string{"q"}, 10*time.Second)
		time.Sleep(30 * time.Millisecond) // let Wait settle
		task := newTask("q")
		enqueue(t, b2, task)
		done := time.Now()
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		took = append(took, r.at.Sub(done))
		got := reserve(t, b1, "q", 1, time.Minute, "")
		if len(got) != 1 {
			t.Fatal("nothing to reserve after the wake-up")
		}
	}
	slices.Sort(took)
	t.Logf("in-process wake-up after Enqueue returned: %v", took)
	if took[len(took)/2] > 5*time.Millisecond {
		t.Errorf("median wake-up %s, want under 5ms", took[len(took)/2])
	}
}

// TestWakeUpAcrossConnections writes a task with another connection, as another process
// would, and checks that Wait notices within a few poll intervals.
func TestWakeUpAcrossConnections(t *testing.T) {
	t.Parallel()
	b, path := setup(t)
	enqueue(t, b, newTask("q")) // creates the queue
	reserve(t, b, "q", 1, time.Minute, "")
	db := raw(t, path)
	ch := waitReturn(t.Context(), b, []string{"q"}, 10*time.Second)
	time.Sleep(50 * time.Millisecond)
	now := time.Now().UnixNano()
	if _, err := db.Exec(`INSERT INTO tasks (id, queue, type, payload, state, max_attempts, enqueued_at, ready_at)
		VALUES ('from-elsewhere', 'q', 't', X'', 'pending', 3, ?, ?)`, now, now); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	took := r.at.Sub(done)
	t.Logf("wake-up after a commit by another connection: %s", took)
	if took > time.Second {
		t.Errorf("Wait noticed another connection's commit after %s, want about the poll interval (10ms)", took)
	}
}

func TestWaitWhenDue(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	ctx := t.Context()

	start := time.Now()
	if err := b.Wait(ctx, []string{"q"}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Errorf("Wait on an empty queue returned after %s, before max", took)
	}

	task := newTask("q")
	task.ReadyAt = time.Now().Add(150 * time.Millisecond)
	enqueue(t, b, task)
	if err := b.Wait(ctx, []string{"q"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if late := time.Since(task.ReadyAt); late < 0 || late > 500*time.Millisecond {
		t.Errorf("Wait returned %s after the task was due", late)
	}
	got := reserve(t, b, "q", 1, 150*time.Millisecond, "")
	if len(got) != 1 {
		t.Fatal("nothing reserved when due")
	}
	start = time.Now()
	if err := b.Wait(ctx, []string{"q"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if late := time.Since(got[0].LeaseUntil); late < 0 || late > 500*time.Millisecond {
		t.Errorf("Wait returned %s after the lease expired (waited %s)", late, time.Since(start))
	}
	// A ready task: at once.
	start = time.Now()
	if err := b.Wait(ctx, []string{"q"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Wait with a task ready took %s", took)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	b, path := setup(t)
	other := open(t, path)
	ctx := t.Context()
	ch := waitReturn(ctx, b, []string{"q"}, time.Minute)
	time.Sleep(30 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-ch:
		wantErr(t, "Wait during Close", r.err, broker.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Wait")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	task := newTask("q")
	calls := map[string]error{
		"Enqueue": b.Enqueue(ctx, []*broker.Task{task}),
		"Reserve": func() error {
			_, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Second})
			return err
		}(),
		"Extend":       func() error { _, err := b.Extend(ctx, []broker.Lease{{TaskID: "x"}}, time.Second); return err }(),
		"Ack":          b.Ack(ctx, []broker.Lease{{TaskID: "x"}}),
		"Retry":        b.Retry(ctx, broker.Lease{TaskID: "x"}, time.Now(), "e"),
		"Kill":         b.Kill(ctx, broker.Lease{TaskID: "x"}, "e"),
		"Release":      b.Release(ctx, []broker.Lease{{TaskID: "x"}}),
		"Wait":         b.Wait(ctx, []string{"q"}, time.Second),
		"DeclareQueue": b.DeclareQueue(ctx, broker.QueueConfig{Name: "q"}),
		"Stats":        func() error { _, err := b.Stats(ctx); return err }(),
		"Tasks": func() error {
			_, err := b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StateDead})
			return err
		}(),
		"Task":          func() error { _, err := b.Task(ctx, "x"); return err }(),
		"RetryDead":     func() error { _, err := b.RetryDead(ctx, "q", nil); return err }(),
		"Delete":        func() error { _, err := b.Delete(ctx, "q", broker.StateDead, nil); return err }(),
		"Heartbeat":     b.Heartbeat(ctx, broker.WorkerInfo{ID: "w"}),
		"Deregister":    b.Deregister(ctx, "w"),
		"Workers":       func() error { _, err := b.Workers(ctx, time.Time{}); return err }(),
		"ReleaseWorker": func() error { _, err := b.ReleaseWorker(ctx, "w"); return err }(),
	}
	for name, err := range calls {
		wantErr(t, name+" after Close", err, broker.ErrClosed)
	}
	// Another broker on the file is unaffected, wake-ups included.
	ch = waitReturn(ctx, other, []string{"q"}, time.Minute)
	time.Sleep(30 * time.Millisecond)
	enqueue(t, other, task)
	select {
	case r := <-ch:
		if r.err != nil {
			t.Errorf("Wait on the other broker: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the other broker's Wait was not woken after the first was closed")
	}
}

// TestNoDoubleDelivery races workers on two Broker values over one file.
func TestNoDoubleDelivery(t *testing.T) {
	t.Parallel()
	b1, path := setup(t)
	b2 := open(t, path)
	const n = 200
	var tasks []*broker.Task
	for range n {
		tasks = append(tasks, newTask("q"))
	}
	enqueue(t, b1, tasks...)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for i := range 4 {
		b := []*sqlitebroker.Broker{b1, b2}[i%2]
		wg.Go(func() {
			for {
				got, err := b.Reserve(t.Context(), broker.ReserveParams{
					Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 3, Lease: time.Minute, WorkerID: fmt.Sprint("w", i),
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				var leases []broker.Lease
				mu.Lock()
				for _, task := range got {
					seen[task.ID]++
					leases = append(leases, task.Lease)
				}
				mu.Unlock()
				if err := b.Ack(t.Context(), leases); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("delivered %d distinct tasks, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("task %s delivered %d times", id, c)
		}
	}
	stats, _ := b1.Stats(t.Context())
	if len(stats) != 1 || stats[0].Completed != n || stats[0].Pending != 0 || stats[0].Running != 0 {
		t.Errorf("stats after draining: %+v", stats)
	}
}

func TestWorkers(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Minute)
	w := broker.WorkerInfo{ID: "w1", Host: "h", PID: 42, Queues: []string{"a", "b"}, Concurrency: 8, Busy: 3,
		StartedAt: start, LastSeen: time.Now(), Version: "v1"}
	if err := b.Heartbeat(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, broker.WorkerInfo{ID: "old", LastSeen: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Workers(ctx, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "w1" || got[0].PID != 42 || !slices.Equal(got[0].Queues, w.Queues) ||
		!got[0].StartedAt.Equal(start) || got[0].Busy != 3 || got[0].Version != "v1" {
		t.Errorf("Workers = %+v", got)
	}
	if err := b.Deregister(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Workers(ctx, time.Time{}); len(got) != 1 || got[0].ID != "old" {
		t.Errorf("after Deregister: %+v", got)
	}
	_, err = b.ReleaseWorker(ctx, "")
	wantErr(t, "ReleaseWorker of an empty id", err, broker.ErrInvalid)
}

// TestSIGKILLKeepsCommittedTasks enqueues from a child process, kills it with SIGKILL as
// soon as Enqueue has returned, and finds every task in the file: a commit with
// synchronous=NORMAL is in the WAL, which outlives the process.
func TestSIGKILLKeepsCommittedTasks(t *testing.T) {
	if path := os.Getenv("BRISK_SQLITE_KILL_CHILD"); path != "" {
		killChild(t, path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "brisk.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSIGKILLKeepsCommittedTasks$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BRISK_SQLITE_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			break
		}
		if id, ok := strings.CutPrefix(line, "enqueued "); ok {
			ids = append(ids, id)
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if len(ids) == 0 {
		t.Fatal("the child enqueued nothing")
	}
	b := open(t, path)
	for _, id := range ids {
		if _, err := b.Task(t.Context(), id); err != nil {
			t.Errorf("task %s, enqueued before SIGKILL: %v", id, err)
		}
	}
	t.Logf("%d tasks committed before SIGKILL, all found", len(ids))
}

// killChild enqueues tasks one call at a time, reporting each id after Enqueue returns, and
// then waits to be killed.
func killChild(t *testing.T, path string) {
	b, err := sqlitebroker.Open(context.Background(), path, sqlitebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		task := newTask("q")
		if err := b.Enqueue(context.Background(), []*broker.Task{task}); err != nil {
			t.Fatal(err)
		}
		fmt.Println("enqueued", task.ID)
	}
	fmt.Println("done")
	time.Sleep(time.Minute)
}
