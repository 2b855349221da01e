package cli

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/workload"
)

var benchCmd = &command{
	name:     "bench",
	synopsis: "--workload W1|W2|W3|W4|W5 [--tasks N] [--rate R] [--concurrency N] [--prefetch N] [--prefetch-wait D] [--producers N] [--retention D] [--json]",
	summary:  "run a benchmark workload against brisk and print its figures",
	detail: `
The workloads (docs/workloads.md); each task carries a 100-byte JSON payload with its
enqueue and ready times, and handlers do nothing unless said:
  W1 drain    enqueue --tasks (20000) one call each, then as many again in batches of
              1000, with no worker; then time one worker draining them all, from the
              first task done to the last. Figures: enqueue_per_s, enqueue_batch_per_s,
              drain_per_s.
  W2 steady   a running worker; a producer enqueues one task per call at --rate (500/s)
              for 20 s (--tasks overrides the count). Figures: pickup_p50_ms,
              pickup_p90_ms, pickup_p99_ms, pickup_max_ms, kept_up (all picked up within
              2 s of the producer's end, at >= 95% of the rate).
  W3 idle     one task every 200 ms (--rate 5) for 10 s (50 tasks) to an idle worker.
              Figures: the pickup percentiles.
  W4 crash    2000 tasks whose handler sleeps 50 ms, run by a worker in a child process
              that is killed with SIGKILL when half are done and restarted at once.
              Figures: lost, duplicates, interrupted, redelivery_s (from the kill until
              the last interrupted task started again).
  W5 timely   2000 tasks delayed by uniform random 0-10 s, to an idle worker. Figures:
              late_p50_ms, late_p90_ms, late_p99_ms, late_max_ms (start - ready time).
Pickup latency is the handler's start minus the task's ready time; percentiles are exact.

Without --broker and $BRISK_BROKER the run uses a fresh SQLite file in a temporary
directory, removed at the end (not ./brisk.db). With a broker it uses a queue of its own
(bench_w1_<random>) and deletes the tasks it leaves.

--prefetch N lets the worker hold N tasks beyond its free handlers (WorkerConfig.Prefetch,
default 0): on RabbitMQ's quorum queues the drain rate grows with it (docs/rabbitmq.md).
--prefetch-wait D lets it hold as many more as it expects to start within D, from its
recent handler times (WorkerConfig.PrefetchWait): large batches for short tasks, none
beyond the free slots for long ones.

--producers N lets W2 and W3 have up to N enqueue calls in flight at once (default 1: one
call after the other). The schedule is the same; more callers model concurrent requests of
a web application, so that a broker whose single call takes longer than the interval between
tasks (PostgreSQL's durable commit per call) still receives the rate.

--retention D keeps the run's completed tasks for D (the queue's retention), each with a
100-byte result that the handler stores, on a broker that keeps them (SQLite), and samples
the store every 10 s: the completed tasks kept and, for SQLite, the size of the file and
its write-ahead log, printed as the run goes and added as retained_start, retained_mid,
retained_end, retained_max and store_mb_start … store_mb_max. With a retention shorter
than the run they show whether expired tasks are removed as fast as new ones come.

--json prints one JSON object on one line with workload, broker (password masked), queue,
tasks, concurrency (and prefetch and prefetch_wait_ms when set), the workload's figures and seconds (the run's
wall time).`,
	run: runBench,
}

func runBench(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	// Not brokerFlag: a run never touches ./brisk.db.
	brokerURL := fs.String("broker", "", "broker `URL` (default $BRISK_BROKER, else a fresh SQLite file in a temporary directory, removed at the end)")
	wlFlag := fs.String("workload", "", "run workload `W`: W1, W2, W3, W4 or W5 (required)")
	tasks := fs.Int("tasks", 0, "run `N` tasks (default: the workload's)")
	rate := fs.Float64("rate", 0, "enqueue `R` tasks per second in W2 (default 500) or W3 (default 5)")
	concurrency := fs.Int("concurrency", workload.Concurrency, "run `N` handlers at once in the worker")
	prefetch := fs.Int("prefetch", 0, "let the worker hold `N` tasks beyond its free handlers (WorkerConfig.Prefetch)")
	prefetchWait := durationFlag(fs, "prefetch-wait", 0, "let the worker hold the tasks it expects to start within `D` beyond its free handlers (WorkerConfig.PrefetchWait)")
	producers := fs.Int("producers", 1, "W2 and W3: up to `N` enqueue calls in flight at once")
	retention := durationFlag(fs, "retention", 0, "keep completed tasks for `D` with a result each, and sample the store's size")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a summary")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	wl := strings.ToUpper(*wlFlag)
	switch {
	case wl == "":
		return usagef("bench needs --workload W1|W2|W3|W4|W5")
	case !slices.Contains([]string{"W1", "W2", "W3", "W4", "W5"}, wl):
		return usagef("--workload %q is not one of W1, W2, W3, W4, W5", *wlFlag)
	case *tasks < 0:
		return usagef("--tasks %d is negative", *tasks)
	case *rate < 0 || math.IsInf(*rate, 0) || math.IsNaN(*rate):
		return usagef("--rate %v must be a positive number", *rate)
	case *rate > 0 && wl != "W2" && wl != "W3":
		return usagef("--rate applies to W2 and W3 only")
	case *concurrency < 1:
		return usagef("--concurrency %d must be at least 1", *concurrency)
	case *prefetch < 0:
		return usagef("--prefetch %d is negative", *prefetch)
	case *prefetchWait < 0:
		return usagef("--prefetch-wait %s is negative", *prefetchWait)
	case *producers < 1:
		return usagef("--producers %d must be at least 1", *producers)
	case *producers > 1 && wl != "W2" && wl != "W3":
		return usagef("--producers applies to W2 and W3 only")
	case *retention < 0:
		return usagef("--retention %s is negative", *retention)
	}
	n, r := *tasks, *rate
	switch wl {
	case "W1":
		n = orDefault(n, workload.W1Tasks)
	case "W2":
		r = orDefault(r, workload.W2Rate)
		n = orDefault(n, int(math.Round(r*workload.W2Seconds)))
	case "W3":
		r = orDefault(r, float64(time.Second/workload.W3Interval))
		n = orDefault(n, workload.W3Tasks)
	case "W4":
		n = orDefault(n, workload.W4Tasks)
	case "W5":
		n = orDefault(n, workload.W5Tasks)
	}

	// Isolation: a run never touches what it did not create.
	u := *brokerURL
	if u == "" && os.Getenv("BRISK_BROKER") == "" {
		dir, err := os.MkdirTemp("", "brisk-bench-")
		if err != nil {
			return fmt.Errorf("bench: temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		u = "sqlite://" + filepath.ToSlash(filepath.Join(dir, "bench.db"))
	}
	u = brisk.BrokerURL(u)
	queue := fmt.Sprintf("bench_%s_%08x", strings.ToLower(wl), rand.Uint32())
	c, err := e.openClient(ctx, u, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	sys := &workload.Brisk{Client: c, Inspector: brisk.NewInspector(c.Broker()), Queue: queue,
		Worker: brisk.WorkerConfig{Concurrency: *concurrency, Prefetch: *prefetch, PrefetchWait: *prefetchWait}}
	defer benchCleanup(ctx, sys)
	run := &workload.Runner{System: sys, Progress: e.stderr, Producers: *producers}
	if *asJSON {
		run.Progress = nil
	}
	var sizes *storeSampler
	if *retention > 0 {
		if err := c.SetRetention(ctx, queue, *retention); err != nil {
			return err
		}
		sys.Result = []byte(`{"ok":true,"note":"` + strings.Repeat("x", 76) + `"}`) // 100 bytes
		sizes = newStoreSampler(c.Broker(), queue, run.Progress)
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); sizes.run(sctx, 10*time.Second) }()
		defer func() { stop(); <-done }()
	}

	out := &workload.Result{}
	out.Add("workload", "workload", wl, "")
	out.Add("broker", "broker", brisk.RedactURL(u), "")
	out.Add("queue", "queue", queue, "")
	out.Add("tasks", "tasks", n, "")
	out.Add("concurrency", "concurrency", *concurrency, "")
	if *prefetchWait > 0 {
		out.Add("prefetch_wait_ms", "prefetch wait", float64(*prefetchWait)/float64(time.Millisecond), "ms")
	}
	if *prefetch > 0 {
		out.Add("prefetch", "prefetch", *prefetch, "")
	}
	if *retention > 0 {
		out.Add("retention_s", "retention", retention.Seconds(), "s")
	}
	if wl == "W2" || wl == "W3" {
		out.Add("rate", "target rate", r, "/s")
	}
	if run.Progress != nil {
		fmt.Fprintf(run.Progress, "bench: %s on %s, queue %s\n", wl, brisk.RedactURL(u), queue)
	}
	start := time.Now()
	var res *workload.Result
	switch wl {
	case "W1":
		res, err = run.W1(ctx, n)
	case "W2", "W3":
		res, err = run.Pickup(ctx, r, n)
	case "W4":
		res, err = run.W4(ctx, n, workload.W4Wait, func() (*exec.Cmd, error) {
			return workerProcess([]string{"--broker", u, "--queue", queue,
				"--concurrency", strconv.Itoa(*concurrency), "--sleep", workload.W4Sleep.String()})
		})
	case "W5":
		res, err = run.W5(ctx, n)
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", wl, err)
	}
	for _, f := range res.Figures {
		out.Add(f.Key, f.Label, f.Value, f.Unit)
	}
	if sizes != nil {
		sizes.sample(ctx, time.Since(start))
		sizes.addTo(out)
	}
	out.Add("seconds", "wall time", workload.Round(time.Since(start).Seconds(), 3), "s")
	if *asJSON {
		return writeJSON(e.stdout, out, false)
	}
	return out.Print(e.stdout)
}

// orDefault returns v, or def when v is zero (the flag was not given).
func orDefault[T int | float64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// benchCleanup deletes the run's leftover tasks, even after Ctrl-C.
func benchCleanup(ctx context.Context, sys *workload.Brisk) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, st := range []brisk.State{brisk.StatePending, brisk.StateScheduled, brisk.StateDead, brisk.StateCompleted} {
		_, _ = sys.Inspector.DeleteTasks(ctx, sys.Queue, st)
	}
}
