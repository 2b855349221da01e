package broker

// Capabilities declares the behaviours of the contract that only some engines can keep.
// Every broker keeps the required core of Broker (durable enqueue, reserve under a lease or
// a delivery no other consumer holds, ack, retry at a time, kill to dead, release, wait,
// stats with counts and queue latency, worker records); what is declared here is checked
// by the conformance suite where a broker declares it and skipped out loud where it does
// not. A broker that lacks a capability answers the calls that need it with an error
// wrapping ErrUnsupported, never a silent wrong answer.
//
// Capabilities that are whole methods are optional interfaces instead (Reaper, Pauser,
// AckReserver, Canceler, Leader, ScheduleStore, Limiter, Retainer, ProgressReporter),
// found by a type assertion, the way database/sql/driver does.
type Capabilities struct {
	// ReadyAtOrder: Reserve takes a queue's ready tasks oldest ReadyAt first across
	// separate Enqueue calls (and in enqueue order among equal ReadyAt), not only in the
	// order the engine received them.
	ReadyAtOrder bool
	// DetachedLeases: a reservation belongs to the store, not to the connection of the
	// Broker value that made it: another value (another process) may Extend, Ack, Retry,
	// Kill or Release it, and closing the value that reserved does not hand the task back.
	DetachedLeases bool
	// ListAll: Tasks lists every state with Offset paging, and Task finds a task by ID in
	// every state (ErrNotFound for an ID not stored). Without it a broker still lists and
	// finds dead tasks, and finds the running tasks that the same broker value reserved;
	// for anything else Tasks and Task may return ErrUnsupported.
	ListAll bool
	// DeleteQueued: Delete and RetryDead take IDs of pending and scheduled tasks too
	// (delete by ID of a task that waits). Without it only dead tasks can be deleted.
	DeleteQueued bool
	// ExactRunning: QueueStats.Running counts the tasks held by every process on the
	// store, exactly, at the time of the call.
	ExactRunning bool
	// UniqueIDs: Enqueue refuses a task whose ID its queue already holds with ErrDuplicate.
	// Without it only a duplicate within one batch is refused, and a task enqueued twice
	// runs twice.
	UniqueIDs bool
	// ExactLatency: QueueStats.OldestReadyAt and Latency are exact at the time of the call,
	// whichever process holds the queue's tasks. Without it they are an estimate that
	// QueueStats.Notes describes (where it comes from, how old it may be, which way it errs),
	// and zero only when nothing is pending.
	ExactLatency bool
	// Unique: Enqueue honours Task.Unique (a uniqueness key held for a window, checked
	// atomically with the enqueue; see Unique). Without it Enqueue refuses a task that
	// carries a key with an error wrapping ErrUnsupported, never enqueues it twice silently.
	Unique bool
}

// AllCapabilities returns the capabilities of the core contract's behaviours all declared
// (ReadyAtOrder, DetachedLeases, ListAll, DeleteQueued, ExactRunning), for brokers backed by
// a database that keeps the whole task state machine (SQLite, Redis). Unique is not among
// them: a broker declares it on its own when its Enqueue keeps uniqueness locks.
func AllCapabilities() Capabilities {
	return Capabilities{
		ReadyAtOrder:   true,
		DetachedLeases: true,
		ListAll:        true,
		DeleteQueued:   true,
		ExactRunning:   true,
		UniqueIDs:      true,
		ExactLatency:   true,
	}
}
