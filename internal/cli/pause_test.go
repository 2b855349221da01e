package cli

import (
	"strings"
	"testing"
)

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	url := setup(t)
	ok(t, "enqueue", "--broker", url, "--queue", "mail", "a")
	ok(t, "enqueue", "--broker", url, "--queue", "other", "a")

	if out := ok(t, "pause", "--broker", url, "--queue", "mail"); out != "paused queue mail\n" {
		t.Errorf("pause: %q", out)
	}
	ok(t, "pause", "--broker", url, "--queue", "mail") // idempotent
	if q := findQueue(t, queuesJSON(t, url), "mail"); q["paused"] != true || q["pending"] != 1.0 {
		t.Errorf("paused queue = %v, want paused with 1 pending", q)
	}
	if q := findQueue(t, queuesJSON(t, url), "other"); q["paused"] != false {
		t.Errorf("other queue = %v, want paused false", q)
	}
	out := ok(t, "queues", "--broker", url)
	var mail, other string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "mail "):
			mail = l
		case strings.HasPrefix(l, "other "):
			other = l
		}
	}
	if !strings.HasSuffix(mail, "PAUSED") || strings.Contains(other, "PAUSED") || !strings.Contains(out, "STATUS") {
		t.Errorf("queues table with a paused queue:\n%s", out)
	}

	// A queue not yet known is created paused.
	ok(t, "pause", "--broker", url, "--queue", "later")
	if q := findQueue(t, queuesJSON(t, url), "later"); q["paused"] != true {
		t.Errorf("queue created by pause = %v", q)
	}

	if out := ok(t, "resume", "--broker", url, "--queue", "mail"); out != "resumed queue mail\n" {
		t.Errorf("resume: %q", out)
	}
	ok(t, "resume", "--broker", url, "--queue", "mail") // idempotent
	if q := findQueue(t, queuesJSON(t, url), "mail"); q["paused"] != false {
		t.Errorf("resumed queue = %v", q)
	}
	if out := ok(t, "queues", "--broker", url); strings.Contains(strings.SplitN(out, "later", 2)[0], "PAUSED") {
		t.Errorf("queues table after resume:\n%s", out)
	}

	// An invalid queue name is a usage error: exit 2, one line.
	if msg := fails(t, 2, "pause", "--broker", url, "--queue", "bad name"); !strings.Contains(msg, "bad name") {
		t.Errorf("pause of an invalid queue: %q", msg)
	}
	fails(t, 2, "resume", "--broker", url, "--queue", "bad name")
}

func TestPauseUsage(t *testing.T) {
	t.Parallel()
	url := setup(t)
	for _, args := range [][]string{
		{"pause", "--broker", url},
		{"resume", "--broker", url},
		{"pause", "--broker", url, "--queue", "q", "extra"},
		{"resume", "--nope"},
	} {
		fails(t, 2, args...)
	}
}
