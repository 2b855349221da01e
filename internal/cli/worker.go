package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/shellwords"
)

var workerCmd = &command{
	name:     "worker",
	synopsis: "--queue Q [--queue Q2] [--concurrency N] (--exec \"CMD\" | --http URL) [flags]",
	summary:  "run a worker whose handlers are a program in any language or an HTTP endpoint",
	detail: `
A brisk worker like a Go one (leases extended while a task runs, retries with exponential
backoff, dead tasks, heartbeats, per-queue limits, prefetch 0 by default, graceful
shutdown on SIGTERM or Ctrl-C), whose handler for every task type forwards the task:

--exec CMD starts --concurrency long-lived child processes of CMD (split like a shell
would split it: quotes and backslashes, no expansion; use "sh -c '...'" for a shell),
each running one task at a time. A task goes to a free child as one line of JSON on its
standard input; the child answers with one line of JSON on its standard output:
  {"id": ID, "status": "ok"}                         done
  {"id": ID, "status": "retry", "delay_seconds": 30}  run again after 30 s (backoff without delay_seconds)
  {"id": ID, "status": "fail", "error": "..."}        failed: retried with backoff until attempts are spent
  {"id": ID, "status": "dead", "error": "..."}        failed, never retry: dead at once
Lines a child writes to standard output that do not start with "{" and everything it
writes to standard error are copied to standard error after "[exec N pid P] ". A child
that exits is started again (with backoff when it keeps exiting at once) and the task it
was running is retried; a task that runs past its timeout fails and its child is killed
and started again. Children get BRISK_PROTOCOL=1, BRISK_WORKER_ID and BRISK_CHILD in their
environment. The default --concurrency is the number of CPUs (each child is a process).

--http URL POSTs each task's JSON (the same object) to URL with the headers
Brisk-Task-Id, Brisk-Attempt, Brisk-Max-Attempts, Brisk-Queue, Brisk-Task-Type and
Brisk-Deadline: 2xx is done; 429 or 503 with Retry-After (seconds or an HTTP date) retries
then; any other 4xx makes the task dead at once; 5xx, 3xx, a connection error or a
timeout retry with backoff. A 2xx response of type application/x-ndjson is read as the
--exec lines of the task as they come: progress lines while the request runs, then the
outcome line, which decides the task. The default --concurrency is 10.

On SIGTERM or Ctrl-C the worker stops reserving, lets running tasks finish within
--grace, then hands the rest back to the queue (their children are killed) and exits 0.
The whole protocol, with a Python helper, is in docs/worker-protocol.md.

Examples:
  brisk worker --broker redis://127.0.0.1:6379/0 --queue emails --exec "python3 handlers.py"
  brisk worker --queue five_second --queue one_minute --max-concurrency one_minute=2 \
      --concurrency 8 --http http://127.0.0.1:8000/tasks`,
	run: runWorker,
}

// queueValues is a repeatable QUEUE=N flag.
type queueValues map[string]int

func (m queueValues) String() string {
	parts := make([]string, 0, len(m))
	for q, n := range m {
		parts = append(parts, q+"="+strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

func (m queueValues) Set(v string) error {
	q, n, found := strings.Cut(v, "=")
	i, err := strconv.Atoi(n)
	if !found || q == "" || err != nil || i < 1 {
		return fmt.Errorf("%q is not QUEUE=N with N at least 1", v)
	}
	m[q] = i
	return nil
}

func runWorker(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	var queues listFlag
	fs.Var(&queues, "queue", "serve queue `Q` (repeatable; required)")
	concurrency := fs.Int("concurrency", 0, "tasks run at once: children with --exec (default the number of CPUs), requests with --http (default 10) (`N`)")
	execCmd := fs.String("exec", "", "forward tasks to child processes of `CMD` (JSON lines on stdin and stdout)")
	httpURL := fs.String("http", "", "forward tasks as POST requests to `URL`")
	limits, weights := queueValues{}, queueValues{}
	fs.Var(limits, "max-concurrency", "at most N tasks of queue Q at once (`Q=N`, repeatable)")
	fs.Var(weights, "weight", "serve queue Q N times as often as a queue of weight 1 (`Q=N`, repeatable)")
	strict := fs.Bool("strict-priority", false, "serve queues in the order given: a queue only when those before it have nothing ready")
	prefetch := fs.Int("prefetch", 0, "tasks reserved beyond the free slots (`N`)")
	prefetchWait := durationFlag(fs, "prefetch-wait", 0, "also reserve beyond the free slots the tasks expected to start within `D`, from recent run times")
	lease := fs.Duration("lease", 10*time.Second, "lease of a reserved task, extended while it runs (`D`)")
	grace := fs.Duration("grace", 20*time.Second, "time running tasks get to finish at shutdown before they are handed back (`D`)")
	timeout := fs.Duration("timeout", 30*time.Minute, "longest run of a task without a timeout of its own (`D`)")
	var headers listFlag
	fs.Var(&headers, "header", "with --http, send the header `\"K: V\"` on every request (repeatable)")
	id := fs.String("id", "", "the worker's `ID` in heartbeats (default host-pid-random)")
	quiet := fs.Bool("quiet", false, "log only warnings and errors")
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	switch {
	case len(queues) == 0:
		return usagef("give at least one --queue")
	case (*execCmd == "") == (*httpURL == ""):
		return usagef("give one of --exec CMD or --http URL")
	case *concurrency < 0:
		return usagef("--concurrency %d is negative", *concurrency)
	case *prefetch < 0:
		return usagef("--prefetch %d is negative", *prefetch)
	case *prefetchWait < 0:
		return usagef("--prefetch-wait %s is negative", *prefetchWait)
	case *lease < 30*time.Millisecond:
		return usagef("--lease %s is below 30ms", *lease)
	case *grace <= 0:
		return usagef("--grace %s is not positive", *grace)
	case *timeout <= 0:
		return usagef("--timeout %s is not positive", *timeout)
	case len(headers) > 0 && *httpURL == "":
		return usagef("--header needs --http")
	}
	specs := make([]brisk.QueueSpec, len(queues))
	seen := map[string]bool{}
	for i, q := range queues {
		if seen[q] {
			return usagef("--queue %s given twice", q)
		}
		seen[q] = true
		specs[i] = brisk.QueueSpec{Name: q, MaxConcurrency: limits[q], Weight: weights[q]}
	}
	for _, m := range []struct {
		flag string
		v    queueValues
	}{{"--max-concurrency", limits}, {"--weight", weights}} {
		for q := range m.v {
			if !seen[q] {
				return usagef("%s names queue %s, which no --queue gives", m.flag, q)
			}
		}
	}
	n := *concurrency
	if n == 0 {
		n = 10
		if *execCmd != "" {
			n = runtime.NumCPU()
		}
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	errOut := &lockedWriter{w: e.stderr}
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))

	c, err := e.openClient(ctx, *brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	w, err := brisk.NewWorker(c.Broker(), brisk.WorkerConfig{
		Queues: specs, StrictPriority: *strict, Concurrency: n, Prefetch: *prefetch, PrefetchWait: *prefetchWait, Lease: *lease,
		ShutdownTimeout: *grace, DefaultTimeout: *timeout, ID: *id, Logger: logger,
	})
	if err != nil {
		return err
	}

	var handler brisk.Handler
	var closeHandler func()
	if *execCmd != "" {
		words, err := shellwords.Split(*execCmd)
		if err != nil {
			return usagef("--exec: %v", err)
		}
		pool, err := newExecPool(execConfig{Command: words, Size: n, WorkerID: w.ID(), Stderr: errOut, Logger: logger})
		if err != nil {
			return err
		}
		handler, closeHandler = pool, pool.Close
	} else {
		hh, err := newHTTPHandler(*httpURL, headers, logger)
		if err != nil {
			return err
		}
		handler, closeHandler = hh, hh.Close
	}
	defer closeHandler()
	w.HandleDefault(handler)
	if err := w.Start(ctx); err != nil {
		return err
	}
	what := "--exec " + strconv.Quote(*execCmd)
	if *httpURL != "" {
		what = "--http " + *httpURL
	}
	logger.Info("brisk worker serving", "queues", strings.Join(queues, ","), "concurrency", n, "handler", what)
	<-ctx.Done()
	logger.Info("brisk worker stopping: running tasks get the grace period", "grace", grace.String())
	if err := w.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
