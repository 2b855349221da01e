package broker

import (
	"fmt"
	"time"
)

// DefaultMaxPayload is the payload limit brokers apply unless configured otherwise (1 MiB).
const DefaultMaxPayload = 1 << 20

// maxNameLen bounds queue and type names so that every engine can store them as keys.
const maxNameLen = 128

// ValidateQueueName checks that name is 1–128 characters of ASCII letters, digits and
// "_-.:".
func ValidateQueueName(name string) error {
	if err := validName(name, false); err != nil {
		return fmt.Errorf("%w: queue name %q: %s", ErrInvalid, name, err.Error())
	}
	return nil
}

// ValidateTypeName checks that name is 1–128 characters of ASCII letters, digits and
// "_-.:/".
func ValidateTypeName(name string) error {
	if err := validName(name, true); err != nil {
		return fmt.Errorf("%w: task type %q: %s", ErrInvalid, name, err.Error())
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
	return validName(p, false)
}

type nameError string

func (e nameError) Error() string { return string(e) }

func validName(name string, slash bool) error {
	if name == "" {
		return nameError("must not be empty")
	}
	if len(name) > maxNameLen {
		return nameError(fmt.Sprintf("longer than %d bytes", maxNameLen))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == ':':
		case c == '/' && slash:
		default:
			return nameError(fmt.Sprintf("character %q not allowed (use letters, digits, _ - . :)", c))
		}
	}
	return nil
}

// ValidateTasks checks a batch for Enqueue against maxPayload (DefaultMaxPayload when ≤ 0):
// names, IDs (non-empty, unique within the batch), attempts, times and payload size.
// Brokers call it before they store anything.
func ValidateTasks(tasks []*Task, maxPayload int) error {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if len(tasks) == 0 {
		return fmt.Errorf("%w: no tasks to enqueue", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(tasks))
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
