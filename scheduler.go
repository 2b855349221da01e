package brisk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/service"
)

// schedulerLeadership names the leadership that schedulers compete for in the broker.
const schedulerLeadership = "periodic"

// SchedulerConfig configures a Scheduler. Zero fields take the defaults given.
type SchedulerConfig struct {
	// LeaderTTL is how long the leadership holds without a renewal: a leader that dies
	// is replaced within about LeaderTTL·4/3. The leader renews it every LeaderTTL/3, and
	// the others try to take it as often. Default 5s.
	LeaderTTL time.Duration
	// MissedAfter is how late a tick may still be enqueued as itself (after a leader's
	// hand-over, ticks are late by up to a few seconds); a tick older than that when a
	// leader looks at it was missed (no scheduler ran) and is enqueued once for all
	// missed ticks, or skipped, by the schedule's CatchUp. Default 1m.
	MissedAfter time.Duration
	// ID names this scheduler in the leadership. Default host-pid-random.
	ID string
	// Logger receives the scheduler's logs. Default: warnings and errors on standard error.
	Logger *slog.Logger
}

// Scheduler enqueues the ticks of the periodic schedules stored in the broker. Run one
// in as many processes as you like: they elect one leader through the broker (a lease
// with a fencing token), and only the leader enqueues. Each tick's task has an ID made
// of the schedule's name and the tick's time, and a uniqueness key of the same, so that
// a tick enqueued by two leaders across a hand-over is one task, and the leader records
// each tick it enqueued, fenced by its token, so that its successor goes on from there:
// no tick is lost or doubled when a leader dies.
type Scheduler struct {
	service.Base
	b      Broker
	client *Client
	store  broker.ScheduleStore
	lead   broker.Leader
	cfg    SchedulerConfig

	mu        sync.Mutex
	leading   bool
	l         broker.Leadership
	lastTry   time.Time         // last acquire or renew
	badSpecs  map[string]string // schedule → the spec already reported bad
	lifecycle sync.Mutex
	started   bool
}

// NewScheduler returns a scheduler on broker b, which must keep schedules
// (broker.ScheduleStore), elect leaders (broker.Leader) and keep unique tasks
// (Capabilities.Unique); otherwise the error wraps ErrUnsupported.
func NewScheduler(b Broker, cfg SchedulerConfig) (*Scheduler, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: NewScheduler needs a broker", ErrInvalid)
	}
	store, ok1 := b.(broker.ScheduleStore)
	lead, ok2 := b.(broker.Leader)
	if !ok1 || !ok2 || !b.Capabilities().Unique {
		return nil, fmt.Errorf("brisk: new scheduler: %w", unsupported(b, "run periodic tasks (it needs schedules, leader election and unique tasks)"))
	}
	switch {
	case cfg.LeaderTTL < 0:
		return nil, fmt.Errorf("%w: SchedulerConfig.LeaderTTL %s is negative", ErrInvalid, cfg.LeaderTTL)
	case cfg.LeaderTTL > 0 && cfg.LeaderTTL < 300*time.Millisecond:
		return nil, fmt.Errorf("%w: SchedulerConfig.LeaderTTL %s is below 300ms", ErrInvalid, cfg.LeaderTTL)
	case cfg.MissedAfter < 0:
		return nil, fmt.Errorf("%w: SchedulerConfig.MissedAfter %s is negative", ErrInvalid, cfg.MissedAfter)
	}
	if cfg.LeaderTTL == 0 {
		cfg.LeaderTTL = 5 * time.Second
	}
	if cfg.MissedAfter == 0 {
		cfg.MissedAfter = time.Minute
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s := &Scheduler{b: b, client: NewClient(b), store: store, lead: lead, cfg: cfg, badSpecs: map[string]string{}}
	s.Init("scheduler", cfg.Logger.With("scheduler", cfg.ID), nil)
	return s, nil
}

// Register stores the schedule p in the broker (see Client.SetPeriodic).
func (s *Scheduler) Register(ctx context.Context, p Periodic) error {
	return s.client.SetPeriodic(ctx, p)
}

// ID returns the scheduler's name in the leadership.
func (s *Scheduler) ID() string { return s.cfg.ID }

// Leading reports whether this scheduler is the leader now.
func (s *Scheduler) Leading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading && s.l.Until.After(s.Clock.Now())
}

// Start starts competing for the leadership and, while leading, enqueuing ticks, in the
// background until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if err := s.StartLoop(ctx, s.loop); err != nil {
		return fmt.Errorf("brisk: scheduler start: %w", err)
	}
	s.started = true
	return nil
}

// Stop stops the scheduler and hands its leadership over at once. It is idempotent.
func (s *Scheduler) Stop() {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.Base.Stop()
}

// Run starts the scheduler, runs until ctx is done, then stops it.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	s.Stop()
	return nil
}

// pollSchedules bounds the leader's sleep, so that schedules added or changed by other
// processes are seen within it.
const pollSchedules = time.Second

func (s *Scheduler) loop(ctx context.Context) {
	defer s.resign()
	for ctx.Err() == nil {
		s.keepLeadership(ctx)
		now := s.Clock.Now()
		wake := now.Add(pollSchedules)
		if s.Leading() {
			if next, err := s.enqueueDue(ctx); err != nil {
				if !errors.Is(err, errNotLeader) && ctx.Err() == nil {
					s.Logger.WarnContext(ctx, "enqueue periodic tasks", "err", err)
				}
			} else if !next.IsZero() && next.Before(wake) {
				wake = next
			}
		}
		s.mu.Lock()
		if renew := s.lastTry.Add(s.cfg.LeaderTTL / 3); renew.Before(wake) {
			wake = renew
		}
		s.mu.Unlock()
		service.Sleep(ctx, wake.Sub(s.Clock.Now()))
	}
}

// keepLeadership renews the leadership, or tries to take it, when LeaderTTL/3 has passed
// since the last try.
func (s *Scheduler) keepLeadership(ctx context.Context) {
	s.mu.Lock()
	now := s.Clock.Now()
	if now.Sub(s.lastTry) < s.cfg.LeaderTTL/3 {
		s.mu.Unlock()
		return
	}
	s.lastTry = now
	leading, l := s.leading, s.l
	s.mu.Unlock()

	var (
		got broker.Leadership
		ok  bool
		err error
	)
	if leading {
		got, ok, err = s.lead.RenewLeadership(ctx, l, s.cfg.LeaderTTL)
	} else {
		got, ok, err = s.lead.AcquireLeadership(ctx, schedulerLeadership, s.cfg.ID, s.cfg.LeaderTTL)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.Logger.WarnContext(ctx, "scheduler leadership", "err", err)
		}
		return // a leader goes on until its lease's end (Leading checks it)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ok && !leading:
		s.Logger.InfoContext(ctx, "scheduler leads", "token", got.Token)
	case !ok && leading:
		s.Logger.WarnContext(ctx, "scheduler lost its leadership", "token", l.Token)
	}
	s.leading = ok
	if ok {
		s.l = got
	}
}

// resign hands the leadership over when the scheduler stops.
func (s *Scheduler) resign() {
	s.mu.Lock()
	leading, l := s.leading, s.l
	s.leading = false
	s.mu.Unlock()
	if leading {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.lead.ReleaseLeadership(ctx, l); err != nil && !errors.Is(err, ErrClosed) {
			s.Logger.Warn("release scheduler leadership", "err", err)
		}
	}
}

// leadership returns the current leadership, or errNotLeader when this scheduler does not
// hold it with a margin of LeaderTTL/10 left: a leader about to expire enqueues nothing.
func (s *Scheduler) leadership() (broker.Leadership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leading || !s.l.Until.Add(-s.cfg.LeaderTTL/10).After(s.Clock.Now()) {
		return broker.Leadership{}, errNotLeader
	}
	return s.l, nil
}

// maxTicksPerRound bounds the late ticks of one schedule that one round enqueues.
const maxTicksPerRound = 1000

// enqueueDue enqueues every due tick of every schedule and returns the earliest next one.
func (s *Scheduler) enqueueDue(ctx context.Context) (time.Time, error) {
	ss, err := s.store.Schedules(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	var errs []error
	for _, sc := range ss {
		n, err := s.runSchedule(ctx, sc)
		if errors.Is(err, errNotLeader) {
			return time.Time{}, err
		}
		if err != nil {
			errs = append(errs, err)
		}
		if !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next, errors.Join(errs...)
}

// runSchedule enqueues sc's due ticks (and its catch-up task) and returns its next tick.
func (s *Scheduler) runSchedule(ctx context.Context, sc broker.Schedule) (time.Time, error) {
	sp, err := ParseSpec(sc.Spec)
	if err != nil {
		s.mu.Lock()
		if s.badSpecs[sc.Name] != sc.Spec {
			s.badSpecs[sc.Name] = sc.Spec
			s.Logger.ErrorContext(ctx, "periodic schedule skipped", "schedule", sc.Name, "err", err)
		}
		s.mu.Unlock()
		return time.Time{}, nil
	}
	now := s.Clock.Now()
	from := sc.LastRun
	if from.IsZero() {
		from = sc.CreatedAt
	}
	lastID := sc.LastTaskID
	if horizon := now.Add(-s.cfg.MissedAfter); sp.Next(from).Before(horizon) {
		// Missed while no scheduler ran: one task for them all, or none.
		if sc.CatchUp {
			first := sp.Next(from)
			if lastID, err = s.enqueueTick(ctx, sc, first); err != nil {
				return time.Time{}, err
			}
			s.Logger.InfoContext(ctx, "periodic ticks missed: enqueued once", "schedule", sc.Name, "first", first, "until", horizon)
		} else {
			s.Logger.InfoContext(ctx, "periodic ticks missed: skipped", "schedule", sc.Name, "from", sp.Next(from), "until", horizon)
		}
		if err := s.mark(ctx, sc.Name, horizon, lastID); err != nil {
			return time.Time{}, err
		}
		from = horizon
	}
	t := sp.Next(from)
	for n := 0; !t.After(now) && n < maxTicksPerRound; n++ {
		id, err := s.enqueueTick(ctx, sc, t)
		if err != nil {
			return time.Time{}, err
		}
		if err := s.mark(ctx, sc.Name, t, id); err != nil {
			return time.Time{}, err
		}
		t = sp.Next(t)
	}
	return t, nil
}

// enqueueTick enqueues sc's task for the tick at (a duplicate means a leader did already)
// and returns its ID.
func (s *Scheduler) enqueueTick(ctx context.Context, sc broker.Schedule, at time.Time) (string, error) {
	if _, err := s.leadership(); err != nil {
		return "", err
	}
	id := tickID(sc.Name, at)
	// The key outlives every leader that could still enqueue this tick: one that looks at
	// it within MissedAfter, after a hand-over of at most a few LeaderTTLs.
	window := s.cfg.MissedAfter + 4*s.cfg.LeaderTTL
	t := NewTask(sc.Type, sc.Payload, InQueue(sc.Queue), MaxAttempts(sc.MaxAttempts), Timeout(sc.Timeout),
		WithID(id), UniqueKey(id, window))
	if _, err := s.client.Enqueue(ctx, t); err != nil && !errors.Is(err, ErrDuplicate) {
		return "", fmt.Errorf("schedule %s, tick %s: %w", sc.Name, at.UTC().Format(time.RFC3339), err)
	}
	return id, nil
}

// mark records a tick with the leadership's fence; a lost leadership ends the round.
func (s *Scheduler) mark(ctx context.Context, name string, at time.Time, id string) error {
	l, err := s.leadership()
	if err != nil {
		return err
	}
	err = s.store.MarkScheduleRun(ctx, l, name, at, id)
	switch {
	case errors.Is(err, broker.ErrLeaseLost):
		s.mu.Lock()
		s.leading = false
		s.mu.Unlock()
		s.Logger.WarnContext(ctx, "scheduler lost its leadership while recording a tick", "schedule", name)
		return errNotLeader
	case errors.Is(err, ErrNotFound):
		return nil // removed meanwhile
	}
	return err
}
