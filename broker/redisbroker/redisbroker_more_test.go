package redisbroker_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/redistest"
	"github.com/briskq/brisk/internal/testenv"
)

// TestMultiQueueBatch checks that a batch spanning queues is all or nothing (a duplicate in
// its second queue stores nothing in the first), and that Ack, Extend and Release of leases
// of several queues in one call work queue by queue, on one server and on a cluster (where
// the queues live in different slots and the batch takes the check-then-write path).
func TestMultiQueueBatch(t *testing.T) {
	t.Run("Server", func(t *testing.T) { testMultiQueueBatch(t, newURL(t)) })
	t.Run("Cluster", func(t *testing.T) {
		raw := redistest.ClusterURL(t)
		testMultiQueueBatch(t, testenv.WithPrefix(t, raw, redistest.NewPrefix(t, raw, "brisktest")))
	})
}

func testMultiQueueBatch(t *testing.T, url string) {
	t.Parallel()
	ctx := t.Context()
	b := openBroker(t, url)
	old := brokertest.NewTask("b", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{old}); err != nil {
		t.Fatal(err)
	}
	a1, b1 := brokertest.NewTask("a", "t", nil), brokertest.NewTask("b", "t", nil)
	dup := *old
	err := b.Enqueue(ctx, []*broker.Task{a1, b1, &dup})
	if !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("Enqueue of a two-queue batch holding a stored id = %v, want ErrDuplicate", err)
	}
	for _, id := range []string{a1.ID, b1.ID} {
		if _, err := b.Task(ctx, id); !errors.Is(err, broker.ErrNotFound) {
			t.Errorf("Task(%s) after a refused batch = %v, want ErrNotFound", id, err)
		}
	}
	if err := b.Enqueue(ctx, []*broker.Task{a1, b1}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "a"}, {Name: "b"}}, Limit: 10, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(got) != 3 {
		t.Fatalf("Reserve from a and b = %d tasks, %v; want 3", len(got), err)
	}
	ls := []broker.Lease{got[0].Lease, got[1].Lease, got[2].Lease}
	if lost, err := b.Extend(ctx, ls, time.Hour); err != nil || len(lost) != 0 {
		t.Fatalf("Extend across queues = %v, %v", lost, err)
	}
	if err := b.Release(ctx, ls[:1]); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx, ls[1:]); err != nil {
		t.Fatalf("Ack across queues: %v", err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pending, running int64
	for _, q := range st {
		pending += q.Pending
		running += q.Running
	}
	if pending != 1 || running != 0 {
		t.Errorf("after releasing 1 and acking 2 of 3: pending %d running %d, want 1 and 0", pending, running)
	}
}

// TestTaskIsOneRecord checks that a task, whatever its payload's size, is one STRING key
// besides its ZSET member, and reads back whole.
func TestTaskIsOneRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, rdb, prefix := setupRaw(t)

	long := []byte(strings.Repeat("p", 200))
	task := brokertest.NewTask("q", "t", long)
	task.Headers = map[string]string{"traceparent": "00-ab"}
	task.MaxAttempts, task.Timeout = 7, 3*time.Second
	if err := b.Enqueue(ctx, []*broker.Task{task}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "{"+prefix+":q}:t:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("task keys %v, %v; want one", keys, err)
	}
	if typ, err := rdb.Type(ctx, keys[0]).Result(); err != nil || typ != "string" {
		t.Errorf("TYPE of the task key = %q, %v; want string", typ, err)
	}
	got, err := b.Task(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != string(long) || got.Headers["traceparent"] != "00-ab" || got.MaxAttempts != 7 ||
		got.Timeout != 3*time.Second || got.Type != "t" || got.State != broker.StatePending {
		t.Errorf("Task = %+v; want the enqueued task, pending", got.TaskInfo)
	}
}

// setupRaw opens a broker on a fresh prefix of the test's Redis and a plain client of
// that Redis, and returns them with the prefix.
func setupRaw(t *testing.T) (*redisbroker.Broker, *redis.Client, string) {
	t.Helper()
	raw := redistest.URL(t)
	prefix := redistest.NewPrefix(t, raw, "brisktest")
	return openBroker(t, testenv.WithPrefix(t, raw, prefix)), rawClient(t, raw), prefix
}

// rawClient is a client of the test's Redis server, closed at the end of the test.
func rawClient(t *testing.T, raw string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestOpenMigratesHashLayout writes a store as brisk wrote it before a task became one
// record (a HASH per task; a payload over 48 bytes in a STRING <task key>:p, a shorter one
// in the HASH's field pl), with a pending, a running and a dead task, and checks that Open
// converts it: every task reads back whole, the running task's lease is still held under
// its token, and the tasks run, are acked and retried as before.
func TestOpenMigratesHashLayout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	raw := redistest.URL(t)
	prefix := redistest.NewPrefix(t, raw, "brisktest")
	rdb := rawClient(t, raw)

	tag := "{" + prefix + ":q}"
	nowUS := time.Now().UnixMicro()
	past, future := nowUS-1_000_000, nowUS+60_000_000
	long := strings.Repeat("L", 100)
	pipe := rdb.TxPipeline()
	old := func(id string, seq int, fields ...any) string {
		m := fmt.Sprintf("%016d:%s", seq, id)
		pipe.HSet(ctx, tag+":t:"+id, append([]any{"ty", "t", "ma", 3, "to", 0, "eq", past, "m", m}, fields...)...)
		return m
	}
	pipe.ZAdd(ctx, tag+":ready", redis.Z{Score: float64(past), Member: old("A", 1, "ra", past, "at", 0, "s", "q", "hd", `{"k":"v"}`)})
	pipe.Set(ctx, tag+":t:A:p", long, 0)
	pipe.ZAdd(ctx, tag+":ready", redis.Z{Score: float64(past), Member: old("B", 2, "ra", past, "at", 0, "s", "q", "pl", "short")})
	pipe.ZAdd(ctx, tag+":running", redis.Z{Score: float64(future),
		Member: old("C", 3, "ra", past, "at", 1, "s", "run", "tk", 7, "wk", "w1", "st", past, "lu", future, "pl", "c")})
	pipe.SAdd(ctx, tag+":w:w1", "C")
	pipe.ZAdd(ctx, tag+":dead", redis.Z{Score: float64(past),
		Member: old("D", 4, "ra", past, "at", 3, "s", "dead", "le", "boom", "fa", past, "tk", "", "wk", "")})
	pipe.Set(ctx, tag+":t:D:p", long, 0)
	pipe.HSet(ctx, tag+":meta", "seq", 4, "tok", 7)
	pipe.SAdd(ctx, prefix+":queues", "q")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	b := openBroker(t, testenv.WithPrefix(t, raw, prefix))
	if v, err := rdb.Get(ctx, prefix+":layout").Result(); err != nil || v != "2" {
		t.Errorf("layout key = %q, %v; want 2", v, err)
	}
	if n, err := rdb.Exists(ctx, tag+":t:A:p", tag+":t:D:p").Result(); err != nil || n != 0 {
		t.Errorf("%d payload STRINGs left after the migration (%v), want none", n, err)
	}
	for _, c := range []struct {
		id, payload string
		state       broker.State
		attempt     int
	}{{"A", long, broker.StatePending, 0}, {"B", "short", broker.StatePending, 0}, {"C", "c", broker.StateRunning, 1}, {"D", long, broker.StateDead, 3}} {
		got, err := b.Task(ctx, c.id)
		if err != nil {
			t.Fatalf("Task(%s) after the migration: %v", c.id, err)
		}
		if string(got.Payload) != c.payload || got.State != c.state || got.Attempt != c.attempt || got.MaxAttempts != 3 || got.Type != "t" {
			t.Errorf("Task(%s) = %+v; want payload %q, state %s, attempt %d", c.id, got.TaskInfo, c.payload, c.state, c.attempt)
		}
		if c.id == "A" && got.Headers["k"] != "v" {
			t.Errorf("Task(A) headers = %v, want k=v", got.Headers)
		}
		if c.id == "D" && got.LastError != "boom" {
			t.Errorf("Task(D) last error = %q, want boom", got.LastError)
		}
	}
	if err := b.Ack(ctx, []broker.Lease{{TaskID: "C", Queue: "q", Token: "7"}}); err != nil {
		t.Errorf("Ack of the running task under its old token: %v", err)
	}
	if n, err := b.ReleaseWorker(ctx, "w1"); err != nil || n != 0 {
		t.Errorf("ReleaseWorker after the ack = %d, %v; want 0", n, err)
	}
	res, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 3, Lease: time.Minute})
	if err != nil || len(res) != 2 || res[0].ID != "A" || res[1].ID != "B" || string(res[0].Payload) != long || res[1].Attempt != 1 {
		t.Fatalf("Reserve = %d tasks, %v; want A then B, attempt 1", len(res), err)
	}
	if err := b.Ack(ctx, leasesOf(res)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.RetryDead(ctx, "q", []string{"D"}); err != nil || n != 1 {
		t.Fatalf("RetryDead(D) = %d, %v; want 1", n, err)
	}
	res, err = b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 3, Lease: time.Minute})
	if err != nil || len(res) != 1 || res[0].ID != "D" || res[0].Attempt != 1 || string(res[0].Payload) != long {
		t.Fatalf("Reserve after RetryDead = %d tasks, %v; want D, attempt 1", len(res), err)
	}

	// A second Open finds the layout key and converts nothing; a store of an unknown
	// layout is refused.
	openBroker(t, testenv.WithPrefix(t, raw, prefix))
	if err := rdb.Set(ctx, prefix+":layout", "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := redisbroker.Open(ctx, testenv.WithPrefix(t, raw, prefix)); !errors.Is(err, broker.ErrInvalid) {
		t.Errorf("Open of a store of layout 3 = %v, want ErrInvalid", err)
	}
}

// TestUndecodableRecordGoesDead stores a record that Redis's cmsgpack reads but brisk's
// decoder refuses (a number where the type belongs) and checks that Reserve moves the task
// to dead with the decoding error instead of running it, and that the Inspector still
// lists it.
func TestUndecodableRecordGoesDead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, rdb, prefix := setupRaw(t)
	tag := "{" + prefix + ":q}"
	past := time.Now().Add(-time.Second).UnixMicro()
	if err := b.DeclareQueue(ctx, broker.QueueConfig{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	err := rdb.Eval(ctx, `redis.call('SET', KEYS[1], cmsgpack.pack(5, 'pl', 3, 0, tonumber(ARGV[1]), tonumber(ARGV[1]), '', 0, 'q', 0, 0, 0, '', '', 0, 1))
redis.call('ZADD', KEYS[2], ARGV[1], '0000000000000001:X')
redis.call('HSET', KEYS[3], 'seq', 1)
return 1`, []string{tag + ":t:X", tag + ":ready", tag + ":meta"}, past).Err()
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(res) != 0 {
		t.Fatalf("Reserve of an undecodable record = %d tasks, %v; want none", len(res), err)
	}
	dead, err := b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StateDead})
	if err != nil || len(dead) != 1 || dead[0].ID != "X" || !strings.Contains(dead[0].LastError, "malformed task record") {
		t.Fatalf("dead tasks = %v, %v; want X with the decoding error", dead, err)
	}
}

func leasesOf(ts []*broker.Task) []broker.Lease {
	out := make([]broker.Lease, len(ts))
	for i, t := range ts {
		out[i] = t.Lease
	}
	return out
}
