// Package sqlitebroker is brisk's embedded broker: it keeps tasks in one SQLite file, so a
// single machine needs no server, and several processes may share the file.
//
// Open it with a URL through brisk or package broker:
//
//	sqlite://./brisk.db                 relative to the working directory
//	sqlite:///var/lib/app/brisk.db      absolute
//	sqlite:brisk.db                     relative, opaque form
//	sqlite://./brisk.db?synchronous=full&busy_timeout=10s&poll=5ms&max_payload=65536
//
// or directly with [Open] and [Options]. The driver is modernc.org/sqlite (pure Go, no cgo).
//
// # Concurrency
//
// The file is in WAL mode: readers never block the writer or each other. Within one
// process all writes go through one connection, so writers queue in Go instead of spinning
// on SQLite's lock; each write transaction starts with BEGIN IMMEDIATE so that it takes the
// write lock up front, and between processes SQLite's file locks and the busy timeout
// serialise them. Reserve first checks on a read connection whether anything could be
// ready, so idle workers polling a queue do not take the write lock.
//
// Wait wakes at once when a task is enqueued, released or retried by any Broker value on
// the same file in the same process. Across processes it notices commits by polling
// PRAGMA data_version every [Options.PollInterval] (10 ms by default) while anyone waits.
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
package sqlitebroker
