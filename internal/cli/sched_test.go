package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEnqueueUnique(t *testing.T) {
	t.Parallel()
	url := setup(t)
	first := strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--unique-for", "1m", "report", `{"day":1}`))
	r := call(t, "", "enqueue", "--broker", url, "--unique-for", "1m", "report", `{"day":1}`)
	if r.code != 1 || strings.TrimSpace(r.stdout) != first || !strings.Contains(r.stderr, "duplicate") || !strings.Contains(r.stderr, first) {
		t.Errorf("second unique enqueue: exit %d, stdout %q, stderr %q; want 1, the first id %s, a duplicate error", r.code, r.stdout, r.stderr, first)
	}
	ok(t, "enqueue", "--broker", url, "--unique-for", "1m", "--unique-key", "k", "a")
	fails(t, 1, "enqueue", "--broker", url, "--unique-for", "1m", "--unique-key", "k", "b")
	fails(t, 2, "enqueue", "--broker", url, "--unique-key", "k", "b")
	fails(t, 2, "enqueue", "--broker", url, "--unique-for", "-1s", "b")
	if q := findQueue(t, queuesJSON(t, url), "default"); q["pending"] != 2.0 {
		t.Errorf("pending = %v, want 2", q["pending"])
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	url := setup(t)
	id := strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--delay", "1h", "x"))
	if out := ok(t, "cancel", "--broker", url, id); !strings.Contains(out, "it was scheduled") {
		t.Errorf("cancel: %q", out)
	}
	if out := ok(t, "cancel", "--broker", url, id); !strings.Contains(out, "already cancelled") {
		t.Errorf("second cancel: %q", out)
	}
	if msg := fails(t, 1, "cancel", "--broker", url, "nope"); !strings.Contains(msg, "no task with id nope") {
		t.Errorf("cancel of an unknown id: %q", msg)
	}
	fails(t, 2, "cancel", "--broker", url)
	q := findQueue(t, queuesJSON(t, url), "default")
	if q["cancelled"] != 1.0 || q["scheduled"] != 0.0 {
		t.Errorf("queues --json after cancel: %v", q)
	}
	if out := ok(t, "tasks", "--broker", url, "--queue", "default", "--state", "cancelled"); !strings.Contains(out, id) {
		t.Errorf("tasks --state cancelled does not list %s: %q", id, out)
	}
	if out := ok(t, "delete", "--broker", url, "--queue", "default", "--state", "cancelled", "--all"); !strings.Contains(out, "1") {
		t.Errorf("delete --state cancelled: %q", out)
	}
}

func TestPeriodic(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if out := ok(t, "periodic", "add", "--broker", url, "--queue", "reports", "--catch-up", "nightly", "0 0 2 * * *", "report.build", `{"kind":"daily"}`); !strings.Contains(out, "stored schedule nightly") {
		t.Errorf("periodic add: %q", out)
	}
	ok(t, "periodic", "add", "--broker", url, "beat", "@every 30s", "ping")
	r := call(t, "", "periodic", "list", "--broker", url)
	if r.code != 0 || !strings.Contains(r.stdout, "nightly") || !strings.Contains(r.stdout, "0 0 2 * * *") || !strings.Contains(r.stderr, "no scheduler is running") {
		t.Errorf("periodic list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "periodic", "list", "--broker", url, "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("periodic list --json: %v, %v", list, err)
	}
	if list[1]["name"] != "nightly" || list[1]["queue"] != "reports" || list[1]["catch_up"] != true || list[1]["next_run"] == nil || list[1]["last_run"] != nil {
		t.Errorf("periodic list --json: %v", list[1])
	}
	for _, args := range [][]string{
		{"periodic", "add", "--broker", url, "bad", "61 * * * *", "t"},
		{"periodic", "add", "--broker", url, "bad", "@every 100ms", "t"},
		{"periodic", "add", "--broker", url, "bad", "t"},
		{"periodic", "nope"},
		{"periodic"},
	} {
		fails(t, 2, args...)
	}
	fails(t, 2, "periodic", "add", "--broker", url, "bad name", "@every 1s", "t")
	fails(t, 2, "periodic", "add", "--broker", url, "bad", "@every 1s", "bad type")
	fails(t, 2, "periodic", "add", "--broker", url, "bad", "@every 1s", "t", "{not json")
	ok(t, "periodic", "remove", "--broker", url, "beat")
	if msg := fails(t, 1, "periodic", "remove", "--broker", url, "beat"); !strings.Contains(msg, "no schedule named beat") {
		t.Errorf("remove of an unknown schedule: %q", msg)
	}
	if err := json.Unmarshal([]byte(ok(t, "periodic", "list", "--broker", url, "--json")), &list); err != nil || len(list) != 1 {
		t.Errorf("after remove: %v, %v", list, err)
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "limit", "set", "--broker", url, "--queue", "emails", "--rate", "100/s")
	ok(t, "limit", "set", "--broker", url, "--queue", "default", "--type", "pdf", "--max-running", "4", "--rate", "5/1m", "--burst", "2")
	var list []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "limit", "list", "--broker", url, "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("limit list --json: %v, %v", list, err)
	}
	if l := list[0]; l["queue"] != "default" || l["type"] != "pdf" || l["rate"] != 5.0 || l["per_seconds"] != 60.0 || l["burst"] != 2.0 || l["max_running"] != 4.0 {
		t.Errorf("first limit: %v", l)
	}
	if l := list[1]; l["queue"] != "emails" || l["rate"] != 100.0 || l["per_seconds"] != 1.0 || l["burst"] != 100.0 {
		t.Errorf("second limit: %v", l)
	}
	if out := ok(t, "limit", "list", "--broker", url); !strings.Contains(out, "100/1s") {
		t.Errorf("limit list: %q", out)
	}
	for _, args := range [][]string{
		{"limit", "set", "--broker", url, "--queue", "q"},
		{"limit", "set", "--broker", url, "--queue", "q", "--rate", "0/s"},
		{"limit", "set", "--broker", url, "--queue", "q", "--rate", "-5/s"},
		{"limit", "set", "--broker", url, "--queue", "q", "--rate", "5/fortnight"},
		{"limit", "set", "--broker", url, "--queue", "q", "--max-running", "-1"},
		{"limit", "set", "--broker", url, "--queue", "q", "--max-running", "1", "--burst", "3"},
		{"limit", "set", "--broker", url, "--rate", "5/s"},
		{"limit", "frob"},
	} {
		fails(t, 2, args...)
	}
	ok(t, "limit", "remove", "--broker", url, "--queue", "emails")
	if msg := fails(t, 1, "limit", "remove", "--broker", url, "--queue", "emails"); !strings.Contains(msg, "no limit on queue emails") {
		t.Errorf("remove of an unknown limit: %q", msg)
	}
	if err := json.Unmarshal([]byte(ok(t, "limit", "list", "--broker", url, "--json")), &list); err != nil || len(list) != 1 {
		t.Errorf("after remove: %v, %v", list, err)
	}
}
