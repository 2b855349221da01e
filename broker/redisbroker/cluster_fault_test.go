package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/internal/testenv"
)

// testCluster is a Redis Cluster of three masters that one test starts for itself, each
// node keeping its data in an append-only file fsynced at every write, so that a node
// killed with SIGKILL and started again comes back with its slots and its tasks.
type testCluster struct {
	t     *testing.T
	bin   string
	dir   string
	ports []int
	procs map[int]*exec.Cmd
}

// startTestCluster starts the nodes, joins them with redis-cli --cluster create and waits
// for cluster_state:ok.
func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		testenv.Missing(t, "no redis-server and redis-cli to start a cluster: %v", err)
	}
	c := &testCluster{t: t, bin: bin, dir: t.TempDir(), procs: map[int]*exec.Cmd{}}
	c.ports = clusterPorts(t, 3)
	t.Cleanup(func() {
		for _, p := range c.procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	})
	var addrs []string
	for _, port := range c.ports {
		c.start(port)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitOK()
	return c
}

// clusterPorts returns n ports that are free, each with its cluster bus port (+10000).
func clusterPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := 20000 + rand.IntN(30000)
		if portFree(p) && portFree(p+10000) {
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		t.Fatal("no free ports for a test cluster")
	}
	return ports
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// start starts (or starts again) the node on port, with its own directory.
func (c *testCluster) start(port int) {
	c.t.Helper()
	dir := filepath.Join(c.dir, strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir)
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", c.bin, err)
	}
	c.procs[port] = cmd
	deadline := time.Now().Add(10 * time.Second)
	for !dialable(port) {
		if time.Now().After(deadline) {
			c.t.Fatalf("redis-server on port %d did not answer within 10s", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialable(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// kill kills the node on port with SIGKILL.
func (c *testCluster) kill(port int) {
	p := c.procs[port]
	_ = p.Process.Kill()
	_ = p.Wait()
	delete(c.procs, port)
}

// waitOK waits until every node says cluster_state:ok.
func (c *testCluster) waitOK() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range c.ports {
		for {
			out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(port), "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %d: no cluster_state:ok within 30s:\n%s", port, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// url returns a brisk URL with every node as a seed.
func (c *testCluster) url(prefix string) string {
	u := fmt.Sprintf("redis://127.0.0.1:%d?prefix=%s", c.ports[0], prefix)
	for _, p := range c.ports[1:] {
		u += fmt.Sprintf("&addr=127.0.0.1:%d", p)
	}
	return u
}

// portOf returns the port of the master that holds key.
func (c *testCluster) portOf(ctx context.Context, key string) int {
	c.t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", c.ports[0])}})
	defer cc.Close()
	m, err := cc.MasterForKey(ctx, key)
	if err != nil {
		c.t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(m.Options().Addr)
	n, _ := strconv.Atoi(port)
	return n
}

// TestClusterNodeRestart kills the master that holds a queue with SIGKILL while a task of
// that queue is reserved and not acked, checks that calls fail promptly with
// ErrUnavailable, starts the node again and checks that the broker (commands and the Wait
// subscription) works again, that no task was lost, and that the reserved task is
// delivered again once its lease has expired.
func TestClusterNodeRestart(t *testing.T) {
	c := startTestCluster(t)
	ctx := t.Context()
	url := c.url("restart")
	b := openBroker(t, url)
	other := openBroker(t, url)

	held, pending := brokertest.NewTask("q", "t", []byte("held")), brokertest.NewTask("q", "t", []byte("pending"))
	if err := b.Enqueue(ctx, []*broker.Task{held}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: 2 * time.Second, WorkerID: "lost"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Reserve = %d tasks, %v", len(got), err)
	}
	if err := b.Enqueue(ctx, []*broker.Task{pending}); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, []string{"idle"}, 100*time.Millisecond); err != nil { // opens the subscription
		t.Fatal(err)
	}

	port := c.portOf(ctx, "{restart:q}:ready")
	c.kill(port)
	killed := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = b.Enqueue(cctx, []*broker.Task{brokertest.NewTask("q", "t", nil)})
	cancel()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Enqueue while the queue's master is down = %v, want an error wrapping ErrUnavailable", err)
	}
	t.Logf("Enqueue while the queue's master is down failed after %s: %v", time.Since(killed).Round(time.Millisecond), err)
	cctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	_, err = b.Reserve(cctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 1, Lease: time.Minute})
	cancel()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Reserve while the queue's master is down = %v, want an error wrapping ErrUnavailable", err)
	}

	c.start(port)
	c.waitOK()
	restarted := time.Now()
	after := brokertest.NewTask("q", "t", []byte("after"))
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := b.Enqueue(cctx, []*broker.Task{after})
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, broker.ErrDuplicate) { // stored by a try whose reply was lost
			break
		}
		if time.Since(restarted) > 15*time.Second {
			t.Fatalf("Enqueue still fails 15s after the node came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Enqueue works again %s after the node came back", time.Since(restarted).Round(time.Millisecond))

	// Every task is still there; the held one comes back when its lease has expired.
	want := map[string]string{held.ID: "held", pending.ID: "pending", after.ID: "after"}
	deadline := time.Now().Add(15 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "q"}}, Limit: 10, Lease: time.Minute, WorkerID: "w"})
		if err != nil {
			t.Fatalf("Reserve after the restart: %v", err)
		}
		for _, task := range got {
			if task.ID == held.ID && task.Attempt != 2 {
				t.Errorf("the task held across the outage came back with attempt %d, want 2", task.Attempt)
			}
			delete(want, task.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(want) > 0 {
		t.Fatalf("tasks not delivered after the restart: %v", want)
	}

	// The subscription comes back: a Wait is woken by another broker's Enqueue.
	checkWakeUp(t, b, other, 15*time.Second)
}
