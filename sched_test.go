package brisk_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// plain hides every optional capability of a broker: what a broker without them does.
type plain struct{ broker.Broker }

func (plain) Capabilities() broker.Capabilities { return broker.Capabilities{} }

func TestUniqueReturnsTheHolder(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := t.Context()
	first, err := c.Enqueue(ctx, brisk.NewTask("report", []byte(`{"day":1}`)), brisk.Unique(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Enqueue(ctx, brisk.NewTask("report", []byte(`{"day":1}`)), brisk.Unique(time.Minute))
	var dup *brisk.DuplicateError
	if !errors.Is(err, brisk.ErrDuplicate) || !errors.As(err, &dup) || again != first || dup.ID != first {
		t.Fatalf("second Enqueue = %q, %v; want %q and a DuplicateError naming it", again, err, first)
	}
	if _, err := c.Enqueue(ctx, brisk.NewTask("report", []byte(`{"day":2}`)), brisk.Unique(time.Minute)); err != nil {
		t.Errorf("another payload is another key: %v", err)
	}
	k1, err := c.Enqueue(ctx, brisk.NewTask("a", nil), brisk.UniqueKey("user:7", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Enqueue(ctx, brisk.NewTask("b", nil), brisk.UniqueKey("user:7", time.Minute)); got != k1 || !errors.Is(err, brisk.ErrDuplicate) {
		t.Errorf("explicit key held: %q, %v; want %q and ErrDuplicate", got, err, k1)
	}
	if st := queueStats(t, b, brisk.DefaultQueue); st.Pending != 3 {
		t.Errorf("pending = %d, want 3", st.Pending)
	}
	for _, opt := range []brisk.Option{brisk.Unique(-time.Second), brisk.UniqueKey("k", 0)} {
		if _, err := c.Enqueue(ctx, brisk.NewTask("x", nil), opt); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("bad unique window: %v, want ErrInvalid", err)
		}
	}
}

func TestCapabilityMissingIsRefused(t *testing.T) {
	t.Parallel()
	b, _ := setup(t)
	p := plain{b}
	ctx := t.Context()
	c := brisk.NewClient(p)
	in := brisk.NewInspector(p)
	_, err := c.Enqueue(ctx, brisk.NewTask("x", nil), brisk.Unique(time.Minute))
	if !errors.Is(err, brisk.ErrUnsupported) || !strings.Contains(err.Error(), "brisk_test.plain") {
		t.Errorf("unique task on a broker without Unique: %v, want ErrUnsupported naming the broker", err)
	}
	if st := queueStats(t, b, brisk.DefaultQueue); st.Pending != 0 {
		t.Errorf("a refused unique task was stored")
	}
	checks := map[string]error{}
	_, checks["CancelTask"] = in.CancelTask(ctx, "x")
	checks["SetLimit"] = in.SetLimit(ctx, brisk.Limit{Queue: "q", MaxRunning: 1})
	_, checks["Limits"] = in.Limits(ctx)
	checks["SetPeriodic"] = c.SetPeriodic(ctx, brisk.Periodic{Name: "p", Spec: "@every 1s", Task: brisk.NewTask("x", nil)})
	_, checks["Periodic"] = in.Periodic(ctx)
	_, checks["NewScheduler"] = brisk.NewScheduler(p, brisk.SchedulerConfig{})
	for what, err := range checks {
		if !errors.Is(err, brisk.ErrUnsupported) {
			t.Errorf("%s on a broker without the capability: %v, want ErrUnsupported", what, err)
		}
	}
	if in.CanCancel() || in.CanLimit() || in.CanSchedule() {
		t.Errorf("CanCancel, CanLimit or CanSchedule true for a broker without them")
	}
}

func TestParseSpec(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC) // a Wednesday
	for _, c := range []struct {
		spec string
		next time.Time
	}{
		{"@every 1s", at.Add(time.Second)},
		{"@every 10m", time.Date(2030, 1, 2, 15, 10, 0, 0, time.UTC)},
		{"@every 1h", time.Date(2030, 1, 2, 16, 0, 0, 0, time.UTC)},
		{"*/15 * * * * *", time.Date(2030, 1, 2, 15, 4, 15, 0, time.UTC)},
		{"0 30 9 * * MON-FRI", time.Date(2030, 1, 3, 9, 30, 0, 0, time.UTC)},
		{"30 9 * * *", time.Date(2030, 1, 3, 9, 30, 0, 0, time.UTC)},
		{"@hourly", time.Date(2030, 1, 2, 16, 0, 0, 0, time.UTC)},
		{"CRON_TZ=America/New_York 0 0 9 * * *", time.Date(2030, 1, 2, 14, 0, 0, 0, time.UTC)}, // 09:00 EST, tomorrow
	} {
		sp, err := brisk.ParseSpec(c.spec)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.spec, err)
			continue
		}
		want := c.next
		if c.spec == "CRON_TZ=America/New_York 0 0 9 * * *" {
			want = want.Add(24 * time.Hour)
		}
		if got := sp.Next(at); !got.Equal(want) {
			t.Errorf("ParseSpec(%q).Next(%s) = %s, want %s", c.spec, at, got.UTC(), want)
		}
	}
	for _, bad := range []string{"", "bogus", "61 * * * *", "* * * * * * *", "@every 500ms", "@every 1.5s", "@every -1s",
		"@every", "CRON_TZ=Nowhere/Zone * * * * *", "@fortnightly"} {
		if _, err := brisk.ParseSpec(bad); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("ParseSpec(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSetPeriodicRefusesBadInput(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := t.Context()
	in := brisk.NewInspector(b)
	task := brisk.NewTask("t", nil)
	for what, p := range map[string]brisk.Periodic{
		"an invalid cron":  {Name: "a", Spec: "61 * * * *", Task: task},
		"no task":          {Name: "a", Spec: "@every 1s"},
		"a bad name":       {Name: "a b", Spec: "@every 1s", Task: task},
		"a long name":      {Name: strings.Repeat("n", 65), Spec: "@every 1s", Task: task},
		"a bad task type":  {Name: "a", Spec: "@every 1s", Task: brisk.NewTask("bad type", nil)},
		"a bad queue":      {Name: "a", Spec: "@every 1s", Task: brisk.NewTask("t", nil, brisk.InQueue("a/b"))},
		"negative retries": {Name: "a", Spec: "@every 1s", Task: brisk.NewTask("t", nil, brisk.MaxAttempts(-1))},
	} {
		if err := c.SetPeriodic(ctx, p); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("SetPeriodic with %s: %v, want ErrInvalid", what, err)
		}
	}
	if ps, err := in.Periodic(ctx); err != nil || len(ps) != 0 {
		t.Errorf("refused schedules were stored: %v, %v", ps, err)
	}
	if err := c.RemovePeriodic(ctx, "nope"); !errors.Is(err, brisk.ErrNotFound) {
		t.Errorf("RemovePeriodic of an unknown schedule: %v, want ErrNotFound", err)
	}
	if err := in.SetLimit(ctx, brisk.Limit{Queue: "q", Rate: 0}); !errors.Is(err, brisk.ErrInvalid) {
		t.Errorf("SetLimit of nothing: %v, want ErrInvalid", err)
	}
	if err := in.SetLimit(ctx, brisk.Limit{Queue: "q", Rate: -5, Per: time.Second}); !errors.Is(err, brisk.ErrInvalid) {
		t.Errorf("SetLimit of a negative rate: %v, want ErrInvalid", err)
	}
	if ls, _ := in.Limits(ctx); len(ls) != 0 {
		t.Errorf("refused limits were stored: %v", ls)
	}
	if _, err := in.CancelTask(ctx, "no-such-task"); !errors.Is(err, brisk.ErrNotFound) {
		t.Errorf("CancelTask of an unknown id: %v, want ErrNotFound", err)
	}
}

// TestMissedTicks runs a scheduler on a schedule whose ticks were missed for 3 s while no
// scheduler ran, with MissedAfter 1s: with CatchUp the first missed tick is enqueued once
// for all of them, without it they are skipped; the late ticks are enqueued each.
func TestMissedTicks(t *testing.T) {
	t.Parallel()
	for _, catchUp := range []bool{true, false} {
		b, c := setup(t)
		ctx := t.Context()
		queue := "q"
		if err := c.SetPeriodic(ctx, brisk.Periodic{Name: "m", Spec: "@every 1s", CatchUp: catchUp,
			Task: brisk.NewTask("t", nil, brisk.InQueue(queue))}); err != nil {
			t.Fatal(err)
		}
		in := brisk.NewInspector(b)
		ps, _ := in.Periodic(ctx)
		created := ps[0].CreatedAt
		time.Sleep(3500 * time.Millisecond)
		s, err := brisk.NewScheduler(b, brisk.SchedulerConfig{MissedAfter: time.Second, LeaderTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the scheduler leads", s.Leading)
		time.Sleep(500 * time.Millisecond)
		s.Stop()
		tasks, err := in.Tasks(ctx, queue, brisk.StatePending, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		firstMissed := created.Truncate(time.Second).Add(time.Second)
		hasFirst := false
		for _, task := range tasks {
			name, at, ok := brisk.PeriodicTick(&brisk.Task{ID: task.ID})
			if !ok || name != "m" {
				t.Errorf("task %s is not a tick of m", task.ID)
			}
			hasFirst = hasFirst || at.Equal(firstMissed)
		}
		if hasFirst != catchUp {
			t.Errorf("CatchUp %v: the first missed tick (%s) enqueued = %v; tasks %d", catchUp, firstMissed.Format("15:04:05"), hasFirst, len(tasks))
		}
		// Late ticks: those within MissedAfter before the start, and those while it ran.
		if n := len(tasks); n < 1 || n > 4 {
			t.Errorf("CatchUp %v: %d tasks, want the catch-up (if any) and the 1–3 late or new ticks", catchUp, n)
		}
		ps, _ = in.Periodic(ctx)
		if ps[0].LastRun.IsZero() || !ps[0].NextRun.After(ps[0].LastRun) || ps[0].LastTaskID == "" {
			t.Errorf("after the run: %+v, want LastRun, LastTaskID and a later NextRun", ps[0])
		}
	}
}

func TestCancelStopsRunningHandler(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	ctx := t.Context()
	started := make(chan string, 1)
	stopped := make(chan error, 1)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"wait": func(ctx context.Context, task *brisk.Task) error {
			started <- task.ID
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return ctx.Err()
		},
	})
	id, err := c.Enqueue(ctx, brisk.NewTask("wait", nil))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	at := time.Now()
	in := brisk.NewInspector(b)
	if was, err := in.CancelTask(ctx, id); err != nil || was != brisk.StateRunning {
		t.Fatalf("CancelTask = %q, %v; want running", was, err)
	}
	select {
	case cause := <-stopped:
		t.Logf("handler stopped %s after CancelTask", time.Since(at).Round(time.Millisecond))
		if !errors.Is(cause, brisk.ErrCancelled) {
			t.Errorf("context.Cause = %v, want ErrCancelled", cause)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	time.Sleep(200 * time.Millisecond) // its outcome, if any, would be written now
	got, err := in.Task(ctx, id)
	if err != nil || got.State != brisk.StateCancelled {
		t.Fatalf("task after cancel: %+v, %v; want cancelled", got, err)
	}
	if st := queueStats(t, b, brisk.DefaultQueue); st.Cancelled != 1 || st.Pending+st.Scheduled+st.Running+st.Dead != 0 {
		t.Errorf("stats: %+v, want only 1 cancelled (not retried)", st)
	}
}
