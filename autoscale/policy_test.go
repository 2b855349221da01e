package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestNewPolicyErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		b      Bounds
		params map[string]float64
		want   string
	}{
		{"sla", Bounds{Min: 5, Max: 2}, nil, "min 5 is above max 2"},
		{"sla", Bounds{Min: -1, Max: 2}, nil, "min -1 is negative"},
		{"sla", Bounds{Min: 0, Max: -3}, nil, "max -3 is below 1"},
		{"magic", Bounds{}, nil, `unknown policy "magic"`},
		{"threshold", Bounds{}, map[string]float64{"bogus": 1}, `no parameter "bogus"`},
		{"threshold", Bounds{}, map[string]float64{"upper": 1, "lower": 5}, "lower 5s is above upper 1s"},
		{"cpu", Bounds{}, map[string]float64{"target": 1.5}, "target 1.5 is not in (0, 1]"},
		{"sla", Bounds{}, map[string]float64{"utilisation": 2}, "utilisation 2 is not in (0, 1]"},
		{"sla", Bounds{}, map[string]float64{"margin": -1}, "not a non-negative number"},
	} {
		_, err := NewPolicy(tc.name, tc.b, tc.params)
		if err == nil || !errors.Is(err, brisk.ErrInvalid) || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), "autoscale: ") {
			t.Errorf("NewPolicy(%q, %+v, %v) = %v, want an ErrInvalid containing %q", tc.name, tc.b, tc.params, err, tc.want)
		}
	}
	for _, name := range append(PolicyNames, "") {
		if _, err := NewPolicy(name, Bounds{}, nil); err != nil {
			t.Errorf("NewPolicy(%q) with defaults: %v", name, err)
		}
	}
}

// TestBounds feeds every policy extreme samples and checks that no decision leaves
// [min, max].
func TestBounds(t *testing.T) {
	t.Parallel()
	b := Bounds{Min: 2, Max: 6}
	samples := []Sample{
		{},
		{Latency: time.Hour, Pending: 1e9, ArrivalRate: 1e6, HandlerTime: time.Second, Slots: 1, CPU: 1, SLA: time.Second},
		{Latency: 0, Pending: 0, ArrivalRate: 0, Slots: 10, CPU: 0},
	}
	for _, name := range PolicyNames {
		for _, n := range []float64{0, 100} {
			params := map[string]float64{}
			if name == "fixed" {
				params["n"] = n
			}
			p, err := NewPolicy(name, b, params)
			if err != nil {
				t.Fatal(err)
			}
			current := 4
			for i := range 50 {
				d := p.Decide(at(10*i), samples[i%len(samples)], current)
				if d.Desired < b.Min || d.Desired > b.Max {
					t.Fatalf("%s: desired %d outside [%d, %d] (%s)", name, d.Desired, b.Min, b.Max, d.Reason)
				}
				if d.Reason == "" || d.Policy != name {
					t.Fatalf("%s: decision without reason or policy: %+v", name, d)
				}
				current = d.Desired
			}
		}
	}
}

func TestThreshold(t *testing.T) {
	t.Parallel()
	p := &Threshold{Bounds: Bounds{Min: 1, Max: 10}, Upper: 10 * time.Second, Lower: time.Second, Step: 3, Window: 30 * time.Second}
	steps := []struct {
		sec     int
		latency time.Duration
		current int
		want    int
	}{
		{0, 20 * time.Second, 1, 4},   // above upper: +step
		{10, 20 * time.Second, 4, 7},  // still above
		{20, 20 * time.Second, 7, 10}, // clamped at max
		{30, 5 * time.Second, 10, 10}, // between: hold
		{40, 0, 10, 10},               // below lower: window starts
		{60, 0, 10, 10},               // 20 s below
		{70, 0, 10, 9},                // 30 s below: -1
		{80, 0, 9, 9},                 // a new window
		{100, 0, 9, 8},                // 30 s later: -1
	}
	for _, s := range steps {
		d := p.Decide(at(s.sec), Sample{Latency: s.latency}, s.current)
		if d.Desired != s.want {
			t.Errorf("t=%d latency=%s current=%d: desired %d, want %d (%s)", s.sec, s.latency, s.current, d.Desired, s.want, d.Reason)
		}
	}
}

func TestQueueLengthAndStabilisation(t *testing.T) {
	t.Parallel()
	p := &QueueLength{PerWorker: 100, Stabilise: 30 * time.Second}
	for _, s := range []struct {
		sec     int
		pending int64
		want    int
	}{
		{0, 250, 3}, {10, 1000, 10}, {20, 0, 10}, {40, 0, 10}, {50, 0, 1}, {60, 101, 2},
	} {
		if d := p.Decide(at(s.sec), Sample{Pending: s.pending}, 5); d.Desired != s.want {
			t.Errorf("t=%d pending=%d: desired %d, want %d (%s)", s.sec, s.pending, d.Desired, s.want, d.Reason)
		}
	}
}

func TestCPUIgnoresIOBoundBacklog(t *testing.T) {
	t.Parallel()
	p := &CPU{Target: 0.7, Stabilise: 0}
	// Every slot busy with IO-bound handlers: 10 × 5% CPU, a long queue behind them.
	d := p.Decide(at(0), Sample{CPU: 0.5, Latency: 5 * time.Minute, Pending: 50000, Slots: 10}, 2)
	if d.Desired > 2 {
		t.Fatalf("cpu scaled up on IO-bound work: %d (%s)", d.Desired, d.Reason)
	}
	p = &CPU{Target: 0.5, Stabilise: 0}
	if d := p.Decide(at(0), Sample{CPU: 0.9}, 4); d.Desired != 8 {
		t.Fatalf("cpu 90%% at target 50%%: %d, want 8 (%s)", d.Desired, d.Reason)
	}
	if d := p.Decide(at(10), Sample{CPU: 0.52}, 4); d.Desired != 4 {
		t.Fatalf("within tolerance: %d, want 4 (%s)", d.Desired, d.Reason)
	}
}

func TestSLA(t *testing.T) {
	t.Parallel()
	base := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10}
	with := func(f func(*Sample)) Sample { s := base; f(&s); return s }
	for _, tc := range []struct {
		name    string
		s       Sample
		current int
		min     int
		max     int
	}{
		{"idle", with(func(s *Sample) {}), 1, 1, 1},
		// 50/s × 0.2 s = 10 busy slots: one worker of 10 slots, latency budget for the rest.
		{"steady 50/s", with(func(s *Sample) { s.ArrivalRate = 50 }), 1, 1, 1},
		// 400/s needs 8 workers to keep up; with one serving, it must recover quickly.
		{"burst", with(func(s *Sample) { s.ArrivalRate = 400; s.Pending = 4000; s.Latency = 9 * time.Second; s.Serving = 1 }), 1, 15, 40},
		// A backlog with nothing arriving still has to start within the SLA.
		{"backlog", with(func(s *Sample) { s.Pending = 30000; s.Latency = 20 * time.Second }), 1, 30, 100},
	} {
		p := &SLA{}
		d := p.Decide(at(0), tc.s, tc.current)
		if d.Desired < tc.min || d.Desired > tc.max {
			t.Errorf("%s: desired %d, want %d..%d (%s)", tc.name, d.Desired, tc.min, tc.max, d.Reason)
		}
	}
}

func TestSLAStepsDownSlowly(t *testing.T) {
	t.Parallel()
	p := &SLA{Stabilise: 60 * time.Second}
	busy := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 400}
	current := 10
	for i := range 5 {
		current = p.Decide(at(10*i), busy, current).Desired
	}
	if current < 8 {
		t.Fatalf("400/s: %d workers", current)
	}
	quiet := busy
	quiet.ArrivalRate = 20
	var seen []int
	for i := 5; i < 100; i++ {
		current = p.Decide(at(10*i), quiet, current).Desired
		seen = append(seen, current)
	}
	if seen[0] < 8 {
		t.Errorf("dropped at once after the load fell: %v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] > seen[i-1] {
			t.Errorf("flapped up while quiet: %v", seen)
		}
	}
	// The insurance against a repeat of the 400/s peak holds ⌈400·(1 − 24/50)·0.02⌉ = 5
	// workers while it is remembered (10 min), then the count falls to what 20/s needs.
	if seen[30] != 5 || seen[len(seen)-1] != 1 {
		t.Errorf("after the burst: %v, want 5 while the peak is remembered, then 1", seen)
	}
}

// TestSLAWaitingRate: a surge that began just before the sample shows in the last
// interval's rate only in part; the tasks waiting (P arrived within the last L seconds)
// give its rate, and recover sizes on it.
func TestSLAWaitingRate(t *testing.T) {
	t.Parallel()
	p := &SLA{}
	quiet := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 30}
	current := 1
	for i := range 4 {
		current = p.Decide(at(10*i), quiet, current).Desired
	}
	// 6 s into a 300/s surge: the interval saw 188/s; 1,500 tasks wait, the oldest 5 s.
	s := quiet
	s.ArrivalRate, s.Pending, s.Latency = 188, 1500, 5*time.Second
	d := p.Decide(at(40), s, current)
	// λw = 300/s: L(30 s) = 5 + 30·(1 − 10/(0.2·300)) = 30 s, within the SLA: recover asks
	// only for the steady count at 300/s, ⌈300·0.2/(10·0.95)⌉ = 7 (it asked for 12 before,
	// to bring the latency back to T within SLA − T).
	if d.Desired != 7 || !strings.HasPrefix(d.Reason, "recover") {
		t.Errorf("desired %d, want 7 from recover (%s)", d.Desired, d.Reason)
	}
	// Had the surge begun a second earlier, the latency would be 31 s when new workers
	// serve: the breach has begun, and recover brings it back under T within SLA − T:
	// 300·(1 + 16/15)·0.02 = 12.4.
	p = &SLA{}
	for i := range 4 {
		p.Decide(at(10*i), quiet, 1)
	}
	s.Pending, s.Latency = 1800, 6*time.Second
	if d := p.Decide(at(40), s, 1); d.Desired != 13 || !strings.HasPrefix(d.Reason, "recover") {
		t.Errorf("breach predicted: desired %d, want 13 from recover (%s)", d.Desired, d.Reason)
	}
}

// TestSLARaisesJustInTime: a latency above the plan T is not by itself a reason to add a
// worker; the count rises when waiting one more interval would let the latency pass the
// reaction level before the workers asked for then serve.
func TestSLARaisesJustInTime(t *testing.T) {
	t.Parallel()
	p := &SLA{}
	// 50/s on one worker of 10 slots (exactly full): the queue does a random walk; here it
	// stands at 20 s with 1,000 tasks waiting. In 40 s it is still about 20 s (no drift),
	// below the reaction level (24 s): hold.
	s := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 50,
		Pending: 1000, Latency: 20 * time.Second, Serving: 1}
	current := 1
	for i := range 10 {
		d := p.Decide(at(10*i), s, current)
		if d.Desired != 1 {
			t.Fatalf("t=%d: desired %d, want 1: the latency stays within the SLA (%s)", 10*i, d.Desired, d.Reason)
		}
	}
	// The same queue at 60/s: in 40 s the latency is 20 + 40·(1 − 50/60) = 26.7 s, past the
	// reaction level, and once that has held over a start-up delay the count rises.
	s.ArrivalRate = 60
	for i := 10; i < 14; i++ {
		current = p.Decide(at(10*i), s, current).Desired
	}
	if current < 2 {
		t.Errorf("60/s on a worker that serves 50/s: %d workers, want more than 1", current)
	}
}

// TestSLABatchRaisesAtOnce: a batch enqueued at once has a young head, so the latency
// predicted for when a new worker serves stays low, but the serving workers need longer
// than the SLA to serve it: the drain term raises the count at the first sample (the
// live test's burst, which once waited 2.4 s for the head to age past the reaction level
// and breached its 4 s SLA).
func TestSLABatchRaisesAtOnce(t *testing.T) {
	t.Parallel()
	p := &SLA{Bounds: Bounds{Min: 1, Max: 4}, Interval: 200 * time.Millisecond, Startup: time.Second,
		Stabilise: 2 * time.Second, Memory: 3 * time.Second}
	s := Sample{SLA: 4 * time.Second, HandlerTime: 50 * time.Millisecond, Slots: 2,
		Pending: 393, Latency: 200 * time.Millisecond, Serving: 1}
	d := p.Decide(t0.Add(200*time.Millisecond), s, 1)
	if d.Desired != 4 {
		t.Errorf("393 tasks enqueued 0.2 s ago, one worker of 2 slots at 50 ms (9.8 s of work, SLA 4 s): desired %d, want 4 at once (%s)", d.Desired, d.Reason)
	}
}

// TestSLASurgeRecommendationsLeaveWithBacklog: the steady recommendations made while a
// backlog waited (the smoothed rate catching up with a surge) go with the backlog; the
// count falls at once to what insure keeps against a repeat.
func TestSLASurgeRecommendationsLeaveWithBacklog(t *testing.T) {
	t.Parallel()
	p := &SLA{}
	quiet := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 30, Serving: 1}
	current := 1
	for i := range 4 {
		current = p.Decide(at(10*i), quiet, current).Desired
	}
	// A minute at 300/s with a growing backlog, then the backlog is served.
	surge := quiet
	surge.ArrivalRate, surge.Pending, surge.Latency = 300, 6000, 20*time.Second
	for i := 4; i < 10; i++ {
		surge.Serving = current
		current = p.Decide(at(10*i), surge, current).Desired
	}
	if current < 7 {
		t.Fatalf("surge of 300/s: %d workers", current)
	}
	quiet.Serving = current
	d := p.Decide(at(100), quiet, current)
	// insure: 300·(1 − 24/50)·0.2/10 = 3.12 → 4; the steady term at 30/s asks for 1.
	if d.Desired != 4 {
		t.Errorf("backlog served: desired %d, want 4 (insure) at once (%s)", d.Desired, d.Reason)
	}
}

// TestSLAInsuresToReactionLevel: the insurance against a repeat of the recent peak keeps
// its latency under the reaction level (SLA·React), not under the plan T, until workers
// asked for when it is seen (up to two samples late) serve; recover answers from there.
func TestSLAInsuresToReactionLevel(t *testing.T) {
	t.Parallel()
	quiet := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 30, Serving: 1}
	// The latency a repeat of 300/s reaches on n workers before new ones serve (50 s).
	grown := func(n int) float64 { return 50 * (1 - float64(n)*10/(0.2*300)) }
	for _, tc := range []struct {
		react float64
		want  int
	}{
		// Reaction level 24 s: 4 workers let a repeat grow to 16.7 s, 3 to 25 s.
		{0.8, 4},
		// Reaction level 15 s (= T): 5 workers (8.3 s); 4 would let it reach 16.7 s.
		{0.5, 5},
	} {
		p := &SLA{React: tc.react}
		current := 1
		for i := range 3 {
			current = p.Decide(at(10*i), quiet, current).Desired
		}
		peak := quiet
		peak.ArrivalRate = 300
		p.Decide(at(30), peak, current)
		var d Decision
		for i := 4; i < 10; i++ {
			d = p.Decide(at(10*i), quiet, current)
		}
		level := 30 * tc.react
		if d.Desired != tc.want || grown(d.Desired) > level || grown(d.Desired-1) <= level {
			t.Errorf("react %v: desired %d after a 300/s peak, want %d (a repeat reaches %.1f s, level %.0f s; %s)",
				tc.react, d.Desired, tc.want, grown(d.Desired), level, d.Reason)
		}
	}
}

// TestSLAReleasesServedBacklog: workers added for a backlog go as soon as the count the
// load needs serves what waits within the plan and the latency is within half of it, not a
// stabilisation window later.
func TestSLAReleasesServedBacklog(t *testing.T) {
	t.Parallel()
	s := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 40}
	run := func(last Sample) (before int, d Decision) {
		p := &SLA{Stabilise: 60 * time.Second, Startup: 30 * time.Second}
		current := 1
		for i := range 6 { // a steady 40/s: one worker
			current = p.Decide(at(10*i), s, current).Desired
		}
		// 6,000 tasks waiting, the oldest for 20 s (300/s): recover, then drain.
		b := s
		b.Pending, b.Latency = 6000, 20*time.Second
		for i := 6; i < 11; i++ {
			current = p.Decide(at(10*i), b, current).Desired
		}
		return current, p.Decide(at(110), last, current)
	}
	served := s
	served.Pending, served.Latency = 20, 500*time.Millisecond
	before, d := run(served)
	if before < 10 {
		t.Fatalf("backlog of 6,000: %d workers", before)
	}
	if d.Desired != 1 {
		t.Errorf("backlog served: desired %d, want 1 at once (%s)", d.Desired, d.Reason)
	}
	// A small backlog, but the latency above half the plan: the drain recommendations of
	// the window still hold the count up.
	late := s
	late.Pending, late.Latency = 600, 10*time.Second
	before, d = run(late)
	if d.Desired < 8 || d.Desired > before {
		t.Errorf("latency 10 s (above T/2): desired %d from %d, want a half step toward 8 at most (%s)", d.Desired, before, d.Reason)
	}
}
