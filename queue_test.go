package brisk

import (
	"testing"
	"time"
)

func TestSLAFromName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		want time.Duration
		ok   bool
	}{
		{"five_second", 5 * time.Second, true},
		{"thirty_seconds", 30 * time.Second, true},
		{"one_minute", time.Minute, true},
		{"forty_five_seconds", 45 * time.Second, true},
		{"10_minutes", 10 * time.Minute, true},
		{"within_5_seconds", 5 * time.Second, true},
		{"default", 0, false},
		{"email_second", 0, false},
		{"zero_s", 0, false},
		{"0_seconds", 0, false},
	}
	for _, c := range cases {
		got, ok := SLAFromName(c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("SLAFromName(%q) = %s, %v; want %s, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
