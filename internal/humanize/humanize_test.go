package humanize

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	t.Parallel()
	cases := map[time.Duration]string{
		0: "0s", 12 * time.Millisecond: "12ms", 1234 * time.Millisecond: "1.2s",
		65 * time.Second: "1m5s", 5 * time.Second: "5s", time.Minute: "1m", 2 * time.Hour: "2h",
		-5 * time.Second: "-5s",
	}
	for d, want := range cases {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}
