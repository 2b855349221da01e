package cli

import (
	"context"
	"flag"

	"github.com/briskq/brisk"
)

var deleteCmd = &command{
	name:     "delete",
	synopsis: "--queue Q [--state STATE] (--all | ID...)",
	summary:  "delete tasks of a queue in one state (dead by default)",
	detail: `
Give the ids of tasks of the queue in --state (dead, pending, scheduled, cancelled or completed; running tasks
belong to a worker and cannot be deleted), or --all for every task of the queue in that
state. It prints how many tasks it deleted, and how many of the ids given named no such
task (they are not counted). Nothing to delete is not an error: with --all as with ids,
it prints "deleted 0 task(s)" and exits with status 0. To remove a queue itself, see
brisk queue delete.`,
	run: runDelete,
}

func runDelete(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "delete from queue `Q` (required)")
	state := fs.String("state", string(brisk.StateDead), "delete tasks in `STATE`: dead, pending, scheduled, cancelled or completed")
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
		return usagef("--state %q is not one of dead, pending, scheduled, cancelled, completed", *state)
	}
	if err := checkSelection(*queue, *all, ids); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	n, err := brisk.NewInspector(c.Broker()).DeleteTasks(ctx, *queue, st, ids...)
	if err != nil {
		return err
	}
	return printSelected(e, "deleted", n, ids, st, *queue)
}
