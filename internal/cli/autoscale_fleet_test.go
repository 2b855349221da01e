package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/celerybroker" // celery+redis://
	_ "github.com/briskq/brisk/broker/rqbroker"     // rq+redis://
	"github.com/briskq/brisk/internal/pytest"
)

// The live tests of brisk autoscale on real Celery and RQ fleets: a Python producer sends
// a burst through the real library, brisk autoscale (this command, in-process) watches
// the queue through the read-only broker and runs the fleet's own worker command, and the
// jobs record where and when they ran.

// fleetQueue states its SLA in its name.
const (
	fleetQueue = "ten_seconds"
	fleetSLA   = 10 * time.Second
	// fleetWork is each job's handler time: one worker serves 4 jobs a second.
	fleetWork = 0.25
)

// fleetJobs is the job module both fleets import (jobs.py): work(id, log) sleeps and
// appends "start ID PID" and "done ID PID" to log.
const fleetJobs = `
import os, time

def note(log, *words):
    with open(log, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")

def work(job_id, log, seconds):
    note(log, "start", job_id, os.getpid())
    time.sleep(seconds)
    note(log, "done", job_id, os.getpid())
`

// fleetProducer sends jobs at a rate per phase: argv "RATE:SECONDS ..." after the
// fleet-specific send(job_id) that the caller's prelude defines. It prints the count sent.
const fleetProducer = `
import sys, time
start = time.monotonic()
n = 0
phase_start = start
for phase in sys.argv[1:]:
    rate, seconds = (float(x) for x in phase.split(":"))
    end = phase_start + seconds
    i = 0
    while True:
        at = phase_start + i / rate
        if at >= end:
            break
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send("j%d" % n)
        n += 1
        i += 1
    phase_start = end
print(n)
`

// fleetPhases is the arrival pattern: 2/s for 5 s, a burst of 20/s for 15 s (five workers'
// worth), 2/s for 10 s. One worker alone would fall about a minute behind.
var fleetPhases = []string{"2:5", "20:15", "2:10"}

// decisionRE reads the decision lines of brisk autoscale.
var decisionRE = regexp.MustCompile(`^(\S+) \S+ latency (\S+) \(SLA [^)]*\) pending (\d+) .* workers (\d+) -> (\d+): (.*)$`)

type fleet struct {
	name   string
	params []string // more flags of brisk autoscale
	// mayLose is how many jobs the fleet may lose by its own fault: Celery's Redis
	// transport before kombu 5.3 (Debian 12 has 5.2.4) drops a message that a worker
	// fetches while it is being stopped (kombu pull request 1733).
	mayLose  int
	broker   string   // the watcher's URL
	exec     string   // the fleet's worker command
	producer string   // Python prelude that defines send(job_id)
	env      []string // for the producer
}

func runFleet(t *testing.T, f fleet, dir, py, log string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	errOut := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		args := append([]string{"autoscale", "--broker", f.broker, "--queue", fleetQueue, "--exec", f.exec,
			"--min", "1", "--max", "6", "--interval", "1s", "--startup", "5s", "--slots", "1", "--grace", "20s",
			"--param", "stabilise=10", "--param", "memory=15"}, f.params...)
		done <- run(ctx, args, strings.NewReader(""), out, errOut)
	}()
	// stop stops the autoscaler (its workers get SIGTERM and finish their jobs) once.
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != exitInterrupted {
					t.Errorf("brisk autoscale exit %d; stderr:\n%s", code, errOut.String())
				}
			case <-time.After(60 * time.Second):
				t.Errorf("brisk autoscale did not stop within 60s")
			}
		})
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("brisk autoscale stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
	}()
	time.Sleep(3 * time.Second) // the first worker boots
	start := time.Now()
	sent := strings.TrimSpace(pytest.Run(t, py, dir, f.producer+fleetProducer, f.env, fleetPhases...))
	n, err := strconv.Atoi(pytest.LastLine(sent))
	if err != nil {
		t.Fatalf("producer printed %q", sent)
	}
	t.Logf("%s: %d jobs sent in %s", f.name, n, time.Since(start).Round(100*time.Millisecond))

	// Wait for the queue to drain and the count to come back to the minimum.
	var (
		maxLatency time.Duration
		maxWorkers int
		lines      []string
	)
	back := false
	for deadline := time.Now().Add(90 * time.Second); !back; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			starts, dones := jobCounts(t, log)
			var missing []string
			for i := 0; i < n && len(missing) < 10; i++ {
				if id := fmt.Sprintf("j%d", i); dones[id] == 0 {
					missing = append(missing, id)
				}
			}
			var q brisk.QueueInfo
			if b, err := brisk.Open(context.Background(), f.broker); err == nil {
				if qs, err := brisk.NewInspector(b).Queues(context.Background()); err == nil && len(qs) > 0 {
					q = qs[0]
				}
				b.Close()
			}
			t.Fatalf("%s: the queue did not drain and scale back to 1 worker within 90 s of the producer's end (%d jobs sent, %d started, %d done; not done: %v; queue %+v)",
				f.name, n, len(starts), len(dones), missing, q)
		}
		maxLatency, maxWorkers, lines = 0, 0, nil
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		last := -1
		pending := -1
		for sc.Scan() {
			m := decisionRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			lat, _ := time.ParseDuration(m[2])
			maxLatency = max(maxLatency, lat)
			cur, _ := strconv.Atoi(m[4])
			want, _ := strconv.Atoi(m[5])
			maxWorkers = max(maxWorkers, cur, want)
			pending, _ = strconv.Atoi(m[3])
			last = want
			lines = append(lines, sc.Text())
		}
		// Running is not waited for: a Celery worker killed after the grace period leaves
		// the message it reserved in kombu's unacked hash until the visibility timeout (1 h).
		back = maxWorkers > 1 && last == 1 && pending == 0 && doneCount(t, log) >= n-f.mayLose
	}
	// The highest latency is logged, not asserted: it depends on how fast worker processes
	// start on this machine at this moment (docs/autoscaling.md records runs).
	// Stop the autoscaler, then check that every job ran exactly once.
	stop()
	starts, dones := jobCounts(t, log)
	var lost []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("j%d", i)
		switch {
		case starts[id] == 0 && dones[id] == 0:
			lost = append(lost, id)
		case starts[id] != 1 || dones[id] != 1:
			t.Errorf("%s: job %s started %d times and finished %d times", f.name, id, starts[id], dones[id])
		}
	}
	switch {
	case len(lost) > f.mayLose:
		t.Errorf("%s: jobs never run: %v", f.name, lost)
	case len(lost) > 0:
		t.Logf("%s: %d job(s) lost by the fleet itself while a worker stopped (kombu before 5.3): %v", f.name, len(lost), lost)
	}
	within := "within"
	if maxLatency > fleetSLA {
		within = "OVER"
	}
	t.Logf("%s: scaled out to %d workers and back to 1; highest latency %s, %s the SLA %s; %d of %d jobs ran, each once; decisions:\n%s",
		f.name, maxWorkers, maxLatency, within, fleetSLA, n-len(lost), n, strings.Join(compactTimeline(lines), "\n"))
}

// compactTimeline keeps the decision lines whose worker counts or reason rule differ from
// the line before, and the last.
func compactTimeline(lines []string) []string {
	var out []string
	prev := ""
	for i, l := range lines {
		m := decisionRE.FindStringSubmatch(l)
		rule, _, _ := strings.Cut(m[6], ":")
		key := m[4] + m[5] + rule
		if key != prev || i == len(lines)-1 {
			out = append(out, l)
		}
		prev = key
	}
	return out
}

func jobCounts(t *testing.T, log string) (starts, dones map[string]int) {
	t.Helper()
	starts, dones = map[string]int{}, map[string]int{}
	data, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		w := strings.Fields(line)
		if len(w) != 3 {
			continue
		}
		if w[0] == "start" {
			starts[w[1]]++
		} else if w[0] == "done" {
			dones[w[1]]++
		}
	}
	return starts, dones
}

func doneCount(t *testing.T, log string) int {
	_, dones := jobCounts(t, log)
	return len(dones)
}

// TestAutoscaleRQFleet scales real RQ workers (rq worker, SimpleWorker: no fork per job)
// on the latency of an RQ queue through a burst. The fleet tests do not run in parallel:
// each starts up to six Python processes, and the timelines would be of a crowded machine.
func TestAutoscaleRQFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real RQ fleet for about a minute")
	}
	py := pytest.Python(t, "rq", "redis")
	raw := pytest.RedisDB(t, 8)
	dir := t.TempDir()
	log := filepath.Join(dir, "jobs.log")
	if err := os.WriteFile(filepath.Join(dir, "jobs.py"), []byte(fleetJobs), 0o644); err != nil {
		t.Fatal(err)
	}
	runFleet(t, fleet{
		name:   "rq",
		broker: "rq+" + raw,
		exec: fmt.Sprintf("%s -m rq.cli worker --url %s --path %s --worker-class rq.worker.SimpleWorker --logging_level WARNING %s",
			py, raw, dir, fleetQueue),
		producer: fmt.Sprintf(`
from redis import Redis
from rq import Queue
q = Queue(%q, connection=Redis.from_url(%q))
def send(job_id):
    q.enqueue("jobs.work", job_id, %q, %v, job_id=job_id)
`, fleetQueue, raw, log, fleetWork),
	}, dir, py, log)
}

// TestAutoscaleCeleryFleet scales real Celery workers (celery -A app worker -Q q -c 1) on
// the latency of a Celery queue on Redis, measured with the published_at hook, through a
// burst.
func TestAutoscaleCeleryFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real Celery fleet for about a minute")
	}
	py := pytest.Python(t, "celery", "redis")
	raw := pytest.RedisDB(t, 7)
	dir := t.TempDir()
	log := filepath.Join(dir, "jobs.log")
	lib, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf(`
import sys
sys.path.insert(0, %q)
import brisk_celery  # the published_at hook
from celery import Celery
import jobs
app = Celery("fleet", broker=%q)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)
work = app.task(name="jobs.work")(jobs.work)
`, lib, raw)
	for name, text := range map[string]string{"jobs.py": fleetJobs, "app.py": app} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runFleet(t, fleet{
		name:   "celery",
		broker: "celery+" + raw,
		// Celery acks a task before it runs: no Redis structure shows it running, so the
		// policy is told the handler time.
		params:  []string{"--param", fmt.Sprintf("handler_time=%v", fleetWork)},
		mayLose: 5,
		exec: fmt.Sprintf("%s -m celery -A app --workdir %s worker -Q %s -c 1 -l WARNING --without-gossip --without-mingle --without-heartbeat",
			py, dir, fleetQueue),
		producer: fmt.Sprintf(`
import sys
sys.path.insert(0, %q)
from app import work
def send(job_id):
    work.apply_async((job_id, %q, %v), queue=%q, task_id=job_id)
`, dir, log, fleetWork, fleetQueue),
	}, dir, py, log)
}
