package dashboard

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		latency, sla time.Duration
		want         string
	}{
		{0, 0, "none"},
		{time.Hour, 0, "none"},
		{0, 5 * time.Second, "ok"},
		{4 * time.Second, 5 * time.Second, "ok"}, // exactly 80%
		{4001 * time.Millisecond, 5 * time.Second, "warn"},
		{5 * time.Second, 5 * time.Second, "warn"}, // at the SLA is within it
		{5001 * time.Millisecond, 5 * time.Second, "over"},
	} {
		if got, _ := status(brisk.QueueInfo{Latency: c.latency, SLA: c.sla}); got != c.want {
			t.Errorf("latency %s, SLA %s: %s, want %s", c.latency, c.sla, got, c.want)
		}
	}
}

func TestSamplerRatesAndWindow(t *testing.T) {
	t.Parallel()
	s := newSampler(nil, time.Second, time.Hour, nil)
	t0 := time.Now().Add(-2 * time.Hour)
	s.record(t0, []brisk.QueueInfo{{Name: "q", Completed: 0}, {Name: "gone"}})
	s.record(t0.Add(90*time.Minute), []brisk.QueueInfo{{Name: "q", Completed: 100, Failed: 10}})
	if n := len(s.series("q")); n != 1 {
		t.Errorf("kept %d samples older than the hour, want only the last", n-1)
	}
	if s.series("gone") != nil {
		t.Errorf("a queue that no longer exists keeps its history")
	}
	now := t0.Add(92 * time.Minute) // two minutes after the sample
	c, f, ok := s.rates(brisk.QueueInfo{Name: "q", Completed: 160, Failed: 14}, now, 5*time.Minute)
	if !ok || math.Abs(c-30) > 1e-9 || math.Abs(f-2) > 1e-9 {
		t.Errorf("rates = %v, %v, %v; want 30/min, 2/min", c, f, ok)
	}
	if _, _, ok := s.rates(brisk.QueueInfo{Name: "q"}, now, 5*time.Minute); ok {
		t.Errorf("counters that went backwards (queue recreated) gave a rate")
	}
	if _, _, ok := s.rates(brisk.QueueInfo{Name: "q"}, now.Add(time.Hour), 5*time.Minute); ok {
		t.Errorf("a rate from a sample outside the window")
	}
}

func TestLatencyChart(t *testing.T) {
	t.Parallel()
	now := time.Now()
	svg := string(latencyChart([]sample{{at: now.Add(-2 * time.Hour)}, {at: now.Add(-time.Minute), latency: 2 * time.Second},
		{at: now, latency: 3 * time.Second}}, 5*time.Second, nil, now, time.Hour))
	for _, want := range []string{`<svg`, `class="sla"`, `SLA 5s`, `<polyline class="latency" points="`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	if strings.Count(strings.SplitN(strings.SplitN(svg, `points="`, 2)[1], `"`, 2)[0], ",") != 2 {
		t.Errorf("the sample older than the window is drawn:\n%s", svg)
	}
	if svg := string(latencyChart(nil, 0, nil, now, time.Hour)); !strings.Contains(svg, "no samples yet") || strings.Contains(svg, `class="sla"`) {
		t.Errorf("empty chart:\n%s", svg)
	}
}

func TestLatencyChartDecisions(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ds := []decision{
		{Time: now.Add(-2 * time.Hour), Queue: "q", Current: 1, Desired: 9, Reason: "too old"},
		{Time: now.Add(-10 * time.Minute), Queue: "q", Current: 1, Desired: 4, Reason: "latency <b>9s</b> over target"},
	}
	svg := string(latencyChart([]sample{{at: now, latency: time.Second}}, 5*time.Second, ds, now, time.Hour))
	for _, want := range []string{`class="decision-tick"`, `>4</text>`, `1 → 4: latency &lt;b&gt;9s&lt;/b&gt; over target</title>`, `autoscaler decisions`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "too old") || strings.Contains(svg, "<b>") {
		t.Errorf("chart draws a decision older than the window or unescaped text:\n%s", svg)
	}
	if svg := string(latencyChart(nil, 0, ds[:1], now, time.Hour)); strings.Contains(svg, "autoscaler decisions") {
		t.Errorf("legend without decisions in the window:\n%s", svg)
	}
}

func TestSamplerDecisions(t *testing.T) {
	t.Parallel()
	s := newSampler(nil, time.Second, time.Hour, nil)
	now := time.Now()
	a := decision{Time: now.Add(-90 * time.Minute), Queue: "q", Desired: 1}
	b := decision{Time: now.Add(-time.Minute), Queue: "q", Desired: 2}
	c := decision{Time: now.Add(-30 * time.Second), Queue: "r", Desired: 3}
	s.recordDecisions(now, []decision{a, b, c})
	s.recordDecisions(now, []decision{b, c}) // the autoscaler serves its last N again
	d := decision{Time: now, Queue: "q", Desired: 5}
	s.recordDecisions(now, []decision{d, b})
	if got := s.decisionsOf("q"); len(got) != 2 || got[0].Desired != 2 || got[1].Desired != 5 {
		t.Errorf("q: %+v, want the decisions of the hour once each, oldest first", got)
	}
	if got := s.decisionsOf("r"); len(got) != 1 {
		t.Errorf("r: %+v", got)
	}
	s.recordDecisions(now.Add(2*time.Hour), nil)
	if got := s.decisionsOf("q"); len(got) != 0 {
		t.Errorf("kept decisions older than the hour: %+v", got)
	}
}

// TestLocalPath checks the redirect targets of the forms: only clean absolute paths of
// this site, never something a browser would read as another host.
func TestLocalPath(t *testing.T) {
	t.Parallel()
	const def = "/default"
	for next, want := range map[string]string{
		"/queues/q?state=dead": "/queues/q?state=dead",
		"/":                    "/",
		"/queues/my%20q":       "/queues/my%20q",
		"":                     def,
		"queues":               def,
		"//evil.example":       def,
		"/\\evil.example":      def,
		"/\t/evil.example":     def, // browsers drop tabs and newlines: //evil.example
		"/\n/evil.example":     def,
		"/\r/evil.example":     def,
		"\t//evil.example":     def,
		"/%09/evil.example":    def,
		"/a/../..//evil":       def,
		"/./evil":              def,
		"https://evil.example": def,
		"/queues\\..\\x":       def,
		"/q#frag":              def,
	} {
		if got := localPath(next, def); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}
