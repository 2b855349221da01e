// Package sqlitebroker is brisk's embedded broker: it keeps tasks in one SQLite file, so a
// single machine needs no server, and several processes may share the file.
//
// Open it with a URL through brisk or package broker:
//
//	sqlite://./brisk.db                 relative to the working directory
//	sqlite:///var/lib/app/brisk.db      absolute
//	sqlite:brisk.db                     relative, opaque form
//	sqlite://./brisk.db?synchronous=full&busy_timeout=10s&poll=5ms&max_payload=65536
//	sqlite://./brisk.db?mode=rw         the store must exist (mode=rwc, the default, creates it)
//
// or directly with [Open] and [Options]. The driver is modernc.org/sqlite (pure Go, no cgo).
//
// Open creates the file when it is missing, unless [Options.NoCreate] (mode=rw, or
// broker.WithoutCreate, which brisk.OpenExisting and the read-only commands of the brisk
// command use) makes a missing or empty file an error. An empty file is otherwise taken for
// a new store with a warning through the Options.Logger, since it may be a store truncated
// by accident. A file of an older schema is migrated at Open (version 2 added pausing,
// version 3 the table of the dashboard's samples, broker.SampleStore, version 4 the tables
// of sched.sql: uniqueness locks, cancelled tasks, leaderships, periodic schedules and
// limits).
//
// # Concurrency
//
// The file is in WAL mode: readers never block the writer or each other. Every write
// transaction first takes a write lock: a mutex among the goroutines of one Broker, then an
// exclusive flock on the database file among all Brokers and processes (SQLite itself uses
// POSIX record locks, which are independent). Writers thus queue in the kernel, woken as
// soon as the holder unlocks, instead of sleeping in SQLite's busy handler, which under
// steady writes from several processes let one of them starve for seconds, long enough for
// its leases to lapse. Each transaction then starts with BEGIN IMMEDIATE, and the busy
// timeout still covers checkpoints and writers that are not brisk. Reserve first checks on a
// read connection whether anything could be ready, so idle workers do not take the lock.
//
// Wait wakes at once when a task is enqueued, released or retried by any Broker value on
// the same file in the same process. Across processes it notices commits by polling
// PRAGMA data_version every [Options.PollInterval] (10 ms by default) while anyone waits.
//
// # Task IDs
//
// A task ID is unique in the whole file, not only within its queue: an Enqueue of an ID
// that any queue holds returns broker.ErrDuplicate, and Task finds an ID with one index
// lookup.
//
// # Capabilities
//
// The whole task state machine is in the file, so Capabilities declares every optional
// behaviour (broker.AllCapabilities). Every broker's, for comparison:
//
//	                SQLite       Redis         RabbitMQ
//	ReadyAtOrder    yes          yes           no: in the order tasks reach the queue
//	DetachedLeases  yes          yes           no: a lease is a delivery of one connection
//	ListAll         yes          yes           no: dead tasks, and running ones of the same value
//	DeleteQueued    yes          yes           no: by ID only dead ones; all pending or scheduled
//	ExactRunning    yes          yes           no: management API (5 s old) or this process
//	UniqueIDs       yes (file)   yes (queue)   no
//	ExactLatency    yes          yes           no: an upper bound (stats.go)
//	broker.Reaper   yes          yes           no
//	broker.Pauser   yes          yes           no
//	AckReserver     no           yes           no
//	QueueDeleter    yes          yes           no
//	SampleStore     yes          yes           no
//	Unique          yes          yes           no: Enqueue refuses a key (ErrUnsupported)
//	Canceler        yes          yes           no
//	Leader          yes          yes           no
//	ScheduleStore   yes          yes           no
//	Limiter         yes          yes           no
//	Retainer        yes          yes           no: completed tasks are removed at once
//	ProgressReporter yes         yes           no
//
// # Durability
//
// With WAL and synchronous=NORMAL (the default) a committed Enqueue survives the process
// being killed, even with SIGKILL: the transaction is in the WAL file, in the operating
// system's page cache, and the next open replays it. A power loss or an operating system
// crash may lose the transactions committed since the WAL was last synced (at a
// checkpoint), but it never corrupts the file. With synchronous=FULL every commit is
// fsynced and survives power loss too, at the cost of an fsync per transaction (batch
// enqueues amortise it).
//
// # Unique tasks, cancellation, leaders, schedules and limits
//
// The broker keeps every optional capability of docs/scheduling.md. A task's uniqueness
// key is a row of unique_locks (queue, key → holder, until), checked and written in the
// enqueue's transaction; expired rows are purged 64 at a time. A cancelled task keeps its
// row with state 'cancelled' (a running one loses its lease token in the same write, so
// its worker's later calls get ErrLeaseLost); Revoked is one query on the read pool. A
// leadership is a row of leaders (holder, token, until); MarkScheduleRun checks it in the
// transaction that records the run. A limit is a row of limits whose token bucket (tokens
// at refilled_at) is refilled and drawn from in the reserve transaction; a concurrency
// limit counts the queue's running rows after the expired leases are reclaimed. When
// limits leave ready tasks behind, the Broker remembers until when, so that Wait sleeps
// until the next token (or, for a full concurrency limit, at most 250 ms; an ack in this
// process wakes it at once, one in another process within the poll interval).
//
// # Completed tasks, results and progress
//
// A task with a retention (its own, tasks.retention_ns, else its queue's,
// queues.retention_ns) keeps its row when it completes: the ack's UPDATE sets state
// 'completed', finished_at, expires_at and result in the transaction of the batch, and
// queues.retained counts it (a trigger). Reserve, Wait and the queue latency read only the
// partial indexes of pending and running rows, so kept rows cost them nothing; the
// completed listing has its own partial index. Expired rows (completed, or cancelled with a
// retention) are hidden from reads at once and deleted through the index on expires_at,
// oldest first, a slice at a time in transactions that write anyway: a Complete or Cancel
// removes up to 256 when 100 ms have passed since the last slice that was not full (a full
// one means more are due, and the next write takes another), and each Heartbeat (every
// worker's, every 5 s by default) up to 500. Neighbouring rows removed together write a
// few pages for all of them, so at a steady rate the store stays at about rate × retention
// rows for little more than the cost of the completions. The completion counts on a
// trigger of its own, one UPDATE; the delete trigger of version 1 is limited to the states
// it counts, so that removing expired rows runs no UPDATE that changes nothing. A handler's progress is three columns of its row, written by
// SetProgress under the lease and cleared when a new attempt starts.
package sqlitebroker
