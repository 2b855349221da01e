// Package benchflag parses the list flags that the harnesses of bench/ share: systems,
// workloads and rates.
package benchflag

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// List splits a comma-separated list, dropping blanks.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// OneOf splits a comma-separated list of what (such as "system") and checks that every item
// is one of known.
func OneOf(s, what string, known []string) ([]string, error) {
	items := List(s)
	for _, it := range items {
		if !slices.Contains(known, it) {
			return nil, fmt.Errorf("unknown %s %q (want %s)", what, it, strings.Join(known, ", "))
		}
	}
	return items, nil
}

// Rates parses a comma-separated list of positive rates per second.
func Rates(s string) ([]float64, error) {
	var out []float64
	for _, f := range List(s) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}
