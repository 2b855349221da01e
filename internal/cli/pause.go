package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/briskq/brisk"
)

var pauseCmd = &command{
	name:     "pause",
	synopsis: "--queue Q",
	summary:  "pause a queue: workers take none of its tasks until it is resumed",
	detail: `
Workers of every process stop taking tasks of the queue; tasks already running finish, and
enqueuing still stores tasks. The pause is stored by the broker and lasts until
"brisk resume --queue Q". Pausing a paused queue, or a queue not yet known (it is created),
is fine. "brisk queues" shows PAUSED in the status column.`,
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		return runPause(ctx, e, fs, args, true)
	},
}

var resumeCmd = &command{
	name:     "resume",
	synopsis: "--queue Q",
	summary:  "resume a paused queue: workers take its tasks again",
	detail: `
Waiting workers are woken at once. Resuming a queue that is not paused is fine.`,
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		return runPause(ctx, e, fs, args, false)
	},
}

func runPause(ctx context.Context, e *env, fs *flag.FlagSet, args []string, paused bool) error {
	brokerURL := brokerFlag(fs)
	verb := "resume"
	if paused {
		verb = "pause"
	}
	queue := fs.String("queue", "", verb+" queue `Q` (required)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *queue == "" {
		return usagef("--queue Q is required")
	}
	if err := checkNames(*queue); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	in := brisk.NewInspector(c.Broker())
	if paused {
		err = in.PauseQueue(ctx, *queue)
	} else {
		err = in.ResumeQueue(ctx, *queue)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%sd queue %s\n", verb, *queue)
	return err
}
