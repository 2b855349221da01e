package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/briskq/brisk"
)

var deleteCmd = &command{
	name:     "delete",
	synopsis: "--queue Q [--state STATE] (--all | ID...)",
	summary:  "delete tasks of a queue in one state (dead by default)",
	detail: `
Give the ids of tasks of the queue in --state (dead, pending, scheduled or cancelled; running tasks
belong to a worker and cannot be deleted), or --all for every task of the queue in that
state. It prints how many tasks it deleted; ids that name no such task are not counted,
and when none matched it fails.`,
	run: runDelete,
}

func runDelete(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "delete from queue `Q` (required)")
	state := fs.String("state", string(brisk.StateDead), "delete tasks in `STATE`: dead, pending, scheduled or cancelled")
	all := fs.Bool("all", false, "delete every task of the queue in that state")
	ids, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	st := brisk.State(*state)
	switch {
	case st == brisk.StateRunning:
		return usagef("running tasks belong to a worker and cannot be deleted")
	case !st.Valid():
		return usagef("--state %q is not one of dead, pending, scheduled, cancelled", *state)
	}
	if err := checkSelection(*queue, *all, ids); err != nil {
		return err
	}
	c, err := openClient(ctx, *brokerURL)
	if err != nil {
		return err
	}
	defer closeClient(c)
	n, err := brisk.NewInspector(c.Broker()).DeleteTasks(ctx, *queue, st, ids...)
	if err != nil {
		return err
	}
	if n == 0 && len(ids) > 0 {
		return fmt.Errorf("no %s task matched in queue %s", st, *queue)
	}
	_, err = fmt.Fprintf(e.stdout, "deleted %d task(s)\n", n)
	return err
}
