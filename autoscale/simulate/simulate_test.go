package simulate

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuiltinTraces(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		secs      int
		checks    map[int]float64
		min, max  float64
		highCount int // seconds at the high rate, -1: not checked
	}{
		{"steady", 3600, map[int]float64{0: 50, 3599: 50}, 50, 50, -1},
		{"burst", 3600, map[int]float64{1199: 20, 1200: 400, 1799: 400, 1800: 20}, 20, 400, 600},
		{"diurnal", 7200, map[int]float64{}, 5, 150, -1},
		{"spiky", 3600, map[int]float64{}, 30, 300, 20 * 60},
	} {
		tr, err := BuiltinTrace(tc.name, 7)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Seconds != tc.secs || len(tr.Rate) != tc.secs {
			t.Fatalf("%s: %d seconds", tc.name, tr.Seconds)
		}
		lo, hi, high := 1e9, 0.0, 0
		for _, r := range tr.Rate {
			lo, hi = min(lo, r), max(hi, r)
			if r == tc.max {
				high++
			}
		}
		if lo < tc.min-0.01 || hi > tc.max+0.01 || lo > tc.min+0.5 || hi < tc.max-0.5 {
			t.Errorf("%s: rates from %.2f to %.2f, want %v to %v", tc.name, lo, hi, tc.min, tc.max)
		}
		if tc.highCount >= 0 && high != tc.highCount {
			t.Errorf("%s: %d seconds at %v, want %d", tc.name, high, tc.max, tc.highCount)
		}
		for sec, want := range tc.checks {
			if tr.Rate[sec] != want {
				t.Errorf("%s: rate at %d s = %v, want %v", tc.name, sec, tr.Rate[sec], want)
			}
		}
	}
	a, _ := BuiltinTrace("spiky", 1)
	b, _ := BuiltinTrace("spiky", 2)
	if reflect.DeepEqual(a.Rate, b.Rate) {
		t.Error("spiky: seeds 1 and 2 give the same spikes")
	}
	if _, err := BuiltinTrace("flat", 1); err == nil || !strings.Contains(err.Error(), `unknown trace "flat"`) {
		t.Errorf("unknown trace: %v", err)
	}
}

func TestReadTrace(t *testing.T) {
	t.Parallel()
	tr, err := ReadTrace("t.csv", strings.NewReader("# second,rate\n0,10\n\n5, 100\n8,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{10, 10, 10, 10, 10, 100, 100, 100}
	if !reflect.DeepEqual(tr.Rate, want) {
		t.Fatalf("rates %v, want %v", tr.Rate, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"0,10\n5\n", "line 2: want \"second,arrivals_per_second\""},
		{"0,10\nx,3\n", `line 2: second "x" is not a non-negative integer`},
		{"0,10\n3,-1\n", `line 2: rate "-1" is not a number`},
		{"0,10\n3,abc\n", `line 2: rate "abc"`},
		{"# only\n\n5,10\n", "line 3: the first second must be 0"},
		{"0,1\n4,2\n4,3\n", "line 3: second 4 does not follow 4"},
		{"", "has no line"},
	} {
		_, err := ReadTrace("t.csv", strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "simulate: trace t.csv") {
			t.Errorf("ReadTrace(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestSimulationDeterministic checks that one seed gives the same numbers, another seed
// different ones, and that the model behaves: with too few workers latency grows, with
// enough it stays small, and the work done does not depend on the policy.
func TestSimulationDeterministic(t *testing.T) {
	t.Parallel()
	tr, _ := ReadTrace("short", strings.NewReader("0,50\n300,200\n420,50\n600,0\n"))
	cs := []PolicyConfig{{Policy: "sla", Default: true}, {Policy: "threshold", Params: map[string]float64{"upper": 5, "lower": 1, "step": 2, "window": 30}},
		{Policy: "fixed", Params: map[string]float64{"n": 1}}, {Policy: "fixed", Params: map[string]float64{"n": 6}}}
	run := func(seed uint64) []Result {
		rs, err := New(tr, Config{Seed: seed}).RunAll(cs)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	a, b, c := run(1), run(1), run(2)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different results")
	}
	if reflect.DeepEqual(a[0].WorkerSeconds, c[0].WorkerSeconds) && a[0].WorkSeconds == c[0].WorkSeconds {
		t.Fatal("seeds 1 and 2 give the same results")
	}
	one, six := a[2], a[3]
	if one.WithinSLA >= 0.9 || one.P99Latency < 60 {
		t.Errorf("1 worker for 200/s: within %.3f, p99 %.1fs", one.WithinSLA, one.P99Latency)
	}
	if six.WithinSLA != 1 || six.P99Latency > 2 || six.WorkerSeconds != 3600 {
		t.Errorf("6 workers: within %.3f, p99 %.1fs, %v worker-s", six.WithinSLA, six.P99Latency, six.WorkerSeconds)
	}
	if a[0].Actions == 0 || a[0].WithinSLA < six.WithinSLA-0.05 || a[0].WorkerSeconds >= six.WorkerSeconds {
		t.Errorf("sla: %+v", a[0])
	}
}

// TestAcceptance runs the four traces with every configuration and checks the claims of
// docs/autoscaling.md. It takes a few seconds (longer under -race) and is skipped by -short.
func TestAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	t.Parallel()
	traces, configs := TraceNames, Sweep(12)
	if raceEnabled {
		// Ten times slower under the race detector: the burst claim against threshold only.
		traces = []string{"burst"}
		configs = slices.DeleteFunc(configs, func(c PolicyConfig) bool { return c.Policy != "sla" && c.Policy != "threshold" })
		t.Log("race detector on: burst against threshold only; run without -race for all claims")
	}
	for _, name := range traces {
		tr, _ := BuiltinTrace(name, 1)
		start := time.Now()
		rs, err := New(tr, Config{Seed: 1}).RunAll(configs)
		if err != nil {
			t.Fatal(err)
		}
		var def Result
		for _, r := range rs {
			if r.Default {
				def = r
			}
		}
		var beaten []string
		cheapestThreshold := -1.0
		for _, r := range rs {
			if r.Policy == "sla" {
				continue
			}
			if Dominates(r, def) {
				beaten = append(beaten, fmt.Sprintf("%s %s (%.4f, %.0f)", r.Policy, ParamString(r.Params), r.WithinSLA, r.WorkerSeconds))
			}
			if r.Policy == "threshold" && r.WithinSLA >= def.WithinSLA && (cheapestThreshold < 0 || r.WorkerSeconds < cheapestThreshold) {
				cheapestThreshold = r.WorkerSeconds
			}
		}
		t.Logf("%s: default sla within %.4f, %.0f worker-s; %s", name, def.WithinSLA, def.WorkerSeconds, time.Since(start))
		if len(beaten) > 0 {
			t.Errorf("%s: the default sla policy (%.4f, %.0f) is beaten on both figures by %v", name, def.WithinSLA, def.WorkerSeconds, beaten)
		}
		if name == "burst" && cheapestThreshold > 0 && def.WorkerSeconds > 0.8*cheapestThreshold {
			t.Errorf("burst: sla %.0f worker-s, more than 80%% of the cheapest threshold as often within SLA (%.0f)", def.WorkerSeconds, cheapestThreshold)
		}
	}
}
