-- mpthrottle v1
-- The whole protocol of mpthrottle's Redis backend, one operation per call (EVALSHA).
-- KEYS[1]: the throttle's hash; KEYS[2]: the prefix of its per-second buckets; KEYS[3]: the
-- sorted set of reservations whose slots have not come yet. ARGV[1]: the operation (acq, chk,
-- emit, init, start, stop, rate, snap, rep). Times: microseconds relative to base_us (server clock).
-- Leases: acq with k > 1 reserves k consecutive slots for one process, counted as emissions only
-- when the process reports them granted (REPORT below, with its next call).
-- Built into the library as a string (lib/CMakeLists.txt generates redis_script.cpp from it).
local key, bprefix, pkey, op = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local t = redis.call('TIME')
local now_abs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function f(x) return string.format('%.17g', x) end
local function state_code(s) if s == 'running' then return 1 elseif s == 'created' then return -1 end return -2 end

-- The monitor's counters, read on first use and written back once by msave().
local M = nil
local function mload()
  if M then return end
  local v = redis.call('HMGET', key, 'total', 'last_us', 'min_us', 'max_us')
  M = {total = tonumber(v[1]) or 0, last = tonumber(v[2]) or -1, lo = tonumber(v[3]) or -1,
       hi = tonumber(v[4]) or -1, dirty = false}
end
local function msave()
  if M and M.dirty then
    redis.call('HSET', key, 'total', f(M.total), 'last_us', f(M.last), 'min_us', f(M.lo),
               'max_us', f(M.hi))
  end
end
local function madd(n) mload(); M.total = M.total + n; M.dirty = true end
-- counts n emissions at ts (relative us)
local function mcount(n, ts, base)
  madd(n)
  local bk = bprefix .. math.floor((ts + base) / 1000000)
  if redis.call('INCRBY', bk, n) == n then redis.call('EXPIRE', bk, 10) end
  if ts > M.last then
    if M.last >= 0 then
      local d = ts - M.last
      if M.lo < 0 or d < M.lo then M.lo = d end
      if d > M.hi then M.hi = d end
    end
    M.last = ts
  end
end
-- Counts the n slots first, first + iv, ... (relative us) as emissions, in the per-second
-- buckets they fall in.
local function mcount_run(first, iv, n, base)
  madd(n)
  local pos = 0
  while pos < n do
    local sec = math.floor((first + pos * iv + base) / 1000000)
    local stop = math.min(n, math.ceil(((sec + 1) * 1000000 - base - first) / iv))
    if stop <= pos then stop = pos + 1 end
    local bk = bprefix .. sec
    if redis.call('INCRBY', bk, stop - pos) == stop - pos then redis.call('EXPIRE', bk, 10) end
    pos = stop
  end
  local last = first + (n - 1) * iv
  if first > M.last and M.last >= 0 then
    local d = first - M.last
    if M.lo < 0 or d < M.lo then M.lo = d end
    if d > M.hi then M.hi = d end
  end
  if n >= 2 then
    if M.lo < 0 or iv < M.lo then M.lo = iv end
    if iv > M.hi then M.hi = iv end
  end
  if last > M.last then M.last = last end
end
-- The stop time of run GEN (the run's state went running -> stopped at it): 'stops' keeps the
-- last 8 runs' "GEN STOP_US" pairs. nil when the run is not among them.
local function stop_of(gen)
  for g, us in string.gmatch(redis.call('HGET', key, 'stops') or '', '(%d+):(%S+)') do
    if tonumber(g) == gen then return tonumber(us) end
  end
  return nil
end
-- One report entry 'GEN S0 IV A B [A B ...]' (S0 and IV as acq wrote them, A..B ranges of
-- granted slot indexes): counted whole for the current run while running; for an earlier run
-- only the slots before that run's stop (dropped if the run is not among the last 8 stopped).
local function count_entry(entry, state, cur, base)
  local it = string.gmatch(entry, '%S+')
  local gen, s0, iv = tonumber(it() or ''), tonumber(it() or ''), tonumber(it() or '')
  if not (gen and s0 and iv and iv > 0) or gen > cur then return end
  local upto = nil
  if not (gen == cur and state == 'running') then
    upto = stop_of(gen)
    if not upto then return end
  end
  while true do
    local a, b = tonumber(it() or ''), tonumber(it() or '')
    if not a or not b then break end
    if upto and b > math.floor((upto - s0) / iv) then b = math.floor((upto - s0) / iv) end
    if a < 0 then a = 0 end
    if b >= a then mcount_run(s0 + a * iv, iv, b - a + 1, base) end
  end
end
-- REPORT: a process's grants not yet acknowledged, 'TOKEN SEQ EXTRA;ENTRY;ENTRY...' chunks
-- joined by '/': EXTRA units counted while the server was away, then lease entries (above). A
-- chunk is counted once: the hash keeps each token's last sequence number ('rs:TOKEN' = "SEQ
-- TIME_US") and a chunk at or below it (resent after a reply that never came) is skipped.
local function count_report(rep, state, cur, base)
  if not rep or rep == '' then return end
  for chunk in string.gmatch(rep, '[^/]+') do
    local entries = string.gmatch(chunk, '[^;]+')
    local h = string.gmatch(entries() or '', '%S+')
    local token, seq, extra = h(), tonumber(h() or ''), tonumber(h() or '')
    if token and seq and extra then
      local seen = redis.call('HGET', key, 'rs:' .. token)
      if not seen or seq > tonumber(string.match(seen, '^(%S+)')) then
        redis.call('HSET', key, 'rs:' .. token, seq .. ' ' .. f(now_abs - base))
        if extra > 0 then madd(extra) end
        for entry in entries do count_entry(entry, state, cur, base) end
      end
    end
  end
end
-- 'stops' with run GEN's stop at NOW added (the last 8 kept).
local function push_stop(gen, now)
  local t = {}
  for p in string.gmatch(redis.call('HGET', key, 'stops') or '', '%S+') do table.insert(t, p) end
  table.insert(t, gen .. ':' .. f(now))
  while #t > 8 do table.remove(t, 1) end
  return table.concat(t, ' ')
end
-- Forgets the sequence numbers of tokens not heard from in 10 minutes (admin calls only).
local function prune_tokens(now)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 3) == 'rs:' then
      local t = tonumber(string.match(all[i + 1], '%S+$')) or 0
      if t < now - 600000000 then redis.call('HDEL', key, all[i]) end
    end
  end
end
-- A unit is an emission when it is granted, at its slot. Reservations for later slots wait in
-- pkey (score: the slot; member: 'RUN SEQ N'); the running throttle counts those whose slots
-- have come by `upto`, in slot order.
local function settle(upto, base)
  local due = redis.call('ZRANGEBYSCORE', pkey, '-inf', f(upto), 'WITHSCORES')
  if #due == 0 then return end
  for i = 1, #due, 2 do mcount(tonumber(string.match(due[i], '(%d+)$')), tonumber(due[i + 1]), base) end
  redis.call('ZREMRANGEBYSCORE', pkey, '-inf', f(upto))
end

-- acq N MAXWAIT EMIT - [K REPORT]: N units (or, K > 1 and N = 1, a lease of K slots; the
-- reply then adds K, the first slot, the interval, tau and the run).
if op == 'acq' then
  local n, maxwait, emit = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
  local k = tonumber(ARGV[6] or '1') or 1
  local v = redis.call('HMGET', key, 'state', 'interval_us', 'tau_us', 'tat_us', 'base_us',
                       'as_throttle', 'as_monitor', 'run_gen')
  if not v[1] then return {-3, 0, 0} end
  local interval = tonumber(v[2])
  local interval_ns = math.floor(interval * 1000 + 0.5)
  local base = tonumber(v[5])
  local now = now_abs - base
  if v[1] == 'running' then settle(now, base) end
  count_report(ARGV[7], v[1], tonumber(v[8]), base)
  if v[1] ~= 'running' then msave(); return {state_code(v[1]), 0, interval_ns} end
  local due = now
  if v[6] == '1' then
    local tau, tat = tonumber(v[3]), tonumber(v[4])
    local eff = tat
    if tau >= 0 and eff < now - tau then eff = now - tau end
    if k > 1 and n == 1 then  -- a lease: slots eff, eff + interval, ... (some may be due now)
      if maxwait >= 0 and eff - now > maxwait then
        msave()
        return {0, math.floor((eff - now) * 1000), interval_ns}
      end
      redis.call('HSET', key, 'tat_us', f(eff + k * interval), 'lease_end_us', f(eff + k * interval))
      msave()
      return {1, math.floor((eff - now) * 1000), interval_ns, '', k, f(eff), f(interval), f(tau), v[8]}
    end
    due = eff + (n - 1) * interval
    if maxwait >= 0 and due - now > maxwait then
      msave()
      return {0, math.floor((due - now) * 1000), interval_ns}
    end
    redis.call('HSET', key, 'tat_us', f(eff + n * interval))
  end
  if due < now then due = now end
  local member = ''
  if emit and v[7] == '1' then
    if due <= now then
      mcount(n, now, base)
    else
      member = v[8] .. ' ' .. redis.call('HINCRBY', key, 'pseq', 1) .. ' ' .. n
      redis.call('ZADD', pkey, f(due), member)
    end
  end
  msave()
  return {1, math.floor((due - now) * 1000), interval_ns, member}
end

-- A process stopped while it waited for the slot of `member`: granted (1) if the slot came
-- first, and then it is counted; otherwise (0) the reservation is given up and never counted.
if op == 'chk' then
  local member = ARGV[2]
  local v = redis.call('HMGET', key, 'state', 'base_us', 'run_gen')
  if not v[1] then return {0} end
  if v[1] == 'running' then
    local base = tonumber(v[2])
    settle(now_abs - base, base)
    msave()
  end
  if redis.call('ZREM', pkey, member) == 1 then return {0} end
  -- Gone from pkey: counted, unless a start() since its run dropped what that run left.
  local gen, cur = tonumber(string.match(member, '^(%d+)')), tonumber(v[3])
  if gen == cur or (gen + 1 == cur and v[1] == 'stopped') then return {1} end
  return {0}
end

if op == 'emit' then
  local v = redis.call('HMGET', key, 'state', 'base_us', 'as_monitor')
  if not v[1] then return {-3} end
  if v[3] ~= '1' or v[1] == 'stopped' then return {0} end
  local base = tonumber(v[2])
  local now = now_abs - base
  if v[1] == 'running' then settle(now, base) end
  local ts = now + tonumber(ARGV[2])
  if ts < 0 then ts = 0 end
  mcount(tonumber(ARGV[3]), ts, base)
  msave()
  return {1}
end

if op == 'init' then
  local ty = redis.call('TYPE', key)['ok']
  if ty == 'hash' then
    if redis.call('HGET', key, 'magic') ~= 'mpthrottle' then
      return redis.error_reply('MPTFOREIGN the hash ' .. key .. ' was not made by mpthrottle')
    end
    return {0, redis.call('HGETALL', key)}
  elseif ty ~= 'none' then
    return redis.error_reply('WRONGTYPE the key ' .. key .. ' holds a ' .. ty .. ', not an mpthrottle hash')
  end
  if ARGV[2] == 'attach' then return {-1, {}} end
  local fields = {'magic', 'mpthrottle', 'version', '1', 'base_us', f(now_abs),
                  'created_us', f(now_abs), 'run_gen', '0', 'runtime_us', '0', 'started_us', '0',
                  'tat_us', '0', 'total', '0', 'last_us', '-1', 'min_us', '-1', 'max_us', '-1'}
  for i = 3, #ARGV do table.insert(fields, ARGV[i]) end
  redis.call('DEL', pkey)
  redis.call('HSET', key, unpack(fields))
  return {1, redis.call('HGETALL', key)}
end

local v = redis.call('HMGET', key, 'state', 'base_us', 'started_us', 'runtime_us', 'tat_us', 'interval_us', 'run_gen')
if not v[1] then return redis.error_reply('MPTGONE the throttle ' .. key .. ' does not exist') end
local base = tonumber(v[2])
local now = now_abs - base

if op == 'start' then
  if v[1] ~= 'running' then
    redis.call('DEL', pkey)  -- what the last run reserved past its stop was never granted
    redis.call('HSET', key, 'state', 'running', 'started_us', f(now), 'tat_us', f(now),
               'run_gen', tostring(tonumber(v[7]) + 1))
  end
  return {state_code(v[1])}
end

if op == 'stop' then
  local runtime = tonumber(v[4])
  if v[1] == 'running' then settle(now, base) end  -- the slots that came before the stop
  count_report(ARGV[2], v[1], tonumber(v[7]), base)  -- the stopping process's leased grants
  if v[1] ~= 'stopped' then
    if v[1] == 'running' then runtime = runtime + now - tonumber(v[3]) end
    redis.call('HSET', key, 'state', 'stopped', 'runtime_us', f(runtime), 'stop_us', f(now),
               'run_gen', tostring(tonumber(v[7]) + 1), 'stops', push_stop(v[7], now))
    prune_tokens(now)
  end
  msave()
  mload()
  return {state_code(v[1]), f(M.total), f(runtime)}
end

if op == 'rate' then
  local oi, ni, tat = tonumber(v[6]), tonumber(ARGV[4]), tonumber(v[5])
  -- The backlog is spaced at the new rate, but never before the end of the slots leased: their
  -- holders grant them at their times, and no one else may be given them.
  if tat > now then
    tat = now + (tat - now) * ni / oi
    local lease_end = tonumber(redis.call('HGET', key, 'lease_end_us')) or 0
    if tat < lease_end then tat = lease_end end
  end
  redis.call('HSET', key, 'max_n', ARGV[2], 'per_s', ARGV[3], 'interval_us', ARGV[4],
             'tau_us', ARGV[5], 'tat_us', f(tat))
  return {1}
end

if op == 'snap' then
  if v[1] == 'running' then settle(now, base) end
  count_report(ARGV[2], v[1], tonumber(v[7]), base)
  msave()
  local prev = redis.call('GET', bprefix .. (math.floor(now_abs / 1000000) - 1)) or '0'
  return {f(now), prev, redis.call('HGETALL', key)}
end
-- rep REPORT: a process's leased grants, on their own (it saw the stop, or it lets go).
if op == 'rep' then
  if v[1] == 'running' then settle(now, base) end
  count_report(ARGV[2], v[1], tonumber(v[7]), base)
  msave()
  return {state_code(v[1])}
end
return redis.error_reply('MPTOP unknown operation ' .. tostring(op))
