/**
 * Lua scripts for the shared state (redis-state.ts). Each runs atomically in Redis, so replicas
 * never interleave a read and a write of the same key. Every key they create gets a TTL.
 *
 * Failed authentications: one hash per client address, `auth:<address>`, living exactly one
 * window (created with PEXPIRE failure_window, never extended), with the fields
 *   f  failures that happened in the window
 *   r  checks running now that will count as failures unless they succeed (reserved slots)
 *   w  an id of the window, so a slot of an ended window cannot change the next one
 *   l  1 once the lock-out of this window was reported (one warn per window, fleet-wide)
 * The semantics are those of identity/failure-throttle.ts; the shared-state tests run the same
 * cases against both.
 */

interface ScriptDefinition {
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Creates the window when absent: ARGV[windowMsAt] is its length, ARGV[idAt] its id. */
const OPEN_WINDOW = (windowMsAt: number, idAt: number, reserved: number): string => `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'f', 0, 'r', ${reserved}, 'w', ARGV[${idAt}], 'l', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[${windowMsAt}])
end`;

/** Counts one failure; returns {failures, locked}. ARGV[maxAt] is max_failures. */
const COUNT_FAILURE = (maxAt: number): string => `
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local locked = 0
if f >= tonumber(ARGV[${maxAt}]) and redis.call('HGET', KEYS[1], 'l') == '0' then
  redis.call('HSET', KEYS[1], 'l', 1)
  locked = 1
end
return {f, locked}`;

export const FAILURE_SCRIPTS: Readonly<Record<string, ScriptDefinition>> = {
  // ARGV: max. Milliseconds until the address may try again (0: now).
  tgAuthRetryAfter: {
    numberOfKeys: 1,
    lua: `
local v = redis.call('HMGET', KEYS[1], 'f', 'r')
if tonumber(v[1] or '0') + tonumber(v[2] or '0') < tonumber(ARGV[1]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then return 0 end
return ttl`,
  },
  // ARGV: max, windowMs, new window id. The window id of the slot taken, or nil when none is left.
  tgAuthReserve: {
    numberOfKeys: 1,
    lua: `
local v = redis.call('HMGET', KEYS[1], 'f', 'r', 'w')
if not v[3] then
  redis.call('HSET', KEYS[1], 'f', 0, 'r', 1, 'w', ARGV[3], 'l', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return ARGV[3]
end
if tonumber(v[1]) + tonumber(v[2]) >= tonumber(ARGV[1]) then return nil end
redis.call('HINCRBY', KEYS[1], 'r', 1)
return v[3]`,
  },
  // ARGV: window id, max, windowMs, new window id. The slot's check failed: it becomes a failure.
  // When its window has ended meanwhile, the failure counts in the current one (the safe side).
  tgAuthConfirm: {
    numberOfKeys: 1,
    lua: `
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'r', -1)
else
  ${OPEN_WINDOW(3, 4, 0)}
end
${COUNT_FAILURE(2)}`,
  },
  // ARGV: window id. The slot's check succeeded (or never ran): it is given back.
  tgAuthRelease: {
    numberOfKeys: 1,
    lua: `
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then redis.call('HINCRBY', KEYS[1], 'r', -1) end
return 0`,
  },
  // ARGV: max, windowMs, new window id. A failure found without a check of its own.
  tgAuthRecord: {
    numberOfKeys: 1,
    lua: `
${OPEN_WINDOW(2, 3, 0)}
${COUNT_FAILURE(1)}`,
  },
};

/**
 * Certificate pinning: `pin:c:<name>`, a sorted set of the client addresses that rejected the
 * name's minted certificate, scored by time, trimmed to the window and to a number of clients,
 * expiring one window after the last rejection; `pin:spliced`, a sorted set of the names
 * switched to splice scored by when that ends, trimmed on every use, bounded in size and
 * expiring with the latest switch. Times are Redis's own clock (TIME), one clock for the fleet.
 */
const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

export const PINNING_SCRIPTS: Readonly<Record<string, ScriptDefinition>> = {
  // ARGV: client, windowMs, max clients. Distinct clients that rejected the name in the window.
  tgPinObserve: {
    numberOfKeys: 1,
    lua: `${NOW_MS}
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[3])
if n > max then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1)
  n = max
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n`,
  },
  // ARGV: name, spliceForMs, max names. {1, until} claimed here; {0, until} already spliced;
  // {-1, 0} the set is full.
  tgPinClaim: {
    numberOfKeys: 1,
    lua: `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local existing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if existing then return {0, existing} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {-1, 0} end
local untilMs = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], untilMs, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, tostring(untilMs)}`,
  },
  // Names spliced now: a flat list of name, until.
  tgPinSpliced: {
    numberOfKeys: 1,
    lua: `${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')`,
  },
};
