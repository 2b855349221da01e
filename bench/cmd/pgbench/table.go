package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

type row struct{ key, field, label string }

func rows(res results) []row {
	out := []row{
		{"W1", "tasks", "W1 tasks drained"},
		{"W1", "enqueue_per_s", "W1 enqueue, one call each (/s)"},
		{"W1", "enqueue_batch_per_s", "W1 enqueue, batches of 1,000 (/s)"},
		{"W1", "drain_per_s", "W1 drain, 1 worker of 8 (/s)"},
		{"W1", "table_mib_after", "W1 tables after the drain (MiB)"},
		{"W1", "index_mib_after", "W1 indexes after the drain (MiB)"},
	}
	var w2 []string
	for k := range res {
		if strings.HasPrefix(k, "W2@") {
			w2 = append(w2, k)
		}
	}
	slices.SortFunc(w2, func(a, b string) int { return len(a) - len(b) }) // W2@500 before W2@2000
	for _, k := range w2 {
		out = append(out,
			row{k, "achieved_rate", k + " achieved rate (/s)"},
			row{k, "pickup_p50_ms", k + " pickup p50 (ms)"},
			row{k, "pickup_p99_ms", k + " pickup p99 (ms)"},
			row{k, "pickup_max_ms", k + " pickup max (ms)"},
			row{k, "kept_up", k + " kept up"})
	}
	return append(out,
		row{"W3", "pickup_p50_ms", "W3 idle pickup p50 (ms)"},
		row{"W3", "pickup_p99_ms", "W3 idle pickup p99 (ms)"},
		row{"W4", "lost", "W4 lost"},
		row{"W4", "duplicates", "W4 run twice"},
		row{"W4", "interrupted", "W4 interrupted by the kill"},
		row{"W4", "redelivery_s", "W4 kill → last interrupted task restarted (s)"},
		row{"W5", "late_p50_ms", "W5 lateness p50 (ms)"},
		row{"W5", "late_p99_ms", "W5 lateness p99 (ms)"},
		row{"W5", "late_max_ms", "W5 lateness max (ms)"},
	)
}

// printTable prints one Markdown table: a column per system and, for each River
// configuration, the ratio brisk ÷ it.
func printTable(w io.Writer, cfg *config, res results) {
	systems := cfg.systems
	var peers []string
	for _, s := range systems {
		if s != "brisk" && slices.Contains(systems, "brisk") {
			peers = append(peers, s)
		}
	}
	head := append([]string{"figure"}, systems...)
	for _, p := range peers {
		head = append(head, "brisk ÷ "+p)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, r := range rows(res) {
		m := res[r.key]
		if m == nil {
			continue
		}
		cells := []string{r.label}
		for _, s := range systems {
			cells = append(cells, cell(m[s], r.field))
		}
		for _, p := range peers {
			cells = append(cells, ratio(m["brisk"], m[p], r.field))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

func value(m map[string]any, field string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m[field]
	return v, ok
}

func cell(m map[string]any, field string) string {
	v, ok := value(m, field)
	if !ok {
		return "–"
	}
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "–"
		}
		if x >= 100 {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.2f", x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprint(v)
}

func ratio(a, b map[string]any, field string) string {
	x, ok1 := value(a, field)
	y, ok2 := value(b, field)
	fx, okx := x.(float64)
	fy, oky := y.(float64)
	if !ok1 || !ok2 || !okx || !oky || fy == 0 || math.IsNaN(fx) || math.IsNaN(fy) {
		return ""
	}
	return fmt.Sprintf("%.2f×", fx/fy)
}

func printGrowth(w io.Writer, cfg *config, g []minute) {
	fmt.Fprintf(w, "\nGROWTH: brisk, W2 at %g tasks/s (%d producers) for %d minutes, achieved %.0f/s\n\n",
		cfg.growthRate, cfg.growthProducers, cfg.growthMinutes, g[0].AchievedRate)
	fmt.Fprintln(w, "| minute | picked up | pickup p50 (ms) | p99 (ms) | max (ms) | tables (MiB) | indexes (MiB) | dead tuples in tasks | not done |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, m := range g {
		fmt.Fprintf(w, "| %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d |\n",
			m.Minute, m.PickedUp, m.PickupP50Ms, m.PickupP99Ms, m.PickupMaxMs, m.TableMiB, m.IndexMiB, m.DeadTuples, m.Remaining)
	}
}
