// Package rabbitbroker is brisk's RabbitMQ broker: the store is a replicated journal (a
// RabbitMQ stream) of every change, applied in stream order by every broker value.
//
// Importing it (usually blank) registers the URL schemes amqp and amqps with
// broker.Register:
//
//	amqp://user:password@host:5672/vhost?prefix=brisk&max_payload=1048576&dial_timeout=3s&outage_wait=5s&snapshot_every=10000&rollover_grace=30s
//	amqps://…  (TLS)
//
// prefix (default "brisk") names the store: its journal is the chain of streams
// "<prefix>.journal" (generation 0) and "<prefix>.journal.<g>", and the queue
// "<prefix>.snapshot" holds a hint to the current generation, in the URL's vhost, so that
// several installations (or tests) share one vhost; max_payload is the largest payload
// Enqueue accepts; dial_timeout bounds each connection attempt; outage_wait is how long a
// call waits for a lost connection to come back when its context allows longer;
// snapshot_every is how many entries a journal generation holds before the journal rolls
// over to a new one (negative: never, and the journal grows forever); rollover_grace is how
// long old generations are kept after a rollover before they are deleted. Any other
// parameter is refused with broker.ErrInvalid.
//
// # Why a journal and not one RabbitMQ queue per brisk queue
//
// The broker contract is richer than a queue: Reserve takes the oldest ReadyAt first even
// when tasks were enqueued out of that order, a reservation outlives the connection that
// made it (a task stays running, with its lease, after its broker closes, and another
// broker value may Ack it), every broker value can read any task by ID in any state, count
// running tasks held by other processes, list and delete by ID, and retry at any time. A
// RabbitMQ queue is FIFO, can be read only by removing messages, ties an unacked delivery
// to its channel, and cannot be counted by state without the management plugin. So the
// broker uses RabbitMQ for what it is good at (a durable, replicated, ordered log with
// publisher confirms and push delivery to every reader) and keeps the task state machine
// in the broker:
//
//   - Every change (enqueue, reserve, extend, ack, retry, kill, release, declare, pause,
//     retry-dead, delete, heartbeat, deregister, release-worker) is one JSON entry published
//     with a publisher confirm to the journal's current generation. The entries that
//     goroutines of one broker value submit while a message of it waits for its confirm go
//     together into the next message (group commit); that message does not wait for the
//     confirm once it is full (pipelined confirms).
//   - Every broker value finds the current generation, loads its base (a snapshot of the
//     whole state), consumes the stream (Open returns once it has caught up) and applies
//     the entries in stream order to its own copy of the state. The result of an entry
//     depends only on the state and the entry, including the time it carries (the
//     publisher's clock), so every copy is the same.
//   - Every snapshot_every entries, the journal rolls over: a "moved" entry ends the
//     generation (the first one wins; what follows it is sent again by its publishers to
//     the next generation), the winner writes its state at that point as the base of the
//     next generation, and the old stream is deleted after rollover_grace. A broker value
//     away for longer reloads the state from the oldest generation left (rollover.go).
//   - A call that changes the store publishes its entry and returns the result of applying
//     it, once this broker value has applied it: Enqueue returns after RabbitMQ confirmed
//     the batch (one entry: all of it or none); Reserve publishes a request and the tasks it
//     gets are decided at the request's place in the stream, so no two callers in any
//     processes ever get one task under unexpired leases.
//   - Reads (Stats, Tasks, Task, Workers) first publish a no-op entry and wait until it is
//     applied: a read barrier, so they see every change any process made before the call.
//   - Wait is woken by the stream consumer, about a millisecond after another process's
//     change is confirmed, and by a timer for the earliest ReadyAt or lease expiry.
//
// # How each contract point is met
//
// Leases: a reservation is an entry with a token and an expiry (the publisher's clock plus
// the lease). A Reserve whose time is past a lease's expiry takes the task again with the
// next attempt and a new token (or moves it to dead after its last attempt), so changes
// under the old token get broker.ErrLeaseLost. A worker process that dies simply stops
// extending; its tasks come back when their leases expire, or at once through
// ReleaseWorker (broker.Reaper). Delayed tasks and retries are tasks whose ReadyAt is in the
// future: no plugin, no TTL queue, no message held by a worker; every broker value sees
// them fall due from its own timer. Dead tasks keep their last error and are listed,
// retried and deleted through the ordinary calls. Stats are exact and as fresh as the read
// barrier (a millisecond), the queue latency is now minus the smallest ReadyAt of the
// pending tasks, with no management plugin needed. Reserve takes exactly the number of
// tasks the worker asks for (its free slots plus its prefetch): nothing is pushed to a
// worker ahead of time, so a busy worker never hoards tasks.
//
// # Faults
//
// When the connection drops, the broker reconnects with backoff (50 ms doubling to 2 s)
// and consumes its generation from the entry after the last one it applied, or reloads
// from the oldest generation left if its own was deleted meanwhile. A
// call made while disconnected waits for the connection within its context, but no longer
// than outage_wait, and then fails with an error wrapping broker.ErrUnavailable. A call
// whose entry was published but not confirmed when the connection dropped fails with
// broker.ErrUnavailable too: its change may or may not be applied (an Enqueue retried after
// it gets broker.ErrDuplicate if it was).
//
// # Limits
//
// Each rollover encodes the whole state once (about 250 ms of CPU for 20,000 tasks) and
// every broker value reads it; every broker value holds the whole store in memory; a state
// larger than 120 MiB encoded stops the truncation; all processes on a store must run
// this version; see docs/rabbitmq.md. One Enqueue batch is one journal entry, at most
// 120 MiB encoded. Times come from the callers' clocks, so the machines that share a store
// must keep their clocks in sync (NTP).
package rabbitbroker
