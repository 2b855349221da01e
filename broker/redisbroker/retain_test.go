package redisbroker_test

import (
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
)

// TestRetainedKeysRemoved checks what the conformance suite cannot see: the keys of kept
// tasks go away. A plain ack leaves the queue without the kept flag; a cancelled task whose
// retention has passed is removed, record and members, by the next script that ends a
// run in its queue; and DeleteQueue deletes the records of the completed tasks it keeps.
func TestRetainedKeysRemoved(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, rdb, prefix := setupRaw(t)
	tag := "{" + prefix + ":q}"
	reserve := func() *broker.Task {
		t.Helper()
		got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
		if err != nil || len(got) != 1 {
			t.Fatalf("Reserve = %d tasks, %v; want 1", len(got), err)
		}
		return got[0]
	}

	plain := brokertest.NewTask("q", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{plain}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx, []broker.Lease{reserve().Lease}); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.HExists(ctx, tag+":meta", "kept").Result(); err != nil || n {
		t.Errorf("meta field kept after a plain ack = %v, %v; want absent", n, err)
	}

	gone := brokertest.NewTask("q", "t", nil)
	gone.Retention = time.Millisecond
	next := brokertest.NewTask("q", "t", nil)
	if err := b.Enqueue(ctx, []*broker.Task{gone}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.ZCard(ctx, tag+":cexp").Result(); err != nil || n != 1 {
		t.Fatalf("cexp holds %d, %v; want the cancelled task", n, err)
	}
	time.Sleep(5 * time.Millisecond) // past the cancelled task's expiry
	if err := b.Enqueue(ctx, []*broker.Task{next}); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, []broker.Completion{{Lease: reserve().Lease, Result: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{tag + ":t:" + gone.ID, tag + ":t:" + next.ID, tag + ":cancelled", tag + ":cexp"} {
		if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("EXISTS %s = %d, %v; want 0", k, n, err)
		}
	}

	kept := brokertest.NewTask("q", "t", nil)
	kept.Retention = time.Hour
	if err := b.Enqueue(ctx, []*broker.Task{kept}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx, []broker.Lease{reserve().Lease}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Task(ctx, kept.ID); err != nil || got.State != broker.StateCompleted {
		t.Fatalf("Task(kept) = %v, %v; want completed", got, err)
	}
	if err := b.DeleteQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if keys, err := rdb.Keys(ctx, tag+"*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys of the deleted queue: %v, %v; want none", keys, err)
	}
}

// TestRetainedKeysExpireWithoutTraffic checks that a queue which sees no traffic after
// keeping tasks keeps nothing past their retention but the cancelled one's members: Redis
// deletes the records and the completed ZSET itself, and Stats stops counting the
// cancelled task (its members go with the queue's next ack, reserve or cancel).
func TestRetainedKeysExpireWithoutTraffic(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, rdb, prefix := setupRaw(t)
	tag := "{" + prefix + ":q}"

	done := brokertest.NewTask("q", "t", nil)
	done.Retention = 200 * time.Millisecond
	cancelled := brokertest.NewTask("q", "t", nil)
	cancelled.Retention = 300 * time.Millisecond
	if err := b.Enqueue(ctx, []*broker.Task{done, cancelled}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != done.ID {
		t.Fatalf("Reserve = %v, %v; want %s", got, err, done.ID)
	}
	if err := b.Complete(ctx, []broker.Completion{{Lease: got[0].Lease, Result: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{tag + ":t:" + done.ID, tag + ":t:" + cancelled.ID, tag + ":completed"} {
		if ms, err := rdb.PTTL(ctx, k).Result(); err != nil || ms <= 0 || ms > 300*time.Millisecond {
			t.Errorf("PTTL %s = %v, %v; want at most the retention", k, ms, err)
		}
	}
	stats := func() broker.QueueStats {
		t.Helper()
		all, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range all {
			if st.Name == "q" {
				return st
			}
		}
		t.Fatalf("Stats has no queue q: %v", all)
		return broker.QueueStats{}
	}
	st := stats()
	if st.Retained != 1 || st.Cancelled != 1 {
		t.Fatalf("Stats before the expiry: retained %d, cancelled %d; want 1, 1", st.Retained, st.Cancelled)
	}

	time.Sleep(400 * time.Millisecond) // past both retentions, no call touches the queue
	for _, k := range []string{tag + ":t:" + done.ID, tag + ":t:" + cancelled.ID, tag + ":completed"} {
		if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("EXISTS %s = %d, %v; want 0", k, n, err)
		}
	}
	st = stats()
	if st.Retained != 0 || st.Cancelled != 0 {
		t.Errorf("Stats after the expiry: retained %d, cancelled %d; want 0, 0", st.Retained, st.Cancelled)
	}
}
