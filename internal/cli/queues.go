package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/humanize"
)

var queuesCmd = &command{
	name:     "queues",
	synopsis: "[flags]",
	summary:  "list queues with their task counts, queue latency and SLA",
	detail: `
Queue latency is how long the oldest ready task has waited (0 when none is pending; "?"
when the broker cannot tell, with a note under the table saying why). A queue with an SLA is "ok" while its latency is at or below it, "OVER SLA" otherwise. A
paused queue (see brisk pause) shows PAUSED in the status column.

--json prints an array of objects with the keys name, pending, scheduled, running, dead,
latency_seconds, sla_seconds (null when no SLA is set), within_sla, completed, failed,
paused, cancelled, retained (completed tasks kept for a retention), retention_seconds
(0: none), latency_source (what the latency is measured from: ready_at for
brisk's own brokers; on a watched Celery or RQ broker enqueued_at, published_at, eta,
timestamp, or first_seen when it is an estimate) and notes (an array, present only when the
broker cannot give a figure exactly: where it comes from, how old it may be).`,
	run: runQueues,
}

// queueJSON is one element of "brisk queues --json": part of the scripting contract, shared
// with the dashboard's GET /api/v1/queues, so keys are only ever added.
type queueJSON = apiv1.Queue

func toQueueJSON(q brisk.QueueInfo) queueJSON { return apiv1.FromQueue(q) }

func runQueues(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
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
	qs, err := brisk.NewInspector(c.Broker()).Queues(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]queueJSON, 0, len(qs)) // [] rather than null for no queue
		for _, q := range qs {
			out = append(out, toQueueJSON(q))
		}
		return writeJSON(e.stdout, out, true)
	}
	if len(qs) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no queues")
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tPENDING\tSCHEDULED\tRUNNING\tDEAD\tLATENCY\tSLA\tSTATUS\n")
	for _, q := range qs {
		sla, status := "-", "-"
		// Tasks pending without an oldest ready time: the broker cannot tell the latency
		// (its notes say why), so neither it nor the SLA status is shown as a number.
		latency, unknown := humanize.Duration(q.Latency), q.Pending > 0 && q.OldestReadyAt.IsZero()
		if unknown {
			latency = "?"
		}
		if q.SLA > 0 {
			sla, status = humanize.Duration(q.SLA), "ok"
			switch {
			case unknown:
				status = "unknown"
			case !brisk.WithinSLA(q):
				status = "OVER SLA"
			}
		}
		if q.Paused {
			if status == "-" {
				status = "PAUSED"
			} else {
				status = "PAUSED, " + status
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", termSafe(q.Name), q.Pending, q.Scheduled, q.Running, q.Dead,
			latency, sla, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, q := range qs { // figures the broker gives only as an estimate, and why
		for _, n := range q.Notes {
			if _, err := fmt.Fprintf(e.stdout, "note: %s: %s\n", termSafe(q.Name), termSafe(n)); err != nil {
				return err
			}
		}
	}
	return nil
}
