package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/redisbroker"
	"github.com/briskq/brisk/internal/testenv"
)

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	b, err := broker.Open(t.Context(), "redis://127.0.0.1:1/0")
	if err == nil {
		b.Close()
		t.Fatal("Open of redis://127.0.0.1:1/0 succeeded")
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Open of an unreachable server: %v, want an error wrapping ErrUnavailable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open of an unreachable server took %s", took)
	}
	t.Logf("error: %v", err)
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis://127.0.0.1:6379/0?bogus=1", "redis://127.0.0.1:6379/0?prefix={x}", "redis://127.0.0.1:6379/x"} {
		b, err := broker.Open(t.Context(), raw)
		if err == nil {
			b.Close()
		}
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want an error wrapping ErrInvalid", raw, err)
		}
	}
}

// TestCrossBrokerPickup measures how long a task enqueued by one broker value takes to reach
// a worker loop (Wait, then Reserve) on another: the wake-up path across processes.
func TestCrossBrokerPickup(t *testing.T) {
	ctx := t.Context()
	url := newURL(t)
	producer := openBroker(t, url)
	consumer := openBroker(t, url)
	// The first Wait opens the subscription.
	_ = consumer.Wait(ctx, []string{"pick"}, 200*time.Millisecond)
	const n = 50
	var lat []time.Duration
	for range n {
		got := make(chan time.Time, 1)
		go func() {
			for {
				ts, err := consumer.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "pick"}}, Limit: 1, Lease: time.Minute})
				if err != nil {
					t.Error(err)
					got <- time.Time{}
					return
				}
				if len(ts) == 1 {
					got <- time.Now()
					_ = consumer.Ack(ctx, []broker.Lease{ts[0].Lease})
					return
				}
				if err := consumer.Wait(ctx, []string{"pick"}, 5*time.Second); err != nil {
					t.Error(err)
					got <- time.Time{}
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond) // let it block in Wait
		start := time.Now()
		if err := producer.Enqueue(ctx, []*broker.Task{brokertest.NewTask("pick", "t", nil)}); err != nil {
			t.Fatal(err)
		}
		end := <-got
		lat = append(lat, end.Sub(start))
	}
	// Timing is reported, not asserted, except for what only a broken wake-up gives: a
	// median near the 5 s Wait (no wake-up at all) or the 100 ms poll of a lost
	// subscription. Benchmarks measure the figure itself (brisk bench --workload W3).
	slices.Sort(lat)
	median := lat[len(lat)/2]
	t.Logf("pickup across broker values: median %s, max %s over %d tasks", median.Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), n)
	if median > 50*time.Millisecond {
		t.Errorf("median pickup %s across broker values: the Enqueue does not wake the other broker's Wait", median)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis starts a redis-server of the test's own on port and waits until it answers.
// Without args it keeps nothing on disk; args are more options (they override).
func startRedis(t *testing.T, bin string, port int, args ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, args...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("redis-server on port %d did not answer within 10s", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisRestart kills a Redis of the test's own under an open broker, checks that calls
// fail promptly with ErrUnavailable, restarts it on the same port and checks that the broker
// (commands and the Wait subscription) works again.
func TestRedisRestart(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "no redis-server binary to start and kill: %v", err)
	}
	port := freePort(t)
	srv := startRedis(t, bin, port)
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	ctx := t.Context()
	url := fmt.Sprintf("redis://127.0.0.1:%d/0?prefix=restart", port)
	b := openBroker(t, url)
	other := openBroker(t, url)
	if err := b.Enqueue(ctx, []*broker.Task{brokertest.NewTask("q", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, []string{"idle"}, 100*time.Millisecond); err != nil { // opens the subscription
		t.Fatal(err)
	}

	_ = srv.Process.Kill()
	_ = srv.Wait()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = b.Enqueue(cctx, []*broker.Task{brokertest.NewTask("q", "t", nil)})
	cancel()
	took := time.Since(start)
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Enqueue while Redis is down = %v, want an error wrapping ErrUnavailable", err)
	}
	if took > 3500*time.Millisecond {
		t.Errorf("Enqueue while Redis is down took %s, beyond its 3s context", took)
	}
	t.Logf("Enqueue while Redis is down failed after %s: %v", took.Round(time.Millisecond), err)
	if _, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Reserve while Redis is down = %v, want an error wrapping ErrUnavailable", err)
	}
	// Wait while down: returns (an error or a spurious nil) without blocking past max and
	// without spinning.
	calls := 0
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	for wctx.Err() == nil {
		calls++
		if err := b.Wait(wctx, []string{"q"}, 200*time.Millisecond); err != nil && wctx.Err() == nil {
			time.Sleep(50 * time.Millisecond) // what a worker does after a Wait error (longer there)
		}
	}
	wcancel()
	if calls > 50 {
		t.Errorf("Wait while Redis is down returned %d times in 500ms: it spins", calls)
	}

	srv = startRedis(t, bin, port)
	restarted := time.Now()
	// The data is gone (no persistence): the broker must simply work again.
	var task *broker.Task
	for {
		task = brokertest.NewTask("q", "t", []byte("after"))
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := b.Enqueue(cctx, []*broker.Task{task})
		cancel()
		if err == nil {
			break
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("Enqueue still fails 10s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Enqueue works again %s after the restart", time.Since(restarted).Round(time.Millisecond))
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 10, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != task.ID {
		t.Fatalf("Reserve after the restart = %d tasks, %v; want the task enqueued after it", len(got), err)
	}
	// The subscription comes back: a Wait is woken by another broker's Enqueue.
	checkWakeUp(t, b, other, 10*time.Second)
}

// checkWakeUp checks, for up to within, that a Wait on b is woken within 100 ms by an
// Enqueue on other (after an outage, until the Pub/Sub subscription is back).
func checkWakeUp(t *testing.T, b, other *redisbroker.Broker, within time.Duration) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(within)
	for {
		done := make(chan error, 1)
		go func() { done <- b.Wait(ctx, []string{"w"}, 30*time.Second) }()
		time.Sleep(150 * time.Millisecond)
		start := time.Now()
		if err := other.Enqueue(ctx, []*broker.Task{brokertest.NewTask("w", "t", nil)}); err != nil {
			t.Fatalf("Enqueue on the other broker after the restart: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Wait after the restart: %v", err)
			}
			if took := time.Since(start); took < 100*time.Millisecond {
				t.Logf("Wait after the restart woken %s after an Enqueue on another broker", took.Round(time.Microsecond))
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait after the restart not woken within 5s by an Enqueue on another broker")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wake-up subscription did not come back within %s of the restart", within)
		}
	}
}

// openBroker opens a broker value on url, closed when the test ends (Close is idempotent,
// so a test may close it before).
func openBroker(t *testing.T, url string) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
