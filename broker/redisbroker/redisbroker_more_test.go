package redisbroker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
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

// TestPayloadOutsideHash checks that a task's HASH stays in Redis's compact listpack
// encoding with a payload longer than hash-max-listpack-value (the payload has a STRING of
// its own), and that a task stored the old way, with its payload in the HASH, still reads
// and runs with it.
func TestPayloadOutsideHash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	raw := redistest.URL(t)
	prefix := redistest.NewPrefix(t, raw, "brisktest")
	b := openBroker(t, testenv.WithPrefix(t, raw, prefix))
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	long := []byte(strings.Repeat("p", 200))
	task := brokertest.NewTask("q", "t", long)
	if err := b.Enqueue(ctx, []*broker.Task{task}); err != nil {
		t.Fatal(err)
	}
	key := "{" + prefix + ":q}:t:" + task.ID
	if enc, err := rdb.ObjectEncoding(ctx, key).Result(); err != nil || enc != "listpack" {
		t.Errorf("OBJECT ENCODING of a task HASH with a 200-byte payload = %q, %v; want listpack", enc, err)
	}
	short := brokertest.NewTask("q", "t", []byte("short"))
	if err := b.Enqueue(ctx, []*broker.Task{short}); err != nil {
		t.Fatal(err)
	}
	shortKey := "{" + prefix + ":q}:t:" + short.ID
	if n, err := rdb.Exists(ctx, shortKey+":p").Result(); err != nil || n != 0 {
		t.Errorf("a 5-byte payload got a STRING of its own (%v), want it in the HASH", err)
	}
	if got, err := b.Task(ctx, short.ID); err != nil || string(got.Payload) != "short" {
		t.Fatalf("Task of a short payload = %v, %v", got, err)
	}
	if _, err := b.Delete(ctx, "q", broker.StatePending, []string{short.ID}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Task(ctx, task.ID)
	if err != nil || string(got.Payload) != string(long) {
		t.Fatalf("Task = %v; payload of %d bytes, want %d", err, len(got.Payload), len(long))
	}

	// A task stored the old way: the payload in the HASH's field pl, no payload STRING.
	old := brokertest.NewTask("q", "t", []byte("old payload"))
	if err := b.Enqueue(ctx, []*broker.Task{old}); err != nil {
		t.Fatal(err)
	}
	oldKey := "{" + prefix + ":q}:t:" + old.ID
	if err := rdb.Del(ctx, oldKey+":p").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, oldKey, "pl", "old payload").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Task(ctx, old.ID); err != nil || string(got.Payload) != "old payload" {
		t.Fatalf("Task of an old-style task = %v, %v; want its payload", got, err)
	}
	ts, err := b.Tasks(ctx, broker.ListParams{Queue: "q", State: broker.StatePending})
	if err != nil || len(ts) != 2 || string(ts[0].Payload) != string(long) || string(ts[1].Payload) != "old payload" {
		t.Fatalf("Tasks = %d tasks, %v; want both payloads", len(ts), err)
	}
	res, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 2, Lease: time.Minute})
	if err != nil || len(res) != 2 || string(res[0].Payload) != string(long) || string(res[1].Payload) != "old payload" {
		t.Fatalf("Reserve = %d tasks, %v; want both with their payloads", len(res), err)
	}
	if err := b.Ack(ctx, []broker.Lease{res[0].Lease, res[1].Lease}); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, key, key+":p", oldKey).Result(); err != nil || n != 0 {
		t.Errorf("after Ack, %d of the task keys remain (%v), want none", n, err)
	}
}
