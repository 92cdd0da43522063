// RemoteThrottle::Impl's administration: start, stop, set_rate, and the snapshot operation with
// the accessors built on it (see remote_impl.hpp).
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "remote_impl.hpp"

namespace mpt {

using detail::fmt17;
using detail::get_or;
using detail::parse_state;
using detail::remote_interval_us;
using detail::remote_tau_us;
using detail::RemoteConfig;
using detail::reply_pairs;
using detail::reply_str;
using detail::to_d;

void RemoteThrottle::Impl::start() {
  drop_lease();  // slots leased in an earlier run are not this run's
  {
    Locked lock(*this);
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
  fallback_->start();
}

Summary RemoteThrottle::Impl::stop() {
  // The local kill flag first: this process and its forked children stop at once, whatever the
  // server does, and none of them takes a slot after this point without the server's word (see
  // acquire()). Then the server: it counts the slots that came before its own time of the stop,
  // and none after.
  // Leased slots not granted yet never will be here; the grants from leases go with the stop
  // (after the flag: a grant is recorded before it, or not at all; see record_grant()).
  fallback_->stop();
  drop_lease();
  Summary sum;
  Locked lock(*this);
  const std::string report = take_report();
  Outcome o = script_locked({"stop", report}, true);
  if (!o) {
    fail_locked(o);
    throw RemoteError(o.code, o.error);
  }
  ack_report();
  ok_locked();
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
  return sum;
}

void RemoteThrottle::Impl::set_rate(std::int64_t max_n, double per_s) {
  RemoteConfig c = cfg_;
  c.max_n = max_n;
  c.per_s = per_s;
  const double iv = remote_interval_us(c);
  drop_lease();  // the new rate here at once: the slots leased at the old one are lost time
  Locked lock(*this);
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
  fallback_->set_rate(
      max_n, std::chrono::duration<double>(per_s * static_cast<double>(options_.fallback_divisor)));
}

RemoteThrottle::Impl::Stats RemoteThrottle::Impl::stats_or_throw(bool admin) {
  Locked lock(*this);
  const std::string report = take_report();
  Outcome o = script_locked({"snap", report}, admin);
  if (!o) {
    fail_locked(o);
    throw RemoteError(o.code, o.error);
  }
  ack_report();
  ok_locked();
  Stats s;
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
  last_stats_ = s;
  if (s.interval_us > 0)
    interval_ns_.store(std::llround(s.interval_us * 1000), std::memory_order_relaxed);
  return s;
}

std::optional<RemoteThrottle::Impl::Stats> RemoteThrottle::Impl::stats_noexcept() noexcept {
  try {
    return stats_or_throw(false);
  } catch (...) {
    try {
      Locked lock(*this);
      return last_stats_;
    } catch (...) {
      return std::nullopt;
    }
  }
}

namespace {

using Stats = RemoteThrottle::Impl::Stats;

Rate rate_from_interval_us(double us) {
  if (!(us > 0)) return {0, 0};
  const double s = us / 1e6;
  return {s, 1.0 / s};
}

double runtime_us_of(const Stats& s) {
  double rt = s.runtime_us;
  if (s.cfg.state == ThrottleState::kRunning) rt += s.now_us - s.started_us;
  return rt;
}

std::int64_t available_of(const Stats& s) {
  if (s.cfg.state != ThrottleState::kRunning) return 0;
  if (!s.cfg.as_throttle) return INT64_MAX;
  if (!(s.interval_us > 0)) return 0;
  double eff = s.tat_us;
  if (s.tau_us >= 0) eff = std::max(eff, s.now_us - s.tau_us);
  return s.now_us < eff ? 0 : static_cast<std::int64_t>((s.now_us - eff) / s.interval_us) + 1;
}

Rate mean_of(const Stats& s) {
  const double rt = runtime_us_of(s) / 1e6;
  if (s.total == 0 || rt <= 0) return {0, 0};
  return {rt / static_cast<double>(s.total), static_cast<double>(s.total) / rt};
}

// The emissions counted in the last complete second of the server's clock.
Rate latest_of(const Stats& s) {
  if (s.prev_second <= 0) return {0, 0};
  const double r = static_cast<double>(s.prev_second);
  return {1.0 / r, r};
}

}  // namespace

ThrottleState RemoteThrottle::Impl::state() noexcept {
  const auto s = stats_noexcept();
  return s ? s->cfg.state : cfg_.state;
}

std::int64_t RemoteThrottle::Impl::available() noexcept {
  const auto s = stats_noexcept();
  return s ? available_of(*s) : 0;
}

Rate RemoteThrottle::Impl::latest() noexcept {
  const auto s = stats_noexcept();
  return s ? latest_of(*s) : Rate{};
}

Rate RemoteThrottle::Impl::mean() noexcept {
  const auto s = stats_noexcept();
  return s ? mean_of(*s) : Rate{};
}

Rate RemoteThrottle::Impl::lo_hi() noexcept {
  const auto s = stats_noexcept();
  return s ? rate_from_interval_us(s->min_us) : Rate{};
}

Rate RemoteThrottle::Impl::hi_lo() noexcept {
  const auto s = stats_noexcept();
  return s ? rate_from_interval_us(s->max_us) : Rate{};
}

std::uint64_t RemoteThrottle::Impl::total() noexcept {
  const auto s = stats_noexcept();
  return s ? s->total : 0;
}

Snapshot RemoteThrottle::Impl::snapshot() {
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
  out.spin_lead_ns = fallback_->spin_lead().count();
  out.state = s.cfg.state;
  out.available = available_of(s);
  out.total = s.total;
  out.runtime_s = runtime_us_of(s) / 1e6;
  out.latest = latest_of(s);
  out.mean = mean_of(s);
  out.lo_hi = rate_from_interval_us(s.min_us);
  out.hi_lo = rate_from_interval_us(s.max_us);
  out.creator_pid = cfg_.creator_pid;
  out.created_realtime_ns = cfg_.created_realtime_ns;
  return out;
}

std::string RemoteThrottle::Impl::last_error() const {
  Locked lock(*this);
  return counter_pid_ == static_cast<int>(::getpid()) ? last_error_ : std::string();
}

std::uint64_t RemoteThrottle::Impl::round_trips() const noexcept {
  try {
    Locked lock(*this);
    return counter_pid_ == static_cast<int>(::getpid()) ? round_trips_ : 0;
  } catch (...) {
    return 0;
  }
}

}  // namespace mpt
