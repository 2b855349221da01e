package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shortTrace writes a five-minute trace with a burst, small enough for -race.
func shortTrace(t *testing.T, body string) string {
	t.Helper()
	return writeFile(t, "trace.csv", body)
}

const shortTraceBody = "# second,arrivals_per_second\n0,20\n60,200\n150,20\n300,0\n"

func TestSimulateJSON(t *testing.T) {
	t.Parallel()
	path := shortTrace(t, shortTraceBody)
	out := ok(t, "simulate", "--trace-file", path, "--json", "--seed", "3", "--slots", "8")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	want := []string{"policy", "params", "within_sla", "p95_latency_s", "p99_latency_s", "worker_seconds", "actions", "slots", "work_seconds"}
	policies := map[string]bool{}
	defaults := 0
	for _, r := range rows {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		if d, isDefault := r["default"]; isDefault {
			defaults++
			if d != true || r["policy"] != "sla" {
				t.Errorf("default row %v", r)
			}
			keys = slices.DeleteFunc(keys, func(k string) bool { return k == "default" })
		}
		slices.Sort(keys)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(keys, w) {
			t.Fatalf("keys %v, want %v", keys, w)
		}
		if _, isObj := r["params"].(map[string]any); !isObj {
			t.Errorf("params %v is not an object", r["params"])
		}
		if r["slots"] != 8.0 {
			t.Errorf("slots %v", r["slots"])
		}
		if ws := r["within_sla"].(float64); ws < 0 || ws > 1 {
			t.Errorf("within_sla %v", ws)
		}
		policies[r["policy"].(string)] = true
	}
	if defaults != 1 {
		t.Errorf("%d default rows, want 1", defaults)
	}
	for _, p := range []string{"sla", "threshold", "queue_length", "cpu", "fixed"} {
		if !policies[p] {
			t.Errorf("no %s row", p)
		}
	}
	if again := ok(t, "simulate", "--json", "--trace-file", path, "--seed", "3", "--slots", "8"); again != out {
		t.Error("same seed, different output")
	}
}

func TestSimulateTableAndPlot(t *testing.T) {
	t.Parallel()
	path := shortTrace(t, shortTraceBody)
	plot := filepath.Join(t.TempDir(), "p.svg")
	out := ok(t, "simulate", "--trace-file", path, "--plot", plot, "--startup", "0", "--sla", "10")
	for _, s := range []string{"POLICY", "sla *", "threshold", "queue_length", "cpu", "fixed", "SLA 10s, start-up none"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<polyline") != 10 {
		t.Errorf("plot: %d polylines (want 2 panels × 5 policies)\n%.300s", strings.Count(string(svg), "<polyline"), svg)
	}
}

func TestSimulateErrors(t *testing.T) {
	t.Parallel()
	good := shortTrace(t, shortTraceBody)
	bad := shortTrace(t, "0,10\n60,20\n90;30\n")
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{2, []string{"simulate"}, "give one of --trace NAME or --trace-file FILE"},
		{2, []string{"simulate", "--trace", "burst", "--trace-file", good}, "give one of"},
		{2, []string{"simulate", "--trace", "flat"}, `unknown trace "flat"`},
		{2, []string{"simulate", "--trace", "burst", "--sla", "0"}, "--sla 0"},
		{2, []string{"simulate", "--trace", "burst", "--startup", "-1"}, "--startup -1"},
		{2, []string{"simulate", "--trace", "burst", "--slots", "0"}, "--slots 0"},
		{2, []string{"simulate", "--trace", "burst", "--seed", "x"}, "invalid value"},
		{2, []string{"simulate", "--trace", "burst", "extra"}, `unexpected argument "extra"`},
		{1, []string{"simulate", "--trace-file", bad}, `line 3: want "second,arrivals_per_second"`},
		{1, []string{"simulate", "--trace-file", filepath.Join(t.TempDir(), "none.csv")}, "no such file"},
	} {
		if msg := fails(t, tc.code, tc.args...); !strings.Contains(msg, tc.want) {
			t.Errorf("brisk %s: %q, want %q", strings.Join(tc.args, " "), msg, tc.want)
		}
	}
	if out := ok(t, "simulate", "--help"); !strings.Contains(out, "Usage: brisk simulate") || !strings.Contains(out, "--trace-file FILE") {
		t.Errorf("help:\n%s", out)
	}
	if out := ok(t, "--help"); !strings.Contains(out, "simulate") {
		t.Errorf("brisk --help lacks simulate:\n%s", out)
	}
}
