package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// hostile is what a handler's error could carry to rewrite an operator's terminal: a
// window title (OSC), a clear screen (CSI), a bell, a carriage return, a C1 CSI and a
// right-to-left override.
const hostile = "\x1b]0;pwned\x07\x1b[2Jboom\r\u009b31m\u202eevil"

// TestControlCharactersEscaped checks that every human-readable output escapes control
// characters, while --json keeps the exact text.
func TestControlCharactersEscaped(t *testing.T) {
	t.Parallel()
	url := setup(t)
	c := open(t, url)
	ctx := context.Background()
	payload := []byte("{\"s\":\"\u009b2J\u202e\"}") // valid JSON with raw C1 and bidi characters
	id, err := c.Enqueue(ctx, brisk.NewTask("job", payload, brisk.InQueue("q")))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Broker()
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 {
		t.Fatalf("reserve: %v %v", got, err)
	}
	if err := b.Kill(ctx, got[0].Lease, hostile); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tasks", "--broker", url, "--queue", "q", "--state", "dead"},
		{"tasks", "--broker", url, "--id", id},
	} {
		out := ok(t, args...)
		if strings.ContainsAny(out, "\x1b\x07\r\u009b\u202e") {
			t.Errorf("brisk %s prints control characters raw:\n%q", strings.Join(args, " "), out)
		}
		if !strings.Contains(out, `\x1b]0;pwned`) {
			t.Errorf("brisk %s does not show the escaped error:\n%s", strings.Join(args, " "), out)
		}
	}
	var task map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task["last_error"] != hostile {
		t.Errorf("--json last_error = %q, want the exact text %q", task["last_error"], hostile)
	}
	// An error line quoting what the user typed is escaped too.
	msg := fails(t, 1, "tasks", "--broker", url, "--id", "\x1b[2Jx")
	if strings.Contains(msg, "\x1b") {
		t.Errorf("error line prints an escape raw: %q", msg)
	}
}

// TestReadOnlyCommandsNeedAStore checks that commands that only read refuse a SQLite path
// where no store exists, instead of creating an empty one and saying "no queues", and that
// a store created in an empty file is not created silently.
func TestReadOnlyCommandsNeedAStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	url := "sqlite://" + missing
	for _, args := range [][]string{
		{"queues", "--broker", url},
		{"tasks", "--broker", url, "--queue", "q"},
		{"dashboard", "--broker", url, "--listen", "127.0.0.1:0"},
		{"autoscale", "--broker", url, "--queue", "q", "--hook", "true {{count}}"},
	} {
		msg := fails(t, 1, args...)
		if !strings.Contains(msg, missing) || !strings.Contains(msg, "no brisk store") {
			t.Errorf("brisk %s on a missing file: %q, want it to say there is no store at the path", args[0], msg)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("brisk %s created %s", args[0], missing)
		}
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msg := fails(t, 1, "queues", "--broker", "sqlite://"+empty)
	if !strings.Contains(msg, "empty file (0 bytes)") {
		t.Errorf("queues on an empty file: %q", msg)
	}
	// A command that writes creates the store, and says so when the file was empty.
	r := call(t, "", "enqueue", "--broker", "sqlite://"+empty, "job")
	if r.code != 0 || !strings.HasPrefix(r.stderr, "brisk: ") || !strings.Contains(r.stderr, "empty file (0 bytes)") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("enqueue into an empty file: exit %d, stderr %q; want 0 and one warning line", r.code, r.stderr)
	}
	if qs := queuesJSON(t, "sqlite://"+empty); len(qs) != 1 {
		t.Errorf("queues after the enqueue: %v", qs)
	}
}

// TestUsageErrorsExit2 checks exit status 2 and one clear line for every usage error: bad
// payload JSON, invalid names, bad broker URLs, a bad listen address, a delay without a
// unit, a schedule past the bound.
func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	url := setup(t)
	far := time.Now().Add(brisk.MaxScheduleAhead + time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"enqueue", "--broker", url, "a", "{bad"}, "not valid JSON"},
		{[]string{"enqueue", "--broker", url, "--queue", "café", "a"}, "'é'"},
		{[]string{"enqueue", "--broker", url, "--queue", "..", "a"}, `".."`},
		{[]string{"enqueue", "--broker", url, "bad type"}, "' '"},
		{[]string{"enqueue", "--broker", url, "a", "{\"s\":\"\xff\"}"}, "UTF-8"},
		{[]string{"enqueue", "--broker", url, "--delay", "30", "a"}, "30s"},
		{[]string{"enqueue", "--broker", url, "--max-attempts", "0", "a"}, "at least 1"},
		{[]string{"enqueue", "--broker", url, "--process-at", far, "a"}, brisk.ScheduleAheadRule},
		{[]string{"enqueue", "--broker", url, "--delay", "87700h", "a"}, brisk.ScheduleAheadRule},
		{[]string{"enqueue", "--broker", url, "--nope", "a"}, "--nope"},
		{[]string{"tasks", "--broker", url, "--queue", "a b"}, "' '"},
		{[]string{"pause", "--broker", url, "--queue", "."}, `"."`},
		{[]string{"retry", "--broker", url, "--queue", "a/b", "--all"}, "'/'"},
		{[]string{"queues", "--broker", "sqlite://./x.db?foo=1"}, `unknown parameter "foo"`},
		{[]string{"queues", "--broker", "redis://u:p%zz@127.0.0.1:1/0"}, `invalid URL escape "%zz"`},
		{[]string{"queues", "--broker", "nosuch://host"}, "nosuch"},
		{[]string{"queues", "--broker", "sqlite://"}, "want sqlite://./brisk.db"},
		{[]string{"dashboard", "--broker", url, "--listen", "127.0.0.1:99999"}, "99999"},
		{[]string{"dashboard", "--broker", url, "--listen", "nonsense"}, "host:port"},
		{[]string{"dashboard", "--broker", url, "--host", "a/b"}, "--host"},
		{[]string{"autoscale", "--broker", url, "--queue", "q", "--hook", "true {{count}}", "--metrics", "127.0.0.1:70000"}, "70000"},
		{[]string{"autoscale", "--broker", url, "--queue", "a b", "--hook", "true {{count}}"}, "' '"},
		{[]string{"queue", "delete", "--broker", url, "bad name"}, "' '"},
		{[]string{"queue", "nope", "--broker", url, "q"}, "nope"},
	} {
		msg := fails(t, 2, c.args...)
		if !strings.Contains(msg, c.mention) {
			t.Errorf("brisk %s: %q, want it to mention %q", strings.Join(c.args, " "), msg, c.mention)
		}
		if n := strings.Count(msg, "brisk:"); n != 1 {
			t.Errorf("brisk %s: %q has %d brisk: prefixes", strings.Join(c.args, " "), msg, n)
		}
		if strings.Contains(msg, "p%zz") {
			t.Errorf("brisk %s: %q shows the password", strings.Join(c.args, " "), msg)
		}
	}
	if qs := queuesJSON(t, url); len(qs) != 0 {
		t.Errorf("queues after refused commands: %v", qs)
	}
}

// TestProcessAt checks --process-at: a time in the past means now.
func TestProcessAt(t *testing.T) {
	t.Parallel()
	url := setup(t)
	id := strings.TrimSpace(ok(t, "enqueue", "--broker", url, "--process-at", "2000-01-01T00:00:00Z", "a"))
	var task map[string]any
	if err := json.Unmarshal([]byte(ok(t, "tasks", "--broker", url, "--id", id, "--json")), &task); err != nil {
		t.Fatal(err)
	}
	if task["ready_at"] != task["enqueued_at"] || task["state"] != "pending" {
		t.Errorf("task with --process-at in 2000: %v, want ready at its enqueue", task)
	}
	if l := findQueue(t, queuesJSON(t, url), "default")["latency_seconds"].(float64); l > 60 {
		t.Errorf("latency %v s after a --process-at in 2000", l)
	}
}

// TestRedisLogLinesNotOnStderr runs the command in a child process against a Redis that
// does not answer and checks that standard error holds the one error line, without
// go-redis's own log lines (pool.go: … failed to dial).
func TestRedisLogLinesNotOnStderr(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "queues", "--broker", "redis://127.0.0.1:1/0")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 {
		t.Fatalf("brisk queues on an unreachable Redis: %v, want exit status 1", err)
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "brisk: ") || strings.Contains(got, "pool.go") {
		t.Errorf("stderr = %q, want one brisk: line", got)
	}
}

// TestRetryAndDeleteAgree checks that retry and delete answer "nothing matched" the same
// way with --all and with ids: success, saying what matched.
func TestRetryAndDeleteAgree(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "q", "a")
	for cmd, done := range map[string]string{"retry": "retried", "delete": "deleted"} {
		all := ok(t, cmd, "--broker", url, "--queue", "q", "--all")
		none := ok(t, cmd, "--broker", url, "--queue", "q", "nosuch1", "nosuch2")
		if !strings.HasPrefix(all, done+" 0 task(s)") || !strings.HasPrefix(none, done+" 0 task(s)") ||
			!strings.Contains(none, "2 of the 2 ids named no dead task") {
			t.Errorf("%s: --all printed %q, ids printed %q; want both to succeed with 0 and the ids' note", cmd, all, none)
		}
	}
}

// TestDeadTableShowsFailedAt checks that the listing of dead tasks says when each failed.
func TestDeadTableShowsFailedAt(t *testing.T) {
	t.Parallel()
	url := setup(t)
	makeDead(t, url, "q", 1)
	out := ok(t, "tasks", "--broker", url, "--queue", "q", "--state", "dead")
	if !strings.Contains(strings.SplitN(out, "\n", 2)[0], "FAILED AT") || !regexp.MustCompile(`\d{4}-\d\d-\d\dT`).MatchString(out) {
		t.Errorf("dead listing:\n%s", out)
	}
}

// TestQueueDelete checks brisk queue delete.
func TestQueueDelete(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "full", "a")
	ok(t, "pause", "--broker", url, "--queue", "empty")
	if out := ok(t, "queue", "delete", "--broker", url, "empty"); out != "deleted queue empty\n" {
		t.Errorf("queue delete: %q", out)
	}
	if msg := fails(t, 1, "queue", "delete", "--broker", url, "full"); !strings.Contains(msg, "1 pending") {
		t.Errorf("queue delete of a queue with a task: %q", msg)
	}
	if msg := fails(t, 1, "queue", "delete", "--broker", url, "empty"); !strings.Contains(msg, "no queue named empty") {
		t.Errorf("queue delete of an unknown queue: %q", msg)
	}
	if qs := queuesJSON(t, url); len(qs) != 1 || qs[0]["name"] != "full" {
		t.Errorf("queues after the deletes: %v", qs)
	}
}

// TestAutoscaleMissingQueueAndDefaultSLA checks the documented rules: a queue that does not
// exist is reported once and waited for (the count is kept, nothing loops on "task not
// found"), and a queue without an SLA says which one the sla policy uses.
func TestAutoscaleMissingQueueAndDefaultSLA(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "plain", "a")
	stdout, _, stop := runBackground(t, "autoscale", "--broker", url, "--queue", "nosuch", "--queue", "plain",
		"--hook", "true {{count}}", "--interval", "50ms")
	waitOutput(t, "the missing queue reported", stdout, regexp.MustCompile(`queue nosuch does not exist`))
	waitOutput(t, "a decision on plain", stdout, regexp.MustCompile(`plain latency .* \(SLA none, the sla policy uses 30s\)`))
	time.Sleep(300 * time.Millisecond)
	ok(t, "enqueue", "--broker", url, "--queue", "nosuch", "a")
	waitOutput(t, "a decision on nosuch once it exists", stdout, regexp.MustCompile(`nosuch latency`))
	stop()
	out := stdout.String()
	if n := strings.Count(out, "does not exist"); n != 1 || strings.Contains(out, "task not found") {
		t.Errorf("autoscale output says %d times that the queue does not exist (want once), or task not found:\n%s", n, out)
	}
	if !strings.Contains(out, "queue plain has no SLA: the sla policy aims at 30s") {
		t.Errorf("autoscale does not say which SLA it uses for plain:\n%s", out)
	}
}

// TestDashboardCredentialsFromFileAndEnv checks that the token and the basic
// authentication can come from a file or an environment variable (out of the process
// list), and that --host names the public names.
func TestDashboardCredentialsFromFileAndEnv(t *testing.T) {
	t.Parallel()
	url := setup(t)
	file := writeFile(t, "token", "s3cret\n")
	for _, args := range [][]string{
		{"--token-file", file},
		{"--basic-auth-file", writeFile(t, "auth", "ops:pw\n")},
	} {
		// Any address but loopback needs credentials: these count.
		stdout, stderr, stop := runBackground(t, append([]string{"dashboard", "--broker", url, "--listen", "0.0.0.0:0", "--host", "brisk.example.com"}, args...)...)
		waitOutput(t, "dashboard started with "+args[0], stdout, regexp.MustCompile(`brisk dashboard on http://`))
		if code := stop(); code != exitInterrupted {
			t.Errorf("dashboard %v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	if msg := fails(t, 2, "dashboard", "--broker", url, "--token-file", filepath.Join(t.TempDir(), "nope")); !strings.Contains(msg, "--token-file") {
		t.Errorf("missing token file: %q", msg)
	}
	if msg := fails(t, 2, "dashboard", "--broker", url, "--basic-auth-file", writeFile(t, "auth", "nocolon")); !strings.Contains(msg, "USER:PASS") {
		t.Errorf("bad basic auth file: %q", msg)
	}
}

// writeFile writes s to a new file called name and returns its path.
func writeFile(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNamesAgree checks that the help, the errors and docs/api.md state the same rules for
// queue and type names.
func TestNamesAgree(t *testing.T) {
	t.Parallel()
	api, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	help := ok(t, "enqueue", "--help")
	for _, rule := range []string{brisk.QueueNameRule, brisk.TypeNameRule} {
		if !strings.Contains(string(api), rule) {
			t.Errorf("docs/api.md does not state the rule %q", rule)
		}
		if !strings.Contains(strings.Join(strings.Fields(help), " "), rule) {
			t.Errorf("brisk enqueue --help does not state the rule %q:\n%s", rule, help)
		}
	}
}

// TestHelpSaysWhatHappens checks help texts that used to contradict the behaviour.
func TestHelpSaysWhatHappens(t *testing.T) {
	t.Parallel()
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if h := flat(ok(t, "bench", "--help")); !strings.Contains(h, "--broker URL broker URL (default $BRISK_BROKER, else a fresh SQLite file in a temporary directory") {
		t.Errorf("bench --help does not say what it uses without --broker:\n%s", h)
	}
	if h := flat(ok(t, "dashboard", "--help")); !strings.Contains(h, "--read-only refuse every change (enqueue, retry and delete of dead tasks, pause, resume, queue delete)") {
		t.Errorf("dashboard --help does not say what --read-only refuses:\n%s", h)
	}
	if h := flat(ok(t, "enqueue", "--help")); !strings.Contains(h, "--max-attempts N let the task run N times before it is dead, at least 1 (default 25)") {
		t.Errorf("enqueue --help on --max-attempts:\n%s", h)
	}
	if h := ok(t, "--help"); !strings.Contains(h, "  queue ") {
		t.Errorf("brisk --help does not list queue:\n%s", h)
	}
}
