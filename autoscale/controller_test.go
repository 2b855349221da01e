package autoscale

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://
)

type fakeSource struct {
	mu  sync.Mutex
	s   Sample
	err error
}

func (f *fakeSource) Sample(context.Context, string) (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s, f.err
}

func (f *fakeSource) set(s Sample, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s, f.err = s, err
}

type fakeActuator struct {
	mu      sync.Mutex
	applied []int
}

func (a *fakeActuator) Apply(_ context.Context, d Decision) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = append(a.applied, d.Desired)
	return nil
}

func TestControllerConfigErrors(t *testing.T) {
	t.Parallel()
	src, act := &fakeSource{}, &fakeActuator{}
	for _, tc := range []struct {
		cfg  ControllerConfig
		want string
	}{
		{ControllerConfig{Source: src, Actuator: act}, "no queue"},
		{ControllerConfig{Queue: "q", Actuator: act}, "no source"},
		{ControllerConfig{Queue: "q", Source: src}, "no actuator"},
		{ControllerConfig{Queue: "q", Source: src, Actuator: act, Interval: -time.Second}, "interval -1s is not positive"},
	} {
		_, err := NewController(tc.cfg)
		if !errors.Is(err, brisk.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewController(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestControllerFreezesOnOutage(t *testing.T) {
	t.Parallel()
	src, act := &fakeSource{}, &fakeActuator{}
	c, err := NewController(ControllerConfig{Queue: "q", Source: src, Actuator: act, Initial: 4, History: 3,
		Policy: &QueueLength{Bounds: Bounds{Min: 0, Max: 20}, PerWorker: 10}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src.set(Sample{Pending: 75}, nil)
	if d, err := c.Step(ctx); err != nil || d.Desired != 8 {
		t.Fatalf("step: %+v, %v", d, err)
	}
	// The broker is down: the sample fails and the count stays, although a policy that saw
	// an empty queue would have gone to 0.
	src.set(Sample{}, brisk.ErrUnavailable)
	for range 3 {
		d, err := c.Step(ctx)
		if !errors.Is(err, brisk.ErrUnavailable) || d.Desired != 8 || !strings.Contains(d.Reason, "frozen") {
			t.Fatalf("outage: %+v, %v", d, err)
		}
	}
	if c.Current() != 8 || len(act.applied) != 1 {
		t.Fatalf("current %d, applied %v", c.Current(), act.applied)
	}
	if h := c.Decisions(); len(h) != 3 || !strings.Contains(h[2].Reason, "frozen") {
		t.Fatalf("history %+v", h)
	}
}

func TestControllerStartStop(t *testing.T) {
	t.Parallel()
	src, act := &fakeSource{s: Sample{Pending: 30}}, &fakeActuator{}
	c, err := NewController(ControllerConfig{Queue: "q", Source: src, Actuator: act, Interval: 5 * time.Millisecond,
		Policy: &QueueLength{PerWorker: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Current() != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Stop()
	c.Stop()
	if c.Current() != 3 {
		t.Fatalf("current %d, want 3", c.Current())
	}
}

func TestBrokerSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := sqliteBroker(t)
	src := NewBrokerSource(brisk.NewInspector(b))
	clock := time.Now()
	src.now = func() time.Time { return clock }
	if _, err := src.Sample(ctx, "five_second"); !errors.Is(err, brisk.ErrQueueNotFound) {
		t.Fatalf("unknown queue: %v", err)
	}
	c := brisk.NewClient(b)
	enqueue := func(n int) {
		for range n {
			task := brisk.NewTask("job", nil, brisk.InQueue("five_second"))
			if _, err := c.Enqueue(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue(5)
	s, err := src.Sample(ctx, "five_second")
	if err != nil || s.Pending != 5 || s.SLA != 5*time.Second || s.ArrivalRate != 0 {
		t.Fatalf("first sample %+v, %v", s, err)
	}
	enqueue(20)
	clock = clock.Add(10 * time.Second)
	s, err = src.Sample(ctx, "five_second")
	if err != nil || s.Pending != 25 || s.ArrivalRate != 2 || s.Latency <= 0 {
		t.Fatalf("second sample %+v, %v", s, err)
	}
}
