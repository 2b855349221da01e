package brokertest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// The leader fail-over test: scheduler processes (brisk.Scheduler in child test binaries)
// enqueue the ticks of an "@every 1s" schedule while their leader is killed with SIGKILL,
// twice; every tick of 60 seconds must be enqueued exactly once.
const (
	roleScheduler   = "scheduler"
	envSchedulerID  = "BRISKTEST_SCHEDULER_ID"
	failoverTicks   = 60
	failoverLeaders = 3
	failoverTTL     = 2 * time.Second
)

func init() { roles[roleScheduler] = runScheduler }

// testPeriodic checks the optional broker.ScheduleStore (schedules stored, replaced with
// their creation time and last run kept, listed by name, deleted; a run recorded only
// under the current leadership; bad input refused) and, with a broker.Leader and unique
// tasks, brisk.Scheduler in several processes whose leader is killed.
func (s *suite) testPeriodic(t *testing.T) {
	store := func(e *env) broker.ScheduleStore {
		e.t.Helper()
		return optional[broker.ScheduleStore](e, e.b, "broker.ScheduleStore", "it keeps no periodic schedules")
	}
	sched := func(name string) broker.Schedule {
		return broker.Schedule{Name: name, Spec: "@every 1s", Queue: "q", Type: "t", Payload: []byte(`{"a":1}`), MaxAttempts: 3, Timeout: time.Second}
	}
	list := func(e *env, st broker.ScheduleStore) []broker.Schedule {
		e.t.Helper()
		ss, err := st.Schedules(e.ctx)
		if err != nil {
			e.t.Fatalf("Schedules: %v", err)
		}
		return ss
	}
	put := func(e *env, st broker.ScheduleStore, sc broker.Schedule) {
		e.t.Helper()
		if err := st.PutSchedule(e.ctx, sc); err != nil {
			e.t.Fatalf("PutSchedule(%s): %v", sc.Name, err)
		}
	}

	s.test(t, "PutListDelete", func(e *env) {
		st := store(e)
		if ss := list(e, st); len(ss) != 0 {
			e.t.Fatalf("Schedules of a fresh store: %d, want none", len(ss))
		}
		put(e, st, sched("b"))
		put(e, st, sched("a"))
		ss := list(e, st)
		if len(ss) != 2 || ss[0].Name != "a" || ss[1].Name != "b" {
			e.t.Fatalf("Schedules = %v, want a and b in that order", names(ss))
		}
		a := ss[0]
		want := sched("a")
		if a.Spec != want.Spec || a.Queue != "q" || a.Type != "t" || string(a.Payload) != `{"a":1}` || a.MaxAttempts != 3 ||
			a.Timeout != time.Second || a.CatchUp || a.CreatedAt.IsZero() || !a.LastRun.IsZero() {
			e.t.Errorf("stored schedule = %+v, want %+v with CreatedAt set and no LastRun", a, want)
		}
		changed := sched("a")
		changed.Spec, changed.CatchUp = "0 * * * * *", true
		put(e, st, changed)
		ss = list(e, st)
		if ss[0].Spec != changed.Spec || !ss[0].CatchUp || !ss[0].CreatedAt.Equal(a.CreatedAt) {
			e.t.Errorf("replaced schedule = %+v, want the new spec and CatchUp with CreatedAt %s kept", ss[0], fmtTime(a.CreatedAt))
		}
		if err := st.DeleteSchedule(e.ctx, "b"); err != nil {
			e.t.Fatalf("DeleteSchedule: %v", err)
		}
		wantErr(e.t, "DeleteSchedule of an unknown name", st.DeleteSchedule(e.ctx, "b"), broker.ErrNotFound, "b")
		if ss := list(e, st); len(ss) != 1 || ss[0].Name != "a" {
			e.t.Errorf("Schedules after a delete = %v, want a", names(ss))
		}
	})

	s.test(t, "RunFencedByLeadership", func(e *env) {
		st := store(e)
		lead := optional[broker.Leader](e, e.b, "broker.Leader", "runs cannot be fenced by a leadership")
		put(e, st, sched("a"))
		l, ok, err := lead.AcquireLeadership(e.ctx, "periodic", "me", longLease)
		if err != nil || !ok {
			e.t.Fatalf("AcquireLeadership: %v, %v", ok, err)
		}
		at := time.Now().Truncate(time.Second)
		if err := st.MarkScheduleRun(e.ctx, l, "a", at, "t1"); err != nil {
			e.t.Fatalf("MarkScheduleRun: %v", err)
		}
		if err := st.MarkScheduleRun(e.ctx, l, "a", at.Add(-time.Second), "t0"); err != nil {
			e.t.Fatalf("MarkScheduleRun of an older tick: %v", err)
		}
		got := list(e, st)[0]
		if !near(got.LastRun, at, timeTolerance) || got.LastTaskID != "t1" {
			e.t.Errorf("after two runs: LastRun %s LastTaskID %q, want %s and t1 (an older tick changes nothing)", fmtTime(got.LastRun), got.LastTaskID, fmtTime(at))
		}
		put(e, st, sched("a"))
		if got := list(e, st)[0]; !near(got.LastRun, at, timeTolerance) {
			e.t.Errorf("PutSchedule of a stored schedule lost its LastRun (%s)", fmtTime(got.LastRun))
		}
		stale := l
		stale.Token--
		err = st.MarkScheduleRun(e.ctx, stale, "a", at.Add(time.Second), "t2")
		wantErr(e.t, "MarkScheduleRun under a stale token", err, broker.ErrLeaseLost)
		other := l
		other.Holder = "other"
		wantErr(e.t, "MarkScheduleRun by a non-holder", st.MarkScheduleRun(e.ctx, other, "a", at.Add(time.Second), "t2"), broker.ErrLeaseLost)
		if got := list(e, st)[0]; got.LastTaskID != "t1" {
			e.t.Errorf("a refused run changed LastTaskID to %q", got.LastTaskID)
		}
		wantErr(e.t, "MarkScheduleRun of an unknown schedule", st.MarkScheduleRun(e.ctx, l, "nope", at, "x"), broker.ErrNotFound)
		if err := lead.ReleaseLeadership(e.ctx, l); err != nil {
			e.t.Fatal(err)
		}
		wantErr(e.t, "MarkScheduleRun after release", st.MarkScheduleRun(e.ctx, l, "a", at.Add(time.Second), "t2"), broker.ErrLeaseLost)
	})

	s.test(t, "BadInput", func(e *env) {
		st := store(e)
		for what, spoil := range map[string]func(*broker.Schedule){
			"an empty name":      func(s *broker.Schedule) { s.Name = "" },
			"a name with a /":    func(s *broker.Schedule) { s.Name = "a/b" },
			"an empty spec":      func(s *broker.Schedule) { s.Spec = "" },
			"a bad queue":        func(s *broker.Schedule) { s.Queue = "has space" },
			"a bad type":         func(s *broker.Schedule) { s.Type = "" },
			"max attempts 0":     func(s *broker.Schedule) { s.MaxAttempts = 0 },
			"a negative timeout": func(s *broker.Schedule) { s.Timeout = -time.Second },
		} {
			sc := sched("x")
			spoil(&sc)
			wantErr(e.t, "PutSchedule with "+what, st.PutSchedule(e.ctx, sc), broker.ErrInvalid)
		}
		if ss := list(e, st); len(ss) != 0 {
			e.t.Errorf("refused schedules were stored: %v", names(ss))
		}
	})

	s.test(t, "LeaderFailover", func(e *env) {
		store(e)
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test runs scheduler processes for over a minute")
		}
		in := brisk.NewInspector(e.b)
		if !in.CanSchedule() {
			e.t.Skipf("SKIPPED: %T cannot run brisk.Scheduler (it needs broker.Leader and Capabilities.Unique)", e.b)
		}
		s.testFailover(e, in)
	})
}

func (s *suite) testFailover(e *env, in *brisk.Inspector) {
	const queue = "ticks"
	if err := brisk.NewClient(e.b).SetPeriodic(e.ctx, brisk.Periodic{Name: "tick", Spec: "@every 1s",
		Task: brisk.NewTask("tick", nil, brisk.InQueue(queue))}); err != nil {
		e.t.Fatalf("SetPeriodic: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, childTimeout(e.t))
	defer cancel()
	children := map[string]*child{}
	spawn := func(i int) {
		id := fmt.Sprintf("sched-%d", i)
		c := s.startChild(e.t, ctx, roleScheduler, e.url, envSchedulerID+"="+id)
		if err := c.waitReady(ctx); err != nil {
			e.t.Fatalf("scheduler process %s did not start: %v%s", id, err, c.output())
		}
		c.start()
		children[id] = c
	}
	for i := range failoverLeaders {
		spawn(i)
	}
	leader := func() string {
		h, _ := in.PeriodicLeader(e.ctx)
		return h
	}
	var first time.Time
	e.eventually("a scheduler leads and enqueues a tick", func() bool {
		got, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: queue, State: broker.StatePending, Limit: 1})
		if err != nil || len(got) == 0 {
			return false
		}
		_, first, _ = brisk.PeriodicTick(&brisk.Task{ID: got[0].ID})
		return true
	})
	end := first.Add(failoverTicks * time.Second)
	var handovers []time.Duration
	for _, at := range []time.Duration{20 * time.Second, 40 * time.Second} {
		sleepUntil(first.Add(at))
		victim := leader()
		c := children[victim]
		if c == nil {
			e.t.Fatalf("the leader is %q, not one of the scheduler processes", victim)
		}
		killed := time.Now()
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.finish()
		delete(children, victim)
		e.eventually("another scheduler takes over", func() bool { h := leader(); return h != "" && h != victim })
		handovers = append(handovers, time.Since(killed))
		spawn(int(at / time.Second)) // a replacement, so that three compete again
	}
	sleepUntil(end.Add(3 * time.Second))
	for id, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		if err := c.finish(); err != nil {
			e.t.Errorf("scheduler process %s: %v%s", id, err, c.output())
		}
	}
	tasks, err := e.b.Tasks(e.ctx, broker.ListParams{Queue: queue, State: broker.StatePending, Limit: 1000})
	if err != nil {
		e.t.Fatalf("Tasks: %v", err)
	}
	per := map[int64]int{}
	for _, task := range tasks {
		_, at, ok := brisk.PeriodicTick(&brisk.Task{ID: task.ID})
		if !ok {
			e.t.Errorf("tick task id %q is not periodic:tick:<time>", task.ID)
			continue
		}
		per[at.Unix()]++
		if late := task.EnqueuedAt.Sub(at); late < -time.Second || late > 2*failoverTTL+slack {
			e.t.Errorf("tick %s enqueued at %s", at.Format("15:04:05"), fmtTime(task.EnqueuedAt))
		}
	}
	var lost, doubled []string
	for i := range failoverTicks {
		at := first.Add(time.Duration(i) * time.Second)
		switch n := per[at.Unix()]; {
		case n == 0:
			lost = append(lost, at.UTC().Format("15:04:05"))
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s×%d", at.UTC().Format("15:04:05"), n))
		}
	}
	sort.Strings(lost)
	e.t.Logf("%d tick tasks from %s; the leader was killed twice and replaced after %v", len(tasks), first.UTC().Format("15:04:05"), handovers)
	if len(lost) > 0 || len(doubled) > 0 {
		e.t.Errorf("over %d ticks of 1s: lost %v, doubled %v; want none", failoverTicks, lost, doubled)
	}
	for _, h := range handovers {
		if h > 2*failoverTTL+slack {
			e.t.Errorf("a killed leader was replaced after %s, want within a few seconds (lease %s)", h, failoverTTL)
		}
	}
}

// runScheduler runs a brisk.Scheduler named BRISKTEST_SCHEDULER_ID with a lease of
// failoverTTL until SIGTERM.
func runScheduler(t *testing.T, h Harness, url string) {
	ctx, b, log, done := openUntilTerm(t, h, url)
	defer done()
	sc, err := brisk.NewScheduler(b, brisk.SchedulerConfig{
		ID: os.Getenv(envSchedulerID), LeaderTTL: failoverTTL,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(lineReady)
	if _, err := readGo(); err != nil {
		t.Fatalf("no go from the parent: %v", err)
	}
	if err := sc.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func names(ss []broker.Schedule) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return strings.Join(out, ",")
}
