package rabbitbroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/rabbittest"
	"github.com/briskq/brisk/internal/testenv"
)

// CleanGenerations deletes the journal streams of later generations of a test store (the
// test helper deletes generation 0 and the hint queue). Exported for the external tests.
func CleanGenerations(t testing.TB, raw, prefix string) {
	conn, err := amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Logf("deleting the generations of %s: %v", prefix, err)
		return
	}
	defer conn.Close()
	b := &Broker{opts: Options{Prefix: prefix}}
	top := int64(0)
	if ch, err := conn.Channel(); err == nil {
		if msg, ok, err := ch.Get(prefix+".snapshot", false); err == nil && ok {
			_ = msg.Nack(false, true)
			var h hint
			if json.Unmarshal(msg.Body, &h) == nil {
				top = h.Gen
			}
		}
		_ = ch.Close()
	}
	// Generations at and above the hint exist; some below it may be left too.
	for g, misses := int64(1), 0; g <= top || misses < 8; g++ {
		ok, err := b.streamExists(conn, g)
		if err != nil {
			t.Logf("deleting the generations of %s: %v", prefix, err)
			return
		}
		if !ok {
			misses++
			continue
		}
		misses = 0
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(b.streamName(g), false, false, false)
			_ = ch.Close()
		}
	}
}

// rolloverURL returns the URL of a fresh store that rolls its journal over every `every`
// entries and deletes old generations after grace.
func rolloverURL(t *testing.T, every int, grace time.Duration) string {
	raw := rabbittest.URL(t)
	prefix := rabbittest.NewPrefix(t, raw, "brisktest")
	t.Cleanup(func() { CleanGenerations(t, raw, prefix) })
	return testenv.WithPrefix(t, raw, prefix) + fmt.Sprintf("&snapshot_every=%d&rollover_grace=%s", every, grace)
}

// stateOf returns b's state encoded, after a read barrier, with the fields that depend on
// the broker value rather than on the store zeroed.
func stateOf(t *testing.T, br *Broker) []byte {
	t.Helper()
	if err := br.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	saved := br.st.snapCovers
	br.st.snapCovers = 0
	body, err := br.st.encode(0, 0)
	br.st.snapCovers = saved
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func genOf(br *Broker) (gen int64, open bool) {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.gen, br.based && !br.needBase
}

// streamsLeft returns the generations below below whose streams still exist.
func streamsLeft(t *testing.T, br *Broker, below int64) []int64 {
	t.Helper()
	conn, err := amqp.Dial(br.opts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var left []int64
	for g := int64(0); g < below; g++ {
		ok, err := br.streamExists(conn, g)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			left = append(left, g)
		}
	}
	return left
}

// waitDropped waits until the streams of every generation before br's current one are
// deleted, and checks that the current one exists.
func waitDropped(t *testing.T, br *Broker, within time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		gen, _ := genOf(br)
		left := streamsLeft(t, br, gen+1)
		if len(left) == 1 && left[0] == gen {
			return gen
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %d: streams of generations %v exist %s after the last rollover, want only %d", gen, left, within, gen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSnapshotRoundTrip drives a store through every kind of entry with a rollover every
// 40 entries, then checks that a broker opened afterwards starts from a generation's base
// and reaches the same state as the broker that wrote the entries.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := rolloverURL(t, 40, 200*time.Millisecond)
	a := openBroker(t, url)
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
	// Enough entries for a second rollover, after the entries above.
	deadline := time.Now().Add(10 * time.Second)
	for {
		must(a.Heartbeat(ctx, broker.WorkerInfo{ID: "w2"}))
		if gen, open := genOf(a); gen >= 2 && open {
			break
		}
		if time.Now().After(deadline) {
			gen, open := genOf(a)
			t.Fatalf("the journal is at generation %d (base applied: %v) after 10s, want 2", gen, open)
		}
	}

	b := openBroker(t, url)
	b.mu.Lock()
	loaded, bgen := b.loadedBase, b.gen
	b.mu.Unlock()
	if !loaded || bgen < 1 {
		t.Errorf("the broker opened after the rollovers is at generation %d, loaded from a base: %v; want a base of generation 1 or later", bgen, loaded)
	}
	gotState, wantState := stateOf(t, b), stateOf(t, a)
	if !bytes.Equal(gotState, wantState) {
		t.Errorf("state rebuilt from a base and the journal after it differs from the state of the broker that wrote them:\n got %s\nwant %s", gotState, wantState)
	}
	// The rebuilt state works: the lease taken before holds, the order is kept.
	must(b.Ack(ctx, []broker.Lease{got[5].Lease}))
	next, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	must(err)
	if len(next) != 1 || next[0].ID != got[4].ID || next[0].Attempt != 1 {
		t.Errorf("Reserve after reopening = %v, want the released task %s with Attempt 1", next, got[4].ID)
	}
}

// work enqueues n tasks one per call from several goroutines on producers, and reserves
// and acks them on consumers, until every task is acked once. It returns the IDs acked.
func work(t *testing.T, n int, producers, consumers []*Broker) map[string]int {
	t.Helper()
	ctx := t.Context()
	tasks := brokertest.NewTasks("q", "t", n)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	per := (n + 2*len(producers) - 1) / (2 * len(producers))
	for i := 0; i < n; i += per {
		br := producers[(i/per)%len(producers)]
		part := tasks[i:min(n, i+per)]
		wg.Go(func() {
			for _, task := range part {
				if err := br.Enqueue(ctx, []*broker.Task{task}); err != nil {
					errs <- fmt.Errorf("Enqueue: %w", err)
					return
				}
			}
		})
	}
	var mu sync.Mutex
	acked := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for c, br := range consumers {
		for w := range 2 {
			wg.Go(func() {
				for {
					mu.Lock()
					done := len(acked) >= n
					mu.Unlock()
					if done {
						return
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("only %d of %d tasks acked after 60s", len(acked), n)
						return
					}
					got, err := br.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 4, Lease: time.Minute, WorkerID: fmt.Sprint("w", c, w)})
					if err != nil {
						errs <- fmt.Errorf("Reserve: %w", err)
						return
					}
					if len(got) == 0 {
						_ = br.Wait(ctx, []string{"q"}, 50*time.Millisecond)
						continue
					}
					ls := make([]broker.Lease, len(got))
					for i, task := range got {
						ls[i] = task.Lease
					}
					if err := br.Ack(ctx, ls); err != nil {
						errs <- fmt.Errorf("Ack: %w", err)
						return
					}
					mu.Lock()
					for _, task := range got {
						acked[task.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if acked[task.ID] != 1 {
			t.Errorf("task %s acked %d times, want once", task.ID, acked[task.ID])
		}
	}
	return acked
}

// checkSame checks that two broker values hold the same state and the expected counts.
func checkSame(t *testing.T, a, b *Broker, completed int64) {
	t.Helper()
	sa, sb := stateOf(t, a), stateOf(t, b)
	if !bytes.Equal(sa, sb) {
		t.Errorf("the two broker values differ:\n a %s\n b %s", sa, sb)
	}
	st, err := b.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Completed != completed || st[0].Pending+st[0].Running+st[0].Scheduled+st[0].Dead != 0 {
		t.Errorf("Stats = %+v, want one queue with %d completed and nothing left", st, completed)
	}
}

// TestRollover drives a store through many rollovers with two broker values, enqueueing,
// reserving and acking from several goroutines on each; one of them is closed and opened
// again in between. Both end with the same state, every task is acked exactly once, and
// the streams of old generations are deleted.
func TestRollover(t *testing.T) {
	t.Parallel()
	url := rolloverURL(t, 25, 300*time.Millisecond)
	a := openBroker(t, url)
	c := openBroker(t, url)
	done := 0
	// Each round works until the store has rolled over at least twice: how many changes
	// one journal entry carries (group commit) depends on the machine's speed.
	round := func(watch *Broker, producers, consumers []*Broker) int64 {
		t.Helper()
		start, _ := genOf(watch)
		for i := 0; ; i++ {
			work(t, 50, producers, consumers)
			done += 50
			gen, _ := genOf(watch)
			if gen >= start+2 {
				return gen
			}
			if i == 30 {
				t.Fatalf("generation %d after %d tasks, from generation %d: want at least two rollovers", gen, done, start)
			}
		}
	}
	gen1 := round(a, []*Broker{a, c}, []*Broker{a, c})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	gen2 := round(a, []*Broker{a}, []*Broker{a})
	// Let the generation c was reading be deleted before it opens again.
	waitDropped(t, a, 5*time.Second)
	c = openBroker(t, url)
	gen3 := round(c, []*Broker{a, c}, []*Broker{c, a})
	t.Logf("generations: %d after the first round, %d after the second, %d at the end (%d tasks)", gen1, gen2, gen3, done)
	checkSame(t, a, c, int64(done))
	// A broker value opened now starts from the newest base and agrees too.
	d := openBroker(t, url)
	checkSame(t, a, d, int64(done))
	d.mu.Lock()
	t.Logf("the broker value opened last loaded a base of generation %d (loaded: %v; messages read before the base and applied after it: %d)", d.gen, d.loadedBase, d.earlyApplied)
	d.mu.Unlock()
	final := waitDropped(t, a, 5*time.Second)
	if gc, _ := genOf(c); gc != final {
		t.Errorf("the broker values read generations %d and %d", final, gc)
	}
}

// TestRolloverWhileAway keeps a broker value disconnected while the journal rolls over
// several times and its generation is deleted: when it reconnects, it reloads the state
// from the oldest generation left and agrees with the other broker value.
func TestRolloverWhileAway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := rolloverURL(t, 25, 200*time.Millisecond)
	a := openBroker(t, url)
	c := openBroker(t, url)
	work(t, 40, []*Broker{a, c}, []*Broker{a, c})
	away, _ := genOf(c)

	hold := make(chan struct{})
	c.mu.Lock()
	c.holdConnect = hold
	c.mu.Unlock()
	c.connMu.Lock()
	_ = c.cur.conn.Close()
	c.connMu.Unlock()
	// A call on the away broker value fails within its outage wait.
	if err := c.Enqueue(ctx, []*broker.Task{brokertest.NewTask("q", "t", nil)}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Enqueue while away = %v, want an error wrapping ErrUnavailable", err)
	}

	work(t, 100, []*Broker{a}, []*Broker{a})
	now := waitDropped(t, a, 5*time.Second)
	if now < away+2 {
		t.Fatalf("the journal moved from generation %d to %d only", away, now)
	}
	close(hold)
	deadline := time.Now().Add(20 * time.Second)
	for {
		gen, open := genOf(c)
		if gen >= now && open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker value that was away is at generation %d (base applied: %v) 20s after it may reconnect, want %d", gen, open, now)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkSame(t, a, c, 140)
	work(t, 40, []*Broker{c}, []*Broker{a})
	checkSame(t, a, c, 180)
}

// TestBaseAfterEntries feeds a broker value that starts a generation without a state (as
// Open does) entries that landed before the generation's base, a base that includes only
// the first of them, and an entry after it: the state must hold all three tasks once.
func TestBaseAfterEntries(t *testing.T) {
	t.Parallel()
	opts, err := Options{URL: "amqp://127.0.0.1/", SnapshotEvery: -1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{opts: opts, ops: map[string]*op{}, changed: make(chan struct{}), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	b.startGenLocked(3)
	msg := func(offset int64, typ string, body []byte) amqp.Delivery {
		return amqp.Delivery{Headers: amqp.Table{"x-stream-offset": offset}, Type: typ, Body: body}
	}
	enqueue := func(offset int64, id string) amqp.Delivery {
		t.Helper()
		body, err := json.Marshal(&event{Op: opEnqueue, ID: "e" + id, Now: time.Now(), Tasks: []*broker.Task{{TaskInfo: brisktype.TaskInfo{ID: id, Queue: "q", Type: "t", MaxAttempts: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		return msg(offset, opEnqueue, body)
	}
	// The base includes offset 0 (task A) of generation 3.
	base := newState()
	base.apply(&event{Op: opEnqueue, ID: "eA", Tasks: []*broker.Task{{TaskInfo: brisktype.TaskInfo{ID: "A", Queue: "q", Type: "t", MaxAttempts: 1}}}})
	body, err := base.encode(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	// This broker value waits for the entries of A (in the base: applied, result unknown)
	// and B (after what the base includes: applied after it).
	opA := &op{id: "eA", done: make(chan opResult, 1)}
	opB := &op{id: "eB", done: make(chan opResult, 1)}
	b.ops["eA"], b.ops["eB"] = opA, opB
	for _, d := range []amqp.Delivery{enqueue(0, "A"), enqueue(1, "B"), msg(2, typeBase, body), enqueue(3, "C")} {
		if next := b.applyDelivery(d); next >= 0 {
			t.Fatalf("moved to generation %d", next)
		}
	}
	if b.needBase || !b.loadedBase || b.earlyApplied != 1 {
		t.Errorf("needBase %v, loadedBase %v, early messages applied %d; want false, true, 1", b.needBase, b.loadedBase, b.earlyApplied)
	}
	select {
	case r := <-opA.done:
		if !errors.Is(r.err, broker.ErrUnavailable) {
			t.Errorf("the call whose entry the base includes got %v, want an error wrapping ErrUnavailable", r.err)
		}
	default:
		t.Error("the call whose entry the base includes got no answer")
	}
	select {
	case r := <-opB.done:
		if r.err != nil || r.res.err != nil {
			t.Errorf("the call whose entry came after what the base includes got %v, %v; want success", r.err, r.res.err)
		}
	default:
		t.Error("the call whose entry came after what the base includes got no answer")
	}
	if got := len(b.st.tasks); got != 3 || b.st.queues["q"] == nil || len(b.st.queues["q"].waiting) != 3 {
		t.Errorf("state holds %d tasks, want A, B and C once each", got)
	}
	// A base of another generation is not taken.
	other, _ := newState().encode(7, -1)
	b.startGenLocked(4)
	b.applyDelivery(msg(0, typeBase, other))
	if !b.needBase {
		t.Error("a base of generation 7 was loaded into generation 4")
	}
}

// openBroker opens a broker value on url, closed when the test ends (Close is idempotent,
// so a test may close it before).
func openBroker(t *testing.T, url string) *Broker {
	t.Helper()
	b, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
