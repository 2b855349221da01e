// Package broker defines the contract between brisk and the engines that store its tasks.
//
// Most code should use the brisk package instead. This package is for people who write a
// broker (a new storage engine) and for brisk itself. Every broker runs the conformance
// suite in package brokertest unchanged.
package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/briskq/brisk/brisktype"
)

// State is the state of a stored task (brisktype.State).
type State = brisktype.State

// The states a task moves through (see brisktype).
const (
	StateScheduled = brisktype.StateScheduled
	StatePending   = brisktype.StatePending
	StateRunning   = brisktype.StateRunning
	StateDead      = brisktype.StateDead
	StateCancelled = brisktype.StateCancelled
)

// Task is one stored unit of work as a broker sees it: what an inspector sees (the
// embedded TaskInfo, whose State, Attempt, StartedAt, LeaseUntil, LastError and FailedAt
// are filled in by reads and ignored by Enqueue) and the lease of the current reservation.
type Task struct {
	brisktype.TaskInfo
	// Lease identifies the current reservation; Reserve sets it, and Extend, Ack, Retry,
	// Kill and Release must be given it back. It never leaves brisk's worker.
	Lease Lease
	// Unique, when its Key is set, makes Enqueue refuse the task while another task of the
	// same queue holds that key (see Unique); only brokers that declare
	// Capabilities.Unique accept it.
	Unique Unique
}

// Lease names one reservation of one task. A broker refuses changes made under a lease
// that is no longer current (it expired and the task was reserved again) with ErrLeaseLost,
// so a worker that lost its task cannot ack or retry another worker's delivery.
type Lease struct {
	TaskID string
	Queue  string
	Token  string
}

// QueueLimit is one queue a worker wants tasks from, with how many it may take from it
// in this call.
type QueueLimit struct {
	Name string
	// Max is how many tasks at most this call may take from this queue. 0 means no limit
	// beyond ReserveParams.Limit.
	Max int
}

// ReserveParams says which tasks a worker wants.
type ReserveParams struct {
	// Queues in priority order: the broker takes ready tasks from the first queue before it
	// looks at the second, and so on. Within a queue tasks come oldest ReadyAt first, and in
	// enqueue order among equal ReadyAt (FIFO).
	Queues []QueueLimit
	// Limit is how many tasks at most to reserve in this call (at least 1).
	Limit int
	// Lease is how long the tasks belong to the caller unless extended (at least 1 ms).
	Lease time.Duration
	// WorkerID identifies the caller (for the dashboard and for reaping a dead worker's
	// tasks); may be empty.
	WorkerID string
}

// QueueConfig is a queue's declared settings.
type QueueConfig struct {
	Name string
	// SLA is the queue latency the queue should stay at or below; 0 means none declared.
	SLA time.Duration
}

// QueueStats describes one queue at one moment (brisktype.QueueInfo).
type QueueStats = brisktype.QueueInfo

// ListParams selects tasks to list.
type ListParams struct {
	// Queue to list; required.
	Queue string
	// State to list; required.
	State State
	// Limit is the page size (default 100).
	Limit int
	// Offset skips that many tasks of the listing order (oldest ReadyAt first).
	Offset int
}

// WorkerInfo is a worker's heartbeat (brisktype.WorkerInfo).
type WorkerInfo = brisktype.WorkerInfo

// Broker stores tasks and hands them to workers. Every method is safe for concurrent use
// by many goroutines, and several Broker values (in several processes) may share one store.
// After Close, every method returns an error wrapping ErrClosed.
type Broker interface {
	// Enqueue stores tasks atomically: all of them or, with an error, none. Each task must
	// carry an ID that its queue does not hold, a valid Queue and Type, MaxAttempts ≥ 1,
	// non-zero EnqueuedAt and ReadyAt, and a payload within the broker's limit; otherwise
	// Enqueue returns an error wrapping ErrInvalid or ErrPayloadTooLarge and stores nothing.
	// It wakes waiting workers (see Wait). Enqueue of an ID that its queue holds returns
	// ErrDuplicate where the broker declares UniqueIDs (a broker without it refuses only a
	// duplicate within the batch, and a task enqueued twice runs twice). An ID is unique within its queue; whether an ID held by another queue is
	// refused too is the broker's to document (SQLite refuses it: its IDs are unique in the
	// whole store; Redis does not, so that a queue's scripts touch only that queue's keys,
	// which Redis Cluster needs). brisk's own IDs (UUIDv7) never repeat anywhere.
	Enqueue(ctx context.Context, tasks []*Task) error

	// Reserve leases up to p.Limit ready tasks (pending, or running with an expired lease)
	// to the caller, following p.Queues in order, and returns them with State running,
	// Attempt incremented, StartedAt = now and a fresh Lease. A task whose lease expired
	// on its last attempt is moved to dead instead of being returned. An empty result with
	// a nil error means nothing is ready. No two callers ever hold the same task under
	// unexpired leases.
	Reserve(ctx context.Context, p ReserveParams) ([]*Task, error)

	// Extend moves the lease expiry of each given lease to now + d. It returns the leases
	// that are no longer held (the task was acked, reserved again by someone else, or gone);
	// the others are extended.
	Extend(ctx context.Context, leases []Lease, d time.Duration) (lost []Lease, err error)

	// Ack marks tasks done (removes them from the store and counts them completed). A lease
	// no longer held is skipped and reported in an error wrapping ErrLeaseLost, after the
	// others are acked.
	Ack(ctx context.Context, leases []Lease) error

	// Retry ends the attempt under l with errMsg and schedules the task to be ready at at.
	// It returns ErrLeaseLost when l is not held.
	Retry(ctx context.Context, l Lease, at time.Time, errMsg string) error

	// Kill ends the attempt under l with errMsg and moves the task to dead, where it is kept
	// until retried or deleted. It returns ErrLeaseLost when l is not held.
	Kill(ctx context.Context, l Lease, errMsg string) error

	// Release hands tasks back unrun: each becomes pending at once with its ReadyAt
	// unchanged and the attempt it was reserved with given back. Leases not held are skipped.
	Release(ctx context.Context, leases []Lease) error

	// Wait blocks until a task may be ready in one of queues, max has passed, or ctx is
	// done, whichever is first. It returns early when a task is enqueued or released
	// (immediately within one process, within 50 ms across processes where the engine
	// allows), and when the earliest scheduled task or lease expiry in those queues falls
	// due. Spurious returns are allowed; callers Reserve after every return. It returns
	// ctx.Err() when ctx is done and ErrClosed after Close.
	Wait(ctx context.Context, queues []string, max time.Duration) error

	// DeclareQueue creates the queue if needed and stores its settings (idempotent).
	// Enqueue creates unknown queues with no SLA.
	DeclareQueue(ctx context.Context, q QueueConfig) error

	// Stats returns the statistics of every known queue, sorted by name, without scanning
	// the tasks of any state but scheduled.
	Stats(ctx context.Context) ([]QueueStats, error)

	// Tasks lists the tasks of one queue in one state, oldest ReadyAt first. Payloads are
	// included.
	Tasks(ctx context.Context, p ListParams) ([]*Task, error)

	// Task returns one task by ID, or an error wrapping ErrNotFound. Where two queues hold the
	// same ID (only possible with IDs given by the enqueuer), it returns one of them.
	Task(ctx context.Context, id string) (*Task, error)

	// RetryDead makes dead tasks of queue pending again, with a fresh attempt budget (Attempt
	// 0) and ReadyAt now; ids selects some, nil selects all. It returns how many moved.
	RetryDead(ctx context.Context, queue string, ids []string) (int, error)

	// Delete removes tasks of queue in state (not running); ids selects some, nil selects
	// all of that state. It returns how many were removed.
	Delete(ctx context.Context, queue string, state State, ids []string) (int, error)

	// Heartbeat records that a worker is alive, replacing its previous record.
	Heartbeat(ctx context.Context, w WorkerInfo) error

	// Deregister removes a worker's record (on a clean stop).
	Deregister(ctx context.Context, workerID string) error

	// Workers lists worker records whose last heartbeat is newer than since.
	Workers(ctx context.Context, since time.Time) ([]WorkerInfo, error)

	// Capabilities declares which optional behaviours of the contract the broker keeps.
	// It is constant for the life of the value and needs no round trip.
	Capabilities() Capabilities

	// Close releases the broker's resources. It is idempotent. Tasks stay stored.
	Close() error
}

// Reaper is implemented by brokers that can hand back every task held by one worker at
// once, so that a worker known to be dead (its process is gone) need not wait for its
// leases to expire. The attempts stay counted.
type Reaper interface {
	// ReleaseWorker makes the running tasks reserved by workerID ready again and removes the
	// worker's record. It returns how many tasks it released.
	ReleaseWorker(ctx context.Context, workerID string) (int, error)
}

// Pauser is implemented by brokers that can pause a queue: while a queue is paused, Reserve
// takes no task from it (Enqueue still stores tasks, and running tasks finish), and its
// QueueStats report Paused. Pausing is stored with the queue, so it holds for every worker
// and process until resumed.
type Pauser interface {
	// PauseQueue pauses (paused=true) or resumes (false) the queue, creating it if needed.
	// It is idempotent.
	PauseQueue(ctx context.Context, queue string, paused bool) error
}

// AckReserver is implemented by brokers that can ack finished tasks and reserve new ones in
// one round trip to their engine. A worker whose handlers finish tasks as fast as it can
// reserve them (a queue being drained) then pays one round trip per batch instead of two.
type AckReserver interface {
	// AckReserve does what Ack(ctx, acks) and then Reserve(ctx, p) do, and returns what
	// each would have returned: ackErr as Ack's error (nil, or wrapping ErrLeaseLost for
	// the leases not held, or a failure after which the acks may or may not have taken
	// effect) and tasks and err as Reserve's. With no acks it is Reserve.
	AckReserve(ctx context.Context, acks []Lease, p ReserveParams) (tasks []*Task, ackErr, err error)
}

// ReserveRest completes a call that reserved got from the first queue of p only (an
// AckReserve that pipelines one reserve): when got is short of p.Limit, it reserves the
// rest from p's other queues through r.Reserve and returns all of them. On an error, the
// tasks of got are still leased and the caller hands them back.
func ReserveRest(ctx context.Context, r Broker, p ReserveParams, got []*Task) ([]*Task, error) {
	if len(got) >= p.Limit || len(p.Queues) < 2 {
		return got, nil
	}
	rest := p
	rest.Queues = p.Queues[1:]
	rest.Limit = p.Limit - len(got)
	more, err := r.Reserve(ctx, rest)
	if err != nil {
		return got, err
	}
	return append(got, more...), nil
}

// QueueDeleter is implemented by brokers that can remove a queue. Without it a queue,
// once known, is listed by Stats for ever.
type QueueDeleter interface {
	// DeleteQueue removes a queue that holds no task in any state (pending, scheduled,
	// running, dead or cancelled), with everything stored for it: its SLA, pause,
	// counters, samples (SampleStore), retention and the completed tasks it keeps
	// (Retainer). The check and the removal are atomic with respect to Enqueue:
	// a concurrent enqueue either lands first, and DeleteQueue fails, or after, and creates
	// the queue again. A queue that Stats does not list gives an error wrapping
	// ErrQueueNotFound; one that holds tasks an error wrapping ErrQueueNotEmpty that counts
	// them, and nothing changes.
	DeleteQueue(ctx context.Context, queue string) error
}

// QueueSample is one queue's statistics at one moment, as the dashboard samples them
// (brisktype.QueueSample).
type QueueSample = brisktype.QueueSample

// SampleRetention is how long a SampleStore keeps a sample.
const SampleRetention = time.Hour

// SampleStore is implemented by brokers that keep the dashboard's samples of queue
// statistics in their store, so that every dashboard process on one store shows the same
// history, also after a restart. The store is bounded: it keeps one sample per queue and
// second, for SampleRetention.
type SampleStore interface {
	// AddSamples stores samples atomically per queue. A sample replaces a stored one of
	// its queue taken within the same second (two dashboards sampling at once store one).
	// Samples taken more than SampleRetention before the broker's clock are dropped, then
	// or at a later call. A sample with an invalid queue name, a zero At or negative figures
	// is refused with ErrInvalid, and nothing of the call is stored.
	AddSamples(ctx context.Context, samples []QueueSample) error

	// Samples returns the stored samples taken at or after since, ordered by queue name
	// and then by time, of the queues Stats lists.
	Samples(ctx context.Context, since time.Time) ([]QueueSample, error)
}

// ValidateSamples checks a call of SampleStore.AddSamples.
func ValidateSamples(samples []QueueSample) error {
	for i, s := range samples {
		if err := ValidateQueueName(s.Queue); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
		if s.At.IsZero() || s.Latency < 0 || s.Completed < 0 || s.Failed < 0 {
			return fmt.Errorf("%w: sample %d of queue %q: zero time or negative figures", ErrInvalid, i, s.Queue)
		}
	}
	return nil
}
