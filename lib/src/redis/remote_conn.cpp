// RemoteThrottle::Impl's connection layer: connecting (and authenticating), one request at a
// time with its deadline, the script loaded and called, retries and backoff, errors and their
// messages, and the throttle's hash made, read back and re-made (see remote_impl.hpp).
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "clock.hpp"
#include "remote_impl.hpp"
#include "script.hpp"

namespace mpt::detail {

namespace {

constexpr std::int64_t kFirstBackoffNs = 10'000'000;  // 10 ms, doubling up to the option's cap

// set_redis_clock_offset_for_testing(): 0 in every program but the Redis tests.
std::atomic<std::int64_t> g_test_clock_offset_ns{0};

std::int64_t ms_to_ns(std::chrono::milliseconds ms) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(ms).count();
}

// Which kind of error a Redis error reply is.
ErrorCode classify(const std::string& e) {
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

void set_redis_clock_offset_for_testing(std::chrono::nanoseconds offset) noexcept {
  g_test_clock_offset_ns.store(offset.count(), std::memory_order_relaxed);
}

// ---- the script's replies -----------------------------------------------------------------------

std::string fmt17(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

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

Fields reply_pairs(const redisReply* r) {
  Fields out;
  if (!r || r->type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2)
    out.emplace_back(reply_str(r->element[i]), reply_str(r->element[i + 1]));
  return out;
}

std::string get_or(const Fields& kv, const char* k, const std::string& dflt) {
  for (const auto& [key, value] : kv)
    if (key == k) return value;
  return dflt;
}

double to_d(const std::string& s, double dflt) {
  if (s.empty()) return dflt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end && *end == '\0' ? v : dflt;
}

ThrottleState parse_state(const std::string& s) {
  if (s == "running") return ThrottleState::kRunning;
  if (s == "stopped") return ThrottleState::kStopped;
  return ThrottleState::kCreated;
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

}  // namespace mpt::detail

namespace mpt {

using detail::classify;
using detail::fmt17;
using detail::get_or;
using detail::IoResult;
using detail::IoStatus;
using detail::kFirstBackoffNs;
using detail::mono_ns;
using detail::ms_to_ns;
using detail::RedisConn;
using detail::remote_interval_us;
using detail::remote_tau_us;
using detail::RemoteConfig;
using detail::reply_int;
using detail::reply_pairs;
using detail::reply_str;
using detail::to_d;

// ---- the hash -----------------------------------------------------------------------------------

RemoteThrottle::Impl::Impl(detail::RedisUrl url, const RemoteOptions& options,
                           const RemoteConfig* create)
    : url_(std::move(url)), options_(options) {
  key_ = "mpt:{" + url_.name + "}:throttle";
  bucket_prefix_ = "mpt:{" + url_.name + "}:sec:";
  pending_key_ = "mpt:{" + url_.name + "}:pending";
  clock_offset_ns_ = detail::g_test_clock_offset_ns.load(std::memory_order_relaxed);
  // Every throw below leaves conn_ to its destructor: a failed connect() keeps no socket.
  Locked lock(*this);
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
  cfg_ = read_config(r->element[1]);
}

// The configuration stored in the hash (HGETALL's reply), checked; sets interval_ns_.
RemoteConfig RemoteThrottle::Impl::read_config(const redisReply* fields) {
  const auto kv = reply_pairs(fields);
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
  c.state = detail::parse_state(get_or(kv, "state"));
  if (c.max_n < 1 || !(c.per_s > 0) || h < 0 || h > 2 || get_or(kv, "version") != "1") {
    throw RemoteError(ErrorCode::kIncompatible,
                      url_.display() + ": the hash " + key_ +
                          " is not a valid mpthrottle throttle (version " +
                          get_or(kv, "version", "none") + ")");
  }
  c.hardcap = static_cast<Hardcap>(h);
  interval_ns_.store(std::llround(to_d(get_or(kv, "interval_us")) * 1000),
                     std::memory_order_relaxed);
  return c;
}

RemoteThrottle::Impl::~Impl() {
  flush_report(true);  // leased grants not reported yet, on the connection there is
  Locked lock(*this);
  drop_locked();
}

void RemoteThrottle::Impl::set_fallback(Throttle fallback) {
  kill_.emplace(fallback.kill_flag());
  fallback_.emplace(std::move(fallback));
}

std::vector<std::string> RemoteThrottle::Impl::init_args(const RemoteConfig& c,
                                                         bool attach_only) const {
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

void RemoteThrottle::Impl::drop_locked() {
  // A forked child frees its copy of the parent's connection: that closes only its descriptor.
  conn_.reset();
}

bool RemoteThrottle::Impl::connect_locked(Outcome* o) {
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

bool RemoteThrottle::Impl::ensure_connected_locked(Outcome* o, bool now_or_never) {
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
void RemoteThrottle::Impl::back_off_locked(const std::string& why) {
  connect_error_ = why;
  const std::int64_t cap = ms_to_ns(options_.reconnect_backoff_max);
  backoff_ns_ = backoff_ns_ == 0 ? kFirstBackoffNs : std::min(cap, backoff_ns_ * 2);
  next_attempt_ns_ = mono_ns() + backoff_ns_;
}

// Text from the server, fit for a message: never the password, no control bytes (a hostile
// server's escape sequences), at most 200 bytes.
std::string RemoteThrottle::Impl::server_text(std::string_view s) const {
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

RemoteThrottle::Impl::Outcome RemoteThrottle::Impl::command_locked(
    const std::vector<std::string>& argv) {
  Outcome o;
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
}

RemoteThrottle::Impl::Outcome RemoteThrottle::Impl::script_locked(
    const std::vector<std::string>& args, bool admin) {
  Outcome o;
  if (!ensure_connected_locked(&o, admin)) return o;
  // A connection made before the server restarted is found dead by its first request: one new
  // connection and one more try (the only case besides NOSCRIPT with a second round trip).
  bool fresh = conn_ && conn_uses_ == 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!conn_ && !ensure_connected_locked(&o, admin)) return o;
    if (sha_.empty()) {
      Outcome l = command_locked({"SCRIPT", "LOAD", detail::kThrottleScript});
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

RemoteThrottle::Impl::Locked::~Locked() {
  std::vector<std::string> notes;
  notes.swap(impl_.notes_);
  lock_.unlock();
  for (const std::string& m : notes) {
    try {
      impl_.options_.on_error(m);
    } catch (...) {
    }
  }
}

void RemoteThrottle::Impl::fail_locked(const std::string& message) {
  const bool changed = !failing_ || message != last_error_;
  failing_ = true;
  last_error_ = message;
  if (changed && options_.on_error) notes_.push_back(message);
}

// A failed request: a signal's interruption is recorded in last_error() only (the server did
// nothing wrong: no on_error, nothing to recover from).
void RemoteThrottle::Impl::fail_locked(const Outcome& o) {
  if (o.fail == Fail::kInterrupted) {
    last_error_ = o.error;
    return;
  }
  fail_locked(o.error);
}

void RemoteThrottle::Impl::ok_locked() {
  if (failing_) {
    failing_ = false;
    last_error_.clear();
    if (options_.on_error) notes_.push_back(url_.display() + ": reconnected");
  }
}

// The server lost the throttle (restarted without persistence, or the key was deleted): put it
// back from what this process knows, in the state it last saw. Counters start again from 0.
bool RemoteThrottle::Impl::recreate_locked() {
  RemoteConfig c = cfg_;
  c.state = kill_set() ? ThrottleState::kStopped : ThrottleState::kRunning;
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

}  // namespace mpt
