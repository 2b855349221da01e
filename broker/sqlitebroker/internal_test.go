package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		path string
		opts Options
		bad  string // a word the error must contain; "" when valid
	}{
		{url: "sqlite://./brisk.db", path: "./brisk.db"},
		{url: "sqlite:///abs/path.db", path: "/abs/path.db"},
		{url: "sqlite://brisk.db", path: "brisk.db"},
		{url: "sqlite:brisk.db", path: "brisk.db"},
		{url: "sqlite://data/sub/brisk.db", path: "data/sub/brisk.db"},
		{url: "sqlite://../up.db", path: "../up.db"},
		{url: "sqlite:///tmp/with%20space.db", path: "/tmp/with space.db"},
		{url: "sqlite:my%20file.db", path: "my file.db"},
		{url: "sqlite://./b.db?max_payload=65536&synchronous=FULL&busy_timeout=10s&poll=5ms", path: "./b.db",
			opts: Options{MaxPayload: 65536, Synchronous: "full", BusyTimeout: 10 * time.Second, PollInterval: 5 * time.Millisecond}},
		{url: "sqlite://./b.db?synchronous=normal", path: "./b.db", opts: Options{Synchronous: "normal"}},
		{url: "sqlite://./b.db?cache=shared", bad: "cache"},
		{url: "sqlite://./b.db?max_payload=big", bad: "max_payload"},
		{url: "sqlite://./b.db?max_payload=-1", bad: "max_payload"},
		{url: "sqlite://./b.db?max_payload=2000000000", bad: "MaxPayload"},
		{url: "sqlite://./b.db?synchronous=off", bad: "synchronous"},
		{url: "sqlite://./b.db?busy_timeout=5", bad: "busy_timeout"},
		{url: "sqlite://./b.db?poll=0s", bad: "poll"},
		{url: "sqlite://./b.db?poll=1ms&poll=2ms", bad: "poll"},
		{url: "sqlite://", bad: "no file path"},
		{url: "sqlite:", bad: "no file path"},
		{url: "sqlite://user:secret@host/x.db", bad: "user"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", c.url, err)
		}
		path, opts, err := parseURL(u)
		if c.bad != "" {
			if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("parseURL(%q) = %v, want an error wrapping ErrInvalid naming %q", c.url, err, c.bad)
			}
			if strings.Contains(c.url, "secret") && err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("parseURL(%q) error shows the password: %v", c.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseURL(%q): %v", c.url, err)
			continue
		}
		if path != c.path || opts != c.opts {
			t.Errorf("parseURL(%q) = %q, %+v; want %q, %+v", c.url, path, opts, c.path, c.opts)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxPayload != broker.DefaultMaxPayload || o.Synchronous != "normal" || o.BusyTimeout != 5*time.Second ||
		o.PollInterval != 10*time.Millisecond || o.Logger == nil {
		t.Errorf("defaults = %+v", o)
	}
	for field, o := range map[string]Options{
		"MaxPayload":   {MaxPayload: -1},
		"Synchronous":  {Synchronous: "extra"},
		"BusyTimeout":  {BusyTimeout: -time.Second},
		"PollInterval": {PollInterval: -time.Millisecond},
	} {
		_, err := o.withDefaults()
		if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), "Options."+field) {
			t.Errorf("%+v: error %v, want one wrapping ErrInvalid naming Options.%s", o, err, field)
		}
		if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), o); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Open with %+v: %v, want ErrInvalid", o, err)
		}
	}
}

func TestDSNEscapesPath(t *testing.T) {
	t.Parallel()
	// Characters that mean something in a URI must reach SQLite as part of the file name.
	path := filepath.Join(t.TempDir(), "odd ?name#%41.db")
	b, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := filepath.Glob(path); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "odd ?name#%41.db")); len(m) != 1 {
		t.Errorf("the database file %q was not created under its own name", path)
	}
}

// TestQueryPlans checks that the statements on the hot paths use the partial indexes and
// never scan the tasks table.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	b, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	// Some rows and ANALYZE-free statistics are enough: the plans must not depend on them.
	now := time.Now()
	var tasks []*broker.Task
	for i := range 50 {
		tasks = append(tasks, &broker.Task{
			TaskInfo: brisktype.TaskInfo{
				ID:          "t" + string(rune('A'+i%26)) + strings.Repeat("x", i),
				Queue:       "q",
				Type:        "t",
				MaxAttempts: 3,
				EnqueuedAt:  now,
				ReadyAt:     now,
			},
		})
	}
	if err := b.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sql, index string
		args             int
	}{
		{"reserve: take", qTake, "tasks_pending", 5},
		{"reserve: reclaim to dead", qReclaimDead, "tasks_running", 2},
		{"reserve: reclaim to pending", qReclaimPending, "tasks_running", 2},
		{"reserve: read-only check", qAnyReady, "tasks_pending", 2},
		{"wait: next ready", qNextReady, "tasks_pending", 1},
		{"wait: next lease expiry", qNextLease, "tasks_running", 1},
		{"stats: scheduled", qScheduled, "tasks_pending", 2},
		{"stats: queue latency", qOldest, "tasks_pending", 2},
		{"release worker", qWorkerPending, "tasks_worker", 1},
		{"ack", qAck, "sqlite_autoindex_tasks_1", 2},
		{"list pending", listQuery(broker.StatePending), "tasks_pending", 4},
		{"list scheduled", listQuery(broker.StateScheduled), "tasks_pending", 4},
		{"list running", listQuery(broker.StateRunning), "tasks_running", 4},
		{"list dead", listQuery(broker.StateDead), "tasks_dead", 4},
		{"complete: keep", qKeep, "sqlite_autoindex_tasks_1", 6},
		{"complete: keep, any queue", qComplete, "sqlite_autoindex_tasks_1", 4},
		{"progress", qProgress, "sqlite_autoindex_tasks_1", 5},
		{"remove expired", qPurgeExpired, "tasks_expires", 2},
		{"list completed", listQuery(broker.StateCompleted), "tasks_completed", 4},
	} {
		plan := explain(t, b.r, c.sql, c.args)
		t.Logf("%s:\n%s", c.name, plan)
		if !strings.Contains(plan, c.index) {
			t.Errorf("%s: plan does not use %s:\n%s", c.name, c.index, plan)
		}
		for _, line := range strings.Split(plan, "\n") {
			if strings.Contains(line, "SCAN tasks") && !strings.Contains(line, "INDEX") {
				t.Errorf("%s: plan scans the tasks table:\n%s", c.name, plan)
			}
		}
	}
	// The oldest ready task is the first entry of the index range: no sort, no aggregate.
	for _, q := range []string{qOldest, qNextReady, qReadySeqs, qPurgeExpired, listQuery(broker.StateCompleted)} {
		if plan := explain(t, b.r, q, strings.Count(q, "?")); strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%q sorts instead of reading the index in order:\n%s", q, plan)
		}
	}
}

func explain(t *testing.T, db *sql.DB, query string, nargs int) string {
	t.Helper()
	args := make([]any, nargs)
	for i := range args {
		args[i] = 1
	}
	args[0] = "q"
	rows, err := db.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("explain %q: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}
