package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/autoscale"
	"github.com/briskq/brisk/internal/humanize"
	"github.com/briskq/brisk/internal/shellwords"
)

var autoscaleCmd = &command{
	name:     "autoscale",
	synopsis: "--queue Q (--exec \"CMD\" | --hook \"CMD {{count}}\") [flags]",
	summary:  "scale workers on queue latency until interrupted",
	detail: `
Samples each --queue every --interval (queue latency, pending tasks, arrival and
completion rates), asks the --policy for a worker count between --min and --max, and
applies it; several queues served by the same workers get the largest count any of them
wants. Each decision is printed as one line: time, queue, latency (SLA), pending, rates,
current -> desired workers, and the reason with the numbers it used. When the broker
cannot be read the count is kept as it is. The store must exist: the autoscaler does not
create one.

Rules for queues in particular states:
  - A queue that does not exist (nothing was enqueued to it yet, or it was deleted) is
    said once, at start or when it goes missing, and waited for: its count is kept, and
    its decisions resume when a task is enqueued to it.
  - A queue without an SLA is sized by the sla policy on 30s (said once at start), unless
    --param target=SECONDS gives another target; the decision lines say which SLA is used.
  - A paused queue's backlog is no demand (workers take none of its tasks): its
    decisions are those for an empty queue, and the line reports the backlog apart
    ("paused: its N pending tasks are not counted"). See docs/autoscaling.md.

--exec runs the worker processes on this machine: CMD is split like a shell would split
it (quotes, backslashes; no shell, no expansion) and started as many times as the policy
asks; the newest are stopped first with SIGTERM (a brisk worker lets its running tasks
finish and hands the others back), and killed after --grace. A worker that exits by
itself is started again with backoff. On Ctrl-C or SIGTERM every worker is stopped the
same way. The autoscaler starts --min workers (at least 1) at once.

--hook runs CMD, with {{count}} replaced by the desired count, whenever the count
changes (e.g. "heroku ps:scale worker={{count}}", "docker compose up -d --scale
worker={{count}}"); a hook that fails or runs past --hook-timeout is reported and tried
again at the next change. The hook does not run at start: the platform is assumed to run
--min workers (with --state, the count last applied) until the first change.

--state FILE keeps, after every decision, the count applied and each queue's policy
memory (for sla: its windows of recommendations, the recent peak it insures against, its
smoothed rates) in FILE, and reads them back at start, so that a restarted autoscaler
goes on where it stopped. A FILE that is not such a file is refused, not overwritten;
state saved by another policy is not used (and is replaced). Policies other than sla
start afresh.

Policies: sla (default; sizes on the queue's SLA; parameters target, utilisation, margin,
react, stabilise, memory in seconds or fractions, and handler_time, the seconds a task
takes, assumed until the broker measures it: give it for Celery on Redis, whose running
tasks no broker structure shows), threshold (upper, lower, step,
window), queue_length (per_worker, stabilise), cpu (target, stabilise; needs --exec:
the CPU is that of the worker processes, read from /proc on Linux, 1 = one core per
worker), fixed (n). --startup and --interval are passed to sla. --slots is the handlers
each worker runs (its concurrency).

--metrics ADDR serves Prometheus metrics at http://ADDR/metrics: brisk_queue_latency_seconds,
brisk_queue_pending, brisk_queue_sla_seconds, brisk_autoscale_desired_workers (per queue),
brisk_autoscale_current_workers and brisk_autoscale_decisions_total{queue,direction}; and
the last decisions of every queue as JSON at http://ADDR/decisions ([{"time", "queue",
"current", "desired", "reason", "latency_seconds"}], oldest first), which
"brisk dashboard --autoscaler http://ADDR" draws on its latency charts.

Examples:
  brisk autoscale --queue emails --min 1 --max 8 --exec "myapp worker --queue emails"
  brisk autoscale --queue default --policy threshold --param upper=10 --max 20 \
      --hook "heroku ps:scale worker={{count}}" --metrics 127.0.0.1:9090`,
	run: runAutoscale,
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runAutoscale(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	var queues, params listFlag
	fs.Var(&queues, "queue", "queue `NAME` to watch (repeatable)")
	policyName := fs.String("policy", "sla", "`POLICY`: sla, threshold, queue_length, cpu or fixed")
	fs.Var(&params, "param", "policy parameter `k=v` (repeatable; durations in seconds)")
	minN := fs.Int("min", 1, "fewest workers (`N`)")
	maxN := fs.Int("max", 10, "most workers (`N`)")
	interval := durationFlag(fs, "interval", 10*time.Second, "time between decisions (`D`)")
	execCmd := fs.String("exec", "", "run worker processes with `CMD` on this machine")
	hook := fs.String("hook", "", "run `CMD` with {{count}} replaced by the desired count when it changes")
	startup := durationFlag(fs, "startup", 30*time.Second, "time a new worker takes before it serves (`D`)")
	slots := fs.Int("slots", 10, "handlers each worker runs at once (`N`)")
	grace := durationFlag(fs, "grace", 30*time.Second, "time a stopped --exec worker gets before it is killed (`D`)")
	hookTimeout := durationFlag(fs, "hook-timeout", time.Minute, "longest run of the --hook command (`D`)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics and decisions at /decisions")
	jsonLog := fs.Bool("json-log", false, "log decisions and events as JSON lines on stdout")
	statePath := fs.String("state", "", "keep the policy's memory and the applied count in `FILE` across restarts")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	switch {
	case len(queues) == 0:
		return usagef("give at least one --queue")
	case *minN < 0:
		return usagef("--min %d is negative", *minN)
	case *maxN < 1:
		return usagef("--max %d is below 1", *maxN)
	case *minN > *maxN:
		return usagef("--min %d is above --max %d", *minN, *maxN)
	case *interval <= 0:
		return usagef("--interval %s is not positive", *interval)
	case *startup < 0:
		return usagef("--startup %s is negative", *startup)
	case *slots < 1:
		return usagef("--slots %d is below 1", *slots)
	case *grace <= 0:
		return usagef("--grace %s is not positive", *grace)
	case *hookTimeout <= 0:
		return usagef("--hook-timeout %s is not positive", *hookTimeout)
	case (*execCmd == "") == (*hook == ""):
		return usagef("give one of --exec CMD or --hook CMD")
	case *policyName == "cpu" && *execCmd == "":
		return usagef("--policy cpu needs --exec: brisk measures the CPU of the worker processes it runs")
	}
	seen := map[string]bool{}
	for _, q := range queues {
		if seen[q] {
			return usagef("--queue %s given twice", q)
		}
		seen[q] = true
	}
	if err := checkNames(queues...); err != nil {
		return err
	}
	if *metricsAddr != "" {
		if _, err := listenAddr("--metrics", *metricsAddr); err != nil {
			return err
		}
	}
	pv := map[string]float64{}
	for _, p := range params {
		k, v, found := strings.Cut(p, "=")
		f, err := strconv.ParseFloat(v, 64)
		if !found || k == "" || err != nil {
			return usagef("--param %q is not key=number", p)
		}
		pv[k] = f
	}
	if *policyName == "sla" {
		for k, v := range map[string]float64{"startup": startup.Seconds(), "interval": interval.Seconds()} {
			if _, set := pv[k]; !set {
				pv[k] = v
			}
		}
	}
	bounds := autoscale.Bounds{Min: *minN, Max: *maxN}
	policies := make([]autoscale.Policy, len(queues))
	for i := range queues {
		if policies[i], err = autoscale.NewPolicy(*policyName, bounds, pv); err != nil {
			return usagef("%s", strings.TrimSuffix(strings.TrimPrefix(err.Error(), "autoscale: "), ": "+brisk.ErrInvalid.Error()))
		}
	}
	var (
		state    *stateFile
		saved    *autoscaleState
		restored int
	)
	if *statePath != "" {
		if state, saved, err = loadStateFile(*statePath, *policyName); err != nil {
			return err
		}
		for i, q := range queues {
			data, found := state.st.Queues[q]
			snap, remembers := policies[i].(autoscale.Snapshotter)
			if !found || !remembers {
				continue
			}
			if err := snap.Restore(data); err != nil {
				return fmt.Errorf("--state %s: queue %s: %w", *statePath, q, err)
			}
			restored++
		}
	}
	var logger *slog.Logger
	out, errOut := &lockedWriter{w: e.stdout}, &lockedWriter{w: e.stderr}
	if *jsonLog {
		logger = slog.New(slog.NewJSONHandler(out, nil))
	} else {
		logger = slog.New(slog.NewTextHandler(errOut, nil))
	}

	// The actuator.
	initial := max(*minN, 1)
	if *hook != "" && saved != nil && saved.Workers > 0 {
		// The platform still runs what the hook last asked for.
		initial = min(max(saved.Workers, *minN), *maxN)
	}
	var (
		act     autoscale.Actuator
		current func() int
		closeFn = func() {}
		cpu     *autoscale.ProcessCPU
	)
	if *execCmd != "" {
		words, err := shellwords.Split(*execCmd)
		if err != nil {
			return usagef("--exec: %v", err)
		}
		pa, err := autoscale.NewProcessActuator(autoscale.ProcessConfig{Command: words, Grace: *grace,
			Stdout: out, Stderr: errOut, Logger: logger})
		if err != nil {
			return err
		}
		act, current, closeFn = pa, pa.Count, func() { _ = pa.Close() }
		if *policyName == "cpu" {
			if cpu, err = autoscale.NewProcessCPU(pa.PIDs); err != nil {
				return err
			}
		}
	} else {
		ha, err := autoscale.NewCommandActuator(autoscale.CommandConfig{Template: *hook, Timeout: *hookTimeout, Logger: logger})
		if err != nil {
			return usagef("--hook: %s", strings.TrimSuffix(strings.TrimPrefix(err.Error(), "autoscale: "), ": "+brisk.ErrInvalid.Error()))
		}
		act = ha
	}
	defer func() { closeFn() }()

	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	if pa, isProc := act.(*autoscale.ProcessActuator); isProc {
		if err := pa.Scale(ctx, initial); err != nil {
			return err
		}
	}
	pool := autoscale.NewPool(act, initial)
	if current == nil {
		current = pool.Current
	}

	var metrics *autoscale.Metrics
	var srvDone chan error
	var srv *http.Server
	var ln net.Listener
	if *metricsAddr != "" {
		if ln, err = net.Listen("tcp", *metricsAddr); err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		defer func() { _ = ln.Close() }() // already closed by Shutdown once served
		metrics = autoscale.NewMetrics()
		metrics.SetCurrentWorkers(current())
	}

	var src autoscale.Source = autoscale.NewBrokerSource(brisk.NewInspector(c.Broker()))
	if cpu != nil {
		src = autoscale.WithCPU(src, cpu)
	}
	if state != nil {
		if err := state.save("", nil, initial); err != nil {
			return fmt.Errorf("--state %s: cannot write it: %w", *statePath, err)
		}
	}
	var (
		missingMu sync.Mutex
		missing   = map[string]bool{} // said not to exist, and not seen since
	)
	ctls := make([]*autoscale.Controller, len(queues))
	for i, q := range queues {
		snap, remembers := policies[i].(autoscale.Snapshotter)
		cfg := autoscale.ControllerConfig{
			Queue: q, Policy: policies[i], Source: src, Actuator: pool.For(q),
			Interval: *interval, Initial: initial, Slots: *slots,
			OnDecision: func(d autoscale.Decision) {
				if metrics != nil {
					metrics.ObserveDecision(q, d)
					metrics.SetCurrentWorkers(current())
				}
				missingMu.Lock()
				gone := errors.Is(d.Err, brisk.ErrQueueNotFound)
				said := missing[q]
				missing[q] = gone
				missingMu.Unlock()
				switch {
				case *jsonLog:
				case gone && !said:
					fmt.Fprintln(out, missingLine(q, d.Current))
				case !gone:
					fmt.Fprintln(out, termSafe(decisionLine(q, d, policies[i])))
				}
				if state != nil { // in the controller's goroutine, after Decide: no race
					var data []byte
					if remembers {
						data, _ = snap.Snapshot()
					}
					if err := state.save(q, data, current()); err != nil {
						logger.Warn("autoscale: --state not written", "file", *statePath, "err", err)
					}
				}
			},
		}
		if *jsonLog {
			cfg.Logger = logger
		}
		if ctls[i], err = autoscale.NewController(cfg); err != nil {
			return err
		}
	}
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler())
		mux.Handle("/decisions", autoscale.DecisionsHandler(autoscale.ControllersDecisions(ctls...)))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		srvDone = make(chan error, 1)
		go func() { srvDone <- srv.Serve(ln) }()
		fmt.Fprintf(out, "metrics on http://%s/metrics, decisions on http://%s/decisions\n", ln.Addr(), ln.Addr())
	}
	what := "--exec " + strconv.Quote(*execCmd)
	if *hook != "" {
		what = "--hook " + strconv.Quote(*hook)
	}
	fmt.Fprintf(out, "autoscaling %s with policy %s, %d to %d workers, every %s, %s (Ctrl-C to stop)\n",
		strings.Join(queues, ", "), *policyName, *minN, *maxN, humanize.Duration(*interval), what)
	if saved != nil {
		msg := fmt.Sprintf("state from %s, saved %s ago: the policy's memory of %d queue(s) restored",
			*statePath, humanize.Duration(time.Since(saved.SavedAt).Round(time.Second)), restored)
		if saved.Policy != *policyName {
			msg = fmt.Sprintf("state from %s was saved by policy %s: its memory is not used", *statePath, saved.Policy)
		}
		if *hook != "" {
			msg += fmt.Sprintf("; the platform is assumed to run %d worker(s)", initial)
		}
		fmt.Fprintln(out, msg)
	}
	// The rules of queues that do not exist yet and of queues without an SLA (see the
	// help), said once at start; a queue that goes missing later is said once then.
	if qs, err := brisk.NewInspector(c.Broker()).Queues(ctx); err == nil {
		known := map[string]brisk.QueueInfo{}
		for _, q := range qs {
			known[q.Name] = q
		}
		for i, q := range queues {
			info, ok := known[q]
			if !ok {
				missingMu.Lock()
				missing[q] = true
				missingMu.Unlock()
				fmt.Fprintln(out, missingLine(q, initial))
				continue
			}
			if sla, isSLA := policies[i].(*autoscale.SLA); isSLA && info.SLA == 0 && sla.Target == 0 {
				fmt.Fprintf(out, "queue %s has no SLA: the sla policy aims at %s (declare one, name the queue after it as in five_second, or give --param target=SECONDS)\n",
					q, humanize.Duration(autoscale.DefaultSLA))
			}
		}
	}
	for _, ctl := range ctls {
		if err := ctl.Start(ctx); err != nil {
			return err
		}
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srvDone: // nil channel when no --metrics
	}
	for _, ctl := range ctls {
		ctl.Stop()
	}
	if *execCmd != "" {
		fmt.Fprintf(out, "stopping %d worker process(es)\n", current())
	}
	closeFn()
	closeFn = func() {}
	if srv != nil && serveErr == nil {
		shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = srv.Shutdown(shutCtx)
		if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if serveErr != nil {
		return fmt.Errorf("--metrics: %w", serveErr)
	}
	return ctx.Err()
}

// missingLine says that a queue does not exist and what the autoscaler does meanwhile.
func missingLine(queue string, workers int) string {
	return fmt.Sprintf("queue %s does not exist (yet): nothing was enqueued to it, or it was deleted; "+
		"the autoscaler waits for it and keeps %d worker(s)", queue, workers)
}

// decisionLine is the one line printed for a decision of policy p.
func decisionLine(queue string, d autoscale.Decision, p autoscale.Policy) string {
	s := d.Sample
	sla := "none"
	if s.SLA > 0 {
		sla = humanize.Duration(s.SLA)
	}
	if slaPolicy, ok := p.(*autoscale.SLA); ok && (s.SLA == 0 || slaPolicy.Target > 0) {
		sla += ", the sla policy uses " + humanize.Duration(slaPolicy.EffectiveSLA(s.SLA))
	}
	if s.Paused {
		sla += ", paused"
	}
	return fmt.Sprintf("%s %s latency %s (SLA %s) pending %d in %.1f/s out %.1f/s workers %d -> %d: %s",
		d.At.Format("15:04:05"), queue, humanize.Duration(s.Latency.Round(time.Millisecond)), sla, s.Pending,
		s.ArrivalRate, s.CompletionRate, d.Current, d.Desired, d.Reason)
}

// lockedWriter serialises writes from the controllers' goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
