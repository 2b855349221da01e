package broker

import (
	"context"
	"fmt"
	"time"
)

// ScheduleStore is implemented by brokers that keep periodic schedules, so that every
// process (the CLI, the dashboard, the scheduler's leader) sees and manages the same
// ones. The broker stores Spec as given: brisk parses it.
type ScheduleStore interface {
	// PutSchedule stores s under s.Name, replacing the definition of a schedule of that
	// name but keeping its CreatedAt, LastRun and LastTaskID.
	PutSchedule(ctx context.Context, s Schedule) error
	// DeleteSchedule removes the schedule name; an unknown name is an error wrapping
	// ErrNotFound.
	DeleteSchedule(ctx context.Context, name string) error
	// Schedules lists every schedule, sorted by name.
	Schedules(ctx context.Context) ([]Schedule, error)
	// MarkScheduleRun records that the tick at of schedule name was enqueued as taskID,
	// only while l is the current leadership (same holder and token, unexpired): else it
	// returns an error wrapping ErrLeaseLost and changes nothing. A tick before the
	// recorded LastRun leaves it as it is. An unknown schedule is ErrNotFound.
	MarkScheduleRun(ctx context.Context, l Leadership, name string, at time.Time, taskID string) error
}

// Schedule is a periodic task as stored.
type Schedule struct {
	// Name identifies the schedule (as a queue name: letters, digits and _-.:).
	Name string
	// Spec says when it ticks (a cron expression or an interval; see brisk.ParseSpec).
	Spec string
	// The task enqueued at each tick.
	Queue, Type string
	Payload     []byte
	MaxAttempts int
	Timeout     time.Duration
	// CatchUp: a tick missed while no scheduler ran is enqueued once when one starts,
	// instead of being skipped.
	CatchUp bool
	// CreatedAt is when the schedule was first stored; UpdatedAt when it was last put.
	CreatedAt, UpdatedAt time.Time
	// LastRun is the time of the last tick enqueued (zero before the first), LastTaskID
	// that task's ID.
	LastRun    time.Time
	LastTaskID string
}

// maxSpecLen bounds a schedule's spec.
const maxSpecLen = 256

// ValidateSchedule checks what a broker stores of a schedule: names, spec length,
// attempts, timeout and payload size (against maxPayload, DefaultMaxPayload when ≤ 0).
func ValidateSchedule(s Schedule, maxPayload int) error {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if err := validName(s.Name, false); err != nil {
		return fmt.Errorf("%w: schedule name %q: %s", ErrInvalid, s.Name, err.Error())
	}
	if s.Spec == "" || len(s.Spec) > maxSpecLen {
		return fmt.Errorf("%w: schedule %q: spec must be 1–%d bytes", ErrInvalid, s.Name, maxSpecLen)
	}
	if err := ValidateQueueName(s.Queue); err != nil {
		return fmt.Errorf("schedule %q: %w", s.Name, err)
	}
	if err := ValidateTypeName(s.Type); err != nil {
		return fmt.Errorf("schedule %q: %w", s.Name, err)
	}
	if len(s.Payload) > maxPayload {
		return fmt.Errorf("%w: schedule %q: payload is %d bytes, limit %d", ErrPayloadTooLarge, s.Name, len(s.Payload), maxPayload)
	}
	if s.MaxAttempts < 1 {
		return fmt.Errorf("%w: schedule %q: max attempts %d, must be at least 1", ErrInvalid, s.Name, s.MaxAttempts)
	}
	if s.Timeout < 0 {
		return fmt.Errorf("%w: schedule %q: negative timeout", ErrInvalid, s.Name)
	}
	return nil
}
