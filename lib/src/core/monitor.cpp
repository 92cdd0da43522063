// Throttle's monitor and accessors: the counters, the rates, the snapshot.
#include "mpt/throttle.hpp"

#include <climits>

#include "clock.hpp"
#include "throttle_ops.hpp"
#include "throttle_shared.hpp"

namespace mpt {

using detail::bucket_count;
using detail::bucket_tag;
using detail::correction_source;
using detail::load_lead;
using detail::load_state;
using detail::mono_ns;
using detail::rate_from_interval_ns;
using detail::runtime_ns;

ThrottleState Throttle::state() const noexcept {
  return load_state(s_);
}

Event Throttle::kill_flag() const {
  return Event(segment_, &s_->kill_flag);
}

std::uint64_t Throttle::total() const noexcept {
  return detail::total_count(s_->total.load(std::memory_order_acquire));
}

Rate Throttle::latest() const noexcept {
  const std::int64_t now = mono_ns() - f_.base_ns;
  const std::int64_t b = now / f_.rf_ns;
  std::int64_t count = 0;
  for (std::uint32_t k = 1; k <= f_.window_buckets; ++k) {
    const std::int64_t bk = b - k;
    if (bk < 0) break;
    const std::uint64_t w =
        s_->buckets[static_cast<std::uint64_t>(bk) % f_.ring_len].load(std::memory_order_relaxed);
    if (bucket_tag(w) == (static_cast<std::uint64_t>(bk) & detail::kBucketTagMask))
      count += bucket_count(w);
  }
  if (count == 0) return {0, 0};
  const double window_s =
      static_cast<double>(f_.window_buckets) * static_cast<double>(f_.rf_ns) / 1e9;
  const double rate = static_cast<double>(count) / window_s;
  return {1.0 / rate, rate};
}

Rate Throttle::mean() const noexcept {
  const std::int64_t runtime = runtime_ns(s_, f_.base_ns);
  const auto n = total();
  if (n == 0 || runtime <= 0) return {0, 0};
  const double rt = static_cast<double>(runtime) / 1e9;
  return {rt / static_cast<double>(n), static_cast<double>(n) / rt};
}

Rate Throttle::lo_hi() const noexcept {
  const std::int64_t v = s_->min_interval_ns.load(std::memory_order_relaxed);
  return v == INT64_MAX ? Rate{} : rate_from_interval_ns(v);
}

Rate Throttle::hi_lo() const noexcept {
  return rate_from_interval_ns(s_->max_interval_ns.load(std::memory_order_relaxed));
}

std::uint64_t Throttle::id() const noexcept {
  return f_.id;
}

const std::string& Throttle::name() const noexcept {
  return segment_->name();
}

std::chrono::nanoseconds Throttle::interval() const noexcept {
  const std::uint64_t w = s_->word.load(std::memory_order_acquire);
  return std::chrono::nanoseconds(
      s_->cfg[detail::word_epoch(w) & (detail::kRingSlots - 1)].interval_ns.load(
          std::memory_order_relaxed));
}

std::chrono::nanoseconds Throttle::spin_lead() const noexcept {
  return std::chrono::nanoseconds(load_lead(s_));
}

Snapshot Throttle::snapshot() const {
  Snapshot out;
  out.id = id();
  out.name = name();
  out.max_n = s_->max_n.load(std::memory_order_relaxed);
  out.per_s = s_->per_s.load(std::memory_order_relaxed);
  out.hardcap = static_cast<Hardcap>(f_.hardcap);
  out.as_monitor = f_.flags & detail::kFlagMonitor;
  out.as_throttle = f_.flags & detail::kFlagThrottle;
  out.auto_emit = f_.flags & detail::kFlagAutoEmit;
  out.auto_calibrate = f_.flags & detail::kFlagAutoCalibrate;
  out.rf_rate_s = static_cast<double>(f_.rf_ns) / 1e9;
  out.interval_ns = interval().count();
  out.correction = s_->correction.load(std::memory_order_relaxed);
  out.correction_source = correction_source(s_);
  out.spin_lead_ns = spin_lead().count();
  out.state = state();
  out.available = available();
  out.total = total();
  out.runtime_s = static_cast<double>(runtime_ns(s_, f_.base_ns)) / 1e9;
  out.latest = latest();
  out.mean = mean();
  out.lo_hi = lo_hi();
  out.hi_lo = hi_lo();
  out.creator_pid = segment_->header().creator_pid;
  out.created_realtime_ns = segment_->header().created_realtime_ns;
  return out;
}

}  // namespace mpt
