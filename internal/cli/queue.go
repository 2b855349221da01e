package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/humanize"
)

var queueCmd = &command{
	name:     "queue",
	synopsis: "set --queue Q --sla D",
	summary:  "change a queue's settings (its SLA)",
	detail: `
"brisk queue set --queue Q --sla D" declares queue Q (created if needed) with the latency
target D (e.g. 5s, 2m); --sla 0 clears a declared SLA (a queue named after its SLA, such
as five_second, keeps the one its name states). brisk queues, the dashboard, /metrics and
brisk autoscale then measure the queue against it. The HTTP equivalent is
PUT /api/v1/queues/{queue} with {"sla_seconds": N}.`,
	run: runQueue,
}

func runQueue(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", "", "the queue `Q` (required)")
	sla := fs.Duration("sla", -1, "the queue's latency target `D`; 0 clears it (required)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("queue needs a subcommand: set")
	case pos[0] != "set":
		return usagef("unknown subcommand %q (want set)", pos[0])
	case len(pos) > 1:
		return usagef("unexpected argument %q", pos[1])
	case *queue == "":
		return usagef("--queue Q is required")
	case *sla < 0:
		return usagef("--sla D is required (0 clears the SLA)")
	}
	c, err := openClient(ctx, *brokerURL)
	if err != nil {
		return err
	}
	defer closeClient(c)
	if err := c.DeclareQueue(ctx, *queue, *sla); err != nil {
		return err
	}
	what := "no SLA"
	if s, named := brisk.SLAFromName(*queue); *sla > 0 || named {
		if *sla > 0 {
			s = *sla
		}
		what = "SLA " + humanize.Duration(s.Round(time.Millisecond))
	}
	_, err = fmt.Fprintf(e.stdout, "queue %s: %s\n", *queue, what)
	return err
}
