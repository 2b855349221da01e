// Package redisbroker is brisk's Redis broker: tasks kept in Redis, every state change one
// Lua script, idle workers woken through Redis Pub/Sub.
//
// Importing it (usually blank) registers the URL schemes redis and rediss with
// broker.Register:
//
//	redis://[user:password@]host:6379/0?prefix=brisk&max_payload=1048576
//	rediss://…  (TLS)
//
// prefix (default "brisk") namespaces every key, so that several brisk installations (or
// tests) share one Redis; max_payload is the largest payload Enqueue accepts. Every other
// query parameter is one of go-redis's (redis.ParseURL), such as dial_timeout or
// pool_size.
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
//	{p:q}:meta     HASH  seq (member sequence), tok (lease tokens), completed, failed, sla
//	{p:q}:t:<id>   HASH  one task (fields in scripts.go)
//	{p:q}:w:<wid>  SET   ids of the queue's tasks reserved by worker wid (for ReleaseWorker)
//
// Data that spans queues lives under keys of its own and is written in calls of its own:
// p:queues (SET of queue names, for Stats), p:workers (ZSET of worker ids by last
// heartbeat) and p:worker:<wid> (the worker's record). Pending and scheduled differ only by
// time, as the contract says: a scheduled task becomes pending when its score passes, with
// no promotion step, so losing a worker loses nothing.
//
// # Limits
//
// A task ID is unique within its queue (the enqueue script refuses a stored ID of that queue
// with broker.ErrDuplicate); the same ID in two different queues is not detected, which
// brisk's time-ordered UUIDs never produce. Task looks an ID up in every known queue in one
// round trip. A batch that spans several queues is enqueued by one script call over the
// keys of all its queues (all or nothing); that is not possible on Redis Cluster, where
// such a batch will need a check-then-write protocol. Times are taken from the caller's
// clock, so the machines that share one Redis must keep their clocks in sync (NTP).
package redisbroker
