package rabbitbroker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker/brokertest"
	"github.com/briskq/brisk/broker/rabbitbroker"
)

// clusterNode is one node of the test's own RabbitMQ cluster.
type clusterNode struct {
	name string // Erlang node name
	port int    // AMQP port on 127.0.0.1
	dir  string
}

// start starts the node in the background as the rabbitmq user (so it shares the Erlang
// cookie of rabbitmqctl), with its own ports, data, logs and no plugins.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	for _, sub := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(n.dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(n.dir, "rabbitmq.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", n.port)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", "-R", "rabbitmq:rabbitmq", n.dir)
	env := fmt.Sprintf("RABBITMQ_NODENAME=%s RABBITMQ_NODE_PORT=%d RABBITMQ_DIST_PORT=%d RABBITMQ_CONFIG_FILE=%s "+
		"RABBITMQ_MNESIA_BASE=%s RABBITMQ_LOG_BASE=%s RABBITMQ_PID_FILE=%s RABBITMQ_ENABLED_PLUGINS_FILE=%s HOME=/var/lib/rabbitmq",
		n.name, n.port, n.port+20000, conf, filepath.Join(n.dir, "mnesia"), filepath.Join(n.dir, "log"),
		filepath.Join(n.dir, "pid"), filepath.Join(n.dir, "enabled_plugins"))
	run(t, "su", "rabbitmq", "-s", "/bin/sh", "-c", "env "+env+" /usr/lib/rabbitmq/bin/rabbitmq-server -detached")
	// await_startup gives up at once while the node has not registered with epmd yet.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.Command("rabbitmqctl", "-n", n.name, "-q", "--timeout", "60", "await_startup").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(n.dir, "log", n.name+".log"))
			t.Fatalf("node %s did not start within 2 minutes: %v\n%s\nits log ends:\n%s", n.name, err, out, tail(string(log), 3000))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kill kills the node's Erlang VM with SIGKILL.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", n.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid of %s: %q", n.name, b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", n.name, pid, err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCluster3 starts a RabbitMQ cluster of three nodes of its own on this machine (ports
// 5681–5683), enqueues to a quorum queue whose leader is the first node, drains it with a
// worker connected to the second, kills the leader's node with SIGKILL half way, and checks
// that the queue elects a new leader, that every task runs and that enqueues go on. It is
// opt-in (BRISK_RABBIT_CLUSTER=1): it needs root, takes about a minute, and starts three
// Erlang VMs.
func TestCluster3(t *testing.T) {
	if os.Getenv("BRISK_RABBIT_CLUSTER") == "" {
		t.Skip("SKIPPED: set BRISK_RABBIT_CLUSTER=1 to start a 3-node RabbitMQ cluster of the test's own on ports 5681-5683")
	}
	base, err := os.MkdirTemp("", "brisk-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil { // the nodes run as the rabbitmq user
		t.Fatal(err)
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{name: fmt.Sprintf("brisk%d@localhost", i+1), port: 5681 + i, dir: filepath.Join(base, fmt.Sprint(i+1))}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = exec.Command("rabbitmqctl", "-n", n.name, "-q", "stop").Run()
		}
	})
	start := time.Now()
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes[1:] {
		run(t, "rabbitmqctl", "-n", n.name, "-q", "stop_app")
		run(t, "rabbitmqctl", "-n", n.name, "-q", "join_cluster", nodes[0].name)
		run(t, "rabbitmqctl", "-n", n.name, "-q", "start_app")
	}
	t.Logf("3 nodes up and clustered in %s:\n%s", time.Since(start).Round(time.Millisecond), run(t, "rabbitmqctl", "-n", nodes[0].name, "-q", "cluster_status"))

	ctx := t.Context()
	url := func(n *clusterNode) string {
		return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/?prefix=cluster&management=off&outage_wait=20s", n.port)
	}
	producer := openBroker(t, url(nodes[0])) // declares the queue: its leader is node 1
	const n = 600
	tasks := brokertest.NewTasks("q", "t", n)
	if err := producer.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	t.Logf("quorum status before:\n%s", run(t, "rabbitmq-queues", "-n", nodes[1].name, "quorum_status", "cluster.q.q"))

	wb := openBroker(t, url(nodes[1]))
	total := n + 100
	rc := newRunCounter(total)
	w, err := brisk.NewWorker(wb, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "q"}}, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("t", rc.handler(10*time.Millisecond))
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	rc.waitFor(n / 3)
	killed := time.Now()
	nodes[0].kill(t)
	t.Logf("killed %s (the queue's leader) with SIGKILL after %d tasks ran", nodes[0].name, n/3)

	// Enqueue through the third node while the first is down: the new leader confirms.
	// A broker opened on a surviving node: the streams' writer was on the lost node too, so
	// Open fails until the stream coordinator has moved it.
	var other *rabbitbroker.Broker
	for opened := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		b, err := rabbitbroker.Open(ctx, url(nodes[2]))
		if err == nil {
			other = b
			t.Cleanup(func() { _ = b.Close() })
			t.Logf("Open on a surviving node succeeded %s after the kill (%s after the first try)", time.Since(killed).Round(time.Millisecond), time.Since(opened).Round(time.Millisecond))
			break
		}
		if time.Since(opened) > time.Minute {
			t.Fatalf("Open on a surviving node for a minute after the leader's loss: %v", err)
		}
	}
	more := brokertest.NewTasks("q", "t", 100)
	enq := time.Now()
	if err := other.Enqueue(ctx, more); err != nil {
		t.Fatalf("Enqueue through a surviving node after the leader's loss: %v", err)
	}
	t.Logf("an Enqueue of 100 tasks through a surviving node took %s after the kill", time.Since(enq).Round(time.Millisecond))
	rc.waitAll(t, 90*time.Second, "the kill")
	t.Logf("every task ran %s after the kill", time.Since(killed).Round(time.Millisecond))
	t.Logf("quorum status after:\n%s", run(t, "rabbitmq-queues", "-n", nodes[1].name, "quorum_status", "cluster.q.q"))
	twice := rc.check(t, append(tasks, more...))
	t.Logf("%d tasks ran more than once (held unacked when the leader went)", twice)
}
