package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
)

// NewPrefix returns a fresh random store prefix starting with name; clean deletes what was
// stored under it when t ends.
func NewPrefix(t testing.TB, name string, clean func(prefix string)) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := name + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { clean(prefix) })
	return prefix
}

// WithPrefix returns the broker URL raw with its prefix query parameter set.
func WithPrefix(t testing.TB, raw, prefix string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	return u.String()
}
