package celerybroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	_ "github.com/briskq/brisk/broker/celerybroker"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/cli"
	"github.com/briskq/brisk/internal/pytest"
	"github.com/briskq/brisk/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// app is the Celery application of the tests (app.py in the test's directory): the
// task t.sleep, the broker from $BROKER, and the hook of python/brisk_celery.py when $HOOK
// is set.
const app = `
import os, time
if os.environ.get("HOOK"):
    import brisk_celery
from celery import Celery
app = Celery("t", broker=os.environ["BROKER"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                worker_prefetch_multiplier=1)

@app.task(name="t.sleep")
def sleep(seconds):
    time.sleep(seconds)
`

// send sends argv[1:] as (queue, count, pause) groups and prints, as its last line, the
// epoch seconds just before and after the first message of each queue was sent.
const send = `
import json, sys, time
from app import sleep
args = sys.argv[1:]
first = {}
for i in range(0, len(args), 3):
    queue, n, pause = args[i], int(args[i+1]), float(args[i+2])
    for j in range(n):
        before = time.time()
        sleep.apply_async((0.05,), queue=queue, priority=(j % 3) * 3)
        first.setdefault(queue, [before, time.time()])
    time.sleep(pause)
print(json.dumps(first))
`

// celery is a directory with the app, and the environment that runs it on brokerURL.
type celery struct {
	py, dir string
	env     []string
}

func newCelery(t *testing.T, brokerURL string, hook bool) *celery {
	t.Helper()
	py := pytest.Python(t, "celery", "redis")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"BROKER=" + brokerURL, "PYTHONPATH=" + lib + ":" + dir}
	if hook {
		env = append(env, "HOOK=1")
	}
	return &celery{py: py, dir: dir, env: env}
}

// send sends groups of "queue count pause" and returns when each queue's first message
// was sent (between two clock readings).
func (c *celery) send(t *testing.T, groups ...string) map[string][2]float64 {
	t.Helper()
	out := pytest.LastLine(pytest.Run(t, c.py, c.dir, send, c.env, groups...))
	var first map[string][2]float64
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatalf("send printed %q: %v", out, err)
	}
	return first
}

// worker starts a Celery worker on queue (solo pool), stopped with SIGTERM at the end.
func (c *celery) worker(t *testing.T, queue string) {
	t.Helper()
	cmd := exec.Command(c.py, "-m", "celery", "-A", "app", "worker", "-Q", queue, "--pool", "solo",
		"-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat")
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("celery worker stderr:\n%s", stderr.String())
		}
	})
}

// queuesJSON runs `brisk queues --broker URL --json` and returns its queues by name.
func queuesJSON(t *testing.T, url string) map[string]apiv1.Queue {
	t.Helper()
	var out, errOut strings.Builder
	if code := cli.Main([]string{"queues", "--broker", url, "--json"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("brisk queues --json: exit %d: %s", code, errOut.String())
	}
	var qs []apiv1.Queue
	if err := json.Unmarshal([]byte(out.String()), &qs); err != nil {
		t.Fatalf("brisk queues --json printed %q: %v", out.String(), err)
	}
	m := map[string]apiv1.Queue{}
	for _, q := range qs {
		m[q.Name] = q
	}
	return m
}

// checkJSON checks a queue of `brisk queues --json` against the truth: pending exactly,
// latency within slack of the age of a message sent between the two epoch times.
func checkJSON(t *testing.T, q apiv1.Queue, pending int64, source string, sent [2]float64, slack time.Duration) {
	t.Helper()
	now := float64(time.Now().UnixNano()) / 1e9
	lo, hi := now-sent[1]-slack.Seconds(), now-sent[0]+slack.Seconds()
	if q.Pending != pending || q.LatencySource != source || q.LatencySeconds < lo || q.LatencySeconds > hi {
		t.Errorf("brisk queues --json %s: %+v; want %d pending, latency from %s between %.3fs and %.3fs",
			q.Name, q, pending, source, lo+slack.Seconds(), hi-slack.Seconds())
	}
}

func stats(t *testing.T, b broker.Broker) map[string]broker.QueueStats {
	t.Helper()
	qs, err := b.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]broker.QueueStats{}
	for _, q := range qs {
		out[q.Name] = q
	}
	return out
}

// checkLatency checks a latency against the truth: the age of a message sent between the
// two epoch times, give or take slack.
func checkLatency(t *testing.T, q broker.QueueStats, sent [2]float64, slack time.Duration) {
	t.Helper()
	now := float64(time.Now().UnixNano()) / 1e9
	lo, hi := now-sent[1]-slack.Seconds(), now-sent[0]+slack.Seconds()
	if got := q.Latency.Seconds(); got < lo || got > hi {
		t.Errorf("%s: latency %.3fs (%s), truth from %.3fs to %.3fs (slack %s)", q.Name, got, q.LatencySource, lo+slack.Seconds(), hi-slack.Seconds(), slack)
	}
}

func open(t *testing.T, url string) broker.Broker {
	t.Helper()
	b, err := brisk.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func checkReadOnly(t *testing.T, b broker.Broker, queue string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	in := brisk.NewInspector(b)
	for what, err := range map[string]error{
		"enqueue": b.Enqueue(ctx, []*broker.Task{{TaskInfo: brisk.TaskInfo{ID: "x", Queue: queue, Type: "t", MaxAttempts: 1, EnqueuedAt: now, ReadyAt: now}}}),
		"reserve": func() error {
			_, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: queue}}, Limit: 1, Lease: time.Second})
			return err
		}(),
		"declare": b.DeclareQueue(ctx, broker.QueueConfig{Name: queue, SLA: time.Second}),
		"retry":   func() error { _, err := in.RetryDead(ctx, queue); return err }(),
		"delete":  func() error { _, err := in.DeleteTasks(ctx, queue, brisk.StatePending); return err }(),
		"pause":   in.PauseQueue(ctx, queue),
	} {
		if !errors.Is(err, brisk.ErrUnsupported) || (what != "pause" && !strings.Contains(err.Error(), "read only")) {
			t.Errorf("%s: %v, want a read-only refusal wrapping ErrUnsupported", what, err)
		}
	}
}

// TestRedisWithHook fills Celery queues on Redis with the hook: pending counts are exact
// (priority sub-lists included) and latency is within 1 s of the truth.
func TestRedisWithHook(t *testing.T) {
	raw := pytest.RedisDB(t, 10)
	c := newCelery(t, raw, true)
	first := c.send(t, "emails", "7", "0", "five_second", "3", "0.5")
	b := open(t, "celery+"+raw+"?sla=emails:30s")
	for name, want := range map[string]int64{"emails": 7, "five_second": 3} {
		checkJSON(t, queuesJSON(t, "celery+"+raw)[name], want, "published_at", first[name], time.Second)
	}
	qs := stats(t, b)
	if len(qs) != 2 {
		t.Fatalf("queues %v, want emails and five_second", qs)
	}
	for name, want := range map[string]int64{"emails": 7, "five_second": 3} {
		q := qs[name]
		if q.Pending != want || q.Running != 0 || q.LatencySource != "published_at" {
			t.Errorf("%s: %+v, want %d pending, latency from published_at", name, q, want)
		}
		checkLatency(t, q, first[name], time.Second)
	}
	if qs["emails"].SLA != 30*time.Second {
		t.Errorf("emails SLA %s, want 30s from the URL", qs["emails"].SLA)
	}
	infos, err := brisk.NewInspector(b).Queues(context.Background())
	if err != nil || infos[1].Name != "five_second" || infos[1].SLA != 5*time.Second {
		t.Errorf("inspector: %+v %v, want five_second with the SLA its name states", infos, err)
	}
	ts, err := brisk.NewInspector(b).Tasks(context.Background(), "emails", brisk.StatePending, 100, 0)
	if err != nil || len(ts) != 7 || ts[0].Type != "t.sleep" || !strings.HasPrefix(string(ts[0].Payload), "[[0.05]") {
		t.Fatalf("pending tasks: %v %v", ts, err)
	}
	pytest.CheckDashboard(t, b, "emails")
	checkReadOnly(t, b, "emails")
	if after := stats(t, b); after["emails"].Pending != 7 {
		t.Errorf("a refused write changed the queue: %+v", after["emails"])
	}
}

// TestRedisWithoutHook watches from before the messages come: latency is estimated from
// when each head was first seen (within the track interval), and a real Celery worker
// that drains the queue shows as completions.
func TestRedisWithoutHook(t *testing.T) {
	raw := pytest.RedisDB(t, 10)
	c := newCelery(t, raw, false)
	// The watcher finds a new queue within ten looks: make "plain" known, then empty.
	c.send(t, "plain", "1", "0")
	b := open(t, "celery+"+raw+"?track=100ms")
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Del(context.Background(), "plain").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	first := c.send(t, "plain", "4", "1.5", "plain", "4", "0")
	time.Sleep(300 * time.Millisecond) // a look after the last send
	qs := stats(t, b)
	q := qs["plain"]
	if q.Pending != 8 || q.LatencySource != "first_seen" {
		t.Fatalf("plain: %+v, want 8 pending with a first_seen estimate", q)
	}
	// The estimate errs by at most one look (100 ms) plus the time a look takes.
	checkLatency(t, q, first["plain"], 500*time.Millisecond)

	c.worker(t, "plain")
	deadline := time.Now().Add(60 * time.Second)
	for {
		q = stats(t, b)["plain"]
		if q.Pending == 0 && q.Running == 0 && q.Completed == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a worker drained plain: %+v, want nothing pending or running and 8 completed", q)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rabbit is a vhost of the tests' own on the RabbitMQ the tests use, deleted at the end.
type rabbit struct {
	amqpURL, brokerURL string
}

// newRabbit waits for RabbitMQ's management API (another test may restart RabbitMQ), makes
// a fresh vhost and returns the URLs of Celery and of the watcher for it.
func newRabbit(t *testing.T) rabbit {
	t.Helper()
	mgmt := os.Getenv("BRISK_RABBITMQ_MANAGEMENT_URL")
	if mgmt == "" {
		mgmt = "http://guest:guest@127.0.0.1:15672"
	}
	mu, err := url.Parse(mgmt)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	call := func(method, path string, body string) (int, error) {
		req, err := http.NewRequest(method, strings.TrimSuffix(mgmt, "/")+"/api"+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		pass, _ := mu.User.Password()
		req.SetBasicAuth(mu.User.Username(), pass)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var last error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		code, err := call("GET", "/overview", "")
		if err == nil && code == http.StatusOK {
			break
		}
		last = fmt.Errorf("status %d, %v", code, err)
		if time.Now().After(deadline) {
			testenv.Missing(t, "no RabbitMQ management API at %s (rabbitmq-plugins enable rabbitmq_management): %v", mu.Redacted(), last)
		}
	}
	vhost := fmt.Sprintf("brisk-celery-%08x", rand.Uint32())
	if code, err := call("PUT", "/vhosts/"+vhost, "{}"); err != nil || code >= 300 {
		t.Fatalf("create vhost %s: %d %v", vhost, code, err)
	}
	user := mu.User.Username()
	if code, err := call("PUT", "/permissions/"+vhost+"/"+user, `{"configure":".*","write":".*","read":".*"}`); err != nil || code >= 300 {
		t.Fatalf("permissions on %s: %d %v", vhost, code, err)
	}
	t.Cleanup(func() { _, _ = call("DELETE", "/vhosts/"+vhost, "") })
	pass, _ := mu.User.Password()
	amqp := fmt.Sprintf("amqp://%s:%s@%s:5672/%s", user, pass, mu.Hostname(), vhost)
	if env := os.Getenv("BRISK_AMQP_URL"); env != "" {
		u, err := url.Parse(env)
		if err == nil {
			u.Path = "/" + vhost
			amqp = u.String()
		}
	}
	return rabbit{amqpURL: amqp, brokerURL: "celery+" + amqp + "?management=" + url.QueryEscape(fmt.Sprintf("http://%s", mu.Host))}
}

// TestAMQPWithHook fills Celery queues on RabbitMQ with the hook: counts are exact and
// latency, from the AMQP timestamp (whole seconds) that the management API reports for
// the head message, within 1 s of the truth.
func TestAMQPWithHook(t *testing.T) {
	r := newRabbit(t)
	c := newCelery(t, r.amqpURL, true)
	first := c.send(t, "emails", "5", "0", "reports", "2", "0")
	b := open(t, r.brokerURL)
	// The management API refreshes queue statistics every 5 s.
	var qs map[string]broker.QueueStats
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		qs = stats(t, b)
		if qs["emails"].Pending == 5 && qs["reports"].Pending == 2 && qs["emails"].LatencySource == "timestamp" && qs["reports"].LatencySource == "timestamp" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues %+v, want emails 5 and reports 2 pending with latency from the timestamp", qs)
		}
	}
	if len(qs) != 2 {
		t.Errorf("queues %v: want only Celery's task queues", qs)
	}
	js := queuesJSON(t, r.brokerURL)
	for name, want := range map[string]int64{"emails": 5, "reports": 2} {
		// whole seconds: the reported age is up to 1 s older than the truth
		checkLatency(t, qs[name], [2]float64{first[name][0] - 1, first[name][1]}, 100*time.Millisecond)
		checkJSON(t, js[name], want, "timestamp", [2]float64{first[name][0] - 1, first[name][1]}, 100*time.Millisecond)
	}
	pytest.CheckDashboard(t, b, "emails")
	checkReadOnly(t, b, "emails")
}

func TestBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"celery+redis://127.0.0.1:6379/0?sla=q", "celery+redis://127.0.0.1:6379/0?track=-1s",
		"celery+amqp://guest:guest@127.0.0.1:5672/?nope=1", "celery+amqp://guest:guest@127.0.0.1:5672/?management=ftp://x",
		"celery+amqp://guest:guest@127.0.0.1:1/?management=http://127.0.0.1:1",
	} {
		if b, err := brisk.Open(context.Background(), u); err == nil {
			b.Close()
			t.Errorf("%s opened", u)
		}
	}
}
