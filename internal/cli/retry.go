package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/briskq/brisk"
)

var retryCmd = &command{
	name:     "retry",
	synopsis: "--queue Q (--all | ID...)",
	summary:  "retry dead tasks: make them pending again with a fresh attempt budget",
	detail: `
Give the ids of dead tasks of the queue, or --all for every dead task of it. It prints
how many tasks it retried, and how many of the ids given named no dead task of the queue
(they are not counted). Nothing to retry is not an error: with --all as with ids, it
prints "retried 0 task(s)" and exits with status 0.`,
	run: runRetry,
}

func runRetry(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "retry dead tasks of queue `Q` (required)")
	all := fs.Bool("all", false, "retry every dead task of the queue")
	ids, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := checkSelection(*queue, *all, ids); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	n, err := brisk.NewInspector(c.Broker()).RetryDead(ctx, *queue, ids...)
	if err != nil {
		return err
	}
	return printSelected(e, "retried", n, ids, brisk.StateDead, *queue)
}

// printSelected prints what retry or delete did: how many tasks, and how many of the ids
// given named no task of the queue in that state.
func printSelected(e *env, done string, n int, ids []string, st brisk.State, queue string) error {
	line := fmt.Sprintf("%s %d task(s)", done, n)
	if missed := len(ids) - n; len(ids) > 0 && missed > 0 {
		line += fmt.Sprintf("; %d of the %d ids named no %s task of queue %s", missed, len(ids), st, queue)
	}
	_, err := fmt.Fprintln(e.stdout, termSafe(line))
	return err
}

// checkSelection checks the arguments of retry and delete: a queue, and --all or ids.
func checkSelection(queue string, all bool, ids []string) error {
	switch {
	case queue == "":
		return usagef("--queue Q is required")
	case all && len(ids) > 0:
		return usagef("give --all or task ids, not both")
	case !all && len(ids) == 0:
		return usagef("give task ids, or --all for every task")
	}
	return checkNames(queue)
}
