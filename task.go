package brisk

import (
	"encoding/json"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/briskq/brisk/broker"
)

// DefaultQueue is the queue of a task enqueued without one.
const DefaultQueue = "default"

// DefaultMaxAttempts is how many times a task runs before it is dead, unless set.
const DefaultMaxAttempts = 25

// MaxScheduleAhead bounds how far ahead of its enqueue a task may be scheduled, by Delay
// or ProcessAt (and by the CLI's --delay and --process-at, and the HTTP API's
// delay_seconds): 3650 days, about ten years. Enqueue refuses a task scheduled later with
// an error wrapping ErrInvalid that states ScheduleAheadRule.
const MaxScheduleAhead = broker.MaxReadyAhead

// ScheduleAheadRule states MaxScheduleAhead in the words of errors and docs.
const ScheduleAheadRule = broker.ReadyAheadRule

// QueueNameRule says which queue names are valid ("five_second", "emails.v2"), in the
// words of errors and docs. The dashboard and HTTP API name a queue in a path, where "."
// and ".." would name another one.
const QueueNameRule = broker.QueueNameRule

// TypeNameRule says which task type names are valid: those of queues, and "/".
const TypeNameRule = broker.TypeNameRule

// ValidateQueueName reports whether name is a valid queue name (QueueNameRule), with an
// error wrapping ErrInvalid that names the first character not allowed.
func ValidateQueueName(name string) error { return broker.ValidateQueueName(name) }

// ValidateTypeName reports whether name is a valid task type (TypeNameRule).
func ValidateTypeName(name string) error { return broker.ValidateTypeName(name) }

// Task is one unit of background work: a type that names its handler, a payload, and
// options that say where and when it runs. Build one with NewTask or NewJSONTask and pass
// it to Client.Enqueue. A handler receives the stored task with its delivery fields (ID,
// Attempt, EnqueuedAt, ReadyAt) filled in.
type Task struct {
	// Type names the handler (for example "email.send"): see TypeNameRule.
	Type string
	// Payload is passed to the handler as is; JSON by convention.
	Payload []byte
	// Headers are string metadata carried with the task to its handler: trace context, a
	// tenant, the ID of the request that enqueued it. At most MaxHeaders, MaxHeaderBytes in
	// all; names are printable ASCII without space, ':' and '='.
	Headers map[string]string

	// Queue the task goes to. Default DefaultQueue.
	Queue string
	// ProcessAt, when set, is the earliest time the task may run. A time in the past
	// means now (the task is ready at its enqueue); one more than MaxScheduleAhead ahead
	// is refused.
	ProcessAt time.Time
	// Delay, when ProcessAt is zero, postpones the task by that much from the enqueue, at
	// most MaxScheduleAhead.
	Delay time.Duration
	// MaxAttempts is how many times the task may run before it is dead. Default
	// DefaultMaxAttempts; 1 means no retry.
	MaxAttempts int
	// Timeout bounds one run of the handler: its context is cancelled after it. Default
	// the worker's DefaultTimeout.
	Timeout time.Duration

	// UniqueFor, when positive, makes the task unique in its queue for that long from its
	// enqueue (see Unique): a second enqueue with the same key within it is refused with
	// the first task's ID and ErrDuplicate.
	UniqueFor time.Duration
	// UniqueKey is the uniqueness key; default the type and a hash of the payload.
	UniqueKey string

	// Retention, when positive, keeps the task for that long once it has completed (or
	// been cancelled), with its result (SetResult), whatever its queue's retention (see
	// Retain). At most MaxScheduleAhead.
	Retention time.Duration

	// ID is set by Enqueue (a time-ordered UUID) unless given.
	ID string
	// Attempt is 1 on the first run, 2 on the first retry, and so on (set on delivery).
	Attempt int
	// EnqueuedAt is when the task was enqueued (set on delivery).
	EnqueuedAt time.Time
	// ReadyAt is when the task became ready for this attempt (set on delivery); pickup
	// latency is the time from it to the start of the handler.
	ReadyAt time.Time
	// LastError is the error of the previous attempt, if any (set on delivery).
	LastError string
}

// Option sets one option of a task.
type Option func(*Task)

// InQueue puts the task into queue q.
func InQueue(q string) Option { return func(t *Task) { t.Queue = q } }

// Delay postpones the task by d from the time it is enqueued.
func Delay(d time.Duration) Option { return func(t *Task) { t.Delay = d } }

// ProcessAt makes the task ready at time at.
func ProcessAt(at time.Time) Option { return func(t *Task) { t.ProcessAt = at } }

// MaxAttempts sets how many times the task may run before it is dead.
func MaxAttempts(n int) Option { return func(t *Task) { t.MaxAttempts = n } }

// Timeout bounds one run of the task's handler.
func Timeout(d time.Duration) Option { return func(t *Task) { t.Timeout = d } }

// WithID sets the task's ID (for idempotent enqueues: a second enqueue of the same ID
// fails with an error wrapping ErrDuplicate while the first is stored in the same queue; an
// ID is unique within its queue, and some brokers, SQLite among them, refuse it in any
// queue).
func WithID(id string) Option { return func(t *Task) { t.ID = id } }

// WithHeader sets the task's header name to value (see Task.Headers).
func WithHeader(name, value string) Option {
	return func(t *Task) {
		h := make(map[string]string, len(t.Headers)+1)
		maps.Copy(h, t.Headers) // never write into a map the caller may share
		h[name] = value
		t.Headers = h
	}
}

// ValidateHeaders reports whether headers are valid (see Task.Headers), with an error
// wrapping ErrInvalid that names the first bad one.
func ValidateHeaders(h map[string]string) error { return broker.ValidateHeaders(h) }

// Limits of a task's headers.
const (
	MaxHeaders     = broker.MaxHeaders
	MaxHeaderBytes = broker.MaxHeaderBytes
)

// NewTask returns a task of type typ with payload and options.
func NewTask(typ string, payload []byte, opts ...Option) *Task {
	t := &Task{Type: typ, Payload: payload}
	for _, o := range opts {
		o(t)
	}
	return t
}

// NewJSONTask returns a task whose payload is v encoded as JSON.
func NewJSONTask(typ string, v any, opts ...Option) (*Task, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, wrapf(err, "encode payload of %q", typ)
	}
	return NewTask(typ, b, opts...), nil
}

// DecodePayload decodes the task's JSON payload into v.
func (t *Task) DecodePayload(v any) error {
	if err := json.Unmarshal(t.Payload, v); err != nil {
		return wrapf(err, "decode payload of task %s (%s)", t.ID, t.Type)
	}
	return nil
}

// newID returns a fresh time-ordered task ID.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.NewString()
	}
	return id.String()
}
