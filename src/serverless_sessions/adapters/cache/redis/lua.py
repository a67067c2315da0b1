"""The Lua source of the Redis adapter's scripts: ``WRITE``, ``READ``, ``ZSET`` and ``RANGE``.

Each script's header comment is its contract (keys, arguments, replies); the Python side that
builds those arguments and reads those replies is :class:`.scripts.Lua`. Encodings shared with
Python (index lists, expiry members, the log's fields) are described in :mod:`.scripts` and
:mod:`.cache`.
"""

from __future__ import annotations

__all__ = ["RANGE", "READ", "RECENT", "WRITE", "ZSET"]

# Shared by the scripts that change zsets: make the zset expire `grace` ms after its latest
# member, or persist it while a member never expires. ZRANGE -1 -1 is O(log n).
_FIT = """
local grace = tonumber(ARGV[#ARGV])
local function fit(zset)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if #top == 0 then return end
  if top[2] == 'inf' then redis.call('PERSIST', zset)
  else redis.call('PEXPIREAT', zset, string.format('%.0f', tonumber(top[2]) + grace)) end
end
-- After adding a member scored `score`: raising the expiry (GT) is enough while the zset is
-- volatile; only a zset without expiry (new, or holding a member that never expires) needs
-- the full fit. A zset may so outlive a member whose expiry was shortened, never the reverse.
-- Returns the zset's expiry when this set it (ms, or -1 for none), else nil.
local function grow(zset, score)
  if score == '+inf' then redis.call('PERSIST', zset); return -1 end
  local at = tonumber(score) + grace
  if redis.call('PEXPIREAT', zset, at, 'GT') == 1 then return at end
  if redis.call('PTTL', zset) == -1 then fit(zset) end
end
-- An activity zset lists the members of its partner (the expiry zset, or an index zset) and
-- expires with it: equal cardinalities then mean every member is ordered (see RECENT).
-- `at`: the partner's expiry when known (see grow), saving its read.
local function mirror(zset, activity, at)
  at = at or redis.call('PEXPIRETIME', zset)
  if at == -1 then redis.call('PERSIST', activity)
  elseif at > 0 then redis.call('PEXPIREAT', activity, at) end
end
"""

WRITE = (
    _FIT
    + """
-- Compare-and-set, append to, or delete one key.
-- KEYS: data hash [, expiry zset, its activity zset, then per index: its zset, its activity
--       zset]  (zsets only on a single server)
-- ARGV: 1 op set|append|del, 2 key, 3 expected version ('' = any; append: log length),
--       4 value, 5 expiry ms|keep|none, 6 generation for a new key,
--       7 index list (the caller's guess),
--       8 cluster bound: '' on a single server, else the score pre-written for this write,
--       9 activity (UNIX seconds; append: its touched_at; '' = none),
--       then only on the log path (write_with_log, append): 10 value weight, 11 log weight
--       ('' = keep the log; append: the items' weight), 12 limit ('' = none),
--       13 touched_at (append), 14 the append's id (append), 15.. log items;
--       last: grace ms
-- Returns {'ok', version, expiry|false, generation, index list, log length (log path)},
-- {'conflict', version [, log length]}, {'missing'} (append), {'too_large', total weight}
-- or {'stale', index list, generation} when the caller must retry with the stored index list.
--
-- The log lives in the hash: l:<position> = item, ll = length, lw = weight, and two fields
-- stamped with the version they belong to: vw = '<version>:<value weight>' and
-- t = '<version>:<touched_at>' (of an append). A plain write (compare_and_set, set) keeps the
-- log and touches none of them: its new version outdates both stamps, so its value weighs its
-- length and it has no touched_at, and its cost stays that of a write without a log.
-- a = the ids of the latest 32 appends (16 characters each): an append retried after its
-- reply was lost finds its id there and is not applied twice.
--
-- Activity zsets (member <key>NUL<generation>, score = activity: ties order by key) order the
-- keys of the namespace and of each index. A write sets its key's score, or removes the key
-- when it has no activity (the scope is then unordered); an append only raises a score
-- already there.

local logged = #ARGV > 10
local cur = logged and redis.call('HMGET', KEYS[1], 'n', 'e', 'g', 'i', 'vw', 'lw', 'll', 'a')
  or redis.call('HMGET', KEYS[1], 'n', 'e', 'g', 'i')
local op, ver = ARGV[1], tonumber(cur[1]) or 0
local len = logged and (tonumber(cur[7]) or 0) or nil  -- nil: no log length in the reply
if op == 'append' then
  if ver == 0 then return {'missing'} end
  if cur[8] and string.find(cur[8], ARGV[14], 1, true) then  -- a retry: it landed already
    return {'ok', ver, cur[2] or false, cur[3], cur[4], len}
  end
  if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= len then return {'conflict', ver, len} end
elseif ARGV[3] ~= '' and tonumber(ARGV[3]) ~= ver then return {'conflict', ver} end
local cluster = ARGV[8] ~= ''
local gen, idx = ARGV[6], ARGV[7]
if ver > 0 then
  if cluster and cur[3] ~= gen then return {'stale', cur[4], cur[3]} end
  gen = cur[3]
  if op ~= 'set' or cur[4] ~= '[]' then idx = cur[4] end
end
if idx ~= ARGV[7] then return {'stale', cur[4], gen} end
if op == 'del' then
  if ver == 0 then return {'ok', 0, false, gen, idx} end
  redis.call('DEL', KEYS[1])
  local ordered = ARGV[2] .. '\0' .. gen
  for j = 4, #KEYS, 2 do
    redis.call('ZREM', KEYS[j], gen .. ARGV[2]); fit(KEYS[j])
    redis.call('ZREM', KEYS[j + 1], ordered); mirror(KEYS[j], KEYS[j + 1])
  end
  if #KEYS > 1 then
    redis.call('ZREM', KEYS[2], gen .. idx .. ARGV[2]); fit(KEYS[2])
    redis.call('ZREM', KEYS[3], ordered); mirror(KEYS[2], KEYS[3])
  end
  return {'ok', ver, cur[2], gen, idx}
end
local exp = ARGV[5]
if exp == 'keep' then exp = (ver > 0 and cur[2]) or 'none' end
if cluster and ARGV[8] ~= 'inf' and (exp == 'none' or tonumber(exp) > tonumber(ARGV[8])) then
  return {'stale', cur[4], cur[3]}
end
if logged then  -- the log path: a set's value with its log replaced or kept, or an append
  -- Run `command` on the hash with `args` a thousand at a time (unpack() takes a few thousand).
  local function batched(command, args)
    for first = 1, #args, 1000 do
      redis.call(command, KEYS[1], unpack(args, first, math.min(first + 999, #args)))
    end
  end
  local lw, vw = tonumber(cur[6]) or 0, tonumber(ARGV[10])
  local fields, gone, items = nil, {}, {}
  if op == 'append' then
    local stamp, weight = string.match(cur[5] or '', '^(%d+):(%d+)$')
    vw = (tonumber(stamp) == ver and tonumber(weight)) or redis.call('HSTRLEN', KEYS[1], 'v')
    lw = lw + tonumber(ARGV[11])
    local ids = string.sub((cur[8] or '') .. ARGV[14], -512)
    fields = {'n', ver + 1, 't', (ver + 1) .. ':' .. ARGV[13], 'a', ids}
  else
    fields = {'v', ARGV[4], 'n', ver + 1, 'g', gen, 'i', idx}
    if ARGV[11] ~= '' then
      for p = #ARGV - 15, len - 1 do gone[#gone + 1] = 'l:' .. p end
      lw, len = tonumber(ARGV[11]), 0
    end
  end
  if ARGV[12] ~= '' and vw + lw > tonumber(ARGV[12]) then return {'too_large', vw + lw} end
  for j = 15, #ARGV - 1 do items[#items + 1] = 'l:' .. (len + j - 15); items[#items + 1] = ARGV[j] end
  len = len + #ARGV - 15
  for _, field in ipairs({'vw', (ver + 1) .. ':' .. vw, 'lw', lw, 'll', len}) do
    fields[#fields + 1] = field
  end
  if exp ~= 'none' then fields[#fields + 1] = 'e'; fields[#fields + 1] = exp
  elseif cur[2] then gone[#gone + 1] = 'e'; redis.call('PERSIST', KEYS[1]) end
  redis.call('HSET', KEYS[1], unpack(fields))
  batched('HSET', items)
  batched('HDEL', gone)
  if exp ~= 'none' then redis.call('PEXPIREAT', KEYS[1], exp) end
elseif exp == 'none' then  -- spelled out: the plain write is the hottest path
  redis.call('HSET', KEYS[1], 'v', ARGV[4], 'n', ver + 1, 'g', gen, 'i', idx)
  if cur[2] then redis.call('HDEL', KEYS[1], 'e'); redis.call('PERSIST', KEYS[1]) end
else
  redis.call('HSET', KEYS[1], 'v', ARGV[4], 'n', ver + 1, 'g', gen, 'i', idx, 'e', exp)
  redis.call('PEXPIREAT', KEYS[1], exp)
end
if #KEYS > 1 then
  local score, member, activity = (exp == 'none') and '+inf' or exp, gen .. ARGV[2], ARGV[9]
  local listed = ARGV[2] .. '\0' .. gen
  local function order(zset, ordered, at)
    if op == 'append' then
      if activity ~= '' then redis.call('ZADD', ordered, 'XX', 'GT', activity, listed) end
    elseif activity == '' then redis.call('ZREM', ordered, listed)
    else redis.call('ZADD', ordered, activity, listed) end
    mirror(zset, ordered, at)
  end
  for j = 4, #KEYS, 2 do
    redis.call('ZADD', KEYS[j], score, member); order(KEYS[j], KEYS[j + 1], grow(KEYS[j], score))
  end
  if ver > 0 and cur[4] ~= idx then redis.call('ZREM', KEYS[2], gen .. cur[4] .. ARGV[2]) end
  redis.call('ZADD', KEYS[2], score, gen .. idx .. ARGV[2])
  order(KEYS[2], KEYS[3], grow(KEYS[2], score))
end
return {'ok', ver + 1, (exp ~= 'none') and exp or false, gen, idx, len}
"""
)

READ = """
-- An entry with a window of its log, in one step. KEYS: the data hash.
-- ARGV: 1 last ('' = from the start of the window), 2 before ('' = up to the end of the log).
-- Returns false for a missing key, else {value, version, expiry|false, t field|false (see
-- WRITE), index list, log length, log weight, start, items}; cost O(items returned).
local cur = redis.call('HMGET', KEYS[1], 'v', 'n', 'e', 't', 'i', 'll', 'lw')
if not cur[2] then return false end
local len = tonumber(cur[6]) or 0
local stop = len
if ARGV[2] ~= '' then stop = math.max(0, math.min(tonumber(ARGV[2]), len)) end
local start = 0
if ARGV[1] ~= '' then start = math.max(0, stop - tonumber(ARGV[1])) end
local items = {}
for first = start, stop - 1, 1000 do
  local names = {}
  for p = first, math.min(first + 999, stop - 1) do names[#names + 1] = 'l:' .. p end
  for _, item in ipairs(redis.call('HMGET', KEYS[1], unpack(names))) do items[#items + 1] = item end
end
return {cur[1], cur[2], cur[3], cur[4], cur[5], len, tonumber(cur[7]) or 0, start, items}
"""

ZSET = (
    _FIT
    + """
-- Change one zset. KEYS: the zset [, its activity zset (drop)]. ARGV: 1 op add|drop, 2 score
-- (add) or bound (drop), 3.. members (with an activity zset: each followed by its member
-- there), last grace ms. 'add' raises scores only (ZADD GT: a pre-written entry never ends
-- before its key); 'drop' removes members scored <= bound ('inf' = all) from the zset, and
-- from its activity zset, and returns them.
local removed = {}
if ARGV[1] == 'add' then
  for j = 3, #ARGV - 1 do redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[j]) end
else
  local bound = tonumber(ARGV[2])
  for j = 3, #ARGV - 1, #KEYS do
    local score = redis.call('ZSCORE', KEYS[1], ARGV[j])
    if score and tonumber(score) <= bound then
      redis.call('ZREM', KEYS[1], ARGV[j]); removed[#removed + 1] = ARGV[j]
      if #KEYS > 1 then redis.call('ZREM', KEYS[2], ARGV[j + 1]) end
    end
  end
end
fit(KEYS[1])
if #KEYS > 1 then mirror(KEYS[1], KEYS[2]) end
return removed
"""
)

RANGE = """
-- Members of one zset relative to the server's clock. KEYS: the zset.
-- ARGV: 1 live|expired, 2 limit (expired only). Returns {now ms, members}.
local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))
if ARGV[1] == 'live' then return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')} end
return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])}
"""

RECENT = """
-- The newest live keys of an activity zset (see WRITE), a bounded step at a time.
-- KEYS: 1 the activity zset, 2 its partner (the expiry zset, or the index's zset).
-- ARGV: 1 the namespace's data key prefix, 2 limit, 3 budget: members examined at most,
--       4 bound: activity ('' = from the newest), 5 bound: a key or a member; only members
--       strictly below (4, 5) are read (a key sorts below its own members).
-- Returns false when the zset does not list every member of its partner (a key written
-- without an activity, or by an older version), else {{key, activity, ...}, resume}: up to
-- `limit` live keys below the bound, newest first, ties by key (the members' own order: key,
-- NUL, generation), and resume = false when none remain, else the {member, activity} to
-- continue strictly below (the budget ran out first: a call never holds the server long).
-- A member is live while its data hash exists with the member's generation; reading those
-- hashes makes this a single-server script. Cost: O(limit + dead members skipped).
if redis.call('ZCARD', KEYS[1]) ~= redis.call('ZCARD', KEYS[2]) then return false end
-- Whether a sorts before b byte by byte, as members do (Lua's `<` follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local limit, budget, top = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local bound = tonumber(top)
if top == '' then top = '+inf' end
local found, offset, chunk = {}, 0, limit + 1
while true do
  local rows = redis.call('ZRANGE', KEYS[1], top, '-inf', 'BYSCORE', 'REV',
    'LIMIT', offset, chunk, 'WITHSCORES')
  for j = 1, #rows, 2 do
    if tonumber(rows[j + 1]) ~= bound or before(rows[j], ARGV[5]) then
      local key = string.sub(rows[j], 1, -18)
      if redis.call('HGET', ARGV[1] .. key, 'g') == string.sub(rows[j], -16) then
        found[#found + 1] = key; found[#found + 1] = rows[j + 1]
        if #found == 2 * limit then return {found, false} end
      end
    end
    budget = budget - 1
    if budget == 0 then return {found, {rows[j], rows[j + 1]}} end
  end
  if #rows < 2 * chunk then return {found, false} end
  offset, chunk = offset + chunk, math.min(2 * chunk, 1024)  -- dead members: read on faster
end
"""
