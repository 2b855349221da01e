// Package brisktype holds the types that brisk's user API, its brokers and its tools share:
// a task as stored, a queue's figures, a worker's record, and the states of a task. It
// imports nothing of brisk, so that every other package can use it; applications normally
// reach these types through the brisk package, which re-exports them.
package brisktype

import "time"

// State is the state of a stored task.
type State string

// The states a task moves through. Scheduled and pending differ only by time: a task in
// StateScheduled becomes pending when its ReadyAt passes, without any write.
const (
	// StateScheduled: ReadyAt is in the future (a delayed task, or a retry waiting for its
	// next attempt).
	StateScheduled State = "scheduled"
	// StatePending: ready, waiting for a worker.
	StatePending State = "pending"
	// StateRunning: reserved by a worker, under a lease.
	StateRunning State = "running"
	// StateDead: given up (attempts spent, or a handler said not to retry); kept until
	// retried or deleted.
	StateDead State = "dead"
	// StateCancelled: cancelled by a person or a program before it finished (pending,
	// scheduled or running at the time); kept until deleted, never retried. Only brokers
	// that can cancel tasks (broker.Canceler) store it.
	StateCancelled State = "cancelled"
	// StateCompleted: its handler succeeded and the task is kept for the retention of its
	// queue or its own (see TaskInfo.Retention), with its result, until ExpiresAt. A task
	// completed without a retention is removed at once and never seen in this state. Only
	// brokers that keep results (broker.Retainer) store it.
	StateCompleted State = "completed"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateScheduled, StatePending, StateRunning, StateDead, StateCancelled, StateCompleted:
		return true
	}
	return false
}

// TaskInfo is a stored task as an inspector lists it.
type TaskInfo struct {
	// ID is unique in the store and never changes (brisk uses time-ordered UUIDs unless
	// the enqueuer gives one).
	ID string
	// Queue the task belongs to.
	Queue string
	// Type names the handler that runs the task.
	Type string
	// Payload is passed to the handler as is.
	Payload []byte
	// Headers are string metadata carried with the task from the enqueue to its handler
	// (trace context, a tenant, the enqueuing request's ID); nil when none.
	Headers map[string]string
	// State is the task's state when it was read.
	State State
	// Attempt counts the deliveries so far: 0 before the first, 1 while the first runs.
	Attempt int
	// MaxAttempts is how many deliveries the task may have before it is dead.
	MaxAttempts int
	// Timeout bounds one run of the handler; 0 means the worker's default.
	Timeout time.Duration
	// EnqueuedAt is when the task was first enqueued.
	EnqueuedAt time.Time
	// ReadyAt is when the task becomes (or became) ready to run: EnqueuedAt, a delayed time,
	// or the time of the next retry. Queue latency and pickup latency are measured from it.
	ReadyAt time.Time
	// StartedAt is when the current or last attempt was reserved (zero before the first).
	StartedAt time.Time
	// LeaseUntil is when the current reservation expires unless the worker extends it
	// (running tasks only; zero where the broker does not know it).
	LeaseUntil time.Time
	// LastError is the error of the last failed attempt ("" if none).
	LastError string
	// FailedAt is when the last attempt failed (zero if none).
	FailedAt time.Time
	// Retention is how long the task is kept once it has completed or been cancelled, with
	// its result; 0 means its queue's retention (QueueInfo.Retention). Only brokers that
	// keep results (broker.Retainer) take a task that sets it: brisk's client refuses it
	// for the others.
	Retention time.Duration
	// FinishedAt is when the task completed or was cancelled (zero before).
	FinishedAt time.Time
	// ExpiresAt is when a completed or cancelled task kept for a retention is removed
	// (zero when it is not kept for a retention).
	ExpiresAt time.Time
	// Result is what the handler of a completed task stored (brisk.SetResult); nil when
	// none.
	Result []byte
	// Progress is what the handler last reported (brisk.ReportProgress) while it ran; nil
	// when it reported none. It is kept when the task completes.
	Progress *Progress
}

// Duration is how long the last attempt of a completed task ran: FinishedAt − StartedAt
// (0 when either is unknown).
func (t *TaskInfo) Duration() time.Duration {
	if t.FinishedAt.IsZero() || t.StartedAt.IsZero() {
		return 0
	}
	return max(t.FinishedAt.Sub(t.StartedAt), 0)
}

// MaxProgressMessage bounds Progress.Message in bytes.
const MaxProgressMessage = 200

// Progress is how far a running task has come, as its handler reports it.
type Progress struct {
	// Percent is between 0 and 100.
	Percent float64
	// Message says what the handler is doing, at most MaxProgressMessage bytes ("" for
	// none).
	Message string
	// At is when it was reported.
	At time.Time
}

// QueueInfo describes one queue at one moment.
type QueueInfo struct {
	Name string
	// SLA is the queue latency the queue should stay at or below (0 if none is declared).
	SLA time.Duration
	// Counts by state. Scheduled includes tasks waiting for a retry.
	Pending, Scheduled, Running, Dead int64
	// Cancelled counts the cancelled tasks kept (0 where the broker cannot cancel tasks).
	Cancelled int64
	// Retained counts the completed tasks kept for a retention (0 where the broker does not
	// keep results). Pending, the queue latency and Reserve never include them.
	Retained int64
	// Retention is how long the queue keeps its completed and cancelled tasks (0: none,
	// completed tasks are removed at once and cancelled ones kept until deleted), unless a
	// task sets its own.
	Retention time.Duration
	// OldestReadyAt is the smallest ReadyAt among pending tasks (zero when none is pending).
	OldestReadyAt time.Time
	// Latency is the queue latency at the time of the read: now − OldestReadyAt, or 0.
	Latency time.Duration
	// Completed and Failed count acks and failed attempts since the queue was created
	// (counters, for rates; 0 where the broker cannot keep them).
	Completed, Failed int64
	// Paused reports a paused queue: workers take none of its tasks until it is resumed.
	Paused bool
	// Notes says which figures are not exact at the time of the read, where they come from
	// and how old they may be (for example "running: this process only (management API
	// off)"). Empty when every figure is exact, as for brokers that keep the whole task
	// state machine.
	Notes []string
	// LatencySource says how Latency was measured, for brokers that watch another
	// system's queues and cannot always know when a message became ready: "" for brokers
	// that store ReadyAt (brisk's own), else a word the broker documents, such as
	// "enqueued_at", "published_at", "eta", "timestamp" or "first_seen" (an estimate).
	LatencySource string
}

// QueueSample is one queue's latency and counters at one moment, as the dashboard samples
// them for its latency chart and its rates.
type QueueSample struct {
	Queue string
	// At is when the sample was taken. A store keeps it to the millisecond.
	At time.Time
	// Latency is the queue latency at At.
	Latency time.Duration
	// Completed and Failed are the queue's counters at At (QueueInfo).
	Completed, Failed int64
}

// WorkerInfo is a worker's last heartbeat.
type WorkerInfo struct {
	ID          string
	Host        string
	PID         int
	Queues      []string
	Concurrency int
	Busy        int
	StartedAt   time.Time
	LastSeen    time.Time
	Version     string
}

// Limit caps how fast and how many tasks of a queue (Type "") or of one task type within
// a queue are reserved, by every worker and process together. The broker keeps it and
// applies it when workers reserve tasks.
type Limit struct {
	Queue string
	// Type is a task type of Queue, or "" for the whole queue. A type's limit applies
	// within its queue only.
	Type string
	// Rate tasks per Per may start (a token bucket refilled continuously), at most Burst
	// at once after an idle time; Rate 0 means no rate limit. Burst 0 means Rate.
	Rate  int
	Per   time.Duration
	Burst int
	// MaxRunning caps the tasks running at once (under unexpired leases) across every
	// worker and process; 0 means no cap.
	MaxRunning int
}
