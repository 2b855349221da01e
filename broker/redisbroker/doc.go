// Package redisbroker is brisk's Redis broker: tasks kept in Redis, every state change one
// Lua script, idle workers woken through Redis Pub/Sub.
//
// Importing it (usually blank) registers the URL schemes redis and rediss with
// broker.Register:
//
//	redis://[user:password@]host:6379/0?prefix=brisk&max_payload=1048576
//	rediss://…  (TLS)
//	redis://host1:7001?addr=host2:7002&addr=host3:7003  (Redis Cluster, seed nodes)
//
// prefix (default "brisk") namespaces every key, so that several brisk installations (or
// tests) share one Redis; max_payload is the largest payload Enqueue accepts; cluster is
// auto (the default: Open asks the server with INFO cluster whether it is a cluster node,
// and if so talks to the whole cluster through it), yes (also implied by addr parameters,
// which name more seed nodes) or no. Every other query parameter is one of go-redis's
// (redis.ParseURL, or redis.ParseClusterURL for a cluster), such as dial_timeout or
// pool_size.
//
// AUTH: the URL's user and password (a wrong or missing one fails Open with an error
// wrapping broker.ErrInvalid, not ErrUnavailable). TLS: rediss:// verifies the server
// against the system's roots; for a private CA, set SSL_CERT_FILE (Go reads it on Linux) or
// pass Options.Redis.TLSConfig to OpenOptions. Both are tested against a redis-server that
// speaks only TLS and requires a password (tls_test.go).
//
// # Data model
//
// Every key of one queue q carries the hash tag {prefix:q}, so that one queue lives in one
// Redis Cluster slot and every script touches the keys of one queue only (see keys.go):
//
//	{p:q}:ready    ZSET  pending and scheduled tasks; score ReadyAt in µs, member
//	                     "<16-digit sequence>:<id>" so that equal ReadyAt keep enqueue order
//	{p:q}:running  ZSET  running tasks; score lease expiry in µs, same member
//	{p:q}:dead     ZSET  dead tasks; score ReadyAt in µs, same member
//	{p:q}:meta     HASH  seq (member sequence), tok (lease tokens), completed, failed, sla,
//	                     ret (the queue's retention, µs), kept (1 once the queue has kept
//	                     a task for a retention: only then do scripts remove expired ones)
//	{p:q}:t:<id>   STRING one task: its record, every field of the task in one value (see
//	                     "Task records" below and record.go)
//	{p:q}:w:<wid>  SET   ids of the queue's tasks reserved by worker wid (for ReleaseWorker)
//	{p:q}:samples  ZSET  the dashboard's samples of the queue (broker.SampleStore), one per
//	                     second for an hour; score the Unix second, member
//	                     "<ms>:<latency ns>:<completed>:<failed>"; expires when not written
//	{p:q}:cancelled ZSET cancelled tasks; score ReadyAt in µs (broker.Canceler)
//	{p:q}:completed ZSET completed tasks kept for a retention (broker.Retainer); score
//	                     their expiry in µs, same member
//	{p:q}:cexp     ZSET  cancelled tasks kept for a retention (also in cancelled); score
//	                     their expiry in µs, same member
//	{p:q}:u:<key>  STRING a uniqueness lock: the holder's id, expiring at the end of its
//	                     window (checked and set in the enqueue script: locks are per queue)
//	{p:q}:limits   HASH  limits (broker.Limiter): field "*" for the queue, "t:<type>" for a
//	                     type, value "rate per_µs burst max_running"; meta field conc counts
//	                     the concurrency limits, so that scripts ending a run wake waiters
//	{p:q}:buckets  HASH  the token buckets of those limits: "tokens at_µs", consumed in the
//	                     reserve script
//
// The periodic scheduler's data shares the hash tag {p:sched}, so that recording a run can
// check the leadership in one script: {p:sched}:leader:<name> (HASH holder, token, until),
// {p:sched}:schedules (HASH name → definition as JSON) and {p:sched}:runs (HASH name →
// "<last run µs> <task id>").
//
// Data that spans queues lives under keys of its own and is written in calls of its own:
// p:queues (SET of queue names, for Stats), p:layout (the task layout, below), p:workers (ZSET of worker ids by last
// heartbeat) and p:worker:<wid> (the worker's record). Pending and scheduled differ only by
// time, as the contract says: a scheduled task becomes pending when its score passes, with
// no promotion step, so losing a worker loses nothing.
//
// # Task records
//
// A task is one STRING whose value is its 16 fields as a sequence of MessagePack values
// (type, payload, max attempts, timeout, enqueued at, ready at, headers as JSON, attempt,
// state, started at, lease until, lease token, worker, last error, failed at, sequence;
// times in µs), followed by up to 5 optional ones: the task's own retention (µs),
// finished at, expires at, the last progress ("<percent> <at µs> <message>") and the
// result ("=" and its bytes; "" for none). The optional values are written up to the last
// one set (nil, 0xc0, between), so a task that never had any costs what it cost before
// they existed, and a record written before them reads as having none. The enqueue
// encodes it in Go and the script only inserts the sequence number; the scripts that
// change a task read it with one GET and Redis's own cmsgpack (cmsgpack.unpack), change
// what they change and write it back (cmsgpack.pack: one SET, or one MSET for the tasks of
// a reserve); Inspector reads decode it in Go.
//
// # Completed tasks, results and progress
//
// The ack script ends held attempts as completed. A task whose retention (its own, else
// its queue's meta field ret) is positive keeps its record, in state done with its finish
// and expiry times and its result (Complete passes the results with the leases; Ack and
// AckReserve pass none, so the batched acks cost what they did), and its member goes to
// the completed ZSET, scored by its expiry. Any other task is deleted as before. The
// script reads ret with the meta field kept in one HMGET: for a queue that never kept a
// task that is the only command a plain ack adds. A cancelled task with a retention keeps
// its place in the cancelled ZSET and goes to cexp too.
//
// Expired tasks are hidden from Task, Tasks and Stats's Retained as soon as their expiry
// passes, and removed (records and members) by the scripts that run anyway: each ack,
// reserve and cancel of a queue whose kept field is set removes at most 100 of the
// completed ZSET and 100 of cexp whose score has passed, so that a mass expiry never makes
// one script long. Redis deletes a kept task's record itself at its expiry (the record is
// written with SET PXAT) and the completed ZSET with its last member (PEXPIREAT to its
// highest score after each ZADD), so that a queue that sees no more traffic keeps nothing
// past its retention but the members of its cancelled tasks kept for one: those go with
// the queue's next ack, reserve or cancel, and Stats does not count them (it subtracts
// cexp's members whose expiry has passed). Tasks lists completed tasks by expiry, which is FinishedAt order among
// tasks of one retention. DeleteQueue deletes the completed tasks a queue keeps.
//
// SetProgress is one script on the task's key, fenced by the lease token as Extend is; a
// new attempt (the reserve script) clears the progress, and a completed task keeps it.
//
// Why not a HASH, as brisk kept before (and asynq keeps): Redis keeps a small HASH in its
// compact listpack encoding only while every value is at most hash-max-listpack-value
// bytes (64 by default), a server setting that brisk does not change. A 100-byte payload
// turns the whole HASH into a hashtable of about twice the memory, so brisk kept the
// payload in a STRING of its own: two keys per task, each with its own dictionary entry,
// key string and object header (about 723 bytes per pending task with a 100-byte payload,
// against asynq's about 627, whose HASH holds a protobuf message and turns into a
// hashtable). One STRING costs one key and the bytes of its fields (about 470 bytes per
// task, ZSET member included: peerbench MEM, docs/benchmarks.md), and a script reads a
// task with one GET instead of an HMGET plus a GET of its payload.
//
// The trade-offs: a script that changes one field (extend moves the lease expiry) writes
// the whole value again, payload included, which costs a copy of the payload per change
// instead of one HSET of a field; the payload passes through Lua on every state change;
// a person looking at a task with redis-cli sees MessagePack, not fields (the Inspector and
// the brisk CLI decode it); and a store written before the change must be converted,
// which Open does once (below).
//
// # Upgrading a store written with HASHes
//
// The key p:layout holds "2" once a store's tasks are records. Open reads it; when it is
// missing, Open converts the tasks of every registered queue (those of the ready, running,
// dead and cancelled ZSETs, 500 per script call: a running task keeps its lease and token,
// so its worker's ack still counts), then writes it; a store of a layout this version does
// not know is refused with broker.ErrInvalid. Stop every process of the older brisk before
// the first process of this one opens the store: an older process would write HASHes,
// which the scripts refuse (WRONGTYPE) until the store is converted again.
//
// # Durability: the Redis settings each guarantee needs
//
// Redis holds the tasks in memory; what survives depends on the server's settings, which
// brisk does not change. Open reads them (CONFIG GET appendonly, save, maxmemory,
// maxmemory-policy, on every master of a cluster) and logs a warning through the
// broker's Logger when the server keeps neither an AOF nor RDB snapshots, or evicts keys;
// where CONFIG is refused (a managed service, a renamed command) it says at debug level
// that it cannot tell.
//
//   - A crash of a brisk process (a worker, a producer) loses nothing, with any settings:
//     a returned Enqueue, Ack or Retry is in Redis, and leases cover the worker side.
//   - A restart of Redis keeps the tasks only with persistence. appendonly yes (AOF) with
//     appendfsync everysec, Redis's default, loses at most about the last second of
//     writes when the machine crashes, and nothing on a clean restart; appendfsync always
//     loses nothing acknowledged, for an fsync per write. RDB snapshots alone (save …)
//     keep what the last snapshot holds: everything on a clean SHUTDOWN, but a crash
//     loses the writes since the last one. With neither (appendonly no, save "") a
//     restart of Redis loses every task: Open warns.
//   - maxmemory-policy noeviction (the default) is needed as soon as maxmemory is set: any
//     other policy deletes keys, and so tasks, without a trace when memory runs out. With
//     noeviction Redis refuses the write instead, and Enqueue fails (nothing is lost).
//     Open warns about any other policy.
//   - Replication is asynchronous: after a failover to a replica, the last writes
//     acknowledged by the old master may be missing (an enqueued task lost, an acked task
//     run again). brisk does not use WAIT. The same holds for each master of a cluster.
//
// # Redis Cluster
//
// Because every script touches one queue's keys, which share one hash tag, every state
// change of a queue stays one atomic script on a cluster, and different queues spread over
// the masters. What spans queues is written without a transaction there: the queue
// registry (the first enqueue of a process to a queue adds the queue to it in the same
// pipelined round trip as the script, before it; later ones run the script alone on the
// queue's master, and register the queue again when the script says its sequence started
// anew, after a DeleteQueue), a worker's heartbeat (its record and its place in the
// index, one pipelined round trip; readers tolerate either missing) and a batch that
// spans several queues, which is enqueued by check-then-write: one pipelined round trip
// checks every ID, a second one runs one enqueue script per queue (each atomic), and when
// one of them fails the tasks the others stored are deleted again, so the batch is all or
// nothing unless the connection is lost during that clean-up (the error then says the
// batch is partly stored). The wake-up channel is ordinary Pub/Sub, which a cluster
// forwards to every node.
//
// On one server a command is never sent twice (MaxRetries -1). go-redis's cluster client
// follows MOVED and ASK redirections, which is safe (the command did not run), but it also
// sends a command again when a connection broke before the reply came: for a script that
// ran, an enqueue then reports broker.ErrDuplicate for a task it stored and a reserve
// leaves leased tasks that nobody holds until their lease expires. Neither loses a task.
//
// # Capabilities
//
// The whole task state machine is in Redis, so Capabilities declares every optional
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
//	Retainer        yes          yes           no
//	ProgressReporter yes         yes           no
//
// # Limits
//
// A task ID is unique within its queue (the enqueue script refuses a stored ID of that queue
// with broker.ErrDuplicate); the same ID in two different queues is not detected, which
// brisk's time-ordered UUIDs never produce. Task looks an ID up in every known queue in one
// round trip. On one server a batch that spans several queues is one script call over the
// keys of all its queues (all or nothing). Times are taken from the caller's clock, so the
// machines that share one Redis must keep their clocks in sync (NTP).
package redisbroker
