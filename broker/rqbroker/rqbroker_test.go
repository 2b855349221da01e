package rqbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	_ "github.com/briskq/brisk/broker/rqbroker"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/cli"
	"github.com/briskq/brisk/internal/pytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fill is run with Debian's python3-rq: it fills queues with RQ itself and prints when
// the head job of "rqtest" was enqueued (between two clock readings around the call).
const fill = `
import json, sys, time, datetime
from redis import Redis
from rq import Queue, SimpleWorker
r = Redis.from_url(sys.argv[1])
q = Queue("rqtest", connection=r)
before = time.time()
q.enqueue("os.getpid")
after = time.time()
for _ in range(6):
    q.enqueue("os.getpid")
q.enqueue_in(datetime.timedelta(hours=1), "os.getpid")
late = Queue("late", connection=r)
late.enqueue_at(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30), "os.getpid")
boom = Queue("boom", connection=r)
boom.enqueue("os.getpid")
boom.enqueue("no_such_module.no_such_function")
SimpleWorker([boom], connection=r).work(burst=True)
print(json.dumps({"before": before, "after": after}))
`

func TestStatsOfQueuesFilledByRQ(t *testing.T) {
	py := pytest.Python(t, "rq", "redis")
	raw := pytest.RedisDB(t, 9)
	var head struct{ Before, After float64 }
	if err := json.Unmarshal([]byte(pytest.LastLine(pytest.Run(t, py, t.TempDir(), fill, nil, raw))), &head); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := brisk.Open(ctx, "rq+"+raw+"?sla=rqtest:30s")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// What `brisk queues --json` prints.
	var out, errOut strings.Builder
	if code := cli.Main([]string{"queues", "--broker", "rq+" + raw + "?sla=rqtest:30s", "--json"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("brisk queues --json: exit %d: %s", code, errOut.String())
	}
	now := time.Now()
	var qs []apiv1.Queue
	if err := json.Unmarshal([]byte(out.String()), &qs); err != nil {
		t.Fatalf("brisk queues --json printed %q: %v", out.String(), err)
	}
	byName := map[string]apiv1.Queue{}
	for _, q := range qs {
		byName[q.Name] = q
	}
	if len(byName) != 3 {
		t.Fatalf("queues %v, want boom, late and rqtest", byName)
	}
	q := byName["rqtest"]
	if q.Pending != 7 || q.Scheduled != 1 || q.Running != 0 || q.Dead != 0 || q.SLASeconds == nil || *q.SLASeconds != 30 || q.LatencySource != "enqueued_at" {
		t.Errorf("rqtest: %+v", q)
	}
	// The truth: the head was enqueued between before and after.
	lo, hi := now.Sub(time.Unix(0, int64(head.After*1e9))).Seconds(), now.Sub(time.Unix(0, int64(head.Before*1e9))).Seconds()
	if q.LatencySeconds < lo-1 || q.LatencySeconds > hi+1 {
		t.Errorf("rqtest latency %.3fs, truth between %.3fs and %.3fs", q.LatencySeconds, lo, hi)
	}
	if l := byName["late"]; l.Pending != 0 || l.Scheduled != 1 || math.Abs(l.LatencySeconds-30) > 1.5 || l.LatencySource != "scheduled_at" {
		t.Errorf("late (an overdue scheduled job): %+v, want latency about 30 s from scheduled_at", l)
	}
	if bm := byName["boom"]; bm.Pending != 0 || bm.Dead != 1 || bm.Completed != 1 || bm.Failed != 1 {
		t.Errorf("boom (one job done, one failed): %+v", bm)
	}

	// Listings and lookups read RQ's jobs.
	in := brisk.NewInspector(b)
	pending, err := in.Tasks(ctx, "rqtest", brisk.StatePending, 3, 0)
	if err != nil || len(pending) != 3 || pending[0].Type != "os.getpid" || pending[0].ReadyAt.IsZero() {
		t.Fatalf("pending tasks %+v: %v", pending, err)
	}
	if one, err := in.Task(ctx, pending[0].ID); err != nil || one.State != brisk.StatePending || one.Queue != "rqtest" {
		t.Fatalf("task %s: %+v %v", pending[0].ID, one, err)
	}
	dead, err := in.Tasks(ctx, "boom", brisk.StateDead, 10, 0)
	if err != nil || len(dead) != 1 || dead[0].LastError == "" {
		t.Fatalf("dead tasks %+v: %v", dead, err)
	}

	pytest.CheckDashboard(t, b, "rqtest")

	// Every write is refused, and nothing changes.
	for what, err := range map[string]error{
		"enqueue": b.Enqueue(ctx, []*broker.Task{{TaskInfo: brisk.TaskInfo{ID: "x", Queue: "rqtest", Type: "t", MaxAttempts: 1, EnqueuedAt: now, ReadyAt: now}}}),
		"declare": b.DeclareQueue(ctx, broker.QueueConfig{Name: "rqtest", SLA: time.Second}),
		"retry":   func() error { _, err := in.RetryDead(ctx, "boom"); return err }(),
		"delete":  func() error { _, err := in.DeleteTasks(ctx, "boom", brisk.StateDead); return err }(),
		"pause":   in.PauseQueue(ctx, "rqtest"),
		"wait":    b.Wait(ctx, []string{"rqtest"}, time.Millisecond),
	} {
		if !errors.Is(err, brisk.ErrUnsupported) {
			t.Errorf("%s: %v, want an error wrapping ErrUnsupported", what, err)
		}
	}
	if after, _ := in.Queues(ctx); len(after) != 3 || after[2].Pending != 7 || after[0].Dead != 1 {
		t.Errorf("a refused write changed the queues: %+v", after)
	}
	if (b.Capabilities() != broker.Capabilities{}) {
		t.Errorf("capabilities %+v, want none", b.Capabilities())
	}
}

func TestBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"rq+redis://127.0.0.1:6379/0?sla=nocolon", "rq+redis://127.0.0.1:6379/0?sla=q:-1s", "rq+redis://127.0.0.1:1/0"} {
		if b, err := brisk.Open(context.Background(), u); err == nil {
			b.Close()
			t.Errorf("%s opened", u)
		}
	}
}
