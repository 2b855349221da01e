package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/humanize"
)

var tasksCmd = &command{
	name:     "tasks",
	synopsis: "--queue Q [--state STATE] [--limit N] [--offset N] [--json] | --id ID [--json]",
	summary:  "list the tasks of a queue in one state, or show one task",
	detail: `
With --queue it lists the tasks of that queue in --state (pending, scheduled, running,
dead, cancelled or completed), oldest ready time first, --limit at a time from --offset: id, type, attempt, the
ready time (for dead tasks the time they failed), payload and last error; running tasks
show their progress, completed ones (kept for a retention: brisk queue set --retention,
or a task's own) the time they finished, how long they ran and their result, oldest
finished first. With --id it shows every field of one task, with its progress and result. Control characters in types, payloads and errors are
shown escaped (\x1b); --json prints the exact text.

--json prints task objects with the keys id, queue, type, state, attempt, max_attempts,
timeout_seconds (0: the worker's default), enqueued_at, ready_at, started_at, failed_at,
lease_until (RFC 3339 times, null when unset), last_error, payload, headers,
retention_seconds, finished_at, expires_at, duration_seconds (completed tasks, else null),
result and progress (null, or an object with percent, message and at). payload is the
payload as a JSON value when it is valid JSON, else null with the bytes in base64 under
payload_base64; result likewise, with result_base64. A listing is an array, one task an
object.`,
	run: runTasks,
}

// taskJSON is a task in "brisk tasks --json", shared with the dashboard's /api/v1.
type taskJSON = apiv1.Task

func toTaskJSON(t *brisk.TaskInfo) taskJSON { return apiv1.FromTask(t) }

func runTasks(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "list the tasks of queue `Q`")
	state := fs.String("state", string(brisk.StatePending), "list the tasks in `STATE`: pending, scheduled, running, dead, cancelled or completed")
	limit := fs.Int("limit", 100, "list at most `N` tasks")
	offset := fs.Int("offset", 0, "skip the first `N` tasks of the listing")
	id := fs.String("id", "", "show the task with id `ID` instead of a listing")
	asJSON := jsonFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	st := brisk.State(*state)
	switch {
	case *id == "" && *queue == "":
		return usagef("tasks needs --queue Q (to list) or --id ID (to show one task)")
	case !st.Valid():
		return usagef("--state %q is not one of pending, scheduled, running, dead, cancelled, completed", *state)
	case *limit < 1:
		return usagef("--limit %d must be at least 1", *limit)
	case *offset < 0:
		return usagef("--offset %d is negative", *offset)
	}
	if *queue != "" {
		if err := checkNames(*queue); err != nil {
			return err
		}
	}

	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	in := brisk.NewInspector(c.Broker())

	if *id != "" {
		t, err := in.Task(ctx, *id)
		switch {
		case errors.Is(err, brisk.ErrNotFound):
			return fmt.Errorf("no task with id %s", *id) // escaped by report
		case err != nil:
			return err
		case *queue != "" && t.Queue != *queue:
			return fmt.Errorf("task %s is in queue %s, not %s", *id, t.Queue, *queue)
		}
		if *asJSON {
			return writeJSON(e.stdout, toTaskJSON(t), true)
		}
		return printTask(e, t)
	}

	ts, err := in.Tasks(ctx, *queue, st, *limit, *offset)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]taskJSON, 0, len(ts))
		for _, t := range ts {
			out = append(out, toTaskJSON(t))
		}
		return writeJSON(e.stdout, out, true)
	}
	if len(ts) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no %s tasks in queue %s\n", st, *queue)
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	if st == brisk.StateCompleted {
		fmt.Fprintf(tw, "ID\tTYPE\tATTEMPT\tFINISHED AT\tTOOK\tRESULT\n")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", termSafe(t.ID), termSafe(t.Type), t.Attempt, t.MaxAttempts,
				textTime(t.FinishedAt), humanize.Duration(t.Duration()), truncate(termSafe(payloadText(t.Result)), 60))
		}
	} else {
		// Dead tasks show when they failed; the others when they are (or were) ready.
		when, whenOf := "READY AT", func(t *brisk.TaskInfo) time.Time { return t.ReadyAt }
		if st == brisk.StateDead {
			when, whenOf = "FAILED AT", func(t *brisk.TaskInfo) time.Time { return t.FailedAt }
		}
		progress := ""
		if st == brisk.StateRunning {
			progress = "\tPROGRESS"
		}
		fmt.Fprintf(tw, "ID\tTYPE\tATTEMPT\t%s\tPAYLOAD\tLAST ERROR%s\n", when, progress)
		for _, t := range ts {
			lastErr := "-"
			if t.LastError != "" {
				lastErr = truncate(termSafe(t.LastError), 60)
			}
			if st == brisk.StateRunning {
				lastErr += "\t" + truncate(termSafe(progressText(t.Progress)), 50)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", termSafe(t.ID), termSafe(t.Type), t.Attempt, t.MaxAttempts,
				textTime(whenOf(t)), truncate(termSafe(payloadText(t.Payload)), 40), lastErr)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ts) == *limit {
		fmt.Fprintf(e.stderr, "(first %d shown from offset %d; --offset %d for more)\n", len(ts), *offset, *offset+len(ts))
	}
	return nil
}

// printTask shows every field of one task, one per line.
func printTask(e *env, t *brisk.TaskInfo) error {
	timeout := "- (the worker's default)"
	if t.Timeout > 0 {
		timeout = t.Timeout.String()
	}
	lastErr := "-"
	if t.LastError != "" {
		lastErr = termSafeLines(t.LastError)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	for _, f := range [][2]string{
		{"id", termSafe(t.ID)},
		{"queue", termSafe(t.Queue)},
		{"type", termSafe(t.Type)},
		{"state", string(t.State)},
		{"attempt", fmt.Sprintf("%d of %d", t.Attempt, t.MaxAttempts)},
		{"timeout", timeout},
		{"enqueued at", textTime(t.EnqueuedAt)},
		{"ready at", textTime(t.ReadyAt)},
		{"started at", textTime(t.StartedAt)},
		{"failed at", textTime(t.FailedAt)},
		{"lease until", textTime(t.LeaseUntil)},
		{"payload", termSafe(payloadText(t.Payload))},
		{"headers", termSafe(headersText(t.Headers))},
		{"progress", termSafe(progressText(t.Progress))},
		{"retention", retentionText(t.Retention)},
		{"finished at", textTime(t.FinishedAt)},
		{"expires at", textTime(t.ExpiresAt)},
		{"result", termSafe(payloadText(t.Result))},
		{"last error", lastErr}, // last: it may span lines (a panic's stack)
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	return tw.Flush()
}

// progressText shows a progress report as "42% message (at TIME)", or "-".
func progressText(p *brisk.Progress) string {
	if p == nil {
		return "-"
	}
	s := strconv.FormatFloat(p.Percent, 'f', -1, 64) + "%"
	if p.Message != "" {
		s += " " + p.Message
	}
	return s + " (at " + textTime(p.At) + ")"
}

// retentionText shows a task's own retention, or that its queue's applies.
func retentionText(d time.Duration) string {
	if d == 0 {
		return "- (the queue's)"
	}
	return d.String()
}

// headersText shows headers as name=value, sorted by name, or "-".
func headersText(h map[string]string) string {
	if len(h) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(h))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, k+"="+h[k])
	}
	return strings.Join(parts, " ")
}
