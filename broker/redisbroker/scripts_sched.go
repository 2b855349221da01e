package redisbroker

import "github.com/redis/go-redis/v9"

// The scripts of the optional capabilities: cancellation, limits, leadership and periodic
// runs. Like the others, each touches the keys of one slot only.

// cancelScript moves a pending, scheduled or running task of the queue to cancelled; a
// running task's lease is revoked (its token cleared). The task's finish time is now;
// when its retention (its own, else the queue's meta field ret, µs) is positive, it
// expires that long after, through the cancelled-expiry ZSET (luaSweep).
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET, KEYS[3] cancelled ZSET, KEYS[4] meta HASH,
//	KEYS[5] cancelled-expiry ZSET
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] id,
//	ARGV[4] wake channel, ARGV[5] queue name, ARGV[6] now µs
//
// Returns {state, ready at µs}: state is "" when the queue has no such task, else what it
// was: q (pending or scheduled, by ready at), run, dead, done (completed) or cancelled (the
// last three left alone). Wakes waiters when a running task of a queue with a concurrency
// limit stops.
var cancelScript = redis.NewScript(luaSlotFreed + luaTask + `
local t = ARGV[1] .. ARGV[3]
local v = getTask(t)
if not v then return {'', '0'} end
local was, ra, m = v[S], string.format('%d', v[RA]), memberOf(v, ARGV[3])
if was == 'q' then
  redis.call('ZREM', KEYS[1], m)
elseif was == 'run' then
  redis.call('ZREM', KEYS[2], m)
  if v[WK] ~= '' then redis.call('SREM', ARGV[2] .. v[WK], ARGV[3]) end
else
  return {was, ra}
end
local now = tonumber(ARGV[6])
local ret = tonumber(v[RT]) or 0
if ret <= 0 then ret = tonumber(redis.call('HGET', KEYS[4], 'ret')) or 0 end
v[S], v[TK], v[WK], v[LU], v[FI] = 'cancelled', 0, '', 0, now
if ret > 0 then
  v[EX] = now + ret
  redis.call('ZADD', KEYS[5], v[EX], m)
  redis.call('HSET', KEYS[4], 'kept', 1)
  putKept(t, v)
else
  putTask(t, v)
end
redis.call('ZADD', KEYS[3], v[RA], m)
if was == 'run' then slotFreed(KEYS[4], ARGV[4], ARGV[5]) end
return {was, ra}
`)

// setLimitScript stores or removes one limit of the queue and keeps the meta field conc
// (how many of its limits cap running tasks), which the scripts that end a run read.
//
//	KEYS[1] limits HASH, KEYS[2] buckets HASH, KEYS[3] meta HASH
//	ARGV[1] field ("*" or "t:<type>"), ARGV[2] value ("rate per burst max"; "" removes)
//
// Returns 1 when the field existed before, 0 when not. The bucket starts full.
var setLimitScript = redis.NewScript(`
local had = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('HDEL', KEYS[2], ARGV[1])
local conc = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local x = string.match(v, ' (%d+)$')
  if x and tonumber(x) > 0 then conc = conc + 1 end
end
redis.call('HSET', KEYS[3], 'conc', conc)
return had
`)

// acquireLeaderScript takes or renews a leadership.
//
//	KEYS[1] the leadership's HASH (holder, token, until µs)
//	ARGV[1] holder, ARGV[2] now µs, ARGV[3] until µs
//
// Returns {1, token, until} when the holder holds it now (a new token when it was free,
// the same when renewed), {0, token, until, holder} of the current leader otherwise.
var acquireLeaderScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'holder', 'token', 'until')
local token = tonumber(v[2]) or 0
local held = v[1] and v[1] ~= '' and tonumber(v[3]) > tonumber(ARGV[2])
if held and v[1] ~= ARGV[1] then return {0, token, v[3], v[1]} end
if not held then token = token + 1 end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'until', ARGV[3])
return {1, token, ARGV[3]}
`)

// renewLeaderScript extends a leadership if it is held.
//
//	KEYS[1] the leadership's HASH
//	ARGV[1] holder, ARGV[2] token, ARGV[3] now µs, ARGV[4] until µs
//
// Returns 1 when renewed, 0 when not held.
var renewLeaderScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'holder', 'token', 'until')
if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] or tonumber(v[3] or 0) <= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'until', ARGV[4])
return 1
`)

// releaseLeaderScript ends a leadership if it is held (the token stays).
//
//	KEYS[1] the leadership's HASH
//	ARGV[1] holder, ARGV[2] token
//
// Returns 1 when released, 0 when not held.
var releaseLeaderScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'holder', 'token')
if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'holder', '', 'until', 0)
return 1
`)

// markRunScript records a schedule's tick, fenced by a leadership.
//
//	KEYS[1] the leadership's HASH, KEYS[2] schedules HASH, KEYS[3] runs HASH
//	ARGV[1] holder, ARGV[2] token, ARGV[3] now µs, ARGV[4] schedule name,
//	ARGV[5] tick µs, ARGV[6] task id
//
// Returns 1 when recorded (or older than the recorded run), -1 when the leadership is not
// held, 0 when there is no such schedule.
var markRunScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'holder', 'token', 'until')
if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] or tonumber(v[3] or 0) <= tonumber(ARGV[3]) then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then return 0 end
local cur = redis.call('HGET', KEYS[3], ARGV[4])
if cur then
  local last = tonumber(string.match(cur, '^(%d+)'))
  if last and last > tonumber(ARGV[5]) then return 1 end
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5] .. ' ' .. ARGV[6])
return 1
`)
