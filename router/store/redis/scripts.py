"""The Lua scripts of the Redis store.  Each runs on the keys of one shard.

Every script is safe to run twice (redis-py re-sends a command whose
connection broke before the reply), and every path that reports success has
written something, so the ``WAIT`` that follows on the same connection really
waits for this step's writes and not for nothing.

Records are hashes ``{v: version, d: JSON}``: the version check needs no
JSON decoding in Redis.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: idem, outbox, create-doc (or placeholder), unresolved, read-docs...
#: ARGV: fp, owner, lease_ms, rid, idem_ttl_ms, create_version ('' = none),
#:       create_doc, doc_ttl_ms, create_event ('' = none),
#:       reconcile_ref ('' = none), reconcile_due
#: -> {'claimed', rid, fresh, created, taken_over, {docs}} | {'replay', resp}
#:    | {'busy', ms} | {'mismatch'}
#: A doc this claim created comes back as '': the caller holds it already.
CLAIM = (
    _NOW
    + """
local function docs(created)
  local out = {}
  for i = 5, #KEYS do
    if created == '1' and KEYS[i] == KEYS[3] then
      out[#out + 1] = ''
    else
      out[#out + 1] = redis.call('HGET', KEYS[i], 'd') or ''
    end
  end
  return out
end
local rec = redis.call('HMGET', KEYS[1], 'fp', 'rid', 'owner', 'lease', 'resp')
if not rec[1] then
  local created = '0'
  if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HSET', KEYS[3], 'v', ARGV[6], 'd', ARGV[7])
    redis.call('PEXPIRE', KEYS[3], ARGV[8])
    if ARGV[9] ~= '' then
      redis.call('XADD', KEYS[2], '*', 'e', ARGV[9], 'd', ARGV[7])
      redis.call('PEXPIRE', KEYS[2], ARGV[8])
    end
    if ARGV[10] ~= '' then
      redis.call('ZADD', KEYS[4], ARGV[11], ARGV[10])
      redis.call('PEXPIRE', KEYS[4], ARGV[8])
    end
    created = '1'
  end
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'rid', ARGV[4], 'owner', ARGV[2],
             'lease', now + tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'claimed', ARGV[4], '1', created, '0', docs(created)}
end
if rec[1] ~= ARGV[1] then return {'mismatch'} end
if rec[5] then return {'replay', rec[5]} end
if rec[3] == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  local created = '0'
  if ARGV[6] ~= '' and redis.call('HGET', KEYS[3], 'd') == ARGV[7] then created = '1' end
  return {'claimed', rec[2], '1', created, '0', docs(created)}
end
if tonumber(rec[4]) > now then return {'busy', tostring(tonumber(rec[4]) - now)} end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'lease', now + tonumber(ARGV[3]))
local taken = '0'
if rec[3] and rec[3] ~= '' then taken = '1' end
return {'claimed', rec[2], '0', '0', taken, docs('0')}
"""
)

#: KEYS: idem (or placeholder), outbox, unresolved, seen (or placeholder), docs...
#: ARGV: owner ('' = no lease), finish, response, idem_ttl_ms, doc_ttl_ms,
#:       seen_ttl_ms ('' = none), n_writes, {expected, version, doc}...,
#:       n_events, {event, write_index}..., n_reconcile, {ref, due ('' = clear)}...
#: -> {'ok'} | {'conflict', write_index} | {'lease_lost'} | {'seen'}
COMMIT = """
local i = 7
local nw = tonumber(ARGV[i]); i = i + 1
local writes = {}
for w = 1, nw do writes[w] = {tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]}; i = i + 3 end
local ne = tonumber(ARGV[i]); i = i + 1
local events = {}
for e = 1, ne do events[e] = {ARGV[i], tonumber(ARGV[i + 1])}; i = i + 2 end
local nr = tonumber(ARGV[i]); i = i + 1
local recon = {}
for r = 1, nr do recon[r] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end

if ARGV[1] ~= '' then
  local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp')
  if rec[2] then
    if ARGV[2] == 'complete' and rec[2] == ARGV[3] then
      redis.call('PEXPIRE', KEYS[1], ARGV[4])
      return {'ok'}
    end
    return {'lease_lost'}
  end
  if rec[1] ~= ARGV[1] then return {'lease_lost'} end
end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then return {'seen'} end

local fresh, done = 0, 0
for w = 1, nw do
  local key = KEYS[4 + w]
  local cur = redis.call('HGET', key, 'v')
  if (writes[w][1] == 0 and not cur) or (cur and tonumber(cur) == writes[w][1]) then
    fresh = fresh + 1
  elseif cur and cur == writes[w][2] and redis.call('HGET', key, 'd') == writes[w][3] then
    done = done + 1
  else
    return {'conflict', tostring(w)}
  end
end
if fresh > 0 and done > 0 then return {'conflict', '0'} end

if done == 0 then
  for w = 1, nw do
    local key = KEYS[4 + w]
    redis.call('HSET', key, 'v', writes[w][2], 'd', writes[w][3])
    redis.call('PEXPIRE', key, ARGV[5])
  end
  for e = 1, ne do
    redis.call('XADD', KEYS[2], '*', 'e', events[e][1], 'd', writes[events[e][2]][3])
  end
  if ne > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
  for r = 1, nr do
    if recon[r][2] == '' then
      redis.call('ZREM', KEYS[3], recon[r][1])
    else
      redis.call('ZADD', KEYS[3], recon[r][2], recon[r][1])
      redis.call('PEXPIRE', KEYS[3], ARGV[5])
    end
  end
  if ARGV[6] ~= '' then redis.call('SET', KEYS[4], '1', 'PX', ARGV[6]) end
elseif ARGV[1] == '' then
  redis.call('PEXPIRE', KEYS[5], ARGV[5])  -- a re-run: still write, for WAIT
end

if ARGV[1] ~= '' then
  if ARGV[2] == 'complete' then
    redis.call('HSET', KEYS[1], 'resp', ARGV[3], 'owner', '', 'lease', 0)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  elseif ARGV[2] == 'release' then
    redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
end
return {'ok'}
"""

#: KEYS: idem.  ARGV: owner, lease_ms -> 1 if still ours (lease pushed), else 0
EXTEND_LEASE = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'owner', 'resp', 'lease')
if rec[1] ~= ARGV[1] or rec[2] then return 0 end
local until_ms = now + tonumber(ARGV[2])
if until_ms > tonumber(rec[3]) then redis.call('HSET', KEYS[1], 'lease', until_ms) end
return 1
"""
)

#: KEYS: unresolved.  ARGV: now_ms, hold_until_ms, limit -> due references (now held)
DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, item in ipairs(items) do redis.call('ZADD', KEYS[1], ARGV[2], item) end
return items
"""

#: KEYS: reconcilers.  ARGV: member, now_ms, alive_ms, ttl_ms -> the members
#: that passed within alive_ms of now (this one included; older ones dropped)
RECONCILERS = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[2]) - tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

#: KEYS: doc.  ARGV: version, doc, ttl_ms -> 1 if restored, 0 if one is there already
RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: KEYS: docs.  ARGV: hot_window_ms, then each doc's drained version: shorten
#: the TTL of every doc still at that version (one that moved on keeps its own)
DRAINED = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'v') == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    n = n + 1
  end
end
return n
"""

#: KEYS: webhook retry zset, webhook stream.  ARGV: now_ms, limit
RELEASE_RETRIES = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, item in ipairs(items) do
  redis.call('XADD', KEYS[2], '*', 'd', item)
  redis.call('ZREM', KEYS[1], item)
end
return #items
"""
