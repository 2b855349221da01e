package redisbroker

import "github.com/redis/go-redis/v9"

// Task records: see record.go (one STRING per task, {p:q}:t:<id>, read and written in the
// scripts through luaTask).
//
// A lease is held when the record's state is run and its token the lease's. Tokens come
// from HINCRBY on the queue's meta HASH, so a new reservation never reuses one.
//
// Every script touches the keys of one queue only: the declared KEYS, and task and worker
// keys it builds from a prefix of the same queue (same hash tag, so the same cluster slot),
// as asynq's scripts do. The one exception is enqueueScript given several queues, which is
// for one server only: on a cluster the broker calls it once per queue (cluster.go).

// luaChunked defines chunked(cmd, key, list), which calls cmd once per 500 elements of list
// (after key, unless key is nil) instead of once per element: a redis.call costs about as
// much as the work of a small command, and Lua's unpack has a bounded stack.
const luaChunked = `
local function chunked(cmd, key, list)
  for i = 1, #list, 500 do
    local j = math.min(i + 499, #list)
    if key then redis.call(cmd, key, unpack(list, i, j)) else redis.call(cmd, unpack(list, i, j)) end
  end
end
`

// enqueueScript stores a batch of new tasks, all of them or none.
//
//	KEYS[2g-1], KEYS[2g]: the ready ZSET and the meta HASH of the g-th queue of the batch
//	KEYS[2G+1], optional: the queue registry SET, to which a queue is added when its
//	sequence starts (one server only: on a cluster the registry lives in another slot, and
//	the caller adds to it). A queue whose sequence exists is registered already: only
//	this script starts a sequence, and DeleteQueue's script deletes it (the meta HASH)
//	together with the registry entry, so one SADD per queue's life is enough.
//	ARGV[1]: the wake channel
//	ARGV[2]: the number of queues G
//	then for each queue: its task key prefix, its uniqueness lock prefix, its name, its
//	number of tasks n, and n times six fields: id, record (encodeNew: the values before
//	the sequence, which the script appends), ready at µs, unique key ("" for none), unique
//	until (Unix ms), the record's values after the sequence (encodeTail, "" for none)
//
// Returns {stored, fresh}: the number of tasks stored and 1 when a queue's sequence
// started with this call (its meta HASH had none: the queue is new, or was deleted; on a
// cluster the caller then registers it once more, after the script: see DeleteQueue). It
// stores nothing and returns the error "DUP <g> <id>" when a task of that id is stored in
// its queue (the g-th of the call), or "UNIQ <g> <i> <holder id>" when the i-th task
// (from 0) of the g-th queue carries a uniqueness key that a task holds. A lock is a
// STRING holding the task's id that expires at the end of the window (SET PXAT).
// Publishes each queue's name on the wake channel.
//
// Every id is checked before anything is written; the records are written with MSET (one
// per 250 tasks). A batch of one task goes to enqueueOneScript instead.
var enqueueScript = redis.NewScript(luaChunked + `
local G = tonumber(ARGV[2])
local pos = 3
local groups = {}
for g = 1, G do
  local prefix, uprefix, n = ARGV[pos], ARGV[pos+1], tonumber(ARGV[pos+3])
  groups[g] = pos
  for i = 0, n - 1 do
    local b = pos + 4 + i*6
    local id = ARGV[b]
    if redis.call('EXISTS', prefix .. id) == 1 then
      return redis.error_reply('DUP ' .. g .. ' ' .. id)
    end
    if ARGV[b+3] ~= '' then
      local holder = redis.call('GET', uprefix .. ARGV[b+3])
      if holder then return redis.error_reply('UNIQ ' .. g .. ' ' .. i .. ' ' .. holder) end
    end
  end
  pos = pos + 4 + n*6
end
local total, fresh = 0, 0
for g = 1, G do
  local p = groups[g]
  local prefix, uprefix, queue, n = ARGV[p], ARGV[p+1], ARGV[p+2], tonumber(ARGV[p+3])
  local ready, meta = KEYS[2*g-1], KEYS[2*g]
  local last = redis.call('HINCRBY', meta, 'seq', n)
  if last == n then fresh = 1 end
  local recs, members = {}, {}
  for i = 0, n - 1 do
    local b = p + 4 + i*6
    local id, seq = ARGV[b], last - n + 1 + i
    recs[#recs+1] = prefix .. id
    recs[#recs+1] = ARGV[b+1] .. cmsgpack.pack(seq) .. ARGV[b+5]
    if ARGV[b+3] ~= '' then
      redis.call('SET', uprefix .. ARGV[b+3], id, 'PXAT', ARGV[b+4])
    end
    members[#members+1] = ARGV[b+2]
    members[#members+1] = string.format('%016d:', seq) .. id
  end
  chunked('MSET', nil, recs)
  chunked('ZADD', ready, members)
  if last == n and #KEYS > 2*G then redis.call('SADD', KEYS[2*G+1], queue) end
  redis.call('PUBLISH', ARGV[1], queue)
  total = total + n
end
return {total, fresh}
`)

// enqueueOneScript stores one new task: enqueueScript's work for a batch of one, in as
// few calls as it takes (a single enqueue is one round trip whose time is mostly this
// script's): the id is checked by SET NX, which also writes the record.
//
//	KEYS[1] the task key, KEYS[2] the ready ZSET, KEYS[3] the meta HASH, KEYS[4],
//	optional: the queue registry SET (as in enqueueScript)
//	ARGV[1] the wake channel, ARGV[2] the queue's name, ARGV[3] the record without its
//	sequence (encodeNew), ARGV[4] ready at µs, ARGV[5] the id, ARGV[6] the uniqueness
//	lock key ("" for none), ARGV[7] unique until (Unix ms), ARGV[8] the record's values
//	after the sequence (encodeTail, "" for none)
//
// Returns {1, fresh} and errors "DUP 1 <id>" and "UNIQ 1 0 <holder id>" as enqueueScript
// does. A refused id has used a sequence number, which only leaves a gap in the order.
var enqueueOneScript = redis.NewScript(`
if ARGV[6] ~= '' then
  local holder = redis.call('GET', ARGV[6])
  if holder then return redis.error_reply('UNIQ 1 0 ' .. holder) end
end
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
if not redis.call('SET', KEYS[1], ARGV[3] .. cmsgpack.pack(seq) .. ARGV[8], 'NX') then
  return redis.error_reply('DUP 1 ' .. ARGV[5])
end
if ARGV[6] ~= '' then redis.call('SET', ARGV[6], ARGV[5], 'PXAT', ARGV[7]) end
redis.call('ZADD', KEYS[2], ARGV[4], string.format('%016d:', seq) .. ARGV[5])
local fresh = 0
if seq == 1 then
  fresh = 1
  if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[2]) end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {1, fresh}
`)

// reserveScript reclaims the queue's expired leases and leases up to a limit of its ready
// tasks, oldest ReadyAt first, then enqueue order, within the queue's limits.
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET, KEYS[3] dead ZSET, KEYS[4] meta HASH,
//	KEYS[5] limits HASH, KEYS[6] buckets HASH, KEYS[7] completed ZSET, KEYS[8] cancelled
//	ZSET, KEYS[9] cancelled-expiry ZSET (the last three read only when the queue has ever
//	kept a task: luaSweep)
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] now µs,
//	ARGV[4] limit, ARGV[5] lease expiry µs, ARGV[6] worker id ("" for none),
//	ARGV[7] how many expired leases to reclaim at most in this call,
//	ARGV[8] how long (µs) a queue whose concurrency limit is full may be left alone
//
// A paused queue (meta field paused = 1) returns nothing and reclaims nothing. A queue
// that has kept tasks for a retention (meta field kept) has its expired ones removed, a
// bounded slice per call (luaSweep). A new attempt starts without the last one's progress. An expired
// lease on the task's last attempt moves it to dead; any other goes back to ready with its
// ReadyAt. Limits (see keys.go): the queue's own caps how many are taken; among the oldest
// ready tasks (at most limit + 256 looked at), a task whose type has a limit is taken only
// while that limit allows. A concurrency limit counts the running ZSET's unexpired members
// (of that type: each one's type is read). A rate limit is a token bucket: tokens grow
// at rate/per up to burst, and each task taken draws one.
//
// Each leased task costs one GET of its record; the new records are written by one MSET
// per 250 tasks.
//
// Returns a flat array: first the time (µs) before which limits let nothing of the ready
// tasks be taken (-1 when nothing was held back or something was taken), then 1 if that is
// a concurrency limit (a slot freeing ends it sooner) or 0, then three entries per leased
// task: its id, its lease token and its record as leased (state run, attempt counted,
// token, worker).
var reserveScript = redis.NewScript(luaChunked + luaTask + luaSweep + `
local ready, running, dead, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tp, wp, now, expiry, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[5], ARGV[6]
local nowN, expN = tonumber(now), tonumber(expiry)
local pk = redis.call('HMGET', meta, 'paused', 'kept')
if pk[1] == '1' then return {-1, 0} end
if pk[2] then sweepKept(KEYS[7], KEYS[8], KEYS[9], tp, now) end
local expired = redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, tonumber(ARGV[7]))
for _, m in ipairs(expired) do
  local id = string.sub(m, 18)
  local t = tp .. id
  local v = getTask(t)
  redis.call('ZREM', running, m)
  if v then
    if v[WK] ~= '' then redis.call('SREM', wp .. v[WK], id) end
    v[TK], v[WK], v[LU] = 0, '', 0
    if v[AT] >= v[MA] then
      v[S], v[FA], v[LE] = 'dead', nowN, 'lease expired on the final attempt (worker lost)'
      redis.call('ZADD', dead, v[RA], m)
      redis.call('HINCRBY', meta, 'failed', 1)
    else
      v[S] = 'q'
      redis.call('ZADD', ready, v[RA], m)
    end
    putTask(t, v)
  end
end
local want = tonumber(ARGV[4])
local L, typed = {}, false
local lim = redis.call('HGETALL', KEYS[5])
for i = 1, #lim, 2 do
  local r, p, b, x = string.match(lim[i+1], '^(%d+) (%d+) (%d+) (%d+)$')
  if r then
    L[lim[i]] = {rate = tonumber(r), per = tonumber(p), burst = tonumber(b), max = tonumber(x), taken = 0}
    if lim[i] ~= '*' then typed = true end
  end
end
local blocked, slot = -1, 0
local function block(at, isSlot)
  if blocked < 0 or at < blocked then blocked, slot = at, isSlot end
end
local function allowance(f, l, count)
  local a = want
  if l.max > 0 then
    a = math.min(a, l.max - count())
    if a <= 0 then block(nowN + tonumber(ARGV[8]), 1) end
  end
  if l.rate > 0 then
    local tokens, ts = l.burst, nowN
    local s = redis.call('HGET', KEYS[6], f)
    if s then
      local x, y = string.match(s, '^(%S+) (%S+)$')
      tokens, ts = tonumber(x) or l.burst, tonumber(y) or nowN
      if nowN > ts then
        tokens = math.min(l.burst, tokens + (nowN - ts) * l.rate / l.per)
        ts = nowN
      end
    end
    l.tokens, l.ts = tokens, ts
    local k = math.floor(tokens)
    if k < a then
      a = k
      if k <= 0 then block(ts + math.ceil((1 - tokens) * l.per / l.rate), 0) end
    end
  end
  return math.max(a, 0)
end
local function typeOf(id)
  local v = getTask(tp .. id)
  return v and v[TY]
end
local ms
local whole = L['*']
if whole then
  want = allowance('*', whole, function() return redis.call('ZCOUNT', running, '(' .. now, '+inf') end)
end
if want <= 0 then
  ms = {}
elseif not typed then
  ms = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, want)
else
  ms = {}
  local left = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, want + 256)) do
    if #ms >= want then break end
    local ty = typeOf(string.sub(m, 18))
    local l = ty and L['t:' .. ty]
    if not l then
      ms[#ms+1] = m
    else
      if left[ty] == nil then
        left[ty] = allowance('t:' .. ty, l, function()
          local c = 0
          for _, r in ipairs(redis.call('ZRANGEBYSCORE', running, '(' .. now, '+inf')) do
            if typeOf(string.sub(r, 18)) == ty then c = c + 1 end
          end
          return c
        end)
      end
      if left[ty] > 0 then
        left[ty] = left[ty] - 1
        l.taken = l.taken + 1
        ms[#ms+1] = m
      end
    end
  end
end
local out = {blocked, slot}
if #ms == 0 then return out end
chunked('ZREM', ready, ms)
local tok = redis.call('HINCRBY', meta, 'tok', #ms) - #ms
local leased, ids, recs = {}, {}, {}
for _, m in ipairs(ms) do
  local id = string.sub(m, 18)
  local t = tp .. id
  local v = getTask(t)
  if v then
    tok = tok + 1
    v[AT], v[S], v[ST], v[LU], v[TK], v[WK], v[PG] = v[AT] + 1, 'run', nowN, expN, tok, worker, ''
    local rec = packTask(v)
    recs[#recs+1] = t
    recs[#recs+1] = rec
    leased[#leased+1] = expiry
    leased[#leased+1] = m
    ids[#ids+1] = id
    out[#out+1] = id
    out[#out+1] = tok
    out[#out+1] = rec
  end
end
if whole then whole.taken = #ids end
for f, l in pairs(L) do
  if l.tokens then redis.call('HSET', KEYS[6], f, tostring(l.tokens - l.taken) .. ' ' .. string.format('%d', l.ts)) end
end
if #ids > 0 then out[1], out[2] = -1, 0 end
chunked('MSET', nil, recs)
chunked('ZADD', running, leased)
if worker ~= '' then chunked('SADD', wp .. worker, ids) end
return out
`)

// luaSlotFreed defines slotFreed(meta, channel, queue), which publishes the queue on the
// wake channel when it has a concurrency limit (meta field conc > 0): a task of it has
// just stopped running, so a worker held back by the limit may take one.
const luaSlotFreed = `
local function slotFreed(meta, channel, queue)
  local c = redis.call('HGET', meta, 'conc')
  if c and c ~= '0' then redis.call('PUBLISH', channel, queue) end
end
`

// luaHeld defines held(v, tok), which says whether the record v (or nil) is leased
// under the token tok (a string of ARGV).
const luaHeld = `
local function held(v, tok)
  return v ~= nil and v[S] == 'run' and v[TK] == tonumber(tok)
end
`

// luaSweep defines sweepKept(completed, cancelled, cexp, tp, now), which removes the
// queue's tasks kept for a retention whose expiry (µs) is at or before now: at most
// 100 of the completed ZSET (members "<seq>:<id>" scored by expiry) and as many of the
// cancelled-expiry ZSET (the cancelled tasks kept for a retention, same members, also
// removed from the cancelled ZSET), with their records. The bound keeps a mass expiry from
// making one script long (and so from holding up workers): the next calls remove the rest.
// Scripts call it only when the queue's meta field kept is set, so that a queue that never
// kept a task pays nothing.
const luaSweep = `
local function sweepOne(z, also, tp, now)
  local ms = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 100)
  if #ms == 0 then return end
  local ks = {}
  for i, m in ipairs(ms) do ks[i] = tp .. string.sub(m, 18) end
  redis.call('ZREM', z, unpack(ms))
  if also then redis.call('ZREM', also, unpack(ms)) end
  redis.call('DEL', unpack(ks))
end
local function sweepKept(completed, cancelled, cexp, tp, now)
  sweepOne(completed, nil, tp, now)
  sweepOne(cexp, cancelled, tp, now)
end
`

// ackScript ends the attempts of held leases as completed: a task whose retention (its
// own, else its queue's meta field ret, µs) is positive is kept in state done with its
// finish and expiry times and its result, in the completed ZSET scored by its expiry;
// any other is removed.
//
//	KEYS[1] running ZSET, KEYS[2] meta HASH, KEYS[3] completed ZSET, KEYS[4] cancelled
//	ZSET, KEYS[5] cancelled-expiry ZSET
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] wake channel,
//	ARGV[4] queue name, ARGV[5] now µs, ARGV[6] the width of one lease's fields: 2 (id,
//	token) for Ack, 3 (id, token, result: "" for none, else "=" and its bytes) for
//	Complete; then the leases' fields
//
// Returns the 0-based positions of the leases not held (left alone). Wakes waiters when
// the queue has a concurrency limit. Each task costs one GET; the removals are one command
// per 500 tasks. Reads the meta fields ret and kept with one HMGET: a queue that never
// kept a task costs that command and nothing more; one that has kept tasks has its expired
// ones removed (luaSweep).
var ackScript = redis.NewScript(luaChunked + luaSlotFreed + luaTask + luaHeld + luaSweep + `
local now, width = tonumber(ARGV[5]), tonumber(ARGV[6])
local cfg = redis.call('HMGET', KEYS[2], 'ret', 'kept')
local qret, kept = tonumber(cfg[1]) or 0, cfg[2]
local lost, done, members, keys, byWorker, keptM = {}, {}, {}, {}, {}, {}
for i = 7, #ARGV, width do
  local id, tok = ARGV[i], ARGV[i+1]
  local t = ARGV[1] .. id
  local v = getTask(t)
  if held(v, tok) and not done[id] then
    done[id] = true
    local m = memberOf(v, id)
    members[#members+1] = m
    if v[WK] ~= '' then
      local w = byWorker[v[WK]]
      if not w then w = {}; byWorker[v[WK]] = w end
      w[#w+1] = id
    end
    local ret = tonumber(v[RT]) or 0
    if ret <= 0 then ret = qret end
    if ret > 0 then
      v[S], v[TK], v[WK], v[LU], v[FI], v[EX] = 'done', 0, '', 0, now, now + ret
      if width == 3 then v[RS] = ARGV[i+2] end
      putKept(t, v)
      keptM[#keptM+1] = now + ret
      keptM[#keptM+1] = m
    else
      keys[#keys+1] = t
    end
  else
    lost[#lost+1] = (i - 7) / width
  end
end
if #members > 0 then
  chunked('ZREM', KEYS[1], members)
  chunked('DEL', nil, keys)
  for w, ids in pairs(byWorker) do chunked('SREM', ARGV[2] .. w, ids) end
  if #keptM > 0 then
    chunked('ZADD', KEYS[3], keptM)
    expireWithLast(KEYS[3])
    if not kept then redis.call('HSET', KEYS[2], 'kept', 1); kept = '1' end
  end
  redis.call('HINCRBY', KEYS[2], 'completed', #members)
  slotFreed(KEYS[2], ARGV[3], ARGV[4])
end
if kept then sweepKept(KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[5]) end
return lost
`)

// progressScript replaces the progress of a held task.
//
//	KEYS[1] the task key
//	ARGV[1] token, ARGV[2] progress (encodeProgress)
//
// Returns 1, or 0 when the lease is not held.
var progressScript = redis.NewScript(luaTask + luaHeld + `
local v = getTask(KEYS[1])
if not held(v, ARGV[1]) then return 0 end
v[PG] = ARGV[2]
putTask(KEYS[1], v)
return 1
`)

// extendScript moves the expiry of held leases.
//
//	KEYS[1] running ZSET
//	ARGV[1] task key prefix, ARGV[2] new expiry µs, then pairs: id, token
//
// Returns the 0-based positions of the pairs whose lease is not held.
var extendScript = redis.NewScript(luaTask + luaHeld + `
local lost = {}
local expiry = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local id, tok = ARGV[i], ARGV[i+1]
  local t = ARGV[1] .. id
  local v = getTask(t)
  if held(v, tok) then
    redis.call('ZADD', KEYS[1], ARGV[2], memberOf(v, id))
    v[LU] = expiry
    putTask(t, v)
  else
    lost[#lost+1] = (i - 3) / 2
  end
end
return lost
`)

// releaseScript hands held tasks back unrun: pending again with their ReadyAt, the attempt
// given back.
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] wake channel,
//	ARGV[4] queue name, then pairs: id, token
//
// Returns the number released; publishes the queue on the wake channel if any.
var releaseScript = redis.NewScript(luaTask + luaHeld + `
local n = 0
for i = 5, #ARGV, 2 do
  local id, tok = ARGV[i], ARGV[i+1]
  local t = ARGV[1] .. id
  local v = getTask(t)
  if held(v, tok) then
    local m = memberOf(v, id)
    redis.call('ZREM', KEYS[2], m)
    if v[WK] ~= '' then redis.call('SREM', ARGV[2] .. v[WK], id) end
    v[AT], v[S], v[TK], v[WK], v[LU] = v[AT] - 1, 'q', 0, '', 0
    putTask(t, v)
    redis.call('ZADD', KEYS[1], v[RA], m)
    n = n + 1
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return n
`)

// retryScript ends a held attempt with an error and schedules the task again.
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET, KEYS[3] meta HASH
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] wake channel,
//	ARGV[4] queue name, ARGV[5] id, ARGV[6] token, ARGV[7] ready at µs, ARGV[8] error,
//	ARGV[9] now µs
//
// Returns 1, or 0 when the lease is not held. Publishes the queue on the wake channel, so
// that waiters take the new ReadyAt into account.
var retryScript = redis.NewScript(luaTask + luaHeld + `
local t = ARGV[1] .. ARGV[5]
local v = getTask(t)
if not held(v, ARGV[6]) then return 0 end
local m = memberOf(v, ARGV[5])
redis.call('ZREM', KEYS[2], m)
if v[WK] ~= '' then redis.call('SREM', ARGV[2] .. v[WK], ARGV[5]) end
v[S], v[TK], v[WK], v[LU], v[RA], v[LE], v[FA] = 'q', 0, '', 0, tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
putTask(t, v)
redis.call('ZADD', KEYS[1], ARGV[7], m)
redis.call('HINCRBY', KEYS[3], 'failed', 1)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// killScript ends a held attempt with an error and moves the task to dead.
//
//	KEYS[1] dead ZSET, KEYS[2] running ZSET, KEYS[3] meta HASH
//	ARGV[1] task key prefix, ARGV[2] worker-tasks key prefix, ARGV[3] id, ARGV[4] token,
//	ARGV[5] error, ARGV[6] now µs, ARGV[7] wake channel, ARGV[8] queue name
//
// Returns 1, or 0 when the lease is not held. Wakes waiters when the queue has a
// concurrency limit.
var killScript = redis.NewScript(luaSlotFreed + luaTask + luaHeld + `
local t = ARGV[1] .. ARGV[3]
local v = getTask(t)
if not held(v, ARGV[4]) then return 0 end
local m = memberOf(v, ARGV[3])
redis.call('ZREM', KEYS[2], m)
if v[WK] ~= '' then redis.call('SREM', ARGV[2] .. v[WK], ARGV[3]) end
v[S], v[TK], v[WK], v[LU], v[LE], v[FA] = 'dead', 0, '', 0, ARGV[5], tonumber(ARGV[6])
putTask(t, v)
redis.call('ZADD', KEYS[1], v[RA], m)
redis.call('HINCRBY', KEYS[3], 'failed', 1)
slotFreed(KEYS[3], ARGV[7], ARGV[8])
return 1
`)

// releaseWorkerScript makes the queue's tasks reserved by one worker ready again (their
// attempts stay counted) and forgets the worker's set.
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET, KEYS[3] the worker's task SET
//	ARGV[1] task key prefix, ARGV[2] worker id, ARGV[3] wake channel, ARGV[4] queue name
//
// Returns the number released; publishes the queue on the wake channel if any.
var releaseWorkerScript = redis.NewScript(luaTask + `
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local t = ARGV[1] .. id
  local v = getTask(t)
  if v and v[S] == 'run' and v[WK] == ARGV[2] then
    local m = memberOf(v, id)
    redis.call('ZREM', KEYS[2], m)
    v[S], v[TK], v[WK], v[LU] = 'q', 0, '', 0
    putTask(t, v)
    redis.call('ZADD', KEYS[1], v[RA], m)
    n = n + 1
  end
end
redis.call('DEL', KEYS[3])
if n > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return n
`)

// retryDeadScript makes dead tasks pending again with a fresh attempt budget and ReadyAt
// now, at the end of the enqueue order.
//
//	KEYS[1] ready ZSET, KEYS[2] dead ZSET, KEYS[3] meta HASH
//	ARGV[1] task key prefix, ARGV[2] wake channel, ARGV[3] queue name, ARGV[4] now µs,
//	then the ids to move (none: every dead task of the queue)
//
// Returns the number moved; publishes the queue on the wake channel if any.
var retryDeadScript = redis.NewScript(luaTask + `
local ms = {}
if #ARGV == 4 then
  ms = redis.call('ZRANGE', KEYS[2], 0, -1)
else
  for i = 5, #ARGV do
    local v = getTask(ARGV[1] .. ARGV[i])
    local m = v and memberOf(v, ARGV[i])
    if m and redis.call('ZSCORE', KEYS[2], m) then ms[#ms+1] = m end
  end
end
local n = 0
for _, m in ipairs(ms) do
  local id = string.sub(m, 18)
  local t = ARGV[1] .. id
  redis.call('ZREM', KEYS[2], m)
  local v = getTask(t)
  if v then
    local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
    v[S], v[AT], v[RA], v[SEQ], v[TK], v[WK], v[LU] = 'q', 0, tonumber(ARGV[4]), seq, 0, '', 0
    putTask(t, v)
    redis.call('ZADD', KEYS[1], ARGV[4], memberOf(v, id))
    n = n + 1
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return n
`)

// deleteScript removes tasks of one state (pending, scheduled, dead, cancelled or
// completed) of the queue.
//
//	KEYS[1] the ready ZSET (pending, scheduled), the dead ZSET (dead), the cancelled ZSET
//	(cancelled) or the completed ZSET (completed); KEYS[2], cancelled only: the
//	cancelled-expiry ZSET, from which the tasks are removed too
//	ARGV[1] task key prefix, ARGV[2] state: pending, scheduled, dead, cancelled or
//	completed, ARGV[3] now µs, then the ids to remove (none: every task of that state)
//
// Returns the number removed.
var deleteScript = redis.NewScript(luaChunked + luaTask + `
local state, now = ARGV[2], tonumber(ARGV[3])
local ms = {}
if #ARGV == 3 then
  if state == 'pending' then
    ms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
  elseif state == 'scheduled' then
    ms = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[3], '+inf')
  else
    ms = redis.call('ZRANGE', KEYS[1], 0, -1)
  end
else
  for i = 4, #ARGV do
    local v = getTask(ARGV[1] .. ARGV[i])
    local m = v and memberOf(v, ARGV[i])
    local score = m and redis.call('ZSCORE', KEYS[1], m)
    if score then
      score = tonumber(score)
      if state == 'dead' or state == 'cancelled' or state == 'completed' or (state == 'pending' and score <= now) or (state == 'scheduled' and score > now) then
        ms[#ms+1] = m
      end
    end
  end
end
local keys = {}
for _, m in ipairs(ms) do keys[#keys+1] = ARGV[1] .. string.sub(m, 18) end
chunked('ZREM', KEYS[1], ms)
if KEYS[2] then chunked('ZREM', KEYS[2], ms) end
chunked('DEL', nil, keys)
return #ms
`)

// allScripts are loaded at Open so that the first calls need no EVAL fallback.
var allScripts = []*redis.Script{
	enqueueScript, enqueueOneScript, reserveScript, ackScript, extendScript, releaseScript, retryScript,
	killScript, releaseWorkerScript, progressScript, retryDeadScript, deleteScript, deleteQueueScript, addSamplesScript,
	cancelScript, setLimitScript, acquireLeaderScript, renewLeaderScript, releaseLeaderScript,
	markRunScript, migrateScript,
}
