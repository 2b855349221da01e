package rabbitbroker

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/rabbittest"
)

// TestSnapshotRoundTrip drives a store through every kind of entry with snapshots every 40
// entries, then checks that a broker opened afterwards starts from a snapshot and reaches
// the same state as the broker that wrote the entries.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	raw := rabbittest.URL(t)
	url := rabbittest.WithPrefix(t, raw, rabbittest.NewPrefix(t, raw, "brisktest")) + "&snapshot_every=40"
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.DeclareQueue(ctx, broker.QueueConfig{Name: "q", SLA: time.Second}))
	for i := range 60 {
		task := brokertest.NewTask("q", "t", []byte(fmt.Sprint(i)))
		task.MaxAttempts = 2
		if i%10 == 0 {
			task.ReadyAt = task.ReadyAt.Add(time.Hour)
		}
		must(a.Enqueue(ctx, []*broker.Task{task}))
	}
	got, err := a.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 8, Lease: time.Minute, WorkerID: "w1"})
	must(err)
	if len(got) != 8 {
		t.Fatalf("Reserve = %d tasks, want 8", len(got))
	}
	must(a.Ack(ctx, []broker.Lease{got[0].Lease, got[1].Lease}))
	must(a.Kill(ctx, got[2].Lease, "dead"))
	must(a.Retry(ctx, got[3].Lease, time.Now().Add(time.Hour), "later"))
	must(a.Release(ctx, []broker.Lease{got[4].Lease}))
	must(a.PauseQueue(ctx, "p", true))
	must(a.Heartbeat(ctx, broker.WorkerInfo{ID: "w1", Host: "h", Queues: []string{"q"}}))
	// Enough entries for the last snapshot to be written and announced.
	deadline := time.Now().Add(10 * time.Second)
	for {
		must(a.Heartbeat(ctx, broker.WorkerInfo{ID: "w2"}))
		a.mu.Lock()
		covers := a.st.snapCovers
		a.mu.Unlock()
		if covers >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot covering entry 60 within 10s (newest covers %d)", covers)
		}
	}

	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.loaded < 40 {
		t.Errorf("the broker opened after the snapshots loaded one covering %d, want at least 40", b.loaded)
	}
	// Both brokers may still be writing snapshots of their own, whose announcements move
	// snapCovers; the rest of the state must be the same once both have applied the same
	// entries.
	encode := func(br *Broker) []byte {
		t.Helper()
		must(br.sync(ctx))
		br.mu.Lock()
		saved := br.st.snapCovers
		br.st.snapCovers = 0
		body, err := br.st.encode(0)
		br.st.snapCovers = saved
		br.mu.Unlock()
		must(err)
		return body
	}
	gotState, wantState := encode(b), encode(a)
	if !bytes.Equal(gotState, wantState) {
		t.Errorf("state rebuilt from a snapshot and the journal after it differs from the state of the broker that wrote them:\n got %s\nwant %s", gotState, wantState)
	}
	// The rebuilt state works: the lease taken before holds, the order is kept.
	must(b.Ack(ctx, []broker.Lease{got[5].Lease}))
	next, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	must(err)
	if len(next) != 1 || next[0].ID != got[4].ID || next[0].Attempt != 1 {
		t.Errorf("Reserve after reopening = %v, want the released task %s with Attempt 1", next, got[4].ID)
	}
}
