// Command rabbitbench compares, in one run on one RabbitMQ, brisk's RabbitMQ broker with
// Celery on RabbitMQ (Debian's python3-celery) on the workloads W1 (drain) and W3 (idle
// pickup) of docs/workloads.md, runs brisk's W2 (500/s and 2,000/s), W4 and W5 on RabbitMQ,
// and measures the limit: what RabbitMQ itself sustains for publish-with-confirm and
// consume-with-ack of the same messages. It prints Markdown tables with ratios and the
// targets met or missed.
//
// brisk runs through `brisk bench` (built from this repository), Celery through
// bench/python/celery_bench.py, so that each follows the same definitions as peerbench.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/bench/internal/settle"
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ `URL` (vhost /)")
	n := flag.Int("n", 20000, "W1 tasks for brisk (it drains 2n: n enqueued one call each, n in batches)")
	nCelery := flag.Int("n-celery", 10000, "W1 tasks for Celery (it drains n)")
	prefetch := flag.Int("prefetch", 24, "the brisk worker's Prefetch in the second W1 run (8 handlers + 24 = a window of 32, as Celery's default prefetch multiplier 4 gives 8 threads)")
	prefetch2 := flag.Int("prefetch2", 120, "the brisk worker's Prefetch in the third W1 run (a window of 128)")
	prefetchWait := flag.Duration("prefetch-wait", 2*time.Millisecond, "the brisk worker's PrefetchWait in the fourth W1 run (Prefetch 0: a window that follows its run times)")
	rawN := flag.Int("raw-n", 100000, "messages per queue type for the RabbitMQ limit")
	w2Producers := flag.Int("w2-producers", 16, "W2: enqueue calls in flight at once (brisk bench --producers): one publisher confirm per call")
	python := flag.String("python", "/usr/bin/python3", "the Python with python3-celery")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("rabbitbench: ")
	start := time.Now()

	bin := filepath.Join(os.TempDir(), fmt.Sprintf("brisk-rabbitbench-%d", os.Getpid()))
	build := exec.Command("go", "build", "-o", bin, "./cmd/brisk")
	build.Dir = ".."
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("building brisk: %v", err)
	}
	defer os.Remove(bin)

	res := map[string]map[string]any{}
	prefix := fmt.Sprintf("rabbitbench%d", time.Now().Unix())
	briskURL := strings.TrimSuffix(*url, "/") + "/?prefix=" + prefix
	defer deleteQueuesWithPrefix(*url, prefix)
	runs := []struct {
		key  string
		args []string
	}{
		{"brisk W1", []string{"--workload", "W1", "--tasks", fmt.Sprint(*n)}},
		{"brisk W1 prefetch", []string{"--workload", "W1", "--tasks", fmt.Sprint(*n), "--prefetch", fmt.Sprint(*prefetch)}},
		{"brisk W1 prefetch2", []string{"--workload", "W1", "--tasks", fmt.Sprint(*n), "--prefetch", fmt.Sprint(*prefetch2)}},
		{"brisk W1 prefetch-wait", []string{"--workload", "W1", "--tasks", fmt.Sprint(*n), "--prefetch-wait", prefetchWait.String()}},
		{"brisk W2 500", []string{"--workload", "W2", "--rate", "500", "--producers", fmt.Sprint(*w2Producers)}},
		{"brisk W2 2000", []string{"--workload", "W2", "--rate", "2000", "--producers", fmt.Sprint(*w2Producers)}},
		{"brisk W3", []string{"--workload", "W3"}},
		{"brisk W4", []string{"--workload", "W4"}},
		{"brisk W5", []string{"--workload", "W5"}},
	}
	for _, r := range runs {
		if r.key == "brisk W3" {
			settleRabbit()
		}
		log.Printf("%s", r.key)
		res[r.key] = runJSON(exec.Command(bin, append([]string{"bench", "--broker", briskURL, "--json"}, r.args...)...))
	}
	settleRabbit()
	log.Printf("brisk W3 classic")
	res["brisk W3 classic"] = runJSON(exec.Command(bin, "bench", "--broker", briskURL+"&queue_type=classic", "--json", "--workload", "W3"))
	celeryURL := strings.TrimSuffix(*url, "/") + "//"
	for _, pool := range []struct{ name, conc string }{{"prefork", "2"}, {"threads", "8"}} {
		for _, w := range []string{"W1", "W3"} {
			log.Printf("celery-%s %s", pool.name, w)
			count := fmt.Sprint(*nCelery)
			if w == "W3" {
				count = "50" // one task every 200 ms for 10 s, as brisk bench's W3
			}
			cmd := exec.Command(*python, "celery_bench.py", "--workload", w, "--redis", celeryURL,
				"--pool", pool.name, "--concurrency", pool.conc, "--n", count, "--rate", "5")
			cmd.Dir = "python"
			res["celery-"+pool.name+" "+w] = runJSON(cmd)
		}
	}
	log.Printf("RabbitMQ limit")
	conn, err := amqp.Dial(*url)
	if err != nil {
		log.Fatalf("dial %s: %v", *url, err)
	}
	limit := map[string][2]float64{}
	for _, typ := range []string{"quorum", "classic"} {
		pub, con, err := rawLimit(conn, typ, *rawN, 1000, 1000)
		if err != nil {
			log.Fatalf("limit on a %s queue: %v", typ, err)
		}
		limit[typ] = [2]float64{pub, con}
	}
	log.Printf("RabbitMQ idle pickup")
	idle := map[string][2]float64{}
	for _, typ := range []string{"quorum", "classic"} {
		settleRabbit()
		p50, p99, err := rawIdle(conn, typ, 50)
		if err != nil {
			log.Fatalf("idle pickup on a %s queue: %v", typ, err)
		}
		idle[typ] = [2]float64{p50, p99}
	}
	conn.Close()

	num := func(key, field string) float64 {
		v, _ := res[key][field].(float64)
		return v
	}
	fmt.Printf("## rabbitbench %s, %s\n\n", start.UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Round(time.Second))
	fmt.Printf("RabbitMQ at %s, brisk on durable quorum queues; brisk 8 handlers (prefetch 0, and %d where said), W1 n=%d (drains 2n); Celery %s (its default classic queue), prefork 2 processes or 8 threads, prefetch multiplier 4, W1 n=%d; payload about 100 bytes.\n\n",
		redact(*url), *prefetch, *n, celeryVersion(res), *nCelery)
	for _, x := range []struct{ name, key string }{{fmt.Sprintf("prefetch %d", *prefetch2), "brisk W1 prefetch2"}, {fmt.Sprintf("prefetch wait %s", *prefetchWait), "brisk W1 prefetch-wait"}} {
		fmt.Printf("brisk W1 with %s: enqueue %s/s, batch %s/s, drain %s/s.\n\n", x.name,
			g(num(x.key, "enqueue_per_s")), g(num(x.key, "enqueue_batch_per_s")), g(num(x.key, "drain_per_s")))
	}
	fmt.Println("| figure | brisk | brisk prefetch | celery-prefork | celery-threads | brisk ÷ celery-prefork | brisk prefetch ÷ celery-prefork |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	row := func(name, field string, w string) {
		b, bp := num("brisk "+w, field), num("brisk "+w+" prefetch", field)
		p, t := num("celery-prefork "+w, field), num("celery-threads "+w, field)
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", name, g(b), g(bp), g(p), g(t), ratio(b, p), ratio(bp, p))
	}
	row("W1 enqueue, one call each (/s)", "enqueue_per_s", "W1")
	row("W1 batch enqueue, 1,000 a call (/s)", "enqueue_batch_per_s", "W1")
	row("W1 drain, 1 worker (/s)", "drain_per_s", "W1")
	row("W3 idle pickup p50 (ms)", "pickup_p50_ms", "W3")
	row("W3 idle pickup p99 (ms)", "pickup_p99_ms", "W3")
	fmt.Println()
	fmt.Printf("brisk, the other workloads (prefetch 0; W2 with %d enqueue calls in flight):\n", *w2Producers)
	fmt.Println()
	fmt.Println("| workload | figures |")
	fmt.Println("| --- | --- |")
	for _, rate := range []string{"500", "2000"} {
		k := "brisk W2 " + rate
		fmt.Printf("| W2 at %s/s | pickup p50 %s ms, p90 %s ms, p99 %s ms, max %s ms; kept up: %v |\n", rate,
			g(num(k, "pickup_p50_ms")), g(num(k, "pickup_p90_ms")), g(num(k, "pickup_p99_ms")), g(num(k, "pickup_max_ms")), res[k]["kept_up"])
	}
	fmt.Printf("| W4 crash | lost %s, run twice %s, %s s from the kill until the last interrupted task started again |\n",
		g(num("brisk W4", "lost")), g(num("brisk W4", "duplicates")), g(num("brisk W4", "redelivery_s")))
	fmt.Printf("| W3 on classic queues (queue_type=classic) | pickup p50 %s ms, p99 %s ms |\n",
		g(num("brisk W3 classic", "pickup_p50_ms")), g(num("brisk W3 classic", "pickup_p99_ms")))
	fmt.Printf("| W5 timely | lateness p50 %s ms, p99 %s ms, max %s ms |\n",
		g(num("brisk W5", "late_p50_ms")), g(num("brisk W5", "late_p99_ms")), g(num("brisk W5", "late_max_ms")))
	fmt.Println()
	fmt.Println("RabbitMQ's own limit, same run (100-byte persistent messages, 1,000 unconfirmed in flight, one consumer, prefetch 1,000, one ack per message):")
	fmt.Println()
	fmt.Printf("| queue | publish with confirms (/s) | consume with acks (/s) | brisk W1 drain ÷ consume | prefetch %d ÷ consume | prefetch %d ÷ consume | prefetch wait %s ÷ consume |\n", *prefetch, *prefetch2, *prefetchWait)
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, typ := range []string{"quorum", "classic"} {
		l := limit[typ]
		fmt.Printf("| durable %s | %.0f | %.0f | %s | %s | %s | %s |\n", typ, l[0], l[1], ratio(num("brisk W1", "drain_per_s"), l[1]),
			ratio(num("brisk W1 prefetch", "drain_per_s"), l[1]), ratio(num("brisk W1 prefetch2", "drain_per_s"), l[1]), ratio(num("brisk W1 prefetch-wait", "drain_per_s"), l[1]))
	}
	fmt.Println()
	fmt.Println("RabbitMQ's own idle pickup, same run (one 100-byte persistent message every 200 ms, published with a confirm to a consumer waiting with prefetch 1; from just before the publish to the consumer's receipt; 50 messages):")
	fmt.Println()
	fmt.Println("| queue | p50 (ms) | p99 (ms) | brisk W3 p50 on this queue type (ms) | brisk ÷ RabbitMQ |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for _, typ := range []string{"quorum", "classic"} {
		key := map[string]string{"quorum": "brisk W3", "classic": "brisk W3 classic"}[typ]
		fmt.Printf("| durable %s | %s | %s | %s | %s |\n", typ, g(idle[typ][0]), g(idle[typ][1]), g(num(key, "pickup_p50_ms")), ratio(num(key, "pickup_p50_ms"), idle[typ][0]))
	}
	celery := num("celery-prefork W1", "drain_per_s")
	qc := limit["quorum"][1]
	fmt.Println()
	fmt.Println("Targets:")
	fmt.Println()
	for _, d := range []struct {
		name string
		key  string
	}{{"prefetch 0", "brisk W1"}, {fmt.Sprintf("prefetch %d", *prefetch), "brisk W1 prefetch"}, {fmt.Sprintf("prefetch %d", *prefetch2), "brisk W1 prefetch2"}, {fmt.Sprintf("prefetch wait %s", *prefetchWait), "brisk W1 prefetch-wait"}} {
		drain := num(d.key, "drain_per_s")
		fmt.Printf("- W1 drain (%s) ≥ 5× the best Celery pool: %s (%s of celery-prefork, %s of celery-threads); ≥ half of RabbitMQ's consume-with-ack on a quorum queue: %s (%s)\n",
			d.name, mark(drain >= 5*max(celery, num("celery-threads W1", "drain_per_s"))), ratio(drain, celery), ratio(drain, num("celery-threads W1", "drain_per_s")), mark(drain >= qc/2), ratio(drain, qc))
	}
	w2 := "brisk W2 2000"
	keptUp, _ := res[w2]["kept_up"].(bool)
	fmt.Printf("- W2 at 2,000/s keeps up with p99 pickup < 20 ms: %s (kept up %v, p99 %s ms)\n", mark(keptUp && num(w2, "pickup_p99_ms") < 20), keptUp, g(num(w2, "pickup_p99_ms")))
	fmt.Printf("- W3 idle pickup p50 < 2 ms: %s (%s ms; RabbitMQ's own on a quorum queue: %s ms); on classic queues: %s (%s ms; RabbitMQ's own: %s ms)\n", mark(num("brisk W3", "pickup_p50_ms") < 2), g(num("brisk W3", "pickup_p50_ms")), g(idle["quorum"][0]),
		mark(num("brisk W3 classic", "pickup_p50_ms") < 2), g(num("brisk W3 classic", "pickup_p50_ms")), g(idle["classic"][0]))
	fmt.Printf("- W4 loses nothing: %s (lost %s)\n", mark(res["brisk W4"]["lost"] != nil && num("brisk W4", "lost") == 0), g(num("brisk W4", "lost")))
	fmt.Printf("- W5 lateness p99 < 1.5 s: %s (%s ms)\n", mark(num("brisk W5", "late_p99_ms") < 1500), g(num("brisk W5", "late_p99_ms")))
}

func g(v float64) string { return fmt.Sprintf("%.4g", v) }

func celeryVersion(res map[string]map[string]any) string {
	if v, ok := res["celery-prefork W1"]["celery"].(string); ok {
		return v
	}
	return "?"
}

// runJSON runs cmd and decodes the last line of its standard output as a JSON object.
func runJSON(cmd *exec.Cmd) map[string]any {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	m := map[string]any{}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		log.Fatalf("%s: output %q: %v", strings.Join(cmd.Args, " "), out.String(), err)
	}
	return m
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return ""
	}
	return fmt.Sprintf("%.3g×", a/b)
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

func redact(raw string) string {
	if i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
		return raw[:i+3] + "…" + raw[j:]
	}
	return raw
}

// deleteQueuesWithPrefix deletes the streams and queues brisk's broker made for the run,
// as listed by rabbitmqctl.
func deleteQueuesWithPrefix(url, prefix string) {
	out, err := exec.Command("rabbitmqctl", "-q", "list_queues", "name").Output()
	if err != nil {
		log.Printf("listing queues to delete those of %s: %v", prefix, err)
		return
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, prefix+".") {
			continue
		}
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(name, false, false, false)
		ch.Close()
	}
}

// settleRabbit waits, before an idle-pickup measurement, until the local RabbitMQ has
// finished the previous workload's after-work (quorum queues move their write-ahead log to
// segment files for a while after a load), at most 30 s.
func settleRabbit() {
	log.Print(settle.String(settle.Wait([]string{"beam.smp"}, 500*time.Millisecond, 30*time.Second)))
}
