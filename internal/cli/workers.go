package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/humanize"
)

var workersCmd = &command{
	name:     "workers",
	synopsis: "[flags]",
	summary:  "list live workers: host, pid, queues, busy handlers of their concurrency",
	detail: `
Lists the workers whose last heartbeat is under a minute old (Go workers and brisk worker
processes alike; on a watched Celery or RQ broker, the workers that broker records).
--json prints the array of GET /api/v1/workers: objects with id, host, pid, queues,
concurrency, busy, started_at, last_seen and version.`,
	run: runWorkers,
}

func runWorkers(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	asJSON := jsonFlag(fs)
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	ws, err := brisk.NewInspector(c.Broker()).Workers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, apiv1.Workers(ws), true)
	}
	if len(ws) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no live workers")
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tHOST\tPID\tQUEUES\tBUSY\tUP\tLAST SEEN\n")
	now := time.Now()
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\t%s ago\n", w.ID, w.Host, w.PID, strings.Join(w.Queues, ","),
			w.Busy, w.Concurrency, humanize.Duration(now.Sub(w.StartedAt).Round(time.Second)),
			humanize.Duration(now.Sub(w.LastSeen).Round(100*time.Millisecond)))
	}
	return tw.Flush()
}
