// The Redis backend (see redis_backend.hpp for the keys and the protocol).
#include "redis_backend.hpp"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#ifdef MPT_HAVE_REDIS
#include <hiredis/hiredis.h>
#endif

#include "clock.hpp"
#include "futex.hpp"
#include "redis_conn.hpp"
#include "throttle_shared.hpp"

namespace mpt::detail {

namespace {

constexpr std::int64_t kFirstBackoffNs = 10'000'000;  // 10 ms, doubling up to the option's cap
constexpr std::int64_t kStartPollNs = 20'000'000;     // await_fuel() before start(): 20 ms polls

// set_redis_clock_offset_for_testing(): 0 in every program but the Redis tests.
std::atomic<std::int64_t> g_test_clock_offset_ns{0};

// The whole protocol. KEYS[1]: the throttle's hash; KEYS[2]: the prefix of its per-second
// buckets; KEYS[3]: the sorted set of reservations whose slots have not come yet. ARGV[1]: the
// operation. Times: microseconds relative to base_us (server clock).
constexpr const char* kScript = R"lua(-- mpthrottle v1
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
-- A unit is an emission when it is granted, at its slot. Reservations for later slots wait in
-- pkey (score: the slot; member: 'RUN SEQ N'); the running throttle counts those whose slots
-- have come by `upto`, in slot order.
local function settle(upto, base)
  local due = redis.call('ZRANGEBYSCORE', pkey, '-inf', f(upto), 'WITHSCORES')
  if #due == 0 then return end
  for i = 1, #due, 2 do mcount(tonumber(string.match(due[i], '(%d+)$')), tonumber(due[i + 1]), base) end
  redis.call('ZREMRANGEBYSCORE', pkey, '-inf', f(upto))
end

if op == 'acq' then
  local n, maxwait, emit, extra = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
  local v = redis.call('HMGET', key, 'state', 'interval_us', 'tau_us', 'tat_us', 'base_us',
                       'as_throttle', 'as_monitor', 'run_gen')
  if not v[1] then return {-3, 0, 0} end
  local interval = tonumber(v[2])
  local interval_ns = math.floor(interval * 1000 + 0.5)
  if extra > 0 then madd(extra) end
  if v[1] ~= 'running' then msave(); return {state_code(v[1]), 0, interval_ns} end
  local base = tonumber(v[5])
  local now = now_abs - base
  settle(now, base)
  local due = now
  if v[6] == '1' then
    local tau, tat = tonumber(v[3]), tonumber(v[4])
    local eff = tat
    if tau >= 0 and eff < now - tau then eff = now - tau end
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
  if v[1] ~= 'stopped' then
    if v[1] == 'running' then
      settle(now, base)  -- the slots that came before the stop; the others never will
      runtime = runtime + now - tonumber(v[3])
    end
    redis.call('HSET', key, 'state', 'stopped', 'runtime_us', f(runtime),
               'run_gen', tostring(tonumber(v[7]) + 1))
  end
  msave()
  mload()
  return {state_code(v[1]), f(M.total), f(runtime)}
end

if op == 'rate' then
  local oi, ni, tat = tonumber(v[6]), tonumber(ARGV[4]), tonumber(v[5])
  if tat > now then tat = now + (tat - now) * ni / oi end
  redis.call('HSET', key, 'max_n', ARGV[2], 'per_s', ARGV[3], 'interval_us', ARGV[4],
             'tau_us', ARGV[5], 'tat_us', f(tat))
  return {1}
end

if op == 'snap' then
  if v[1] == 'running' then settle(now, base); msave() end
  local prev = redis.call('GET', bprefix .. (math.floor(now_abs / 1000000) - 1)) or '0'
  return {f(now), prev, redis.call('HGETALL', key)}
end
return redis.error_reply('MPTOP unknown operation ' .. tostring(op))
)lua";

std::string fmt17(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s, const std::string& shown) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw InvalidArgument("Redis URL '" + shown + "': bad %-escape in the user info");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

[[maybe_unused]] std::string get_or(const std::vector<std::pair<std::string, std::string>>& kv,
                                    const char* k, const std::string& dflt = "") {
  for (const auto& [key, value] : kv)
    if (key == k) return value;
  return dflt;
}

[[maybe_unused]] double to_d(const std::string& s, double dflt = 0) {
  if (s.empty()) return dflt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end && *end == '\0' ? v : dflt;
}

[[maybe_unused]] ThrottleState parse_state(const std::string& s) {
  if (s == "running") return ThrottleState::kRunning;
  if (s == "stopped") return ThrottleState::kStopped;
  return ThrottleState::kCreated;
}

Rate rate_from_interval_us(double us) {
  if (!(us > 0)) return {0, 0};
  const double s = us / 1e6;
  return {s, 1.0 / s};
}

}  // namespace

void set_redis_clock_offset_for_testing(std::chrono::nanoseconds offset) noexcept {
  g_test_clock_offset_ns.store(offset.count(), std::memory_order_relaxed);
}

// ---- URL ----------------------------------------------------------------------------------------

std::string RedisUrl::display() const {
  std::string out = "redis://";
  if (!user.empty()) out += user + "@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port) + "/" + name;
}

RedisUrl parse_redis_url(std::string_view url) {
  const std::string shown = redact_url(url);  // never the password, whatever is wrong
  auto bad = [&](const std::string& why) -> InvalidArgument {
    return InvalidArgument("Redis URL '" + shown + "': " + why +
                           " (expected redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME)");
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) throw bad("the scheme must be redis://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos)
    throw bad("query strings and fragments are not supported");
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) throw bad("no throttle name after the host");
  std::string_view authority = rest.substr(0, slash);
  const std::string_view name = rest.substr(slash + 1);
  RedisUrl out;
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view info = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = info.find(':');
    if (colon == std::string_view::npos) {
      out.password = percent_decode(info, shown);  // redis://PASSWORD@host (as redis-cli -u)
    } else {
      out.user = percent_decode(info.substr(0, colon), shown);
      out.password = percent_decode(info.substr(colon + 1), shown);
    }
    out.has_password = true;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) throw bad("empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port.empty()) throw bad("empty port");
    }
    out.host = std::string(authority);
  }
  if (out.host.empty()) throw bad("no host");
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) throw bad("the port must be a number from 1 to 65535");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) throw bad("the port must be a number from 1 to 65535");
    out.port = p;
  }
  if (name.empty()) throw bad("no throttle name after the host");
  try {
    Segment::validate_name(name);
  } catch (const InvalidArgument& e) {
    throw bad(std::string("bad throttle name: ") + e.what());
  }
  out.name = std::string(name);
  return out;
}

double remote_interval_us(const RemoteConfig& c) {
  const double base = c.per_s * 1e6 / static_cast<double>(c.max_n);
  return c.hardcap == Hardcap::kOne ? base : base * (1.0 - c.correction);
}

double remote_tau_us(const RemoteConfig& c, double interval_us) {
  switch (c.hardcap) {
    case Hardcap::kLimit:
      return static_cast<double>(c.max_n - 1) * interval_us;
    case Hardcap::kOne:
      return 0;
    case Hardcap::kNone:
      return -1;
  }
  return 0;
}

// ---- connection layer ---------------------------------------------------------------------------

struct RemoteBackend::Outcome {
  ReplyPtr reply;
  Fail fail = Fail::kNone;
  ErrorCode code = ErrorCode::kUnavailable;
  std::string error;
  explicit operator bool() const noexcept { return fail == Fail::kNone; }
};

namespace {

std::int64_t ms_to_ns(std::chrono::milliseconds ms) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(ms).count();
}

#ifdef MPT_HAVE_REDIS
std::string reply_str(const redisReply* r) {
  if (!r) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR)
    return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return {};
}

std::int64_t reply_int(const redisReply* r) {
  if (!r) return 0;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type == REDIS_REPLY_STRING) return std::strtoll(r->str, nullptr, 10);
  return 0;
}

std::vector<std::pair<std::string, std::string>> reply_pairs(const redisReply* r) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!r || r->type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2)
    out.emplace_back(reply_str(r->element[i]), reply_str(r->element[i + 1]));
  return out;
}
#else
std::string reply_str(const redisReply*) {
  return {};
}
#endif

// Which kind of error a Redis error reply is.
[[maybe_unused]] ErrorCode classify(const std::string& e) {
  auto starts = [&](const char* p) { return e.rfind(p, 0) == 0; };
  if (starts("NOAUTH") || starts("WRONGPASS") || starts("NOPERM") ||
      e.find("invalid password") != std::string::npos || e.find("AUTH") != std::string::npos)
    return ErrorCode::kPermissionDenied;
  if (e.find("WRONGTYPE") != std::string::npos || e.find("MPTFOREIGN") != std::string::npos)
    return ErrorCode::kIncompatible;
  if (starts("LOADING") || starts("BUSY") || starts("MASTERDOWN") || starts("TRYAGAIN"))
    return ErrorCode::kUnavailable;
  if (e.find("MPTGONE") != std::string::npos) return ErrorCode::kNotFound;
  return ErrorCode::kInvalidArgument;
}

}  // namespace

RemoteBackend::RemoteBackend(RedisUrl url, const ThrottleOptions& options,
                             const RemoteConfig* create)
    : url_(std::move(url)), options_(options) {
#ifndef MPT_HAVE_REDIS
  (void)create;
  throw InvalidArgument(url_.display() + ": this mpthrottle was built without Redis support " +
                        "(MPT_REDIS=OFF)");
#else
  key_ = "mpt:{" + url_.name + "}:throttle";
  bucket_prefix_ = "mpt:{" + url_.name + "}:sec:";
  pending_key_ = "mpt:{" + url_.name + "}:pending";
  clock_offset_ns_ = g_test_clock_offset_ns.load(std::memory_order_relaxed);
  // Every throw below leaves conn_ to its destructor: a failed connect() keeps no socket.
  std::lock_guard lock(mu_);
  counter_pid_ = static_cast<int>(::getpid());
  if (Outcome c; !connect_locked(&c)) throw RemoteError(c.code, c.error);
  if (create) cfg_ = *create;
  Outcome o = script_locked(init_args(cfg_, create == nullptr));
  if (!o) throw RemoteError(o.code, o.error);
  const redisReply* r = o.reply.get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
    throw RemoteError(ErrorCode::kIncompatible, url_.display() + ": unexpected reply to init");
  if (reply_int(r->element[0]) < 0) {
    throw RemoteError(ErrorCode::kNotFound, url_.display() + ": no throttle named '" + url_.name +
                                                "' on the server (key " + key_ + ")");
  }
  const auto kv = reply_pairs(r->element[1]);
  RemoteConfig c;
  c.max_n = static_cast<std::int64_t>(to_d(get_or(kv, "max_n")));
  c.per_s = to_d(get_or(kv, "per_s"));
  const int h = static_cast<int>(to_d(get_or(kv, "hardcap"), -1));
  c.correction = to_d(get_or(kv, "correction"));
  c.correction_given = get_or(kv, "correction_source") == "explicit";
  c.as_monitor = get_or(kv, "as_monitor") == "1";
  c.as_throttle = get_or(kv, "as_throttle") == "1";
  c.auto_emit = get_or(kv, "auto_emit") == "1";
  c.id = std::strtoull(get_or(kv, "id").c_str(), nullptr, 16);
  c.creator_pid = static_cast<std::int32_t>(to_d(get_or(kv, "creator_pid")));
  c.creator_host = get_or(kv, "creator_host");
  c.created_realtime_ns = static_cast<std::int64_t>(to_d(get_or(kv, "created_us"))) * 1000;
  c.state = parse_state(get_or(kv, "state"));
  if (c.max_n < 1 || !(c.per_s > 0) || h < 0 || h > 2 || get_or(kv, "version") != "1") {
    throw RemoteError(ErrorCode::kIncompatible,
                      url_.display() + ": the hash " + key_ +
                          " is not a valid mpthrottle throttle (version " +
                          get_or(kv, "version", "none") + ")");
  }
  c.hardcap = static_cast<Hardcap>(h);
  cfg_ = c;
  interval_ns_.store(std::llround(to_d(get_or(kv, "interval_us")) * 1000),
                     std::memory_order_relaxed);
#endif
}

RemoteBackend::~RemoteBackend() {
  std::lock_guard lock(mu_);
  drop_locked();
}

void RemoteBackend::set_fallback(const Throttle& fallback) {
  fallback_.emplace(fallback);
}

std::vector<std::string> RemoteBackend::init_args(const RemoteConfig& c, bool attach_only) const {
  if (attach_only) return {"init", "attach"};
  const double iv = remote_interval_us(c);
  char id[24];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(c.id));
  const char* states[] = {"created", "running", "stopped"};
  return {"init",
          "create",
          "max_n",
          std::to_string(c.max_n),
          "per_s",
          fmt17(c.per_s),
          "hardcap",
          std::to_string(static_cast<int>(c.hardcap)),
          "correction",
          fmt17(c.correction),
          "correction_source",
          c.correction_given ? "explicit" : "none",
          "interval_us",
          fmt17(iv),
          "tau_us",
          fmt17(remote_tau_us(c, iv)),
          "as_monitor",
          c.as_monitor ? "1" : "0",
          "as_throttle",
          c.as_throttle ? "1" : "0",
          "auto_emit",
          c.auto_emit ? "1" : "0",
          "id",
          id,
          "creator_pid",
          std::to_string(c.creator_pid),
          "creator_host",
          c.creator_host.empty() ? "?" : c.creator_host,
          "state",
          states[static_cast<int>(c.state) % 3]};
}

void RemoteBackend::drop_locked() {
  // A forked child frees its copy of the parent's connection: that closes only its descriptor.
  conn_.reset();
}

bool RemoteBackend::connect_locked(Outcome* o) {
  drop_locked();
  const std::string where = url_.display();
  IoResult why;
  conn_ = RedisConn::open(url_.host, url_.port, mono_ns() + ms_to_ns(options_.connect_timeout),
                          &lookup_, &why);
  if (!conn_) {
    o->fail = why.status == IoStatus::kInterrupted ? Fail::kInterrupted : Fail::kUnavailable;
    o->code = ErrorCode::kUnavailable;
    o->error = where + ": cannot connect: " + why.detail +
               (why.status == IoStatus::kTimeout
                    ? " (timed out after " + std::to_string(options_.connect_timeout.count()) +
                          " ms, connect timeout)"
                    : "");
    return false;
  }
  conn_uses_ = 0;
  if (url_.has_password) {
    std::vector<std::string> argv{"AUTH"};
    if (!url_.user.empty()) argv.push_back(url_.user);
    argv.push_back(url_.password);
    Outcome a = command_locked(argv);
    if (!a) {
      o->fail = a.fail;
      o->error = a.fail == Fail::kError
                     ? where + ": authentication failed: " + a.error.substr(a.error.find(": ") + 2)
                     : a.error;
      o->code = a.fail == Fail::kError ? ErrorCode::kPermissionDenied : a.code;
      drop_locked();
      return false;
    }
  }
  return true;
}

bool RemoteBackend::ensure_connected_locked(Outcome* o, bool now_or_never) {
  const int pid = static_cast<int>(::getpid());
  if (counter_pid_ != pid) {  // a forked child counts its own round trips and errors
    counter_pid_ = pid;
    round_trips_ = 0;
    // A lookup the parent left running has no thread here: forget it (the parent's thread
    // holds a reference in this copy of memory, so nothing is freed under it).
    lookup_.reset();
  }
  if (conn_ && conn_->owner_pid() != pid) drop_locked();
  if (conn_) return true;
  o->fail = Fail::kUnavailable;
  o->code = ErrorCode::kUnavailable;
  const std::int64_t now = mono_ns();
  if (now < next_attempt_ns_ && !now_or_never) {
    o->error = (connect_error_.empty() ? url_.display() + ": unavailable" : connect_error_) +
               " (next reconnection attempt in " +
               std::to_string((next_attempt_ns_ - now + 999'999) / 1'000'000) + " ms)";
    return false;
  }
  if (connect_locked(o)) {
    *o = Outcome();
    next_attempt_ns_ = 0;
    connect_error_.clear();
    return true;
  }
  if (o->fail == Fail::kInterrupted) return false;  // not the server's fault: no backoff
  back_off_locked(o->error);
  return false;
}

// The next connection attempt waits: 10 ms after the first failure, doubling up to
// reconnect_backoff_max; a request that succeeds starts again from 10 ms.
void RemoteBackend::back_off_locked(const std::string& why) {
  connect_error_ = why;
  const std::int64_t cap = ms_to_ns(options_.reconnect_backoff_max);
  backoff_ns_ = backoff_ns_ == 0 ? kFirstBackoffNs : std::min(cap, backoff_ns_ * 2);
  next_attempt_ns_ = mono_ns() + backoff_ns_;
}

// Text from the server, fit for a message: never the password, no control bytes (a hostile
// server's escape sequences), at most 200 bytes.
std::string RemoteBackend::server_text(std::string_view s) const {
  std::string t(s);
  if (!url_.password.empty()) {
    for (auto p = t.find(url_.password); p != std::string::npos; p = t.find(url_.password, p + 3)) {
      t.replace(p, url_.password.size(), "***");
    }
  }
  std::string out;
  for (const char ch : t) {
    if (out.size() >= 200) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

RemoteBackend::Outcome RemoteBackend::command_locked(const std::vector<std::string>& argv) {
  Outcome o;
#ifndef MPT_HAVE_REDIS
  (void)argv;
  o.fail = Fail::kUnavailable;
  o.error = "built without Redis support";
  return o;
#else
  ++round_trips_;
  const IoResult r = conn_->request(argv, mono_ns() + ms_to_ns(options_.command_timeout), &o.reply);
  if (!r) {
    o.fail = Fail::kUnavailable;
    o.code = ErrorCode::kUnavailable;
    switch (r.status) {
      case IoStatus::kTimeout:
        o.error = "no answer within " + std::to_string(options_.command_timeout.count()) +
                  " ms (command timeout)";
        break;
      case IoStatus::kInterrupted:
        o.fail = Fail::kInterrupted;
        o.error = r.detail;
        break;
      case IoStatus::kProtocol:  // not a Redis server, or a hostile one
        o.fail = Fail::kError;
        o.code = ErrorCode::kIncompatible;
        o.error = "refused the reply: " + server_text(r.detail);
        break;
      default:
        o.error = "connection lost: " + r.detail;
        break;
    }
    o.error = url_.display() + ": " + o.error;
    o.reply.reset();
    drop_locked();
    if (r.status == IoStatus::kTimeout || r.status == IoStatus::kProtocol) {
      // The server is there but does not answer, or answers nonsense: the calls that follow
      // back off as after a failed connection instead of each waiting out a request of its own.
      back_off_locked(o.error);
    } else {
      // Lost (a restarted server, say) or interrupted: reconnect at the next call.
      next_attempt_ns_ = 0;
    }
    return o;
  }
  backoff_ns_ = 0;  // the server answers
  if (o.reply->type == REDIS_REPLY_ERROR) {
    const std::string raw = reply_str(o.reply.get());
    o.code = classify(raw);
    o.fail = o.code == ErrorCode::kUnavailable ? Fail::kUnavailable : Fail::kError;
    const std::string e = server_text(raw);
    std::string shown = e;
    if (raw.rfind("NOAUTH", 0) == 0)
      shown = "the server requires a password (" + e +
              "); give it in the URL: redis://[USER]:PASSWORD@HOST:PORT/NAME";
    else if (o.code == ErrorCode::kIncompatible)
      shown = "a key of the wrong type under mpt:{" + url_.name + "}: (" + e + ")";
    o.error = url_.display() + ": " + shown;
  }
  return o;
#endif
}

RemoteBackend::Outcome RemoteBackend::script_locked(const std::vector<std::string>& args,
                                                    bool admin) {
  Outcome o;
  if (!ensure_connected_locked(&o, admin)) return o;
  // A connection made before the server restarted is found dead by its first request: one new
  // connection and one more try (the only case besides NOSCRIPT with a second round trip).
  bool fresh = conn_ && conn_uses_ == 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!conn_ && !ensure_connected_locked(&o, admin)) return o;
    if (sha_.empty()) {
      Outcome l = command_locked({"SCRIPT", "LOAD", kScript});
      if (!l) return l;
      sha_ = reply_str(l.reply.get());
    }
    std::vector<std::string> argv{"EVALSHA", sha_, "3", key_, bucket_prefix_, pending_key_};
    argv.insert(argv.end(), args.begin(), args.end());
    o = command_locked(argv);
    // The server forgot the script (restarted, SCRIPT FLUSH): load it and call again, once.
    if (!o && o.error.find("NOSCRIPT") != std::string::npos) {
      sha_.clear();
      continue;
    }
    if (!o && !conn_ && !fresh && o.error.find("connection lost") != std::string::npos) {
      fresh = true;
      continue;
    }
    if (conn_) ++conn_uses_;
    return o;
  }
  return o;
}

void RemoteBackend::fail_locked(const std::string& message) {
  const bool changed = !failing_ || message != last_error_;
  failing_ = true;
  last_error_ = message;
  if (changed && options_.on_error) {
    try {
      options_.on_error(message);
    } catch (...) {
    }
  }
}

// A failed request: a signal's interruption is recorded in last_error() only (the server did
// nothing wrong: no on_error, nothing to recover from).
void RemoteBackend::fail_locked(const Outcome& o) {
  if (o.fail == Fail::kInterrupted) {
    last_error_ = o.error;
    return;
  }
  fail_locked(o.error);
}

void RemoteBackend::ok_locked() {
  if (failing_) {
    failing_ = false;
    last_error_.clear();
    if (options_.on_error) {
      try {
        options_.on_error(url_.display() + ": reconnected");
      } catch (...) {
      }
    }
  }
}

// The server lost the throttle (restarted without persistence, or the key was deleted): put it
// back from what this process knows, in the state it last saw. Counters start again from 0.
bool RemoteBackend::recreate_locked() {
  RemoteConfig c = cfg_;
  c.state = fallback_ && fallback_->s_->kill_flag.load() != 0 ? ThrottleState::kStopped
                                                              : ThrottleState::kRunning;
  if (last_stats_) {
    c.max_n = last_stats_->cfg.max_n;
    c.per_s = last_stats_->cfg.per_s;
  }
  Outcome o = script_locked(init_args(c, false));
  if (!o) {
    fail_locked(o);
    return false;
  }
  return true;
}

// ---- hot path -----------------------------------------------------------------------------------

std::int64_t RemoteBackend::now_local() const noexcept {
  return mono_ns() + clock_offset_ns_;
}

bool RemoteBackend::kill_set() const noexcept {
  return fallback_ && fallback_->s_->kill_flag.load(std::memory_order_acquire) != 0;
}

// The server says stopped: stop the local fallback too (its kill flag ends this process's waiters).
// Never throws: it runs in noexcept paths (stop() itself does not throw but for a throwing hook).
void RemoteBackend::stop_fallback() noexcept {
  try {
    fallback_->stop();
  } catch (...) {
    fallback_->s_->kill_flag.store(1, std::memory_order_release);  // at least end the waiters
    detail::futex_wake(&fallback_->s_->kill_flag, INT32_MAX);
  }
}

// Sleeps (futex on the local kill flag, so that stop() in this process or a forked sibling wakes
// it) until `due_local` minus the spin lead, then spins. False if the kill flag was set.
bool RemoteBackend::sleep_until_local(std::int64_t due_local) noexcept {
  auto* word = &fallback_->s_->kill_flag;
  const std::int64_t lead = fallback_->spin_lead().count();  // clamped: the word may hold anything
  for (;;) {
    if (word->load(std::memory_order_acquire) != 0) return false;
    const std::int64_t now = now_local();
    if (now >= due_local) return true;
    if (due_local - now > lead) {
      futex_wait(word, 0, due_local - lead - clock_offset_ns_);
    } else {
      cpu_relax();
    }
  }
}

// Waits (within the deadline) until the next reconnection attempt is due. False if the deadline
// or the kill flag comes first.
bool RemoteBackend::wait_for_retry(std::int64_t deadline_local) noexcept {
  std::int64_t at;
  {
    std::lock_guard lock(mu_);
    at = next_attempt_ns_ + clock_offset_ns_;
  }
  if (at <= now_local()) return true;
  if (at > deadline_local) {
    if (deadline_local > now_local()) sleep_until_local(deadline_local);
    return false;
  }
  return sleep_until_local(at);
}

RemoteBackend::Acq RemoteBackend::call_acquire(std::int64_t n, std::int64_t max_wait_ns,
                                               bool emit) noexcept {
  Acq a;
  try {
    std::lock_guard lock(mu_);
    const std::int64_t extra = pending_emits_.exchange(0, std::memory_order_relaxed);
    const std::string max_wait_us = max_wait_ns < 0 ? "-1" : fmt17(max_wait_ns / 1000.0);
    for (int attempt = 0; attempt < 2; ++attempt) {
      a.t_send = now_local();
      Outcome o = script_locked(
          {"acq", std::to_string(n), max_wait_us, emit ? "1" : "0", std::to_string(extra)});
      a.t_recv = now_local();
      if (!o) {
        pending_emits_.fetch_add(extra, std::memory_order_relaxed);
        fail_locked(o);
        a.fail = o.fail;
        return a;
      }
      const redisReply* r = o.reply.get();
#ifdef MPT_HAVE_REDIS
      if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        fail_locked(url_.display() + ": unexpected reply from the script");
        a.fail = Fail::kError;
        return a;
      }
      a.status = static_cast<int>(reply_int(r->element[0]));
      a.due_in_ns = reply_int(r->element[1]);
      const std::int64_t iv = reply_int(r->element[2]);
      if (iv > 0) interval_ns_.store(iv, std::memory_order_relaxed);
      if (a.status == 1 && r->elements >= 4) a.member = reply_str(r->element[3]);
#else
      (void)r;
#endif
      if (a.status == -3) {  // gone: put it back and ask again
        if (!recreate_locked()) {
          pending_emits_.fetch_add(extra, std::memory_order_relaxed);
          a.fail = Fail::kError;
          return a;
        }
        continue;
      }
      ok_locked();
      return a;
    }
    a.fail = Fail::kError;
  } catch (...) {  // std::bad_alloc, std::system_error from the mutex
    a.fail = Fail::kError;
  }
  return a;
}

std::int64_t RemoteBackend::unavailable_grant(std::int64_t deadline_ns, std::int64_t n,
                                              bool counts) noexcept {
  if (kill_set()) return -1;
  switch (options_.on_unavailable) {
    case OnUnavailable::kFailOpen:
      if (counts) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return mono_ns();
    case OnUnavailable::kLocalFallback: {
      if (!fallback_) return -1;
      // start() and stop() on the local fallback can throw (its admin lock held past its bound):
      // in this noexcept path that is no grant, never std::terminate.
      try {
        if (fallback_->state() == ThrottleState::kCreated) fallback_->start();
      } catch (...) {
        return -1;
      }
      const auto deadline =
          deadline_ns == kForever ? Throttle::TimePoint::max() : detail::from_ns(deadline_ns);
      const auto g = fallback_->await_grant(deadline, n);
      if (!g) return -1;
      if (counts) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return to_ns(*g);
    }
    case OnUnavailable::kFail:
    case OnUnavailable::kFailClosed:
      break;
  }
  return -1;
}

bool RemoteBackend::has_fuel(std::int64_t n) noexcept {
  if (n < 1 || kill_set()) return false;
  const Acq a = call_acquire(n, 0, cfg_.auto_emit);
  if (a.fail == Fail::kUnavailable) {
    if (options_.on_unavailable == OnUnavailable::kLocalFallback) {
      if (!fallback_ || !fallback_->has_fuel(n)) return false;
      if (cfg_.auto_emit) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return true;
    }
    if (options_.on_unavailable != OnUnavailable::kFailOpen) return false;
    if (cfg_.auto_emit) pending_emits_.fetch_add(n, std::memory_order_relaxed);
    return true;
  }
  if (a.fail != Fail::kNone) return false;
  if (a.status == -2 && fallback_) stop_fallback();
  return a.status == 1 && a.due_in_ns == 0;
}

std::int64_t RemoteBackend::acquire(std::int64_t deadline_ns, std::int64_t n) noexcept {
  if (n < 1) return -1;
  const std::int64_t deadline_local =
      deadline_ns == kForever ? kForever : deadline_ns + clock_offset_ns_;
  bool tried_after_wait = false;
  for (;;) {
    if (kill_set()) return -1;
    const std::int64_t now = now_local();
    const std::int64_t max_wait = deadline_local == kForever ? -1 : deadline_local - now;
    if (max_wait < 0 && deadline_local != kForever) return -1;
    const Acq a = call_acquire(n, max_wait, cfg_.auto_emit);
    if (a.fail == Fail::kUnavailable) {
      if (options_.on_unavailable == OnUnavailable::kFailOpen ||
          options_.on_unavailable == OnUnavailable::kLocalFallback)
        return unavailable_grant(deadline_ns, n, cfg_.auto_emit);
      // kFail: at most one more attempt, when the backoff allows it within the deadline;
      // kFailClosed: keep waiting for the server until the deadline.
      if (options_.on_unavailable == OnUnavailable::kFail && tried_after_wait) return -1;
      if (!wait_for_retry(deadline_local)) return -1;
      tried_after_wait = true;
      continue;
    }
    if (a.fail != Fail::kNone) return -1;
    switch (a.status) {
      case 1: {
        // The script ran between send and receive, so the slot is at most due_in after the
        // reply came: wake there. A process whose kill flag is still clear then holds a slot
        // that came before any stop() on this host (stop() sets the flag before it tells the
        // server), which the server has counted or will count.
        const std::int64_t due = a.t_recv + a.due_in_ns;
        const bool counted_now = a.member.empty() && a.due_in_ns == 0;
        if (counted_now || sleep_until_local(due)) return due - clock_offset_ns_;
        // Stopped while it waited. Counted by the server only if the slot came first.
        if (a.member.empty() || !confirm(a.member)) return -1;
        return std::min(due, now_local()) - clock_offset_ns_;
      }
      case -1: {  // created: wait for start()
        const std::int64_t next = std::min(now_local() + kStartPollNs, deadline_local);
        if (deadline_local != kForever && now_local() >= deadline_local) return -1;
        if (!sleep_until_local(next)) return -1;
        continue;
      }
      case -2:
        if (fallback_) stop_fallback();
        return -1;
      default:
        return -1;  // denied: the slot would come after the deadline
    }
  }
}

// Asks the server whether the reservation `member` was granted (its slot came before the stop:
// counted) or not (given up now, never counted). False too when the server cannot say.
bool RemoteBackend::confirm(const std::string& member) noexcept {
  try {
    std::lock_guard lock(mu_);
    Outcome o = script_locked({"chk", member});
    if (!o) {
      fail_locked(o);
      return false;
    }
    ok_locked();
#ifdef MPT_HAVE_REDIS
    const redisReply* r = o.reply.get();
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && reply_int(r->element[0]) == 1;
#else
    return false;
#endif
  } catch (...) {
    return false;
  }
}

std::optional<std::int64_t> RemoteBackend::reserve(std::int64_t n, std::int64_t now_ns,
                                                   std::int64_t deadline_ns) noexcept {
  if (n < 1 || kill_set()) return std::nullopt;
  const std::int64_t max_wait = deadline_ns == kForever ? -1 : deadline_ns - now_ns;
  if (max_wait < 0 && deadline_ns != kForever) return std::nullopt;
  const Acq a = call_acquire(n, max_wait, false);
  if (a.fail != Fail::kNone || a.status != 1) return std::nullopt;
  return a.t_send + (a.t_recv - a.t_send) / 2 + a.due_in_ns - clock_offset_ns_;
}

void RemoteBackend::emit(std::int64_t timestamp_ns) noexcept {
  if (!cfg_.as_monitor) return;
  try {
    std::lock_guard lock(mu_);
    const std::int64_t offset_ns = timestamp_ns - mono_ns();
    Outcome o = script_locked({"emit", fmt17(static_cast<double>(offset_ns) / 1000.0), "1"});
    if (!o) {
      pending_emits_.fetch_add(1, std::memory_order_relaxed);
      fail_locked(o);
      return;
    }
    ok_locked();
  } catch (...) {
    pending_emits_.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---- administration -----------------------------------------------------------------------------

void RemoteBackend::start() {
  {
    std::lock_guard lock(mu_);
    Outcome o = script_locked({"start"}, true);
    if (!o && o.code == ErrorCode::kNotFound) {
      if (recreate_locked()) o = script_locked({"start"}, true);
    }
    if (!o) {
      fail_locked(o);
      throw RemoteError(o.code, o.error);
    }
    ok_locked();
  }
  if (fallback_) fallback_->start();
}

Summary RemoteBackend::stop() {
  // The local kill flag first: this process and its forked children stop at once, whatever the
  // server does, and none of them takes a slot after this point without the server's word (see
  // acquire()). Then the server: it counts the slots that came before its own time of the stop,
  // and none after.
  if (fallback_) fallback_->stop();
  Summary sum;
  std::lock_guard lock(mu_);
  Outcome o = script_locked({"stop"}, true);
  if (!o) {
    fail_locked(o);
    throw RemoteError(o.code, o.error);
  }
  ok_locked();
#ifdef MPT_HAVE_REDIS
  const redisReply* r = o.reply.get();
  if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3) {
    sum.total = static_cast<std::uint64_t>(to_d(reply_str(r->element[1])));
    const double runtime_us = to_d(reply_str(r->element[2]));
    sum.runtime = std::chrono::duration<double>(runtime_us / 1e6);
    if (sum.total > 0 && runtime_us > 0) {
      sum.mean_interval_s = runtime_us / 1e6 / static_cast<double>(sum.total);
      sum.mean_rate_per_sec = 1.0 / sum.mean_interval_s;
    }
  }
#endif
  return sum;
}

void RemoteBackend::set_rate(std::int64_t max_n, double per_s) {
  RemoteConfig c = cfg_;
  c.max_n = max_n;
  c.per_s = per_s;
  const double iv = remote_interval_us(c);
  std::lock_guard lock(mu_);
  Outcome o = script_locked(
      {"rate", std::to_string(max_n), fmt17(per_s), fmt17(iv), fmt17(remote_tau_us(c, iv))}, true);
  if (!o) {
    fail_locked(o);
    throw RemoteError(o.code, o.error);
  }
  ok_locked();
  cfg_.max_n = max_n;
  cfg_.per_s = per_s;
  interval_ns_.store(std::llround(iv * 1000), std::memory_order_relaxed);
  // The local schedule (kLocalFallback) follows, at rate / k.
  if (fallback_) {
    fallback_->set_rate(max_n, std::chrono::duration<double>(
                                   per_s * static_cast<double>(options_.fallback_divisor)));
  }
}

RemoteBackend::Stats RemoteBackend::stats_or_throw(bool admin) {
  std::lock_guard lock(mu_);
  Outcome o = script_locked({"snap"}, admin);
  if (!o) {
    fail_locked(o);
    throw RemoteError(o.code, o.error);
  }
  ok_locked();
  Stats s;
#ifdef MPT_HAVE_REDIS
  const redisReply* r = o.reply.get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
    throw RemoteError(ErrorCode::kIncompatible, url_.display() + ": unexpected snapshot reply");
  s.now_us = to_d(reply_str(r->element[0]));
  s.prev_second = static_cast<std::int64_t>(to_d(reply_str(r->element[1])));
  const auto kv = reply_pairs(r->element[2]);
  s.cfg = cfg_;
  s.cfg.max_n = static_cast<std::int64_t>(to_d(get_or(kv, "max_n")));
  s.cfg.per_s = to_d(get_or(kv, "per_s"));
  s.cfg.state = parse_state(get_or(kv, "state"));
  s.interval_us = to_d(get_or(kv, "interval_us"));
  s.tau_us = to_d(get_or(kv, "tau_us"));
  s.tat_us = to_d(get_or(kv, "tat_us"));
  s.started_us = to_d(get_or(kv, "started_us"));
  s.runtime_us = to_d(get_or(kv, "runtime_us"));
  s.last_us = to_d(get_or(kv, "last_us"), -1);
  s.min_us = to_d(get_or(kv, "min_us"), -1);
  s.max_us = to_d(get_or(kv, "max_us"), -1);
  s.total = static_cast<std::uint64_t>(to_d(get_or(kv, "total")));
#endif
  last_stats_ = s;
  if (s.interval_us > 0)
    interval_ns_.store(std::llround(s.interval_us * 1000), std::memory_order_relaxed);
  return s;
}

std::optional<RemoteBackend::Stats> RemoteBackend::stats_noexcept() noexcept {
  try {
    return stats_or_throw(false);
  } catch (...) {
    try {
      std::lock_guard lock(mu_);
      return last_stats_;
    } catch (...) {
      return std::nullopt;
    }
  }
}

namespace {

double runtime_us_of(const RemoteBackend::Stats& s) {
  double rt = s.runtime_us;
  if (s.cfg.state == ThrottleState::kRunning) rt += s.now_us - s.started_us;
  return rt;
}

std::int64_t available_of(const RemoteBackend::Stats& s) {
  if (s.cfg.state != ThrottleState::kRunning) return 0;
  if (!s.cfg.as_throttle) return INT64_MAX;
  if (!(s.interval_us > 0)) return 0;
  double eff = s.tat_us;
  if (s.tau_us >= 0) eff = std::max(eff, s.now_us - s.tau_us);
  return s.now_us < eff ? 0 : static_cast<std::int64_t>((s.now_us - eff) / s.interval_us) + 1;
}

Rate mean_of(const RemoteBackend::Stats& s) {
  const double rt = runtime_us_of(s) / 1e6;
  if (s.total == 0 || rt <= 0) return {0, 0};
  return {rt / static_cast<double>(s.total), static_cast<double>(s.total) / rt};
}

}  // namespace

ThrottleState RemoteBackend::state() noexcept {
  const auto s = stats_noexcept();
  return s ? s->cfg.state : cfg_.state;
}

std::int64_t RemoteBackend::available() noexcept {
  const auto s = stats_noexcept();
  return s ? available_of(*s) : 0;
}

Rate RemoteBackend::latest() noexcept {
  const auto s = stats_noexcept();
  if (!s || s->prev_second <= 0) return {0, 0};
  const double r = static_cast<double>(s->prev_second);
  return {1.0 / r, r};
}

Rate RemoteBackend::mean() noexcept {
  const auto s = stats_noexcept();
  return s ? mean_of(*s) : Rate{};
}

Rate RemoteBackend::lo_hi() noexcept {
  const auto s = stats_noexcept();
  return s ? rate_from_interval_us(s->min_us) : Rate{};
}

Rate RemoteBackend::hi_lo() noexcept {
  const auto s = stats_noexcept();
  return s ? rate_from_interval_us(s->max_us) : Rate{};
}

std::uint64_t RemoteBackend::total() noexcept {
  const auto s = stats_noexcept();
  return s ? s->total : 0;
}

Snapshot RemoteBackend::snapshot() {
  const Stats s = stats_or_throw(true);
  Snapshot out;
  out.id = cfg_.id;
  out.name = url_.name;
  out.max_n = s.cfg.max_n;
  out.per_s = s.cfg.per_s;
  out.hardcap = cfg_.hardcap;
  out.as_monitor = cfg_.as_monitor;
  out.as_throttle = cfg_.as_throttle;
  out.auto_emit = cfg_.auto_emit;
  out.auto_calibrate = false;
  out.rf_rate_s = 1.0;
  out.interval_ns = std::llround(s.interval_us * 1000);
  out.correction = cfg_.correction;
  out.correction_source = cfg_.correction_given ? "explicit" : "none";
  out.spin_lead_ns = fallback_ ? fallback_->spin_lead().count() : 0;
  out.state = s.cfg.state;
  out.available = available_of(s);
  out.total = s.total;
  out.runtime_s = runtime_us_of(s) / 1e6;
  if (s.prev_second > 0) {
    const double r = static_cast<double>(s.prev_second);
    out.latest = {1.0 / r, r};
  }
  out.mean = mean_of(s);
  out.lo_hi = rate_from_interval_us(s.min_us);
  out.hi_lo = rate_from_interval_us(s.max_us);
  out.creator_pid = cfg_.creator_pid;
  out.created_realtime_ns = cfg_.created_realtime_ns;
  return out;
}

std::string RemoteBackend::last_error() const {
  std::lock_guard lock(mu_);
  return counter_pid_ == static_cast<int>(::getpid()) ? last_error_ : std::string();
}

std::uint64_t RemoteBackend::round_trips() const noexcept {
  try {
    std::lock_guard lock(mu_);
    return counter_pid_ == static_cast<int>(::getpid()) ? round_trips_ : 0;
  } catch (...) {
    return 0;
  }
}

}  // namespace mpt::detail
