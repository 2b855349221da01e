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
how many tasks it retried; ids that name no dead task of the queue are not counted, and
when none matched it fails.`,
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
	c, err := openClient(ctx, *brokerURL)
	if err != nil {
		return err
	}
	defer closeClient(c)
	n, err := brisk.NewInspector(c.Broker()).RetryDead(ctx, *queue, ids...)
	if err != nil {
		return err
	}
	if n == 0 && len(ids) > 0 {
		return fmt.Errorf("no dead task matched in queue %s", *queue)
	}
	_, err = fmt.Fprintf(e.stdout, "retried %d task(s)\n", n)
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
	return nil
}
