package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/briskq/brisk"
)

var cancelCmd = &command{
	name:     "cancel",
	synopsis: "[flags] ID",
	summary:  "cancel a pending, scheduled or running task",
	detail: `
A pending or scheduled task is never run. A running task's lease is revoked at once: the
worker that runs it cancels its handler's context within a second, in whatever process it
runs, and ignores its outcome. The task is kept in state cancelled ("brisk tasks --state
cancelled", "brisk delete --state cancelled") and never retried. Cancelling a cancelled
task is fine; a dead task or an unknown id is an error.`,
	run: runCancel,
}

func runCancel(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("cancel takes one task ID, got %d arguments", len(pos))
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	was, err := c.Cancel(ctx, pos[0])
	switch {
	case errors.Is(err, brisk.ErrNotFound):
		return fmt.Errorf("no task with id %s", pos[0])
	case err != nil:
		return err
	case was == brisk.StateCancelled:
		_, err = fmt.Fprintf(e.stdout, "task %s was already cancelled\n", pos[0])
	default:
		_, err = fmt.Fprintf(e.stdout, "cancelled task %s (it was %s)\n", pos[0], was)
	}
	return err
}

// schedCommands are the commands of cancellation, periodic tasks and limits, listed in
// "brisk --help" after the others.
var schedCommands = []*command{cancelCmd, periodicCmd, limitCmd}
