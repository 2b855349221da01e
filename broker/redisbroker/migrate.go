package redisbroker

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// layoutVersion is the layout of the tasks this package writes, kept in the key
// <prefix>:layout: "2" is one STRING per task (record.go). A store without the key was
// written before it, with a HASH per task (and a STRING for a payload over 48 bytes,
// {p:q}:t:<id>:p), or is empty.
const layoutVersion = "2"

// migrateBatch is how many members of one ZSET one migrateScript call looks at, so that
// converting a large store never makes one script long.
const migrateBatch = 500

// migrateScript converts the tasks of a range of one of a queue's ZSETs from the HASH
// layout (a HASH per task, its payload in the field pl or in a STRING <task key>:p) to
// one STRING record each (record.go); a task already converted is left alone, so that
// two processes opening the same store at once do no harm.
//
//	KEYS[1] the queue's ready, running, dead or cancelled ZSET
//	ARGV[1] task key prefix, ARGV[2], ARGV[3] the range (ZRANGE start and stop)
//
// Returns {members looked at, tasks converted}.
var migrateScript = redis.NewScript(`
local ms = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])
local n = 0
local function num(x) return tonumber(x) or 0 end
local function str(x) return x or '' end
for _, m in ipairs(ms) do
  local t = ARGV[1] .. string.sub(m, 18)
  if redis.call('TYPE', t).ok == 'hash' then
    local h = redis.call('HMGET', t, 'ty', 'pl', 'ma', 'to', 'eq', 'ra', 'hd', 'at', 's', 'st', 'lu', 'tk', 'wk', 'le', 'fa')
    local pl = redis.call('GET', t .. ':p') or str(h[2])
    local state = h[9] or 'q'
    redis.call('DEL', t, t .. ':p')
    redis.call('SET', t, cmsgpack.pack(str(h[1]), pl, num(h[3]), num(h[4]), num(h[5]), num(h[6]), str(h[7]),
      num(h[8]), state, num(h[10]), num(h[11]), num(h[12]), str(h[13]), str(h[14]), num(h[15]),
      num(string.sub(m, 1, 16))))
    n = n + 1
  end
end
return {#ms, n}
`)

// layout is the key that holds the store's layout version.
func (k keys) layout() string { return k.prefix + ":layout" }

// migrate converts a store written with the HASH layout, once: every task of every known
// queue (those in the queue registry) becomes a record, then the layout key says so. A
// store of a newer layout is refused. Processes of an older brisk must be stopped before a
// process of this one opens their store: they would write HASHes again, which the scripts
// cannot read (a WRONGTYPE error).
func (b *Broker) migrate(ctx context.Context) error {
	v, err := b.rdb.Get(ctx, b.k.layout()).Result()
	switch {
	case err == nil && v == layoutVersion:
		return nil
	case err == nil:
		return fmt.Errorf("brisk: redis: open %s: the store (prefix %q) has task layout %q, which this version of brisk does not know (it writes %s): %w",
			b.addr, b.opts.Prefix, v, layoutVersion, broker.ErrInvalid)
	case !errors.Is(err, redis.Nil):
		return b.fail(ctx, "open: read the task layout", err)
	}
	qs, err := b.queueNames(ctx)
	if err != nil {
		return b.fail(ctx, "open: list the queues to migrate", err)
	}
	converted := 0
	for _, q := range qs {
		for _, z := range []string{b.k.ready(q), b.k.running(q), b.k.dead(q), b.k.cancelled(q)} {
			for start := 0; ; start += migrateBatch {
				res, err := migrateScript.Run(ctx, b.rdb, []string{z}, b.k.taskPrefix(q), start, start+migrateBatch-1).Int64Slice()
				if err != nil {
					return b.fail(ctx, fmt.Sprintf("open: migrate the tasks of queue %q to one record each", q), err)
				}
				converted += int(res[1])
				if res[0] < migrateBatch {
					break
				}
			}
		}
	}
	if err := b.rdb.Set(ctx, b.k.layout(), layoutVersion, 0).Err(); err != nil {
		return b.fail(ctx, "open: record the task layout", err)
	}
	if converted > 0 {
		b.log.Info("redis: migrated the stored tasks to one record each", "prefix", b.opts.Prefix, "tasks", converted, "queues", len(qs))
	}
	return nil
}
