package cli

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/humanize"
	"github.com/briskq/brisk/internal/workload"
)

var demoCmd = &command{
	name:     "demo",
	synopsis: "[--broker URL] [--duration D]",
	summary:  "watch two workers drain bursts of tasks on queues with SLAs",
	detail: `
The demo needs no server: it uses a fresh SQLite file in a temporary directory (removed
at the end) unless --broker names another broker ($BRISK_BROKER is ignored, so that the
demo never writes into your broker unless asked to).

It declares two queues, five_second (SLA 5 s) and one_minute (SLA 1 min), starts one
worker for each in this process (8 and 4 handlers that sleep a few tens of milliseconds),
and enqueues a burst into both, then a smaller one some seconds later. Every 500 ms it
prints each queue's pending, running and done tasks and its queue latency against the
SLA: five_second goes over its SLA in the first burst and recovers; one_minute stays
within. It ends when everything is drained (about 25 s), or after --duration, or on
Ctrl-C, with a summary.`,
	run: runDemo,
}

// demoQueue is one queue of the demo: its worker's size and its handler's duration.
type demoQueue struct {
	name               string
	concurrency        int
	minSleep, maxSleep time.Duration
	enqueued, done     atomic.Int64
	// from the samples
	maxLatency, overSLA time.Duration
	sla                 time.Duration
	lastOver            bool // the last sample was over the SLA
}

// demoBurst enqueues n tasks into queue q at time at after the start.
type demoBurst struct {
	at time.Duration
	q  int // index in the demo's queues
	n  int
}

const demoTaskType = "demo.work"

func runDemo(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := fs.String("broker", "", "use the broker at `URL` (default: a fresh SQLite file in a temporary directory)")
	duration := durationFlag(fs, "duration", time.Minute, "stop after `D` even if tasks remain")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *duration <= 0 {
		return usagef("--duration %s must be positive", *duration)
	}
	url := *brokerURL
	if url == "" {
		dir, err := os.MkdirTemp("", "brisk-demo-")
		if err != nil {
			return fmt.Errorf("demo: temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "demo.db")
		url = "sqlite://" + filepath.ToSlash(path)
		fmt.Fprintf(e.stdout, "broker: %s (a fresh SQLite file, removed at the end)\n", path)
	} else {
		fmt.Fprintf(e.stdout, "broker: %s\n", brisk.RedactURL(url))
	}
	c, err := e.openClient(ctx, url, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	in := brisk.NewInspector(c.Broker())

	// Sleep-bound handlers make the drain rate about concurrency / mean sleep whatever the
	// machine: ~350/s for five_second, ~90/s for one_minute. The first burst then takes
	// five_second ~6 s to drain (over its 5 s SLA) and one_minute ~16 s (well within 1 min).
	queues := []*demoQueue{
		{name: "five_second", concurrency: 8, minSleep: 10 * time.Millisecond, maxSleep: 30 * time.Millisecond},
		{name: "one_minute", concurrency: 4, minSleep: 20 * time.Millisecond, maxSleep: 60 * time.Millisecond},
	}
	bursts := []demoBurst{
		{at: 0, q: 0, n: 2400}, {at: 0, q: 1, n: 1500},
		{at: 12 * time.Second, q: 0, n: 1000}, {at: 12 * time.Second, q: 1, n: 400},
	}
	for _, q := range queues {
		if err := c.DeclareQueue(ctx, q.name, 0); err != nil {
			return err
		}
	}
	var workers []*brisk.Worker
	defer func() {
		for _, w := range workers {
			_ = w.Stop()
		}
	}()
	for _, q := range queues {
		w, err := brisk.NewWorker(c.Broker(), brisk.WorkerConfig{
			Queues:          []brisk.QueueSpec{{Name: q.name}},
			Concurrency:     q.concurrency,
			ShutdownTimeout: 2 * time.Second,
		})
		if err != nil {
			return err
		}
		w.HandleFunc(demoTaskType, func(ctx context.Context, t *brisk.Task) error {
			d := q.minSleep + time.Duration(rand.Int64N(int64(q.maxSleep-q.minSleep)))
			workload.SleepCtx(ctx, d)
			if err := ctx.Err(); err != nil {
				return err
			}
			q.done.Add(1)
			return nil
		})
		if err := w.Start(ctx); err != nil {
			return err
		}
		workers = append(workers, w)
	}

	total := 0
	for _, bu := range bursts {
		total += bu.n
	}
	fmt.Fprintf(e.stdout, "queues: five_second (SLA 5s, 8 handlers of 10-30ms), one_minute (SLA 1m, 4 handlers of 20-60ms)\n")
	fmt.Fprintf(e.stdout, "%d tasks in bursts at 0s and %s; Ctrl-C to stop\n\n", total, bursts[len(bursts)-1].at)
	fmt.Fprintf(e.stdout, "%7s  %-12s %7s %7s %7s %8s %5s  %s\n", "ELAPSED", "QUEUE", "PENDING", "RUNNING", "DONE", "LATENCY", "SLA", "STATUS")

	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	next := 0 // next burst
	stopped := ""
	for {
		elapsed := time.Since(start)
		for next < len(bursts) && bursts[next].at <= elapsed {
			bu := bursts[next]
			q := queues[bu.q]
			batch := make([]*brisk.Task, bu.n)
			for i := range batch {
				batch[i] = brisk.NewTask(demoTaskType, fmt.Appendf(nil, `{"n":%d}`, i), brisk.InQueue(q.name))
			}
			if _, err := c.EnqueueBatch(ctx, batch); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			q.enqueued.Add(int64(bu.n))
			next++
		}
		if ctx.Err() != nil {
			stopped = "interrupted"
			break
		}
		if elapsed > 0 {
			drained, err := demoSample(ctx, e, in, queues, elapsed)
			if err != nil {
				if ctx.Err() != nil {
					stopped = "interrupted"
					break
				}
				return err
			}
			if drained && next == len(bursts) {
				break
			}
		}
		if elapsed >= *duration {
			stopped = fmt.Sprintf("stopped after --duration %s", *duration)
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	for _, w := range workers {
		_ = w.Stop()
	}
	workers = nil

	var done int64
	for _, q := range queues {
		done += q.done.Load()
	}
	fmt.Fprintln(e.stdout)
	if stopped != "" {
		fmt.Fprintf(e.stdout, "%s: ran %d of %d tasks in %s\n", stopped, done, total, humanize.Duration(elapsed))
	} else {
		fmt.Fprintf(e.stdout, "drained: ran %d tasks in %s\n", done, humanize.Duration(elapsed))
	}
	for _, q := range queues {
		verdict := "stayed within its SLA"
		switch {
		case q.overSLA > 0 && q.lastOver:
			verdict = fmt.Sprintf("over its SLA for about %s, still over", humanize.Duration(q.overSLA))
		case q.overSLA > 0:
			verdict = fmt.Sprintf("over its SLA for about %s, then back within it", humanize.Duration(q.overSLA))
		}
		fmt.Fprintf(e.stdout, "  %-12s %5d tasks  max latency %6s  SLA %-3s  %s\n", q.name, q.done.Load(),
			humanize.Duration(q.maxLatency), humanize.Duration(q.sla), verdict)
	}
	return nil
}

// demoSample prints one line per queue and reports whether every enqueued task is done.
func demoSample(ctx context.Context, e *env, in *brisk.Inspector, queues []*demoQueue, elapsed time.Duration) (bool, error) {
	qs, err := in.Queues(ctx)
	if err != nil {
		return false, err
	}
	drained := true
	for _, q := range queues {
		var info brisk.QueueInfo
		for _, s := range qs {
			if s.Name == q.name {
				info = s
			}
		}
		q.sla = info.SLA
		q.maxLatency = max(q.maxLatency, info.Latency)
		status := "ok"
		q.lastOver = !brisk.WithinSLA(info)
		if q.lastOver {
			status = "OVER SLA"
			q.overSLA += 500 * time.Millisecond
		}
		done := q.done.Load()
		fmt.Fprintf(e.stdout, "%6.1fs  %-12s %7d %7d %7d %7.1fs %5s  %s\n", elapsed.Seconds(),
			q.name, info.Pending+info.Scheduled, info.Running, done, info.Latency.Seconds(), humanize.Duration(info.SLA), status)
		if done < q.enqueued.Load() || info.Pending+info.Scheduled+info.Running > 0 {
			drained = false
		}
	}
	return drained, nil
}
