package broker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// TestQueueNames checks the one rule for queue names: what it accepts and refuses, and
// that a refusal names the offending character as the user typed it (a rune, not a byte).
func TestQueueNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"q", "five_second", "Az09_-.:x", "a.b", "...", ".hidden", strings.Repeat("q", 128)} {
		if err := broker.ValidateQueueName(name); err != nil {
			t.Errorf("ValidateQueueName(%q) = %v, want nil", name, err)
		}
	}
	for name, mention := range map[string]string{
		"":                       "empty",
		".":                      `"." and ".."`,
		"..":                     `"." and ".."`,
		"café":                   `'é'`,
		"a/b":                    `'/'`,
		"tab\there":              `'\t'`,
		"bad\xffbyte":            `'\xff'`,
		strings.Repeat("q", 129): "longer than 128",
	} {
		err := broker.ValidateQueueName(name)
		if !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("ValidateQueueName(%q) = %v, want an error wrapping ErrInvalid", name, err)
			continue
		}
		if !strings.Contains(err.Error(), mention) {
			t.Errorf("ValidateQueueName(%q) = %q, want it to mention %s", name, err, mention)
		}
		if name != "" && len(name) < 100 && !strings.Contains(err.Error(), broker.QueueNameRule) {
			t.Errorf("ValidateQueueName(%q) = %q, want it to state the rule %q", name, err, broker.QueueNameRule)
		}
	}
}

// TestTypeNames checks that type names follow the queue-name rule plus "/".
func TestTypeNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"email.send", "email/send.v2:Az09_-"} {
		if err := broker.ValidateTypeName(name); err != nil {
			t.Errorf("ValidateTypeName(%q) = %v, want nil", name, err)
		}
	}
	err := broker.ValidateTypeName("naïve")
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), `'ï'`) || !strings.Contains(err.Error(), broker.TypeNameRule) {
		t.Errorf(`ValidateTypeName("naïve") = %v, want ErrInvalid naming 'ï' and the rule %q`, err, broker.TypeNameRule)
	}
}

// TestReadyAhead checks the one bound on how far ahead a task may be scheduled.
func TestReadyAhead(t *testing.T) {
	t.Parallel()
	now := time.Now()
	task := func(ahead time.Duration) *broker.Task {
		return &broker.Task{TaskInfo: brisktype.TaskInfo{ID: "x", Queue: "q", Type: "t", MaxAttempts: 1, EnqueuedAt: now, ReadyAt: now.Add(ahead)}}
	}
	if err := broker.ValidateTasks([]*broker.Task{task(broker.MaxReadyAhead)}, 0); err != nil {
		t.Errorf("a task ready exactly MaxReadyAhead ahead: %v", err)
	}
	err := broker.ValidateTasks([]*broker.Task{task(broker.MaxReadyAhead + time.Second)}, 0)
	if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), broker.ReadyAheadRule) {
		t.Errorf("a task ready past MaxReadyAhead: %v, want ErrInvalid stating %q", err, broker.ReadyAheadRule)
	}
	if err := broker.ValidateDelay(broker.MaxReadyAhead); err != nil {
		t.Errorf("ValidateDelay(MaxReadyAhead) = %v", err)
	}
	if err := broker.ValidateDelay(broker.MaxReadyAhead + 1); !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), broker.ReadyAheadRule) {
		t.Errorf("ValidateDelay past the bound = %v", err)
	}
}

// TestRedactURL checks that a broker URL's password never reaches an error, even when the
// URL cannot be parsed.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:secret@localhost:6379/0":  "redis://:xxxxx@localhost:6379/0",
		"amqp://guest:guest@host:5672/":     "amqp://guest:xxxxx@host:5672/",
		"sqlite:///tmp/b.db":                "sqlite:///tmp/b.db",
		"sqlite://":                         "sqlite://",
		"redis://u:p%zz@host/0":             "redis://u:xxxxx@host/0",
		"redis://u:pa/ss@host/0":            "redis://u:xxxxx@host/0",
		"redis://host:6379/0?password=s3cr": "redis://host:6379/0?password=xxxxx",
		"%zz":                               "%zz",
	} {
		if got := broker.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenErrors checks the errors of broker.Open: an unparsable URL names its real
// problem without the password, and no error quotes a password.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for raw, mention := range map[string]string{
		"redis://u:p%zz@host/0":    `invalid URL escape "%zz"`,
		"nosuch://u:secret@host/0": `unknown broker url scheme: "nosuch"`,
		"u:secret@host":            "unknown broker url scheme",
		"//u:secret@host:1/x":      "has no scheme",
	} {
		_, err := broker.Open(t.Context(), raw)
		if err == nil {
			t.Errorf("Open(%q) succeeded", raw)
			continue
		}
		if !strings.Contains(err.Error(), mention) {
			t.Errorf("Open(%q) = %q, want it to mention %s", raw, err, mention)
		}
		for _, secret := range []string{"secret", "p%zz"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open(%q) = %q: the password is in the error", raw, err)
			}
		}
	}
}
