package brisk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/briskq/brisk/broker"
)

// Periodic is a task enqueued on a schedule: at each tick of Spec, one task like Task is
// enqueued, once however many schedulers run (see Scheduler).
type Periodic struct {
	// Name identifies the schedule: letters, digits and _-.: (at most 64 bytes).
	Name string
	// Spec says when it ticks (see ParseSpec): a cron expression with an optional seconds
	// field and time zone ("0 30 9 * * MON-FRI", "CRON_TZ=Europe/Paris 0 9 * * *"), a
	// descriptor ("@hourly") or a fixed interval ("@every 10s").
	Spec string
	// Task is the task enqueued at each tick: its Type, Payload, Queue, MaxAttempts and
	// Timeout (its ID, delays and uniqueness are the scheduler's).
	Task *Task
	// CatchUp: a tick missed while no scheduler ran (more than SchedulerConfig.MissedAfter
	// ago when one starts) is enqueued once, one task for all the missed ticks; without it
	// missed ticks are skipped. Ticks that are merely late (a leader's hand-over) are
	// always enqueued, each once.
	CatchUp bool
}

// PeriodicInfo is a stored schedule as Inspector.Periodic lists it.
type PeriodicInfo struct {
	Periodic
	// CreatedAt and UpdatedAt: when the schedule was first and last stored.
	CreatedAt, UpdatedAt time.Time
	// LastRun is the tick time of the last task enqueued (zero before the first), and
	// LastTaskID that task's ID.
	LastRun    time.Time
	LastTaskID string
	// NextRun is the next tick after the later of LastRun and now.
	NextRun time.Time
}

// Spec is a parsed schedule.
type Spec interface {
	// Next returns the first tick strictly after t.
	Next(t time.Time) time.Time
}

// cronParser reads cron expressions of five fields or six with seconds first, descriptors
// (@hourly, @daily, …) and the CRON_TZ= (or TZ=) time zone prefix.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec parses a schedule: "@every D" (D a Go duration of at least 1s, whole seconds;
// ticks fall on multiples of D since the Unix epoch, so "@every 1h" ticks on the hour in
// UTC), or a cron expression (five fields, or six with seconds first, with the usual
// ranges, lists, steps and names; descriptors such as @hourly and @daily; an optional
// "CRON_TZ=Zone " prefix, else UTC). Cron expressions are read by github.com/robfig/cron/v3.
func ParseSpec(spec string) (Spec, error) {
	s := strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(s, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: schedule %q: %v", ErrInvalid, spec, err)
		case d < time.Second || d%time.Second != 0:
			return nil, fmt.Errorf("%w: schedule %q: the interval must be whole seconds, at least 1s", ErrInvalid, spec)
		}
		return every(d), nil
	}
	if !strings.HasPrefix(s, "CRON_TZ=") && !strings.HasPrefix(s, "TZ=") {
		s = "CRON_TZ=UTC " + s
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: schedule %q: %v", ErrInvalid, spec, err)
	}
	if _, ok := sched.(cron.ConstantDelaySchedule); ok { // robfig's own @every, not reached
		return nil, fmt.Errorf("%w: schedule %q: write intervals as @every D", ErrInvalid, spec)
	}
	return sched, nil
}

// every ticks on multiples of itself since the Unix epoch.
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	d := time.Duration(e)
	return t.Truncate(d).Add(d) // Truncate works on the absolute time, so it is epoch-aligned
}

// maxScheduleName bounds a schedule's name, so that a tick's task ID stays within 128 bytes.
const maxScheduleName = 64

// toSchedule checks p and turns it into what the broker stores.
func (p Periodic) toSchedule() (broker.Schedule, error) {
	if len(p.Name) > maxScheduleName {
		return broker.Schedule{}, fmt.Errorf("%w: schedule name %q is longer than %d bytes", ErrInvalid, p.Name, maxScheduleName)
	}
	if _, err := ParseSpec(p.Spec); err != nil {
		return broker.Schedule{}, err
	}
	if p.Task == nil {
		return broker.Schedule{}, fmt.Errorf("%w: schedule %q has no task", ErrInvalid, p.Name)
	}
	t := p.Task
	if t.MaxAttempts < 0 || t.Timeout < 0 {
		return broker.Schedule{}, fmt.Errorf("%w: schedule %q: negative max attempts or timeout", ErrInvalid, p.Name)
	}
	s := broker.Schedule{Name: p.Name, Spec: strings.TrimSpace(p.Spec), Queue: t.Queue, Type: t.Type, Payload: t.Payload,
		MaxAttempts: t.MaxAttempts, Timeout: t.Timeout, CatchUp: p.CatchUp}
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if err := broker.ValidateSchedule(s, 0); err != nil {
		return broker.Schedule{}, err
	}
	return s, nil
}

// SetPeriodic stores the schedule p in the broker (replacing the one of the same name,
// whose last run is kept), so that the scheduler's leader, wherever it runs, enqueues its
// ticks from the next one on. An invalid spec, name or task is refused with ErrInvalid and
// nothing is stored. A broker that cannot keep schedules gives ErrUnsupported.
func (c *Client) SetPeriodic(ctx context.Context, p Periodic) error {
	store, ok := c.b.(broker.ScheduleStore)
	if !ok {
		return fmt.Errorf("brisk: set periodic %s: %w", p.Name, unsupported(c.b, "keep periodic schedules"))
	}
	s, err := p.toSchedule()
	if err != nil {
		return fmt.Errorf("brisk: set periodic %s: %w", p.Name, err)
	}
	if err := store.PutSchedule(ctx, s); err != nil {
		return fmt.Errorf("brisk: set periodic %s: %w", p.Name, err)
	}
	return nil
}

// RemovePeriodic removes the schedule name; an unknown name is an error wrapping
// ErrNotFound. Tasks it enqueued stay.
func (c *Client) RemovePeriodic(ctx context.Context, name string) error {
	store, ok := c.b.(broker.ScheduleStore)
	if !ok {
		return fmt.Errorf("brisk: remove periodic %s: %w", name, unsupported(c.b, "keep periodic schedules"))
	}
	if err := store.DeleteSchedule(ctx, name); err != nil {
		return fmt.Errorf("brisk: remove periodic %s: %w", name, err)
	}
	return nil
}

// Periodic lists the stored schedules by name, with their last and next runs.
func (i *Inspector) Periodic(ctx context.Context) ([]PeriodicInfo, error) {
	store, ok := i.b.(broker.ScheduleStore)
	if !ok {
		return nil, fmt.Errorf("brisk: periodic: %w", unsupported(i.b, "keep periodic schedules"))
	}
	ss, err := store.Schedules(ctx)
	if err != nil {
		return nil, fmt.Errorf("brisk: periodic: %w", err)
	}
	now := time.Now()
	out := make([]PeriodicInfo, len(ss))
	for j, s := range ss {
		out[j] = periodicInfo(s, now)
	}
	return out, nil
}

// PeriodicLeader returns the holder of the scheduler's leadership ("" when no scheduler
// leads: ticks are not being enqueued).
func (i *Inspector) PeriodicLeader(ctx context.Context) (string, error) {
	lead, ok := i.b.(broker.Leader)
	if !ok {
		return "", fmt.Errorf("brisk: periodic leader: %w", unsupported(i.b, "elect a leader"))
	}
	l, held, err := lead.CurrentLeader(ctx, schedulerLeadership)
	if err != nil {
		return "", fmt.Errorf("brisk: periodic leader: %w", err)
	}
	if !held {
		return "", nil
	}
	return l.Holder, nil
}

// CanSchedule reports whether the broker keeps periodic schedules and can elect their
// leader (SetPeriodic, Periodic and Scheduler work).
func (i *Inspector) CanSchedule() bool {
	_, store := i.b.(broker.ScheduleStore)
	_, lead := i.b.(broker.Leader)
	return store && lead && i.b.Capabilities().Unique
}

func periodicInfo(s broker.Schedule, now time.Time) PeriodicInfo {
	info := PeriodicInfo{
		Periodic: Periodic{Name: s.Name, Spec: s.Spec, CatchUp: s.CatchUp, Task: &Task{Type: s.Type, Payload: s.Payload,
			Queue: s.Queue, MaxAttempts: s.MaxAttempts, Timeout: s.Timeout}},
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, LastRun: s.LastRun, LastTaskID: s.LastTaskID,
	}
	if sp, err := ParseSpec(s.Spec); err == nil {
		from := now
		if s.LastRun.After(from) {
			from = s.LastRun
		}
		info.NextRun = sp.Next(from)
	}
	return info
}

// tickFormat is the layout of a tick's time in its task's ID.
const tickFormat = "20060102T150405Z"

// tickID is the task ID of schedule name's tick at: the same in every process, so that a
// tick enqueued twice (two leaders across a hand-over) is one task.
func tickID(name string, at time.Time) string {
	return "periodic:" + name + ":" + at.UTC().Format(tickFormat)
}

// PeriodicTick tells a handler which schedule and which tick enqueued task t (its ID is
// "periodic:<name>:<tick time, UTC, to the second>"); ok is false for other tasks. The
// task's ReadyAt is when it was enqueued, which is the tick unless the tick was late.
func PeriodicTick(t *Task) (name string, at time.Time, ok bool) {
	rest, found := strings.CutPrefix(t.ID, "periodic:")
	if !found {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", time.Time{}, false
	}
	at, err := time.Parse(tickFormat, rest[i+1:])
	if err != nil {
		return "", time.Time{}, false
	}
	return rest[:i], at, true
}

var errNotLeader = errors.New("not the leader")
