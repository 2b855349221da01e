package broker

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
)

// URLParam is one query parameter of a broker URL.
type URLParam struct {
	Name   string
	Values []string // at least one
}

// URLParams parses the raw query of a broker URL into its parameters, sorted by name so
// that errors come in a stable order. A parameter given more than once is an error unless
// it is named in repeatable. The error does not wrap ErrInvalid: the broker wraps it with
// the URL it came from.
func URLParams(rawQuery string, repeatable ...string) ([]URLParam, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	params := make([]URLParam, 0, len(q))
	for name, vals := range q {
		if len(vals) != 1 && !slices.Contains(repeatable, name) {
			return nil, fmt.Errorf("parameter %s is given %d times", name, len(vals))
		}
		params = append(params, URLParam{Name: name, Values: vals})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
	return params, nil
}
