package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
	"github.com/briskq/brisk/internal/humanize"
)

var limitCmd = &command{
	name:     "limit",
	synopsis: "set --queue Q [--type T] [--rate N/PERIOD] [--burst N] [--max-running N] | list [--json] | remove --queue Q [--type T]",
	summary:  "set, list and remove rate and concurrency limits kept in the broker",
	detail: `
A limit applies to a queue, or with --type to one task type within a queue, and holds for
every worker of every process: --rate N/PERIOD lets N tasks start per PERIOD (a token
bucket; PERIOD a duration such as 1s or 1m, or s, m, h), with at most --burst at once
after an idle time (default N); --max-running N caps the tasks running at once. Set
either or both; set replaces the limit of the same queue and type. A worker never waits
for a token while another of its queues has work.

list --json prints an array of objects with the keys queue, type, rate, per_seconds,
burst and max_running (0: none).

Examples:
  brisk limit set --queue emails --rate 100/s
  brisk limit set --queue default --type pdf.render --max-running 4
  brisk limit remove --queue emails`,
	run: runLimit,
}

func runLimit(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("limit needs a subcommand: set, list or remove")
	}
	brokerURL := brokerFlag(fs)
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help":
		e.printHelp(fs)
		return errHelpShown
	case "list":
		asJSON := jsonFlag(fs)
		pos, err := e.parse(fs, rest)
		if err != nil {
			return err
		}
		if err := noArgs(pos); err != nil {
			return err
		}
		return withInspector(ctx, e, *brokerURL, needsStore, func(in *brisk.Inspector) error { return listLimits(ctx, e, in, *asJSON) })
	case "set", "remove":
	default:
		return usagef("unknown limit subcommand %q (want set, list or remove)", sub)
	}
	queue := fs.String("queue", "", "the queue `Q` (required)")
	typ := fs.String("type", "", "limit only tasks of type `T` within the queue")
	rate := fs.String("rate", "", "let `N/PERIOD` tasks start (e.g. 100/s, 5/1m)")
	burst := fs.Int("burst", 0, "let at most `N` start at once after an idle time (default: the rate's N)")
	maxRunning := fs.Int("max-running", 0, "let at most `N` run at once")
	pos, err := e.parse(fs, rest)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *queue == "" {
		return usagef("--queue Q is required")
	}
	if sub == "remove" {
		if *rate != "" || *burst != 0 || *maxRunning != 0 {
			return usagef("limit remove takes --queue and --type only")
		}
		return withInspector(ctx, e, *brokerURL, needsStore, func(in *brisk.Inspector) error {
			if err := in.DeleteLimit(ctx, *queue, *typ); errors.Is(err, brisk.ErrNotFound) {
				return fmt.Errorf("no limit on %s", limitName(*queue, *typ))
			} else if err != nil {
				return err
			}
			_, err := fmt.Fprintf(e.stdout, "removed the limit on %s\n", limitName(*queue, *typ))
			return err
		})
	}
	l := brisk.Limit{Queue: *queue, Type: *typ, Burst: *burst, MaxRunning: *maxRunning}
	if *rate != "" {
		if l.Rate, l.Per, err = parseRate(*rate); err != nil {
			return err
		}
	}
	switch {
	case l.Rate == 0 && l.MaxRunning == 0:
		return usagef("give --rate N/PERIOD, --max-running N, or both")
	case *burst < 0 || *maxRunning < 0:
		return usagef("--burst and --max-running must not be negative")
	case *burst > 0 && l.Rate == 0:
		return usagef("--burst needs --rate")
	}
	return withInspector(ctx, e, *brokerURL, createsStore, func(in *brisk.Inspector) error {
		if err := in.SetLimit(ctx, l); errors.Is(err, brisk.ErrInvalid) && !errors.Is(err, brisk.ErrUnsupported) {
			return invalid(err)
		} else if err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "limited %s\n", limitName(*queue, *typ))
		return err
	})
}

// parseRate reads N/PERIOD: a positive count and a duration (1s, 500ms, 1m) or a unit
// alone (s, m, h).
func parseRate(s string) (int, time.Duration, error) {
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return 0, 0, usagef("--rate %q is not N/PERIOD with N a positive count (e.g. 100/s, 5/1m)", s)
	}
	switch per {
	case "s", "m", "h":
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d < time.Millisecond {
		return 0, 0, usagef("--rate %q: the period %q is not a duration of at least 1ms (e.g. s, 1m, 500ms)", s, per)
	}
	return count, d, nil
}

func limitName(queue, typ string) string {
	if typ == "" {
		return "queue " + queue
	}
	return fmt.Sprintf("type %s of queue %s", typ, queue)
}

func listLimits(ctx context.Context, e *env, in *brisk.Inspector, asJSON bool) error {
	ls, err := in.Limits(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, apiv1.Limits(ls), true)
	}
	if len(ls) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no limits")
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "QUEUE\tTYPE\tRATE\tBURST\tMAX RUNNING\n")
	for _, l := range ls {
		typ, rate, burst, maxRunning := "*", "-", "-", "-"
		if l.Type != "" {
			typ = l.Type
		}
		if l.Rate > 0 {
			rate, burst = fmt.Sprintf("%d/%s", l.Rate, humanize.Duration(l.Per)), strconv.Itoa(l.Burst)
		}
		if l.MaxRunning > 0 {
			maxRunning = strconv.Itoa(l.MaxRunning)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Queue, typ, rate, burst, maxRunning)
	}
	return tw.Flush()
}

// withInspector opens the broker that url names and runs fn with an inspector on it.
func withInspector(ctx context.Context, e *env, url string, a access, fn func(*brisk.Inspector) error) error {
	c, err := e.openClient(ctx, url, a)
	if err != nil {
		return err
	}
	defer closeClient(c)
	return fn(brisk.NewInspector(c.Broker()))
}
