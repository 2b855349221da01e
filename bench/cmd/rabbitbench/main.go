// Command rabbitbench compares, in one run on one RabbitMQ, brisk's RabbitMQ broker with
// Celery on RabbitMQ (Debian's python3-celery) on the workloads W1 (drain) and W3 (idle
// pickup) of docs/workloads.md, and measures the limit: what RabbitMQ itself sustains for
// publish-with-confirm and consume-with-ack of the same messages. It prints one Markdown
// table with ratios.
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
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ `URL` (vhost /)")
	n := flag.Int("n", 20000, "W1 tasks for brisk (it drains 2n: n enqueued one call each, n in batches)")
	nCelery := flag.Int("n-celery", 10000, "W1 tasks for Celery (it drains n)")
	rawN := flag.Int("raw-n", 100000, "messages per queue type for the RabbitMQ limit")
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
	for _, w := range []string{"W1", "W3"} {
		log.Printf("brisk %s", w)
		args := []string{"bench", "--broker", briskURL, "--workload", w, "--json"}
		if w == "W1" {
			args = append(args, "--tasks", fmt.Sprint(*n))
		}
		res["brisk "+w] = runJSON(exec.Command(bin, args...))
	}
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
	conn.Close()

	num := func(key, field string) float64 {
		v, _ := res[key][field].(float64)
		return v
	}
	fmt.Printf("## rabbitbench %s, %s\n\n", start.UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Round(time.Second))
	fmt.Printf("RabbitMQ at %s; brisk W1 n=%d (drains 2n), Celery n=%d; brisk 8 handlers, Celery prefork 2 processes or 8 threads; payload about 100 bytes.\n\n", redact(*url), *n, *nCelery)
	fmt.Println("| figure | brisk | celery-prefork | celery-threads | ÷celery-prefork | ÷celery-threads |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	row := func(name, bField, cField string, scale float64) {
		b := num("brisk "+name[:2], bField) * scale
		p := num("celery-prefork "+name[:2], cField) * scale
		t := num("celery-threads "+name[:2], cField) * scale
		fmt.Printf("| %s | %.4g | %.4g | %.4g | %s | %s |\n", name, b, p, t, ratio(b, p), ratio(b, t))
	}
	row("W1 enqueue, one call each (/s)", "enqueue_per_s", "enqueue_per_s", 1)
	row("W1 drain, 1 worker (/s)", "drain_per_s", "drain_per_s", 1)
	row("W3 idle pickup p50 (ms)", "pickup_p50_ms", "pickup_p50_ms", 1)
	row("W3 idle pickup p99 (ms)", "pickup_p99_ms", "pickup_p99_ms", 1)
	fmt.Printf("\nbrisk W1 batch enqueue (batches of 1,000): %.0f/s (Celery has no batch enqueue).\n\n", num("brisk W1", "enqueue_batch_per_s"))
	fmt.Println("RabbitMQ's own limit, same run (100-byte persistent messages, 1,000 unconfirmed in flight, prefetch 1,000):")
	fmt.Println()
	fmt.Println("| queue | publish with confirms (/s) | consume with acks (/s) | brisk W1 drain ÷ min of the two |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, typ := range []string{"quorum", "classic"} {
		l := limit[typ]
		fmt.Printf("| durable %s | %.0f | %.0f | %s |\n", typ, l[0], l[1], ratio(num("brisk W1", "drain_per_s"), min(l[0], l[1])))
	}
	drain, celery := num("brisk W1", "drain_per_s"), num("celery-prefork W1", "drain_per_s")
	q := limit["quorum"]
	fmt.Printf("\nIssue 4 targets: W1 drain ≥ 5× Celery-on-RabbitMQ: %s (%s); within 2× of the raw quorum limit (≥ %.0f/s): %s; W3 p50 < 2 ms: %s (%.3g ms).\n",
		mark(drain >= 5*celery), ratio(drain, celery), min(q[0], q[1])/2, mark(drain >= min(q[0], q[1])/2),
		mark(num("brisk W3", "pickup_p50_ms") < 2), num("brisk W3", "pickup_p50_ms"))
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
