package broker

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// DefaultMaxPayload is the payload limit brokers apply unless configured otherwise (1 MiB).
const DefaultMaxPayload = 1 << 20

// maxNameLen bounds queue and type names so that every engine can store them as keys.
const maxNameLen = 128

// QueueNameRule says which queue names are valid, in the words that help texts, errors and
// docs/api.md use. A queue name is also a path segment of the dashboard and the HTTP API
// (/queues/{queue}), where "." and ".." would name another path.
const QueueNameRule = `1–128 ASCII letters, digits and _ - . : (but not "." or "..")`

// TypeNameRule says which task type names are valid: the characters of queue names and "/".
const TypeNameRule = `1–128 ASCII letters, digits and _ - . : /`

// ValidateQueueName checks name against QueueNameRule. The error names the first
// character that is not allowed, as a character (a rune), not as one of its bytes.
func ValidateQueueName(name string) error {
	if err := validName(name, false); err != nil {
		return fmt.Errorf("%w: queue name %q: %s: a queue name is %s", ErrInvalid, name, err.Error(), QueueNameRule)
	}
	return nil
}

// ValidateTypeName checks name against TypeNameRule.
func ValidateTypeName(name string) error {
	if err := validName(name, true); err != nil {
		return fmt.Errorf("%w: task type %q: %s: a task type is %s", ErrInvalid, name, err.Error(), TypeNameRule)
	}
	return nil
}

// maxPrefixLen bounds a broker's namespace prefix.
const maxPrefixLen = 64

// ValidatePrefix checks a broker's namespace prefix (Redis key prefix, RabbitMQ stream
// prefix): what a queue name allows, at most 64 bytes, so that it can never open or close a
// Redis hash tag. The error does not wrap ErrInvalid; the broker wraps it with the option
// or URL parameter it came from.
func ValidatePrefix(p string) error {
	if len(p) > maxPrefixLen {
		return nameError(fmt.Sprintf("longer than %d bytes", maxPrefixLen))
	}
	if err := validName(p, false); err != nil {
		return nameError(err.Error() + ": a prefix is " + QueueNameRule)
	}
	return nil
}

type nameError string

func (e nameError) Error() string { return string(e) }

// validName checks name against the rule of queue names, or of type names (slash).
func validName(name string, slash bool) error {
	if name == "" {
		return nameError("must not be empty")
	}
	if len(name) > maxNameLen {
		return nameError(fmt.Sprintf("longer than %d bytes", maxNameLen))
	}
	if !slash && (name == "." || name == "..") {
		return nameError(`"." and ".." are not allowed`)
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '_' || r == '-' || r == '.' || r == ':':
		case r == '/' && slash:
		case r == utf8.RuneError && size == 1:
			return nameError(fmt.Sprintf("byte '\\x%02x' (not UTF-8) is not allowed", name[i]))
		default:
			return nameError(fmt.Sprintf("character %q is not allowed", r))
		}
		i += size
	}
	return nil
}

// MaxReadyAhead bounds how far past its enqueue a task may be scheduled (Delay, ProcessAt,
// the CLI's --delay and --process-at, the HTTP API's delay_seconds): 3650 days, about ten
// years. Every engine stores such a time exactly, and nothing later is a real schedule.
const MaxReadyAhead = 3650 * 24 * time.Hour

// ReadyAheadRule states MaxReadyAhead in the words errors and docs use.
const ReadyAheadRule = "a task may be scheduled at most 3650 days (about 10 years) ahead"

// ValidateDelay checks that a task delayed by d from its enqueue keeps ReadyAheadRule.
func ValidateDelay(d time.Duration) error {
	if d > MaxReadyAhead {
		return fmt.Errorf("%w: ready %s after the enqueue: %s", ErrInvalid, d.Round(time.Second), ReadyAheadRule)
	}
	return nil
}

// Limits of a task's headers.
const (
	// MaxHeaders is how many headers a task may carry.
	MaxHeaders = 64
	// MaxHeaderBytes bounds the sum of the lengths of a task's header names and values.
	MaxHeaderBytes = 16 << 10
)

// ValidateHeaders checks a task's headers: at most MaxHeaders, names of 1–128 printable
// ASCII characters other than space and ':' or '=' (so that a name reads the same in a
// header line and on a command line), values of valid UTF-8, MaxHeaderBytes in all.
func ValidateHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("%w: %d headers, at most %d", ErrInvalid, len(h), MaxHeaders)
	}
	size := 0
	for k, v := range h {
		if k == "" || len(k) > 128 {
			return fmt.Errorf("%w: header name %q must be 1–128 characters", ErrInvalid, k)
		}
		for _, r := range k {
			if r <= ' ' || r > '~' || r == ':' || r == '=' {
				return fmt.Errorf("%w: header name %q: character %q is not allowed (printable ASCII but space, ':' and '=')", ErrInvalid, k, r)
			}
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: header %q: value is not valid UTF-8", ErrInvalid, k)
		}
		size += len(k) + len(v)
	}
	if size > MaxHeaderBytes {
		return fmt.Errorf("%w: headers take %d bytes, limit %d", ErrInvalid, size, MaxHeaderBytes)
	}
	return nil
}

// ValidateTasks checks a batch for Enqueue against maxPayload (DefaultMaxPayload when ≤ 0):
// names, IDs (non-empty, unique within the batch), attempts, times, payload size, retention and
// uniqueness keys (two tasks of one queue with one key give a *DuplicateError).
// Brokers call it before they store anything.
func ValidateTasks(tasks []*Task, maxPayload int) error {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if len(tasks) == 0 {
		return fmt.Errorf("%w: no tasks to enqueue", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(tasks))
	keys := map[[2]string]string{} // queue and unique key → the first task's ID
	for i, t := range tasks {
		if t == nil {
			return fmt.Errorf("%w: task %d is nil", ErrInvalid, i)
		}
		if t.ID == "" || len(t.ID) > maxNameLen {
			return fmt.Errorf("%w: task %d: id must be 1–%d bytes", ErrInvalid, i, maxNameLen)
		}
		if _, dup := seen[t.ID]; dup {
			return fmt.Errorf("%w: id=%q appears twice in one batch", ErrDuplicate, t.ID)
		}
		seen[t.ID] = struct{}{}
		if err := ValidateQueueName(t.Queue); err != nil {
			return err
		}
		if err := ValidateTypeName(t.Type); err != nil {
			return err
		}
		if len(t.Payload) > maxPayload {
			return fmt.Errorf("%w: task id=%q type=%q payload is %d bytes, limit %d",
				ErrPayloadTooLarge, t.ID, t.Type, len(t.Payload), maxPayload)
		}
		if t.MaxAttempts < 1 {
			return fmt.Errorf("%w: task id=%q: max attempts %d, must be at least 1", ErrInvalid, t.ID, t.MaxAttempts)
		}
		if t.Timeout < 0 {
			return fmt.Errorf("%w: task id=%q: negative timeout", ErrInvalid, t.ID)
		}
		if t.EnqueuedAt.IsZero() || t.ReadyAt.IsZero() {
			return fmt.Errorf("%w: task id=%q: enqueued and ready times must be set", ErrInvalid, t.ID)
		}
		if err := ValidateHeaders(t.Headers); err != nil {
			return fmt.Errorf("task id=%q: %w", t.ID, err)
		}
		if err := validateUnique(t); err != nil {
			return err
		}
		if err := ValidateRetention(t.Retention); err != nil {
			return fmt.Errorf("task id=%q: %w", t.ID, err)
		}
		if t.Unique.Key != "" {
			k := [2]string{t.Queue, t.Unique.Key}
			if first, dup := keys[k]; dup {
				return &DuplicateError{Queue: t.Queue, ID: first, Key: t.Unique.Key}
			}
			keys[k] = t.ID
		}
		if err := ValidateDelay(t.ReadyAt.Sub(t.EnqueuedAt)); err != nil {
			return fmt.Errorf("task id=%q: %w", t.ID, err)
		}
	}
	return nil
}

// ValidateReserve checks reserve parameters.
func ValidateReserve(p ReserveParams) error {
	if len(p.Queues) == 0 {
		return fmt.Errorf("%w: reserve needs at least one queue", ErrInvalid)
	}
	for _, q := range p.Queues {
		if err := ValidateQueueName(q.Name); err != nil {
			return err
		}
		if q.Max < 0 {
			return fmt.Errorf("%w: queue %q: negative reserve limit", ErrInvalid, q.Name)
		}
	}
	if p.Limit < 1 {
		return fmt.Errorf("%w: reserve limit %d, must be at least 1", ErrInvalid, p.Limit)
	}
	if p.Lease < time.Millisecond {
		return fmt.Errorf("%w: lease %s, must be at least 1ms", ErrInvalid, p.Lease)
	}
	return nil
}

// ValidateList checks list parameters: a valid queue name, a known state, and no negative
// limit or offset.
func ValidateList(p ListParams) error {
	if err := ValidateQueueName(p.Queue); err != nil {
		return err
	}
	if !p.State.Valid() {
		return fmt.Errorf("%w: tasks of queue %q: unknown state %q", ErrInvalid, p.Queue, p.State)
	}
	if p.Limit < 0 || p.Offset < 0 {
		return fmt.Errorf("%w: tasks of queue %q: negative limit or offset", ErrInvalid, p.Queue)
	}
	return nil
}
