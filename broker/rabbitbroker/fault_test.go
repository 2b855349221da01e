package rabbitbroker_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/rabbitbroker"
	"github.com/briskq/brisk/internal/rabbittest"
	"github.com/briskq/brisk/internal/testenv"
)

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	b, err := broker.Open(t.Context(), "amqp://guest:guest@127.0.0.1:1/")
	if err == nil {
		b.Close()
		t.Fatal("Open of amqp://127.0.0.1:1/ succeeded")
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Open of an unreachable server: %v, want an error wrapping ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "guest:guest") {
		t.Errorf("the error shows the password: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open of an unreachable server took %s", took)
	}
	t.Logf("error: %v", err)
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"amqp://127.0.0.1:5672/?bogus=1",
		"amqp://127.0.0.1:5672/?prefix=has%20space",
		"amqp://127.0.0.1:5672/?prefix=",
		"amqp://127.0.0.1:5672/?max_payload=-1",
		"amqp://127.0.0.1:5672/?outage_wait=soon",
		"amqp://127.0.0.1:5672/?dial_timeout=0s",
		"amqp://127.0.0.1:5672/?rollover_grace=soon",
		"amqp:///",
	} {
		b, err := broker.Open(t.Context(), raw)
		if err == nil {
			b.Close()
		}
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want an error wrapping ErrInvalid", raw, err)
		}
	}
}

// TestReopenKeepsState checks that a broker opened later rebuilds the store from the
// journal: tasks in every state, counters, settings and worker records.
func TestReopenKeepsState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := newURL(t)
	a := openBroker(t, url)
	if err := a.DeclareQueue(ctx, broker.QueueConfig{Name: "q", SLA: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	tasks := brokertest.NewTasks("q", "t", 4)
	tasks[3].ReadyAt = tasks[3].EnqueuedAt.Add(time.Hour)
	if err := a.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	got, err := a.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 2, Lease: time.Minute})
	if err != nil || len(got) != 2 {
		t.Fatalf("Reserve = %d, %v", len(got), err)
	}
	if err := a.Kill(ctx, got[0].Lease, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := a.PauseQueue(ctx, "q", true); err != nil {
		t.Fatal(err)
	}
	want, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := openBroker(t, url)
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(want) != 1 {
		t.Fatalf("Stats = %+v, want one queue like %+v", st, want)
	}
	st[0].Latency, want[0].Latency = 0, 0
	if st[0] != want[0] {
		t.Errorf("Stats of a reopened store = %+v, want %+v", st[0], want[0])
	}
	if err := b.Ack(ctx, []broker.Lease{got[1].Lease}); err != nil {
		t.Errorf("Ack on a reopened broker of a lease taken by another: %v", err)
	}
}

// rabbitctl runs rabbitmqctl, or skips (fails under CI) when it cannot.
func rabbitctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		msg := "rabbitmqctl " + strings.Join(args, " ") + ": " + err.Error() + ": " + strings.TrimSpace(string(out))
		testenv.Missing(t, "cannot control the local RabbitMQ: %s", msg)
	}
}

// TestRabbitRestart stops the RabbitMQ application under open brokers (rabbitmqctl
// stop_app, which drops every connection), checks that calls fail within their context with
// ErrUnavailable, starts it again and checks that the brokers reconnect, that the tasks
// and leases taken before the outage are intact and that cross-broker wake-ups work again.
// It is not parallel: it takes the server away from every other test.
func TestRabbitRestart(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Missing(t, "no rabbitmqctl to stop and start RabbitMQ: %v", err)
	}
	ctx := t.Context()
	url := newURL(t)
	b, err := rabbitbroker.OpenOptions(ctx, rabbitbroker.Options{URL: rabbittest.URL(t), Prefix: prefixOf(t, url), OutageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := openBroker(t, url)
	before := brokertest.NewTasks("q", "t", 3)
	if err := b.Enqueue(ctx, before); err != nil {
		t.Fatal(err)
	}
	held, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	if err != nil || len(held) != 1 {
		t.Fatalf("Reserve = %d, %v", len(held), err)
	}

	started := false
	defer func() {
		if !started {
			_ = exec.Command("rabbitmqctl", "start_app").Run()
		}
	}()
	rabbitctl(t, "stop_app")
	stopped := time.Now()

	// A call with a deadline fails within it; one without fails after OutageWait.
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = b.Enqueue(cctx, []*broker.Task{brokertest.NewTask("q", "t", nil)})
	cancel()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Enqueue while RabbitMQ is down = %v, want an error wrapping ErrUnavailable", err)
	}
	t.Logf("Enqueue while RabbitMQ is down: %v", err)
	start := time.Now()
	_, err = b.Stats(context.Background())
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Stats while RabbitMQ is down = %v, want an error wrapping ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Stats while RabbitMQ is down took %s, want about OutageWait (1s)", took)
	}
	// Wait while down returns after max without spinning.
	calls := 0
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	for wctx.Err() == nil {
		calls++
		_ = b.Wait(wctx, []string{"idle"}, 200*time.Millisecond)
	}
	wcancel()
	if calls > 10 {
		t.Errorf("Wait while RabbitMQ is down returned %d times in 500ms: it spins", calls)
	}

	rabbitctl(t, "start_app")
	started = true
	t.Logf("RabbitMQ was down for %s", time.Since(stopped).Round(time.Millisecond))
	restarted := time.Now()
	var after *broker.Task
	for {
		after = brokertest.NewTask("q", "t", []byte("after"))
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := b.Enqueue(cctx, []*broker.Task{after})
		cancel()
		if err == nil {
			break
		}
		if time.Since(restarted) > 30*time.Second {
			t.Fatalf("Enqueue still fails 30s after RabbitMQ came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Enqueue works again %s after start_app", time.Since(restarted).Round(time.Millisecond))

	// The lease taken before the outage still holds, and the rest is there.
	if err := b.Ack(ctx, []broker.Lease{held[0].Lease}); err != nil {
		t.Errorf("Ack after the restart of a lease taken before it: %v", err)
	}
	got, err := other.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 10, Lease: time.Minute})
	if err != nil {
		t.Fatalf("Reserve on the other broker after the restart: %v", err)
	}
	var ids []string
	for _, task := range got {
		ids = append(ids, task.ID)
	}
	want := []string{before[1].ID, before[2].ID, after.ID}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("Reserve after the restart = %v, want %v", ids, want)
	}

	// Wake-ups across broker values work again.
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, []string{"w"}, 30*time.Second) }()
	time.Sleep(150 * time.Millisecond)
	start = time.Now()
	if err := other.Enqueue(ctx, []*broker.Task{brokertest.NewTask("w", "t", nil)}); err != nil {
		t.Fatalf("Enqueue on the other broker after the restart: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after the restart: %v", err)
		}
		t.Logf("Wait after the restart woken %s after an Enqueue on another broker", time.Since(start).Round(time.Microsecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Wait after the restart not woken within 5s by an Enqueue on another broker")
	}
}

// prefixOf returns the prefix parameter of a test URL.
func prefixOf(t *testing.T, raw string) string {
	t.Helper()
	i := strings.Index(raw, "prefix=")
	if i < 0 {
		t.Fatalf("no prefix in %q", raw)
	}
	return raw[i+len("prefix="):]
}

// TestConnectionsClosed closes every connection to RabbitMQ (rabbitmqctl
// close_all_connections) twice while one broker enqueues and another reserves and acks,
// and checks that every task is stored once and completed at least once. Calls that fail
// with ErrUnavailable are retried as a client would: Enqueue with the same IDs (a task that
// was stored after all gets ErrDuplicate), Ack by letting the lease expire. Not parallel: it
// drops the connections of every other test.
func TestConnectionsClosed(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Missing(t, "no rabbitmqctl to close connections with: %v", err)
	}
	ctx := t.Context()
	url := newURL(t)
	producer := openBroker(t, url)
	consumer := openBroker(t, url)

	const n = 300
	tasks := brokertest.NewTasks("q", "t", n)
	produced := make(chan error, 1)
	go func() {
		for _, task := range tasks {
			for {
				err := producer.Enqueue(ctx, []*broker.Task{task})
				if err == nil || errors.Is(err, broker.ErrDuplicate) {
					break
				}
				if !errors.Is(err, broker.ErrUnavailable) {
					produced <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
		}
		produced <- nil
	}()
	done := map[string]int{}
	consumed := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for len(done) < n {
			if time.Now().After(deadline) {
				consumed <- fmt.Errorf("only %d of %d tasks done after 60s", len(done), n)
				return
			}
			got, err := consumer.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 8, Lease: 2 * time.Second})
			if err != nil {
				if !errors.Is(err, broker.ErrUnavailable) {
					consumed <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if len(got) == 0 {
				_ = consumer.Wait(ctx, []string{"q"}, 200*time.Millisecond)
				continue
			}
			ls := make([]broker.Lease, len(got))
			for i, task := range got {
				ls[i] = task.Lease
				done[task.ID]++
			}
			if err := consumer.Ack(ctx, ls); err != nil && !errors.Is(err, broker.ErrUnavailable) && !errors.Is(err, broker.ErrLeaseLost) {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		rabbitctl(t, "close_all_connections", "brisk test: connection loss")
	}
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}
	if err := <-consumed; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	twice := 0
	for _, task := range tasks {
		if done[task.ID] > 1 {
			twice++
		}
	}
	t.Logf("%d tasks, %d of them run more than once (an Ack lost with its connection)", n, twice)
	// Nothing is left once the leases of unconfirmed acks have expired and those tasks ran.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := consumer.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 100, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			ls := make([]broker.Lease, len(got))
			for i, task := range got {
				ls[i] = task.Lease
			}
			if err := consumer.Ack(ctx, ls); err != nil {
				t.Fatal(err)
			}
		}
		st, err := consumer.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 1 && st[0].Pending+st[0].Scheduled+st[0].Running+st[0].Dead == 0 {
			if st[0].Completed < n {
				t.Errorf("Completed = %d, want at least %d", st[0].Completed, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty 10s after every task was done: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openBroker opens a broker value on url, closed when the test ends (Close is idempotent,
// so a test may close it before).
func openBroker(t *testing.T, url string) *rabbitbroker.Broker {
	t.Helper()
	b, err := rabbitbroker.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
