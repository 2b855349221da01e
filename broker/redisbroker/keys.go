package redisbroker

import "strings"

// keys builds every Redis key and channel name of one prefix. All keys of one queue share
// the hash tag {prefix:queue}, so a queue lives in one Redis Cluster slot and a script never
// touches two slots; cross-queue keys (the queue registry, worker records) carry no tag.
type keys struct {
	prefix string
}

// tag is the hash tag of queue q.
func (k keys) tag(q string) string { return "{" + k.prefix + ":" + q + "}" }

// ready is the ZSET of q's pending and scheduled tasks, scored by ReadyAt (µs).
func (k keys) ready(q string) string { return k.tag(q) + ":ready" }

// running is the ZSET of q's running tasks, scored by lease expiry (µs).
func (k keys) running(q string) string { return k.tag(q) + ":running" }

// dead is the ZSET of q's dead tasks, scored by ReadyAt (µs).
func (k keys) dead(q string) string { return k.tag(q) + ":dead" }

// meta is the HASH of q's counters and settings.
func (k keys) meta(q string) string { return k.tag(q) + ":meta" }

// samples is the ZSET of q's samples for the dashboard (broker.SampleStore), scored by
// Unix second.
func (k keys) samples(q string) string { return k.tag(q) + ":samples" }

// taskPrefix is the prefix of q's task keys; a task's key is taskPrefix + id.
func (k keys) taskPrefix(q string) string { return k.tag(q) + ":t:" }

// task is the STRING of one task of q: its record (record.go).
func (k keys) task(q, id string) string { return k.taskPrefix(q) + id }

// workerTasksPrefix is the prefix of the SETs of q's task ids reserved by one worker.
func (k keys) workerTasksPrefix(q string) string { return k.tag(q) + ":w:" }

// workerTasks is the SET of q's task ids reserved by worker id.
func (k keys) workerTasks(q, worker string) string { return k.workerTasksPrefix(q) + worker }

// cancelled is the ZSET of q's cancelled tasks, scored by ReadyAt (µs).
func (k keys) cancelled(q string) string { return k.tag(q) + ":cancelled" }

// completed is the ZSET of q's completed tasks kept for a retention (broker.Retainer),
// scored by their expiry (µs).
func (k keys) completed(q string) string { return k.tag(q) + ":completed" }

// cancelledExpiry is the ZSET of q's cancelled tasks kept for a retention, scored by their
// expiry (µs); they are in the cancelled ZSET too.
func (k keys) cancelledExpiry(q string) string { return k.tag(q) + ":cexp" }

// uniquePrefix is the prefix of q's uniqueness locks; a lock is a STRING uniquePrefix + key
// holding the holder's id, expiring at the end of its window.
func (k keys) uniquePrefix(q string) string { return k.tag(q) + ":u:" }

// limits is the HASH of q's limits: field "*" for the queue, "t:<type>" for a task type;
// value "rate per_µs burst max_running".
func (k keys) limits(q string) string { return k.tag(q) + ":limits" }

// buckets is the HASH of q's token buckets, fields as in limits; value "tokens at_µs".
func (k keys) buckets(q string) string { return k.tag(q) + ":buckets" }

// schedTag is the hash tag of what the periodic scheduler keeps: leaderships, schedules
// and their last runs share one slot, so that recording a run can check the leadership in
// the same script.
func (k keys) schedTag() string { return "{" + k.prefix + ":sched}" }

// leader is the HASH of one leadership: holder, token, until (µs).
func (k keys) leader(name string) string { return k.schedTag() + ":leader:" + name }

// schedules is the HASH of schedule name → its definition (JSON).
func (k keys) schedules() string { return k.schedTag() + ":schedules" }

// runs is the HASH of schedule name → "<last run µs> <last task id>".
func (k keys) runs() string { return k.schedTag() + ":runs" }

// queues is the SET of every known queue name (cross-queue: no hash tag).
func (k keys) queues() string { return k.prefix + ":queues" }

// workers is the ZSET of worker ids scored by their last heartbeat (µs).
func (k keys) workers() string { return k.prefix + ":workers" }

// worker is the record (JSON) of one worker.
func (k keys) worker(id string) string { return k.prefix + ":worker:" + id }

// wake is the Pub/Sub channel on which scripts publish the name of a queue that may have a
// ready task (after an enqueue, release or retry).
func (k keys) wake() string { return k.prefix + ":wake" }

// memberSeqLen is the width of the sequence number in a ZSET member ("<seq>:<id>").
const memberSeqLen = 16

// idOf returns the task id of a ZSET member.
func idOf(member string) string {
	if len(member) > memberSeqLen && member[memberSeqLen] == ':' {
		return member[memberSeqLen+1:]
	}
	if i := strings.IndexByte(member, ':'); i >= 0 {
		return member[i+1:]
	}
	return member
}
