// Package rabbitbroker is brisk's RabbitMQ broker: every brisk queue is a RabbitMQ queue
// (durable, quorum by default), so it shows in the management UI, KEDA's RabbitMQ scaler
// counts it, RabbitMQ redelivers a dead worker's tasks, and a RabbitMQ cluster replicates it.
//
// Importing it (usually blank) registers the URL schemes amqp and amqps with
// broker.Register:
//
//	amqp://user:password@host:5672/vhost?prefix=brisk&queue_type=quorum&management=http://user:password@host:15672&max_payload=1048576&dial_timeout=3s&outage_wait=5s
//	amqps://…  (TLS)
//
// prefix (default "brisk") starts the name of everything the store declares in the vhost;
// queue_type is quorum (default) or classic; management is the management API's base URL
// (default: the AMQP host on port 15672 with the same credentials; "off" to do without);
// max_payload is the largest payload Enqueue accepts; dial_timeout bounds each connection
// attempt; outage_wait is how long a call waits for a lost connection to come back before it
// fails with broker.ErrUnavailable. Any other parameter is refused with broker.ErrInvalid.
//
// # What the store is
//
//   - <prefix>.q.<queue>: the ready queue of a brisk queue; one persistent message per task,
//     the payload as body, the rest in headers (message.go). Pending tasks are its ready
//     messages; running tasks are deliveries held unacked by a consumer.
//   - <prefix>.dead.<queue>: its dead tasks, with the last error and the failure time in
//     headers. Nothing consumes it, so it is browsed (basic.get, then a reject of the rest)
//     to list, retry and delete dead tasks.
//   - <prefix>.delay.<queue>.<k>: delay queues, one per binary delay level k in use (of the
//     queue type; x-message-ttl 100 ms·2^k; quorum ones dead-letter at least once),
//     dead-lettering through headers exchanges <prefix>.delay.<k> and <prefix>.delay.out
//     back to the ready queue (delay.go). Scheduled tasks and retries
//     waiting for their time are their messages: no plugin, and no worker holds a delayed
//     message.
//   - <prefix>.meta and <prefix>.live: two streams that every broker value reads from the
//     start: queue declarations (with SLAs) and the delay levels in use; worker heartbeats
//     and head reports (kept an hour).
//
// # How the contract maps
//
// Enqueue publishes one message per task with publisher confirms and returns when RabbitMQ
// has confirmed all of them. A batch is not atomic: AMQP has no transaction across queues
// that quorum queues support, so when the connection drops in the middle some tasks of a
// batch may be stored; Enqueue then fails with broker.ErrUnavailable, and an Enqueue that is
// retried stores those tasks again (RabbitMQ cannot refuse a stored ID: capability
// UniqueIDs is not declared). Invalid input is refused before anything is published.
//
// Reserve takes deliveries from a consumer that the broker value runs per queue with manual
// acks and a per-consumer prefetch. The prefetch follows what Reserve asks for: the most held
// plus asked at once, which for a worker is its concurrency plus its Prefetch, so RabbitMQ
// never pushes a worker more than its free slots plus its Prefetch (consume.go). A lease is
// the delivery: Ack acks it, Retry publishes the task again through the delay levels with
// the attempt counted and then acks, Kill publishes it to the dead queue and then acks,
// Release publishes it again with the attempt given back and then acks (it goes to the back
// of the queue), and a lease that is not extended in time is rejected back to the queue (a
// quorum queue counts it: the next delivery is the next attempt). If the process dies or
// its connection drops, RabbitMQ delivers its unacked messages again, and a quorum queue's
// x-delivery-count makes the next delivery the next attempt; a delivery past the last
// attempt goes to the dead queue unrun. Wait is woken by deliveries to the consumers of the
// queues it waits for.
//
// Stats counts pending, scheduled and dead tasks from RabbitMQ's queue counts at the call,
// running tasks from the management API, and gives the queue latency as described in
// stats.go; QueueStats.Notes says where the figures that are not exact come from.
//
// # Capabilities
//
// A RabbitMQ queue is FIFO, a delivery belongs to the channel that received it, and a
// message can be read only by taking it. So this broker declares none of the optional
// behaviours of broker.Capabilities. Every broker's, for comparison:
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
// Without ListAll, Tasks lists dead tasks and Task finds dead tasks and the tasks the same
// broker value runs; for anything else they return broker.ErrUnsupported. Without
// DeleteQueued, Delete removes dead tasks by ID, or every pending or every scheduled task of
// a queue at once (a purge), and returns broker.ErrUnsupported for waiting tasks by ID.
// Completed and Failed counters are not kept (0).
//
// # Faults
//
// When the connection drops, the broker reconnects with backoff (50 ms doubling to 2 s),
// declares its exchanges and streams again, and starts consumers again when asked; the
// leases of the lost connection are lost (broker.ErrLeaseLost), and RabbitMQ has given
// their tasks to other consumers. A call made while disconnected waits for the connection
// within its context, but no longer than outage_wait, and then fails with an error wrapping
// broker.ErrUnavailable. See docs/rabbitmq.md for measurements, a cluster, and limits.
package rabbitbroker
