package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/testenv"
)

// workerProc is a "brisk worker" process: this test binary run as the brisk command.
type workerProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startWorker starts "brisk worker ARGS..." as a process of its own; it is killed at the
// end of the test if still running, and its standard error is logged when the test fails.
func startWorker(t *testing.T, env []string, args ...string) *workerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"worker"}, args...)...)
	cmd.Env = append(append(os.Environ(), mainEnv+"=1"), env...)
	p := &workerProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("brisk worker %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// term sends SIGTERM and waits for the process to exit, within limit.
func (p *workerProc) term(t *testing.T, limit time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		t.Fatalf("brisk worker did not exit within %s of SIGTERM", limit)
		return nil
	}
}

// pyHandler is the Python handler process of the tests, built on python/brisk.py. Each
// run appends "start ID ATTEMPT PID" and "done ID ATTEMPT" to $LOG. Types: ok, flaky
// (fails its first attempt), dead (brisk.Dead), fail (always raises), later (brisk.Retry
// with a 0.3 s delay on its first attempt), slow (sleeps payload["s"] seconds; with
// "first": true only on the first attempt), noisy (prints to stdout and stderr).
const pyHandler = `
import os, sys, time
import brisk

LOG = os.environ["LOG"]

def log(*words):
    with open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")

@brisk.handler("*")
def any_type(payload, task):
    log("start", task.id, task.attempt, os.getpid())
    t = task.type
    if t == "flaky" and task.attempt == 1:
        raise RuntimeError("first attempt fails")
    if t == "dead":
        raise brisk.Dead("no such mailbox")
    if t == "fail":
        raise ValueError("always")
    if t == "later" and task.attempt == 1:
        raise brisk.Retry("not yet", delay=0.3)
    if t == "slow" and (task.attempt == 1 or not payload.get("first")):
        time.sleep(payload["s"])
    if t == "noisy":
        print("a stray print")
        sys.stderr.write("a warning\n")
    log("done", task.id, task.attempt)

brisk.run()
`

// pyWorkerEnv returns the environment and --exec command of the Python handler, and the
// path of its log. Without python3 the test fails under CI and is skipped elsewhere.
func pyWorkerEnv(t *testing.T) (env []string, execCmd, logPath string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3 is not installed: %v", err)
	}
	lib, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "handler.py")
	if err := os.WriteFile(script, []byte(pyHandler), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "log")
	return []string{"PYTHONPATH=" + lib, "LOG=" + logPath}, py + " " + script, logPath
}

// runLog is the parsed log of a handler: runs and completions per task id.
type runLog struct {
	starts map[string][]int // attempts started, in order
	dones  map[string]int   // completions
	pids   map[string][]int // pids of the starts
}

func readRunLog(t *testing.T, path string) runLog {
	t.Helper()
	l := runLog{starts: map[string][]int{}, dones: map[string]int{}, pids: map[string][]int{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return l
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 3 {
			continue
		}
		attempt, _ := strconv.Atoi(w[2])
		switch w[0] {
		case "start":
			l.starts[w[1]] = append(l.starts[w[1]], attempt)
			pid, _ := strconv.Atoi(w[3])
			l.pids[w[1]] = append(l.pids[w[1]], pid)
		case "done":
			l.dones[w[1]]++
		}
	}
	return l
}

// eventually polls cond every 50 ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// enqueueN enqueues n tasks of typ with payload into queue and returns their ids.
func enqueueN(t *testing.T, c *brisk.Client, queue, typ, payload string, n int, opts ...brisk.Option) []string {
	t.Helper()
	tasks := make([]*brisk.Task, n)
	for i := range tasks {
		tasks[i] = brisk.NewTask(typ, []byte(payload), append([]brisk.Option{brisk.InQueue(queue)}, opts...)...)
	}
	ids, err := c.EnqueueBatch(context.Background(), tasks)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func queueCounts(t *testing.T, c *brisk.Client, queue string) brisk.QueueInfo {
	t.Helper()
	qs, err := brisk.NewInspector(c.Broker()).Queues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == queue {
			return q
		}
	}
	return brisk.QueueInfo{Name: queue}
}

func taskState(t *testing.T, c *brisk.Client, id string) (*brisk.TaskInfo, bool) {
	t.Helper()
	ti, err := brisk.NewInspector(c.Broker()).Task(context.Background(), id)
	if err != nil {
		return nil, false
	}
	return ti, true
}

// TestWorkerExecPython runs brisk worker --exec with a Python handler through its
// outcomes: done, a failure retried, an explicit retry with a delay, a dead task, a
// task whose attempts run out, a stray print, a task past its timeout (child killed and
// restarted) and a child killed from outside while it runs a task.
func TestWorkerExecPython(t *testing.T) {
	t.Parallel()
	env, execCmd, logPath := pyWorkerEnv(t)
	url := setup(t)
	c := open(t, url)
	ids := map[string]string{}
	for _, typ := range []string{"ok", "flaky", "later", "dead", "noisy"} {
		ids[typ] = enqueueN(t, c, "q", typ, `{}`, 1)[0]
	}
	ids["fail"] = enqueueN(t, c, "q", "fail", `{}`, 1, brisk.MaxAttempts(2))[0]
	ids["timeout"] = enqueueN(t, c, "q", "slow", `{"s": 30, "first": true}`, 1, brisk.Timeout(3*time.Second))[0]
	ids["killed"] = enqueueN(t, c, "q", "slow", `{"s": 3, "first": true}`, 1)[0]

	w := startWorker(t, env, "--broker", url, "--queue", "q", "--concurrency", "3", "--exec", execCmd)
	// Kill the child that runs "killed" as soon as it has started.
	eventually(t, 20*time.Second, "the task to kill started", func() bool {
		return len(readRunLog(t, logPath).pids[ids["killed"]]) > 0
	})
	pid := readRunLog(t, logPath).pids[ids["killed"]][0]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every task finished", func() bool {
		q := queueCounts(t, c, "q")
		return q.Pending+q.Scheduled+q.Running == 0 && q.Dead == 2
	})
	l := readRunLog(t, logPath)
	for typ, want := range map[string]struct {
		starts []int
		done   int
	}{
		"ok": {[]int{1}, 1}, "flaky": {[]int{1, 2}, 1}, "later": {[]int{1, 2}, 1}, "dead": {[]int{1}, 0},
		"noisy": {[]int{1}, 1}, "fail": {[]int{1, 2}, 0}, "timeout": {[]int{1, 2}, 1}, "killed": {[]int{1, 2}, 1},
	} {
		id := ids[typ]
		if fmt.Sprint(l.starts[id]) != fmt.Sprint(want.starts) || l.dones[id] != want.done {
			t.Errorf("%s: attempts %v, done %d times; want %v and %d", typ, l.starts[id], l.dones[id], want.starts, want.done)
		}
	}
	for typ, wantErr := range map[string]string{"dead": "no such mailbox", "fail": "ValueError: always"} {
		ti, ok := taskState(t, c, ids[typ])
		if !ok || ti.State != brisk.StateDead || !strings.Contains(ti.LastError, wantErr) {
			t.Errorf("%s: %+v, want dead with %q", typ, ti, wantErr)
		}
	}
	if pids := l.pids[ids["killed"]]; len(pids) != 2 || pids[0] == pids[1] {
		t.Errorf("killed task ran in pids %v: want a new child for the second attempt", pids)
	}
	if pids := l.pids[ids["timeout"]]; len(pids) != 2 || pids[0] == pids[1] {
		t.Errorf("timed out task ran in pids %v: want its child killed and a new one", pids)
	}
	if err := w.term(t, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	errText := w.stderr.String()
	for _, want := range []string{"a stray print", "a warning", "] Traceback", "exited while running the task", "killed"} {
		if !strings.Contains(errText, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}

// TestWorkerExecSIGTERM sends SIGTERM to brisk worker --exec while tasks run: with a
// grace period long enough, the running tasks finish and the others stay pending; with a
// short one, the running tasks are handed back and run again by the next worker. Either
// way nothing is lost, and only the interrupted tasks run twice.
func TestWorkerExecSIGTERM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		grace string
		sleep string
	}{{"finish", "20s", `{"s": 0.6}`}, {"handed-back", "300ms", `{"s": 2}`}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, execCmd, logPath := pyWorkerEnv(t)
			url := setup(t)
			c := open(t, url)
			ids := enqueueN(t, c, "q", "slow", tc.sleep, 12)
			args := []string{"--broker", url, "--queue", "q", "--concurrency", "3", "--grace", tc.grace, "--exec", execCmd}
			w := startWorker(t, env, args...)
			eventually(t, 20*time.Second, "three tasks running", func() bool { return len(readRunLog(t, logPath).starts) >= 3 })
			if err := w.term(t, 30*time.Second); err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
			l := readRunLog(t, logPath)
			started, done := len(l.starts), len(l.dones)
			q := queueCounts(t, c, "q")
			if q.Running != 0 || int(q.Pending)+done != len(ids) {
				t.Fatalf("after SIGTERM: %d started, %d done, queue %+v: want every task not done pending again", started, done, q)
			}
			if tc.name == "finish" && done != started {
				t.Fatalf("%d tasks started but %d finished within the grace period", started, done)
			}
			if tc.name == "handed-back" && done != 0 {
				t.Fatalf("%d tasks finished within a 300ms grace period of 2 s tasks", done)
			}
			startWorker(t, env, args...)
			eventually(t, 60*time.Second, "the queue drained", func() bool {
				q := queueCounts(t, c, "q")
				return q.Pending+q.Scheduled+q.Running+q.Dead == 0
			})
			l = readRunLog(t, logPath)
			twice := 0
			for _, id := range ids {
				if l.dones[id] != 1 {
					t.Errorf("task %s done %d times", id, l.dones[id])
				}
				if len(l.starts[id]) > 1 {
					twice++
				}
			}
			if tc.name == "finish" && twice != 0 {
				t.Errorf("%d tasks ran twice after a graceful shutdown that let them finish", twice)
			}
			if twice > started {
				t.Errorf("%d tasks ran twice, but only %d were running at SIGTERM", twice, started)
			}
		})
	}
}

func TestWorkerUsage(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for _, args := range [][]string{
		{"worker", "--broker", url, "--exec", "x"},                                                          // no queue
		{"worker", "--broker", url, "--queue", "q"},                                                         // no handler
		{"worker", "--broker", url, "--queue", "q", "--exec", "x", "--http", "http://a"},                    // both
		{"worker", "--broker", url, "--queue", "q", "--http", "ftp://a"},                                    // bad URL
		{"worker", "--broker", url, "--queue", "q", "--exec", "x", "--max-concurrency", "r=2"},              // unknown queue
		{"worker", "--broker", url, "--queue", "q", "--exec", "x", "--max-concurrency", "q=0"},              // bad limit
		{"worker", "--broker", url, "--queue", "q", "--queue", "q", "--exec", "x"},                          // twice
		{"worker", "--broker", url, "--queue", "q", "--exec", "x", "--header", "A: b"},                      // header without --http
		{"worker", "--broker", url, "--queue", "q", "--exec", "'unterminated"},                              // bad command
		{"worker", "--broker", url, "--queue", "q", "--http", "http://127.0.0.1:1/", "--header", "nocolon"}, // bad header
	} {
		fails(t, exitUsage, args...)
	}
	// A command that cannot start is a runtime error, and nothing is taken from the queue.
	enqueueN(t, open(t, url), "q", "x", `{}`, 1)
	msg := fails(t, exitError, "worker", "--broker", url, "--queue", "q", "--exec", "/nonexistent/handler")
	if !strings.Contains(msg, "/nonexistent/handler") {
		t.Fatalf("error %q does not name the command", msg)
	}
	if q := queueCounts(t, open(t, url), "q"); q.Pending != 1 {
		t.Fatalf("queue after a worker that could not start: %+v", q)
	}
}

// httpCall is one request the test server received.
type httpCall struct {
	id, typ string
	attempt int
	at      time.Time
}

// TestWorkerHTTP runs brisk worker --http against a real HTTP server through its
// outcomes: 2xx done, 500 then 200 (backoff), 429 with Retry-After (retried then), 503
// without it (backoff), 404 (dead at once), a response slower than the task's timeout
// (retried), and SIGTERM while requests are in flight (they finish; nothing runs twice).
func TestWorkerHTTP(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls []httpCall
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d apiv1.Delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil || r.Method != http.MethodPost ||
			r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Brisk-Task-Id") != d.ID ||
			r.Header.Get("Brisk-Attempt") != strconv.Itoa(d.Attempt) || r.Header.Get("Brisk-Task-Type") != d.Type ||
			r.Header.Get("Brisk-Queue") != "web" || r.Header.Get("Authorization") != "Bearer s3cret" || d.Deadline == nil {
			t.Errorf("bad request %s %v: %+v (%v)", r.Method, r.Header, d, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, httpCall{d.ID, d.Type, d.Attempt, time.Now()})
		mu.Unlock()
		first := d.Attempt == 1
		switch {
		case d.Type == "flaky" && first:
			http.Error(w, "boom", http.StatusInternalServerError)
		case d.Type == "busy" && first:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case d.Type == "down" && first:
			w.WriteHeader(http.StatusServiceUnavailable)
		case d.Type == "gone":
			http.Error(w, "no such thing", http.StatusNotFound)
		case d.Type == "slow" && (first || d.Payload != nil && string(d.Payload) == `{"always":true}`):
			select {
			case <-time.After(600 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			if d.Type == "slow" && first && string(d.Payload) == `{"timeout":true}` {
				time.Sleep(5 * time.Second) // past the task's 1 s timeout
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	url := setup(t)
	c := open(t, url)
	ids := map[string]string{}
	for _, typ := range []string{"ok", "flaky", "busy", "down", "gone"} {
		ids[typ] = enqueueN(t, c, "web", typ, `{}`, 1)[0]
	}
	ids["timeout"] = enqueueN(t, c, "web", "slow", `{"timeout":true}`, 1, brisk.Timeout(time.Second))[0]
	args := []string{"--broker", url, "--queue", "web", "--concurrency", "4", "--http", srv.URL + "/tasks", "--header", "Authorization: Bearer s3cret"}
	w := startWorker(t, nil, args...)
	eventually(t, 30*time.Second, "every task finished", func() bool {
		q := queueCounts(t, c, "web")
		return q.Pending+q.Scheduled+q.Running == 0 && q.Dead == 1
	})
	mu.Lock()
	byID := map[string][]httpCall{}
	for _, cl := range calls {
		byID[cl.id] = append(byID[cl.id], cl)
	}
	mu.Unlock()
	for typ, want := range map[string]int{"ok": 1, "flaky": 2, "busy": 2, "down": 2, "gone": 1, "timeout": 2} {
		if got := len(byID[ids[typ]]); got != want {
			t.Errorf("%s: %d requests, want %d", typ, got, want)
		}
	}
	if b := byID[ids["busy"]]; len(b) == 2 && b[1].at.Sub(b[0].at) < 900*time.Millisecond {
		t.Errorf("429 with Retry-After: 1 retried after %s", b[1].at.Sub(b[0].at))
	}
	if ti, ok := taskState(t, c, ids["gone"]); !ok || ti.State != brisk.StateDead || !strings.Contains(ti.LastError, "HTTP 404") || !strings.Contains(ti.LastError, "no such thing") {
		t.Errorf("404 task: %+v, want dead with HTTP 404 and the body", ti)
	}

	// SIGTERM with requests in flight: they finish, the rest stay pending for the next
	// worker, and every task is requested exactly once.
	slow := enqueueN(t, c, "web", "slow", `{"always":true}`, 10)
	eventually(t, 10*time.Second, "requests in flight", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, cl := range calls {
			if cl.typ == "slow" && cl.attempt == 1 && cl.id != ids["timeout"] {
				n++
			}
		}
		return n >= 4
	})
	if err := w.term(t, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if q := queueCounts(t, c, "web"); q.Running != 0 || q.Pending == 0 {
		t.Fatalf("after SIGTERM: %+v, want nothing running and the rest pending", q)
	}
	startWorker(t, nil, args...)
	eventually(t, 30*time.Second, "the slow tasks done", func() bool {
		q := queueCounts(t, c, "web")
		return q.Pending+q.Scheduled+q.Running == 0
	})
	mu.Lock()
	defer mu.Unlock()
	count := map[string]int{}
	for _, cl := range calls {
		count[cl.id]++
	}
	for _, id := range slow {
		if count[id] != 1 {
			t.Errorf("slow task %s requested %d times", id, count[id])
		}
	}
}

func TestStatusError(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		code       int
		retryAfter string
		dead       bool
		delay      time.Duration // 0: the backoff
		ok         bool
	}{
		{200, "", false, 0, true}, {204, "", false, 0, true},
		{429, "7", false, 7 * time.Second, false}, {503, "0.5", false, 500 * time.Millisecond, false},
		{503, now.Add(time.Minute).Format(http.TimeFormat), false, time.Minute, false},
		{429, "", false, 0, false}, {503, "soon", false, 0, false},
		{400, "", true, 0, false}, {404, "", true, 0, false}, {422, "5", true, 0, false},
		{500, "5", false, 0, false}, {302, "", false, 0, false},
	} {
		err := statusError(tc.code, tc.retryAfter, []byte("body"), now)
		var ra *brisk.RetryAfterError
		switch {
		case tc.ok != (err == nil):
			t.Errorf("%d: %v", tc.code, err)
		case err == nil:
		case errors.Is(err, brisk.ErrSkipRetry) != tc.dead:
			t.Errorf("%d %q: %v, dead %v", tc.code, tc.retryAfter, err, tc.dead)
		case errors.As(err, &ra) != (tc.delay > 0) || (tc.delay > 0 && ra.Delay != tc.delay):
			t.Errorf("%d %q: %v, want delay %s", tc.code, tc.retryAfter, err, tc.delay)
		}
	}
}

func TestQueueSetSLA(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if out := ok(t, "queue", "set", "--broker", url, "--sla", "90s", "reports"); out != "queue reports: SLA 1m30s\n" {
		t.Fatalf("output %q", out)
	}
	if q := findQueue(t, queuesJSON(t, url), "reports"); q["sla_seconds"] != 90.0 {
		t.Fatalf("after --sla 90s: %v", q)
	}
	ok(t, "queue", "set", "--broker", url, "--sla", "0", "reports")
	if q := findQueue(t, queuesJSON(t, url), "reports"); q["sla_seconds"] != nil {
		t.Fatalf("after --sla 0: %v", q)
	}
	for _, args := range [][]string{
		{"queue", "--broker", url}, {"queue", "get", "--broker", url, "--sla", "1s", "q"},
		{"queue", "set", "--broker", url, "--sla", "1s"}, {"queue", "set", "--broker", url, "q"},
		{"queue", "set", "--broker", url, "--sla", "-1s", "q"}, {"queue", "set", "--broker", url, "--sla", "1s", "bad name"},
		{"queue", "delete", "--broker", url, "--sla", "1s", "q"},
	} {
		r := call(t, "", args...)
		if r.code == 0 {
			t.Errorf("brisk %s succeeded", strings.Join(args, " "))
		}
	}
}

func TestWorkersListsLiveWorkers(t *testing.T) {
	t.Parallel()
	url := setup(t)
	if out := ok(t, "workers", "--broker", url); out != "no live workers\n" {
		t.Fatalf("no worker: %q", out)
	}
	startWorker(t, nil, "--broker", url, "--queue", "a", "--queue", "b", "--concurrency", "3", "--id", "w-test", "--exec", "cat")
	var ws []map[string]any
	eventually(t, 10*time.Second, "the worker listed", func() bool {
		if err := json.Unmarshal([]byte(ok(t, "workers", "--broker", url, "--json")), &ws); err != nil {
			t.Fatal(err)
		}
		return len(ws) == 1
	})
	if w := ws[0]; w["id"] != "w-test" || fmt.Sprint(w["queues"]) != "[a b]" || w["concurrency"] != 3.0 || w["pid"] == 0.0 {
		t.Fatalf("worker %v", w)
	}
	if out := ok(t, "workers", "--broker", url); !strings.Contains(out, "w-test") || !strings.Contains(out, "0/3") {
		t.Fatalf("table %q", out)
	}
}

// syncBuffer collects a process's output for the test log, safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkerHTTPResult checks that a 2xx JSON body of an --http endpoint is kept as the
// result of a task with a retention, and that another body or content type is not.
func TestWorkerHTTPResult(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d apiv1.Delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if d.Type == "json" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			fmt.Fprintf(w, `{"id":%q,"pages":4}`, d.ID)
			return
		}
		fmt.Fprint(w, "done") // text/plain: no result
	}))
	defer srv.Close()
	url := setup(t)
	c := open(t, url)
	if err := c.SetRetention(context.Background(), "web", time.Hour); err != nil {
		t.Fatal(err)
	}
	withJSON := enqueueN(t, c, "web", "json", `{}`, 1)[0]
	plain := enqueueN(t, c, "web", "text", `{}`, 1)[0]
	startWorker(t, nil, "--broker", url, "--queue", "web", "--concurrency", "2", "--http", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := c.Result(ctx, withJSON)
	if err != nil || string(got.Result) != fmt.Sprintf(`{"id":%q,"pages":4}`, withJSON) {
		t.Fatalf("result of the JSON response = %+v, %v", got, err)
	}
	if got, err := c.Result(ctx, plain); err != nil || got.Result != nil {
		t.Fatalf("result of the text response = %q, %v; want completed without a result", got.Result, err)
	}
}

// TestWorkerHTTPStream checks a streamed --http response (application/x-ndjson): a
// progress line shows while the request still runs, the outcome line decides the task
// (ok with a result, dead), and a stream that ends without an outcome is retried.
func TestWorkerHTTPStream(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d apiv1.Delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls[d.Type]++
		n := calls[d.Type]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ndjson")
		switch d.Type {
		case "report":
			fmt.Fprintf(w, "{\"id\":%q,\"progress\":{\"percent\":40,\"message\":\"rendering\"}}\n", d.ID)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "\n{\"id\":%q,\"status\":\"ok\",\"result\":{\"pages\":4}}\n", d.ID)
		case "refused":
			fmt.Fprintf(w, "{\"id\":%q,\"status\":\"dead\",\"error\":\"no such account\"}\n", d.ID)
		case "cut":
			if n == 1 {
				fmt.Fprintf(w, "{\"id\":%q,\"progress\":{\"percent\":10,\"message\":\"\"}}\n", d.ID)
				return // ends without an outcome: retried
			}
			fmt.Fprintf(w, "{\"id\":%q,\"status\":\"ok\"}\n", d.ID)
		}
	}))
	defer srv.Close()
	url := setup(t)
	c := open(t, url)
	if err := c.SetRetention(context.Background(), "web", time.Hour); err != nil {
		t.Fatal(err)
	}
	report := enqueueN(t, c, "web", "report", `{}`, 1)[0]
	refused := enqueueN(t, c, "web", "refused", `{}`, 1)[0]
	cut := enqueueN(t, c, "web", "cut", `{}`, 1, brisk.MaxAttempts(3))[0]
	startWorker(t, nil, "--broker", url, "--queue", "web", "--concurrency", "3", "--http", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insp := brisk.NewInspector(c.Broker())
	for {
		info, err := insp.Task(ctx, report)
		if err != nil {
			t.Fatal(err)
		}
		if p := info.Progress; p != nil && p.Percent == 40 && p.Message == "rendering" && info.State == brisk.StateRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if got, err := c.Result(ctx, report); err != nil || string(got.Result) != `{"pages":4}` {
		t.Fatalf("result of the streamed task = %+v, %v", got, err)
	}
	for {
		info, err := insp.Task(ctx, refused)
		if err != nil {
			t.Fatal(err)
		}
		if info.State == brisk.StateDead {
			if !strings.Contains(info.LastError, "no such account") || info.Attempt != 1 {
				t.Errorf("dead task: attempt %d, error %q", info.Attempt, info.LastError)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := c.Result(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 {
		t.Errorf("the cut stream's task completed on attempt %d; want 2", got.Attempt)
	}
}
