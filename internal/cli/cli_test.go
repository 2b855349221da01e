package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
)

// TestMain doubles as bench W4's worker process: W4 re-executes os.Executable(), which
// under "go test" is this test binary, with the hidden command first.
// With mainEnv set, the test binary is the brisk command instead (tests that check what
// the command writes to its real standard error run it so).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == benchWorkerName || os.Getenv(mainEnv) != "") {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// mainEnv makes the test binary run the brisk command (see TestMain).
const mainEnv = "BRISK_CLI_TEST_MAIN"

// setup returns the URL of a fresh embedded broker for one test, whose store exists
// (commands that only read refuse a path where none does).
func setup(t *testing.T) string {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "b.db")
	b, err := brisk.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return url
}

// result is what one run of the command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// call runs the command with args and stdin.
func call(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut strings.Builder
	code := Main(args, strings.NewReader(stdin), &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

// ok runs the command and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := call(t, "", args...)
	if r.code != 0 {
		t.Fatalf("brisk %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs the command and checks its exit status and its one line on stderr.
func fails(t *testing.T, code int, args ...string) string {
	t.Helper()
	r := call(t, "", args...)
	if r.code != code {
		t.Fatalf("brisk %s: exit %d, want %d (stdout %q, stderr %q)", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "brisk: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("brisk %s: stderr %q, want one line starting with \"brisk: \"", strings.Join(args, " "), r.stderr)
	}
	return r.stderr
}

// open opens the test's broker through the library, closed at the end of the test.
func open(t *testing.T, url string) *brisk.Client {
	t.Helper()
	b, err := brisk.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return brisk.NewClient(b)
}

func queuesJSON(t *testing.T, url string) []map[string]any {
	t.Helper()
	var qs []map[string]any
	out := ok(t, "queues", "--broker", url, "--json")
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("queues --json: %v in %q", err, out)
	}
	return qs
}

func findQueue(t *testing.T, qs []map[string]any, name string) map[string]any {
	t.Helper()
	for _, q := range qs {
		if q["name"] == name {
			return q
		}
	}
	t.Fatalf("no queue %s in %v", name, qs)
	return nil
}

func TestEnqueuePrintsID(t *testing.T) {
	t.Parallel()
	url := setup(t)
	out := ok(t, "enqueue", "--broker", url, "email.send", `{"to": "ada@example.com"}`)
	id := strings.TrimSuffix(out, "\n")
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("enqueue printed %q, want an id and a newline", out)
	}
	var task map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task["id"] != id || task["type"] != "email.send" || task["queue"] != "default" || task["state"] != "pending" {
		t.Fatalf("task = %v", task)
	}
	if p, _ := task["payload"].(map[string]any); p["to"] != "ada@example.com" {
		t.Fatalf("payload = %v", task["payload"])
	}
}

func TestEnqueueOptions(t *testing.T) {
	t.Parallel()
	url := setup(t)
	// Flags after the positional arguments, payload from standard input.
	r := call(t, `  {"n": 1}`+"\n", "enqueue", "job", "-", "--queue", "q1", "--delay", "1h",
		"--max-attempts", "3", "--timeout", "90s", "--broker", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	var task map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task["queue"] != "q1" || task["state"] != "scheduled" || task["max_attempts"] != 3.0 || task["timeout_seconds"] != 90.0 {
		t.Fatalf("task = %v", task)
	}
	if p, _ := task["payload"].(map[string]any); p["n"] != 1.0 {
		t.Fatalf("payload = %v", task["payload"])
	}
	// --process-at
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	id = strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--process-at", at.Format(time.RFC3339), "job"))
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if ready, _ := time.Parse(time.RFC3339Nano, task["ready_at"].(string)); !ready.Equal(at) {
		t.Fatalf("ready_at = %v, want %v", task["ready_at"], at)
	}
	if task["payload"] != nil {
		t.Fatalf("payload of a task enqueued without one = %v, want null", task["payload"])
	}
}

func TestEnqueueBadPayloadStoresNothing(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for _, payload := range []string{`{"a":`, "not json", `{"a":1} extra`} {
		msg := fails(t, 2, "enqueue", "--broker", url, "job", payload)
		if !strings.Contains(msg, "not valid JSON") {
			t.Errorf("payload %q: stderr %q", payload, msg)
		}
	}
	r := call(t, "", "enqueue", "--broker", url, "job", "-") // empty standard input
	if r.code != 2 {
		t.Errorf("empty payload from stdin: exit %d", r.code)
	}
	if qs := queuesJSON(t, url); len(qs) != 0 {
		t.Fatalf("queues after bad enqueues = %v, want none", qs)
	}
}

func TestQueuesJSON(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if out := ok(t, "queues", "--broker", url, "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty store: %q, want []", out)
	}
	if out := ok(t, "queues", "--broker", url); !strings.Contains(out, "no queues") {
		t.Fatalf("empty store, text: %q", out)
	}
	c := open(t, url)
	if err := c.DeclareQueue(context.Background(), "five_second", 0); err != nil {
		t.Fatal(err)
	}
	ok(t, "enqueue", "--broker", url, "a")
	ok(t, "enqueue", "--broker", url, "--queue", "five_second", "b")
	ok(t, "enqueue", "--broker", url, "--queue", "five_second", "b")
	ok(t, "enqueue", "--broker", url, "--queue", "five_second", "--delay", "1m", "b")

	qs := queuesJSON(t, url)
	if len(qs) != 2 {
		t.Fatalf("queues = %v", qs)
	}
	for _, q := range qs {
		for _, k := range []string{"name", "pending", "scheduled", "running", "dead", "latency_seconds",
			"sla_seconds", "within_sla", "completed", "failed"} {
			if _, ok := q[k]; !ok {
				t.Errorf("queue %v has no key %q", q["name"], k)
			}
		}
	}
	def, five := findQueue(t, qs, "default"), findQueue(t, qs, "five_second")
	if def["sla_seconds"] != nil || def["pending"] != 1.0 {
		t.Errorf("default = %v", def)
	}
	if five["sla_seconds"] != 5.0 || five["pending"] != 2.0 || five["scheduled"] != 1.0 || five["within_sla"] != true {
		t.Errorf("five_second = %v", five)
	}
	if l, _ := five["latency_seconds"].(float64); l <= 0 || l > 5 {
		t.Errorf("five_second latency_seconds = %v", five["latency_seconds"])
	}

	out := ok(t, "queues", "--broker", url)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[2], "five_second") ||
		!strings.Contains(lines[2], "5s") || !strings.HasSuffix(lines[2], "ok") {
		t.Fatalf("queues table:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for _, args := range [][]string{
		{"nope"},
		{"--nope"},
		{},
		{"queues", "--nope"},
		{"queues", "extra"},
		{"enqueue", "--broker", url},
		{"enqueue", "--broker", url, "a", "{}", "more"},
		{"enqueue", "--broker", url, "--delay", "soon", "a"},
		{"enqueue", "--broker", url, "--delay", "1s", "--process-at", "2030-01-01T00:00:00Z", "a"},
		{"enqueue", "--broker", url, "--process-at", "tomorrow", "a"},
		{"tasks", "--broker", url},
		{"tasks", "--broker", url, "--queue", "q", "--state", "done"},
		{"tasks", "--broker", url, "--queue", "q", "--limit", "0"},
		{"retry", "--broker", url, "--queue", "q"},
		{"retry", "--broker", url, "--queue", "q", "--all", "id1"},
		{"retry", "--broker", url, "--all"},
		{"delete", "--broker", url, "--queue", "q"},
		{"delete", "--broker", url, "--queue", "q", "--state", "running", "--all"},
		{"bench", "--broker", url},
		{"bench", "--broker", url, "--workload", "W9"},
		{"bench", "--broker", url, "--workload", "W1", "--rate", "10"},
		{"bench", "--broker", url, "--workload", "W2", "--rate", "-1"},
		{"bench", "--broker", url, "--workload", "W2", "--concurrency", "0"},
		{"demo", "--duration", "0s"},
		{"help", "nope"},
	} {
		r := call(t, "", args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "brisk: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("brisk %s: exit %d, stderr %q; want exit 2 and one line", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	r := call(t, "", "nope")
	if want := "brisk: unknown command \"nope\" (see brisk --help)\n"; r.stderr != want {
		t.Errorf("unknown command: %q, want %q", r.stderr, want)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out := ok(t, args...)
		for _, c := range commands {
			if listed := strings.Contains(out, "  "+c.name+" "); listed == c.hidden {
				t.Errorf("brisk %s: command %s listed=%v", args[0], c.name, listed)
			}
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			if c.hidden && args[0] == "help" {
				continue
			}
			r := call(t, "", args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: brisk "+c.name) || !strings.Contains(r.stdout, "--help") || r.stderr != "" {
				t.Errorf("brisk %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	e := &env{cmd: enqueueCmd}
	for _, tc := range []struct {
		args  []string
		queue string
		pos   []string
	}{
		{[]string{"--queue", "q", "a", "b"}, "q", []string{"a", "b"}},
		{[]string{"a", "--queue", "q", "b"}, "q", []string{"a", "b"}},
		{[]string{"a", "b", "-queue=q"}, "q", []string{"a", "b"}},
		{[]string{"a", "-", "--queue", "q"}, "q", []string{"a", "-"}},
		{[]string{"a", "--", "--queue", "q"}, "", []string{"a", "--queue", "q"}},
	} {
		fs := newFlagSet(enqueueCmd)
		queue := fs.String("queue", "", "")
		pos, err := e.parse(fs, tc.args)
		if err != nil || *queue != tc.queue || !slices.Equal(pos, tc.pos) {
			t.Errorf("parse(%q) = %q, queue %q, %v; want %q, queue %q", tc.args, pos, *queue, err, tc.pos, tc.queue)
		}
	}
}

func TestTasks(t *testing.T) {
	t.Parallel()
	url := setup(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--queue", "q", "job", `{"i":`+string(rune('0'+i))+`}`)))
	}
	c := open(t, url)
	binID, err := c.Enqueue(context.Background(), brisk.NewTask("bin", []byte("hi\x00there")), brisk.InQueue("q"))
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, binID)

	var list []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--queue", "q", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Fatalf("listed %d tasks, want 4", len(list))
	}
	for i, task := range list {
		if task["id"] != ids[i] {
			t.Errorf("task %d = %v, want id %s (oldest first)", i, task["id"], ids[i])
		}
		for _, k := range []string{"id", "queue", "type", "state", "attempt", "max_attempts", "timeout_seconds",
			"enqueued_at", "ready_at", "started_at", "failed_at", "last_error", "payload"} {
			if _, ok := task[k]; !ok {
				t.Errorf("task %d has no key %q", i, k)
			}
		}
	}
	if list[3]["payload"] != nil || list[3]["payload_base64"] != "aGkAdGhlcmU=" {
		t.Errorf("binary payload: %v / %v", list[3]["payload"], list[3]["payload_base64"])
	}
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--queue", "q", "--json", "--limit", "2", "--offset", "1")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0]["id"] != ids[1] || list[1]["id"] != ids[2] {
		t.Errorf("page = %v", list)
	}
	if out := ok(t, "tasks", "--broker", url, "--queue", "q", "--state", "dead", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("no dead tasks: %q", out)
	}

	out := ok(t, "tasks", "--broker", url, "--queue", "q")
	for _, id := range ids {
		if !strings.Contains(out, id) {
			t.Errorf("listing has no %s:\n%s", id, out)
		}
	}
	out = ok(t, "tasks", "--broker", url, "--id", binID)
	if !strings.Contains(out, `"hi\x00there"`) || !strings.Contains(out, "state:") {
		t.Errorf("one task:\n%s", out)
	}
	out = ok(t, "tasks", "--broker", url, "--id", ids[0])
	if !strings.Contains(out, `{"i":0}`) {
		t.Errorf("one task:\n%s", out)
	}
	fails(t, 1, "tasks", "--broker", url, "--id", "no-such-id")
	fails(t, 1, "tasks", "--broker", url, "--id", ids[0], "--queue", "other")
}

// makeDead enqueues n tasks into queue and runs them with a handler that refuses them, so
// that they end dead. It returns their ids.
func makeDead(t *testing.T, url, queue string, n int) []string {
	t.Helper()
	c := open(t, url)
	ctx := context.Background()
	var ids []string
	for range n {
		id, err := c.Enqueue(ctx, brisk.NewTask("doomed", []byte(`{}`)), brisk.InQueue(queue))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	w, err := brisk.NewWorker(c.Broker(), brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: queue}}})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("doomed", func(context.Context, *brisk.Task) error {
		return brisk.SkipRetry(errors.New("no such mailbox"))
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := brisk.NewInspector(c.Broker())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		qs, err := in.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(qs, func(q brisk.QueueInfo) bool { return q.Name == queue }); i >= 0 && qs[i].Dead == int64(n) {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks did not die: %+v", qs)
		}
	}
}

func TestRetryAndDelete(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ids := makeDead(t, url, "mail", 4)

	var task map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", ids[0], "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task["state"] != "dead" || !strings.Contains(task["last_error"].(string), "no such mailbox") || task["failed_at"] == nil {
		t.Fatalf("dead task = %v", task)
	}

	if out := ok(t, "retry", "--broker", url, "--queue", "mail", ids[0], "no-such-id"); out != "retried 1 task(s); 1 of the 2 ids named no dead task of queue mail\n" {
		t.Errorf("retry: %q", out)
	}
	// Nothing matched is not an error, with ids as with --all (TestRetryAndDeleteAgree).
	if out := ok(t, "retry", "--broker", url, "--queue", "mail", "no-such-id"); out != "retried 0 task(s); 1 of the 1 ids named no dead task of queue mail\n" {
		t.Errorf("retry of unknown id: %q", out)
	}
	if out := ok(t, "retry", "--broker", url, "--queue", "other", ids[1]); !strings.HasPrefix(out, "retried 0 task(s)") {
		t.Errorf("retry of another queue's task: %q", out)
	}
	if out := ok(t, "delete", "--broker", url, "--queue", "mail", ids[1]); out != "deleted 1 task(s)\n" {
		t.Errorf("delete: %q", out)
	}
	if out := ok(t, "retry", "--broker", url, "--queue", "mail", "--all"); out != "retried 2 task(s)\n" {
		t.Errorf("retry --all: %q", out)
	}
	if out := ok(t, "delete", "--broker", url, "--queue", "mail", "--all"); out != "deleted 0 task(s)\n" {
		t.Errorf("delete --all with no dead task: %q", out)
	}
	if out := ok(t, "delete", "--broker", url, "--queue", "mail", ids[1]); !strings.HasPrefix(out, "deleted 0 task(s)") {
		t.Errorf("delete of a deleted task: %q", out)
	}
	if out := ok(t, "delete", "--broker", url, "--queue", "mail", "--state", "pending", "--all"); out != "deleted 3 task(s)\n" {
		t.Errorf("delete --state pending --all: %q", out)
	}
	q := findQueue(t, queuesJSON(t, url), "mail")
	if q["pending"] != 0.0 || q["dead"] != 0.0 {
		t.Errorf("queue after deletes = %v", q)
	}
}

func benchJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out := ok(t, append([]string{"bench", "--json"}, args...)...)
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("bench --json printed %q, want one line", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("bench --json: %v in %q", err, out)
	}
	return m
}

func hasKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %q in %v", k, m)
		}
	}
}

func TestBenchW3(t *testing.T) {
	t.Parallel()
	url := setup(t)
	m := benchJSON(t, "--broker", url, "--workload", "W3", "--tasks", "5")
	hasKeys(t, m, "workload", "broker", "tasks", "concurrency", "pickup_p50_ms", "pickup_p99_ms", "pickup_max_ms")
	if m["workload"] != "W3" || m["tasks"] != 5.0 || m["picked_up"] != 5.0 || m["broker"] != url {
		t.Errorf("W3 = %v", m)
	}
	if p50, max := m["pickup_p50_ms"].(float64), m["pickup_max_ms"].(float64); p50 <= 0 || p50 > max {
		t.Errorf("pickup p50 %v, max %v", p50, max)
	}
}

func TestBenchW1IsolatedAndCleansUp(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "mine", "job")
	m := benchJSON(t, "--broker", url, "--workload", "W1", "--tasks", "200")
	hasKeys(t, m, "enqueue_per_s", "enqueue_batch_per_s", "drain_per_s")
	for _, k := range []string{"enqueue_per_s", "enqueue_batch_per_s", "drain_per_s"} {
		if v, _ := m[k].(float64); v <= 0 {
			t.Errorf("%s = %v", k, m[k])
		}
	}
	qs := queuesJSON(t, url)
	if mine := findQueue(t, qs, "mine"); mine["pending"] != 1.0 {
		t.Errorf("bench touched another queue: %v", mine)
	}
	bq := findQueue(t, qs, m["queue"].(string))
	if !strings.HasPrefix(bq["name"].(string), "bench_w1_") || bq["pending"] != 0.0 || bq["running"] != 0.0 {
		t.Errorf("bench queue after the run: %v", bq)
	}
}

func TestBenchW4(t *testing.T) {
	t.Parallel()
	url := setup(t)
	m := benchJSON(t, "--broker", url, "--workload", "W4", "--tasks", "40")
	hasKeys(t, m, "lost", "duplicates", "interrupted", "redelivery_s")
	if m["lost"] != 0.0 {
		t.Errorf("W4 lost tasks: %v", m)
	}
	if n, _ := m["interrupted"].(float64); n > 0 && m["redelivery_s"] == nil {
		t.Errorf("W4 interrupted %v tasks and did not measure their redelivery: %v", n, m)
	}
}

func TestBenchTempBrokerHuman(t *testing.T) {
	t.Setenv("BRISK_BROKER", "")
	r := call(t, "", "bench", "--workload", "w3", "--tasks", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "pickup p99") || !strings.Contains(r.stdout, "brisk-bench-") {
		t.Errorf("summary:\n%s", r.stdout)
	}
	i := strings.Index(r.stdout, "sqlite://")
	path := strings.Fields(r.stdout[i+len("sqlite://"):])[0]
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still there (%v)", filepath.Dir(path), err)
	}
}

func TestDemoShort(t *testing.T) {
	t.Parallel()
	out := ok(t, "demo", "--duration", "1200ms")
	for _, want := range []string{"five_second", "one_minute", "LATENCY", "stopped after --duration", "max latency"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output has no %q:\n%s", want, out)
		}
	}
}

// TestRetentionResultsAndProgress sets a queue's retention, runs a task whose handler
// reports progress and stores a result, and checks what brisk tasks shows of it while it
// runs and once it has completed.
func TestRetentionResultsAndProgress(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if out := ok(t, "queue", "set", "--broker", url, "--retention", "1h", "jobs"); out != "queue jobs: completed tasks kept 1h\n" {
		t.Errorf("queue set --retention: %q", out)
	}
	if out := ok(t, "queue", "set", "--broker", url, "--sla", "5s", "--retention", "2h", "jobs"); out != "queue jobs: SLA 5s, completed tasks kept 2h\n" {
		t.Errorf("queue set --sla --retention: %q", out)
	}
	id := strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--queue", "jobs", "--retention", "30m", "report", `{"n":1}`))
	c := open(t, url)
	release := make(chan struct{})
	w, err := brisk.NewWorker(c.Broker(), brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "jobs"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("report", func(ctx context.Context, _ *brisk.Task) error {
		if err := brisk.ReportProgress(ctx, 25, "page 1 of 4"); err != nil {
			return err
		}
		<-release
		return brisk.SetResult(ctx, []byte(`{"pages":4}`))
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(ok(t, "tasks", "--broker", url, "--queue", "jobs", "--state", "running"), "25% page 1 of 4") {
		if time.Now().After(deadline) {
			t.Fatal("brisk tasks --state running never showed the progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if _, err := c.Result(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	list := ok(t, "tasks", "--broker", url, "--queue", "jobs", "--state", "completed")
	if !strings.Contains(list, "FINISHED AT") || !strings.Contains(list, id) || !strings.Contains(list, `{"pages":4}`) {
		t.Errorf("tasks --state completed:\n%s", list)
	}
	one := ok(t, "tasks", "--broker", url, "--id", id)
	for _, want := range []string{"state:        completed", "result:       {\"pages\":4}", "retention:    30m0s", "progress:     25% page 1 of 4"} {
		if !strings.Contains(one, want) {
			t.Errorf("tasks --id lacks %q:\n%s", want, one)
		}
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &got); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, got, "result", "finished_at", "expires_at", "duration_seconds", "progress", "retention_seconds")
	if r, _ := got["result"].(map[string]any); r["pages"] != 4.0 {
		t.Errorf("tasks --json result = %v", got["result"])
	}
	q := findQueue(t, queuesJSON(t, url), "jobs")
	if q["retained"] != 1.0 || q["retention_seconds"] != 7200.0 || q["pending"] != 0.0 {
		t.Errorf("queues --json: %v", q)
	}
	fails(t, 2, "enqueue", "--broker", url, "--retention", "-1s", "report")
}
