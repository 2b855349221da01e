package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/briskq/brisk"
)

var queueCmd = &command{
	name:     "queue",
	synopsis: "delete [--broker URL] NAME",
	summary:  "manage a queue itself: delete removes a queue that holds no task",
	detail: `
"brisk queue delete NAME" removes the queue NAME with its SLA, pause, counters and
dashboard history, when it holds no task in any state (pending, scheduled, running, dead
or cancelled): delete its tasks first (brisk delete --queue NAME --state dead --all, and so on for
the other states). A queue that holds tasks is kept and the command fails, saying how
many; so does a queue that does not exist. An enqueue to NAME later creates it afresh.
The SQLite and Redis brokers can delete queues; others answer that they cannot.`,
	run: runQueue,
}

func runQueue(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("queue needs an action: delete")
	case pos[0] != "delete":
		return usagef("unknown action %q (want delete)", pos[0])
	case len(pos) != 2:
		return usagef("queue delete takes one queue NAME, got %d arguments", len(pos)-1)
	}
	name := pos[1]
	if err := checkNames(name); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	err = brisk.NewInspector(c.Broker()).DeleteQueue(ctx, name)
	if errors.Is(err, brisk.ErrQueueNotFound) {
		return fmt.Errorf("no queue named %s", name)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "deleted queue %s\n", name)
	return err
}
