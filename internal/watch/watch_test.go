package watch

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

func TestArrivalsFirstSeen(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var a Arrivals
	a.Observe(at(0), 3)  // 3 already there when watching began
	a.Observe(at(1), 3)  // nothing new: ignored
	a.Observe(at(2), 5)  // messages 4 and 5 arrived in (0 s, 2 s]
	a.Observe(at(3), 9)  // 6 to 9 in (2 s, 3 s]
	a.Observe(at(4), 10) // 10 in (3 s, 4 s]
	for _, tc := range []struct {
		k    int64
		want int
		ok   bool
	}{{1, 0, true}, {3, 0, true}, {4, 2, true}, {5, 2, true}, {6, 3, true}, {10, 4, true}, {11, 0, false}} {
		got, ok := a.FirstSeen(tc.k)
		if ok != tc.ok || (ok && !got.Equal(at(tc.want))) {
			t.Errorf("FirstSeen(%d) = %v %v, want %v %v", tc.k, got, ok, at(tc.want), tc.ok)
		}
	}
	// A counter that went back (the watched system reset it) starts the history again.
	a.Observe(at(5), 2)
	if got, ok := a.FirstSeen(1); !ok || !got.Equal(at(5)) {
		t.Errorf("after a reset: %v %v", got, ok)
	}
}

func TestSLAs(t *testing.T) {
	t.Parallel()
	q, _ := url.ParseQuery("sla=emails:5s,reports:10m&sla=x:1h")
	got, err := SLAs(q)
	if err != nil || got["emails"] != 5*time.Second || got["reports"] != 10*time.Minute || got["x"] != time.Hour {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"sla=emails", "sla=:5s", "sla=a:0s", "sla=a:soon"} {
		q, _ := url.ParseQuery(bad)
		if _, err := SLAs(q); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestReadOnlyRefuses(t *testing.T) {
	t.Parallel()
	r := ReadOnly{Name: "x+redis"}
	err := r.Enqueue(t.Context(), nil)
	if !errors.Is(err, broker.ErrUnsupported) || !errors.Is(err, broker.ErrInvalid) {
		t.Fatalf("%v", err)
	}
	if (r.Capabilities() != broker.Capabilities{}) {
		t.Fatal("capabilities declared")
	}
}
