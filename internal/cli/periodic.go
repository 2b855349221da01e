package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

var periodicCmd = &command{
	name:     "periodic",
	synopsis: "add [flags] NAME SPEC TYPE [PAYLOAD_JSON] | list [--json] | remove NAME | run",
	summary:  "manage periodic tasks (schedules kept in the broker) and run their scheduler",
	detail: `
add stores a schedule (replacing one of that name, whose last run is kept); list shows
every schedule with its last and next run and the scheduler that leads; remove deletes
one; run runs a scheduler until interrupted. Run one in as many processes as you like:
they elect a leader through the broker, and only the leader enqueues, each tick once.

SPEC is a cron expression of five fields, or six with seconds first, in UTC unless it
starts with CRON_TZ=Zone ("0 30 9 * * MON-FRI", "CRON_TZ=Europe/Paris 0 9 * * *"), a
descriptor (@hourly, @daily, @weekly, @monthly, @yearly), or a fixed interval "@every D"
(whole seconds, at least 1s, ticking on multiples of D since the Unix epoch). Quote it.

A tick later than a minute when a scheduler looks at it was missed (no scheduler ran):
with --catch-up it is enqueued once for all missed ticks, else skipped.

list --json prints an array of objects with the keys name, spec, queue, type, payload,
max_attempts, timeout_seconds, catch_up, created_at, updated_at, last_run, last_task_id
and next_run.

Examples:
  brisk periodic add --queue reports nightly "0 0 2 * * *" report.build '{"kind":"daily"}'
  brisk periodic add heartbeat "@every 30s" ping
  brisk periodic list
  brisk periodic run`,
	run: runPeriodic,
}

func runPeriodic(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("periodic needs a subcommand: add, list, remove or run")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help":
		e.printHelp(fs)
		return errHelpShown
	case "add":
		return runPeriodicAdd(ctx, e, fs, rest)
	case "list":
		return runPeriodicList(ctx, e, fs, rest)
	case "remove":
		return runPeriodicRemove(ctx, e, fs, rest)
	case "run":
		return runPeriodicRun(ctx, e, fs, rest)
	}
	return usagef("unknown periodic subcommand %q (want add, list, remove or run)", sub)
}

func runPeriodicAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", brisk.DefaultQueue, "enqueue the tasks into queue `Q`")
	catchUp := fs.Bool("catch-up", false, "enqueue missed ticks once instead of skipping them")
	maxAttempts := fs.Int("max-attempts", 0, fmt.Sprintf("let each task run `N` times before it is dead (default %d)", brisk.DefaultMaxAttempts))
	timeout := fs.Duration("timeout", 0, "bound one run of the handler to `D` (default: the worker's)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) < 3 || len(pos) > 4:
		return usagef("periodic add takes NAME SPEC TYPE [PAYLOAD_JSON], got %d arguments (quote the SPEC)", len(pos))
	case *maxAttempts < 0:
		return usagef("--max-attempts %d is negative", *maxAttempts)
	case *timeout < 0:
		return usagef("--timeout %s is negative", *timeout)
	}
	if _, err := brisk.ParseSpec(pos[1]); err != nil {
		return invalid(err)
	}
	if err := checkNames(*queue); err != nil {
		return err
	}
	if err := brisk.ValidateTypeName(pos[2]); err != nil {
		return invalid(err)
	}
	var payload []byte
	if len(pos) == 4 {
		if payload, err = readPayload(pos[3], e.stdin); err != nil {
			return err
		}
	}
	c, err := e.openClient(ctx, *brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	p := brisk.Periodic{Name: pos[0], Spec: pos[1], CatchUp: *catchUp,
		Task: brisk.NewTask(pos[2], payload, brisk.InQueue(*queue), brisk.MaxAttempts(*maxAttempts), brisk.Timeout(*timeout))}
	if err := c.SetPeriodic(ctx, p); errors.Is(err, brisk.ErrInvalid) && !errors.Is(err, brisk.ErrUnsupported) {
		return invalid(err) // the name, spec or task given
	} else if err != nil {
		return err
	}
	sp, _ := brisk.ParseSpec(pos[1])
	_, err = fmt.Fprintf(e.stdout, "stored schedule %s; next tick %s\n", pos[0], textTime(sp.Next(time.Now())))
	return err
}

func runPeriodicList(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	asJSON := jsonFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	in := brisk.NewInspector(c.Broker())
	ps, err := in.Periodic(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, apiv1.PeriodicList(ps), true)
	}
	if len(ps) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no periodic tasks")
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tSPEC\tQUEUE\tTYPE\tCATCH-UP\tLAST RUN\tNEXT RUN\n")
	for _, p := range ps {
		catch := "skip"
		if p.CatchUp {
			catch = "once"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Spec, p.Task.Queue, p.Task.Type, catch, textTime(p.LastRun), textTime(p.NextRun))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	leader, err := in.PeriodicLeader(ctx)
	switch {
	case err != nil:
		return err
	case leader == "":
		fmt.Fprintln(e.stderr, "no scheduler is running: ticks are not enqueued (start one with brisk periodic run, or brisk.Scheduler)")
	default:
		fmt.Fprintf(e.stderr, "scheduler leader: %s\n", leader)
	}
	return nil
}

func runPeriodicRemove(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("periodic remove takes one NAME, got %d arguments", len(pos))
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	if err := c.RemovePeriodic(ctx, pos[0]); errors.Is(err, brisk.ErrNotFound) {
		return fmt.Errorf("no schedule named %s", pos[0])
	} else if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "removed schedule %s\n", pos[0])
	return err
}

func runPeriodicRun(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	ttl := fs.Duration("leader-ttl", 5*time.Second, "how long the leadership holds without renewal (a dead leader is replaced within about 4/3 of it)")
	missed := fs.Duration("missed-after", time.Minute, "a tick older than `D` when looked at was missed: enqueued once (catch-up) or skipped")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *ttl < 300*time.Millisecond || *missed <= 0 {
		return usagef("--leader-ttl must be at least 300ms and --missed-after positive")
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	s, err := brisk.NewScheduler(c.Broker(), brisk.SchedulerConfig{LeaderTTL: *ttl, MissedAfter: *missed})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "scheduler %s running; Ctrl-C to stop\n", s.ID())
	if err := s.Run(ctx); err != nil {
		return err
	}
	return ctx.Err()
}
