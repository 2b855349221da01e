package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// Result is the figures of one run of one workload, in the order they were added, printed
// as one JSON object (keys in order) or as a human summary.
type Result struct {
	Figures []Figure
}

// Figure is one measured figure.
type Figure struct {
	Key   string // JSON key
	Label string // label in the summary
	Value any    // string, int, float64, bool or nil (JSON null, "-")
	Unit  string // unit in the summary ("/s", "ms", "s" or "")
}

// Add appends a figure, or replaces the value of the figure with the same key.
func (r *Result) Add(key, label string, val any, unit string) {
	if f, ok := val.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		val = nil // no sample: JSON has no NaN
	}
	for i := range r.Figures {
		if r.Figures[i].Key == key {
			r.Figures[i] = Figure{key, label, val, unit}
			return
		}
	}
	r.Figures = append(r.Figures, Figure{key, label, val, unit})
}

// Get returns the value of the figure key.
func (r *Result) Get(key string) (any, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// AddPercentiles adds picked_up and the p50, p90, p99 and max of sorted samples under keys
// prefix_p50_ms and so on.
func (r *Result) AddPercentiles(prefix, label string, sorted []time.Duration) {
	r.Add("picked_up", "picked up", len(sorted), "")
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"max", 1}} {
		r.Add(prefix+"_"+q.name+"_ms", label+" "+q.name, Percentile(sorted, q.p), "ms")
	}
}

// Map returns the figures by key.
func (r *Result) Map() map[string]any {
	m := make(map[string]any, len(r.Figures))
	for _, f := range r.Figures {
		m[f.Key] = f.Value
	}
	return m
}

// MarshalJSON writes the figures as one object, keys in order.
func (r *Result) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range r.Figures {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.Key)
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("figure %s: %w", f.Key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Print writes the figures as a two-column summary.
func (r *Result) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range r.Figures {
		var v string
		switch x := f.Value.(type) {
		case nil:
			v = "-"
		case float64:
			switch {
			case f.Unit == "/s":
				v = fmt.Sprintf("%.0f", x)
			case x >= 100:
				v = fmt.Sprintf("%.1f", x)
			default:
				v = fmt.Sprintf("%.3g", x)
			}
		case bool:
			v = map[bool]string{true: "yes", false: "no"}[x]
		default:
			v = fmt.Sprint(x)
		}
		if f.Value != nil && f.Unit != "" {
			if f.Unit == "/s" {
				v += "/s"
			} else {
				v += " " + f.Unit
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.Label, v)
	}
	return tw.Flush()
}
