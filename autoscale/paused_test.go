package autoscale

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

// TestPausedBacklogIgnored checks the rule for paused queues: workers take none of their
// tasks, so their backlog is no demand. The controller decides as for an empty queue (the
// count does not rise, and falls to what the policy keeps for nothing), reports the
// backlog apart in the decision (its reason and its Sample), and the broker source says
// that the queue is paused.
func TestPausedBacklogIgnored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := sqliteBroker(t)
	c := brisk.NewClient(b)
	in := brisk.NewInspector(b)
	for range 50 {
		if _, err := c.Enqueue(ctx, brisk.NewTask("job", nil, brisk.InQueue("five_second"))); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.PauseQueue(ctx, "five_second"); err != nil {
		t.Fatal(err)
	}
	src := NewBrokerSource(in)
	s, err := src.Sample(ctx, "five_second")
	if err != nil || !s.Paused || s.Pending != 50 {
		t.Fatalf("sample of the paused queue: %+v, %v; want Paused with its 50 pending", s, err)
	}
	// A sample of a paused queue far over its SLA, with tasks arriving.
	fake := &fakeSource{s: Sample{Queue: "q", Paused: true, Pending: 5000, Latency: time.Minute, SLA: 5 * time.Second,
		ArrivalRate: 100, HandlerTime: 100 * time.Millisecond}}
	act := &fakeActuator{}
	ctl, err := NewController(ControllerConfig{Queue: "q", Policy: &SLA{Bounds: Bounds{Min: 1, Max: 20}}, Source: fake,
		Actuator: act, Initial: 2, Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ctl.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Desired > 2 || len(act.applied) > 0 && act.applied[0] > 2 {
		t.Errorf("decision on a paused queue with a backlog: %d -> %d (%s), want no rise", d.Current, d.Desired, d.Reason)
	}
	if !strings.Contains(d.Reason, "paused: its 5000 pending tasks are not counted") || d.Sample.Pending != 5000 || !d.Sample.Paused {
		t.Errorf("decision %+v: want the paused backlog reported apart", d)
	}
	// Resumed, the same backlog is demand again.
	fake.set(Sample{Queue: "q", Pending: 5000, Latency: time.Minute, SLA: 5 * time.Second, ArrivalRate: 100,
		HandlerTime: 100 * time.Millisecond}, nil)
	if d, _ := ctl.Step(ctx); d.Desired <= 2 {
		t.Errorf("decision once resumed: %d -> %d (%s), want a rise", d.Current, d.Desired, d.Reason)
	}
}

// TestMissingQueue checks the rule for a queue that does not exist: the source says so
// with ErrQueueNotFound (not "task not found"), and the controller keeps the count and
// says the queue does not exist yet.
func TestMissingQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := sqliteBroker(t)
	src := NewBrokerSource(brisk.NewInspector(b))
	_, err := src.Sample(ctx, "nosuch")
	if !errors.Is(err, brisk.ErrQueueNotFound) || strings.Contains(err.Error(), "task") || !strings.Contains(err.Error(), `queue "nosuch" does not exist`) {
		t.Fatalf("sample of a missing queue: %v, want ErrQueueNotFound saying the queue does not exist", err)
	}
	ctl, err := NewController(ControllerConfig{Queue: "nosuch", Source: src, Actuator: &fakeActuator{}, Initial: 3})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ctl.Step(ctx)
	if !errors.Is(err, brisk.ErrQueueNotFound) || !errors.Is(d.Err, brisk.ErrQueueNotFound) || d.Desired != 3 ||
		!strings.Contains(d.Reason, "does not exist (yet), count kept") {
		t.Errorf("decision on a missing queue: %+v, %v", d, err)
	}
}

// TestEffectiveSLA checks which SLA the sla policy plans for: its Target, else the queue's,
// else DefaultSLA.
func TestEffectiveSLA(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		target, declared, want time.Duration
	}{
		{0, 0, DefaultSLA},
		{0, 5 * time.Second, 5 * time.Second},
		{time.Minute, 5 * time.Second, time.Minute},
	} {
		if got := (&SLA{Target: c.target}).EffectiveSLA(c.declared); got != c.want {
			t.Errorf("SLA{Target: %s}.EffectiveSLA(%s) = %s, want %s", c.target, c.declared, got, c.want)
		}
	}
}

// sqliteBroker opens a fresh embedded broker, closed when the test ends.
func sqliteBroker(t *testing.T) brisk.Broker {
	t.Helper()
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
