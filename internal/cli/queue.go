package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/humanize"
)

var queueCmd = &command{
	name:     "queue",
	synopsis: "(set [--sla D] [--retention D] | delete) [--broker URL] NAME",
	summary:  "manage a queue itself: set its SLA or retention, or delete a queue that holds no task",
	detail: `
"brisk queue set --sla D NAME" declares the queue NAME (created if needed) with the latency
target D (e.g. 5s, 2m); --sla 0 clears a declared SLA (a queue named after its SLA, such as
five_second, keeps the one its name states). brisk queues, the dashboard, /metrics and
brisk autoscale then measure the queue against it. The HTTP equivalent is
PUT /api/v1/queues/{queue} with {"sla_seconds": N}. A broker that watches Celery's or RQ's
queues refuses it: give their SLAs in the broker URL (?sla=NAME:30s).

"brisk queue set --retention D NAME" keeps the queue's completed and cancelled tasks for D
after they finish (e.g. 1h, 24h), with their results, so that brisk tasks --state
completed, brisk tasks --id and the dashboard show them; --retention 0 turns it off
(completed tasks are removed at once). A task enqueued with its own retention keeps it.
Only the SQLite broker keeps completed tasks; others answer that they cannot. The HTTP
equivalent is PUT /api/v1/queues/{queue} with {"retention_seconds": N}.

"brisk queue delete NAME" removes the queue NAME with its SLA, pause, counters,
dashboard history, retention and kept completed tasks, when it holds no task in any state (pending, scheduled, running, dead
or cancelled): delete its tasks first (brisk delete --queue NAME --state dead --all, and so on for
the other states). A queue that holds tasks is kept and the command fails, saying how
many; so does a queue that does not exist. An enqueue to NAME later creates it afresh.
The SQLite and Redis brokers can delete queues; others answer that they cannot.`,
	run: runQueue,
}

func runQueue(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	sla := fs.Duration("sla", -1, "with set: the queue's latency target `D`; 0 clears it")
	retention := fs.Duration("retention", -1, "with set: keep completed and cancelled tasks for `D`; 0 turns it off")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("queue needs an action: set or delete")
	case pos[0] != "delete" && pos[0] != "set":
		return usagef("unknown action %q (want set or delete)", pos[0])
	case len(pos) != 2:
		return usagef("queue %s takes one queue NAME, got %d arguments", pos[0], len(pos)-1)
	case pos[0] == "set" && *sla < 0 && *retention < 0:
		return usagef("queue set needs --sla D (0 clears the SLA) or --retention D (0 turns it off)")
	case pos[0] == "delete" && (*sla >= 0 || *retention >= 0):
		return usagef("--sla and --retention go with queue set, not delete")
	}
	name := pos[1]
	if err := checkNames(name); err != nil {
		return err
	}
	if pos[0] == "set" {
		return setQueue(ctx, e, *brokerURL, name, *sla, *retention)
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

// setQueue declares queue name with its SLA (0: none) and sets its retention (0: none),
// each unless negative (not given), and says what it now has.
func setQueue(ctx context.Context, e *env, brokerURL, name string, sla, retention time.Duration) error {
	c, err := e.openClient(ctx, brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	if retention >= 0 {
		if err := c.SetRetention(ctx, name, retention); err != nil {
			return err
		}
		if sla < 0 {
			_, err = fmt.Fprintf(e.stdout, "queue %s: %s\n", name, retentionWords(retention))
			return err
		}
	}
	if err := c.DeclareQueue(ctx, name, sla); err != nil {
		return err
	}
	what := "no SLA"
	if s, named := brisk.SLAFromName(name); sla > 0 || named {
		if sla > 0 {
			s = sla
		}
		what = "SLA " + humanize.Duration(s.Round(time.Millisecond))
	}
	if retention >= 0 {
		what += ", " + retentionWords(retention)
	}
	_, err = fmt.Fprintf(e.stdout, "queue %s: %s\n", name, what)
	return err
}

// retentionWords says what a queue's retention is.
func retentionWords(d time.Duration) string {
	if d == 0 {
		return "no retention"
	}
	return "completed tasks kept " + humanize.Duration(d)
}
