// mpt::RemoteThrottle: connect(), and each call handed to the Impl (remote_impl.hpp) in the
// Impl's terms (CLOCK_MONOTONIC nanoseconds). The await_fuel forms are in remote_api.cpp.
#include <unistd.h>

#include <random>

#include "clock.hpp"
#include "futex.hpp"
#include "mpt/calibration.hpp"
#include "remote_impl.hpp"
#include "remote_options.hpp"
#include "throttle_config.hpp"

namespace mpt {

using detail::kForever;
using detail::to_ns;

namespace {

// What a new throttle stores: the rate, the options that shape it, and who made it.
detail::RemoteConfig new_config(std::int64_t max_n, std::chrono::duration<double> per,
                                const RemoteOptions& options) {
  detail::RemoteConfig c;
  c.max_n = max_n;
  c.per_s = per.count();
  c.hardcap = options.hardcap;
  c.correction = options.correction.value_or(0.0);
  c.correction_given = options.correction.has_value();
  c.as_monitor = options.as_monitor;
  c.as_throttle = options.as_throttle;
  c.auto_emit = options.auto_emit;
  std::random_device rd;
  c.id = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  c.creator_pid = static_cast<std::int32_t>(::getpid());
  c.creator_host = HostIdentity::current().hostname;
  c.created_realtime_ns = detail::realtime_ns();
  return c;
}

// This process's local throttle for a connected Impl: the stored configuration at rate / k (the
// kill flag, the spin lead and the kLocalFallback schedule), started if the server's is.
Throttle make_fallback(const RemoteThrottle::Impl& impl, const RemoteOptions& options) {
  const detail::RemoteConfig& c = impl.config();
  RemoteOptions stored = options;
  stored.hardcap = c.hardcap;
  stored.as_monitor = c.as_monitor;
  stored.as_throttle = c.as_throttle;
  stored.auto_emit = c.auto_emit;
  stored.correction = c.correction;
  Throttle fallback(
      c.max_n,
      std::chrono::duration<double>(c.per_s * static_cast<double>(options.fallback_divisor)),
      detail::local_options(stored));
  if (c.state == ThrottleState::kRunning) fallback.start();
  return fallback;
}

}  // namespace

RemoteThrottle RemoteThrottle::connect(std::string_view url, std::int64_t max_n,
                                       std::chrono::duration<double> per,
                                       const RemoteOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  detail::validate_remote_options(options);
  detail::validate_remote_rate(max_n, per, options);
  const detail::RemoteConfig c = new_config(max_n, per, options);
  auto impl = std::make_shared<Impl>(std::move(parsed), options, &c);
  impl->set_fallback(make_fallback(*impl, options));
  return RemoteThrottle(std::move(impl));
}

RemoteThrottle RemoteThrottle::connect(std::string_view url, const RemoteOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  detail::validate_remote_options(options);
  auto impl = std::make_shared<Impl>(std::move(parsed), options, nullptr);
  impl->set_fallback(make_fallback(*impl, options));
  return RemoteThrottle(std::move(impl));
}

std::string RemoteThrottle::url() const {
  return impl_->url();
}

std::string RemoteThrottle::last_error() const {
  return impl_->last_error();
}

std::uint64_t RemoteThrottle::round_trips() const noexcept {
  return impl_->round_trips();
}

void RemoteThrottle::start() {
  impl_->start();
}

Summary RemoteThrottle::stop() {
  return impl_->stop();
}

ThrottleState RemoteThrottle::state() const noexcept {
  return impl_->state();
}

bool RemoteThrottle::has_fuel(std::int64_t n) noexcept {
  return impl_->has_fuel(n);
}

std::optional<RemoteThrottle::TimePoint> RemoteThrottle::await_grant(TimePoint deadline,
                                                                     std::int64_t n) noexcept {
  const std::int64_t at =
      impl_->acquire(deadline == TimePoint::max() ? kForever : to_ns(deadline), n);
  if (at < 0) return std::nullopt;
  return detail::from_ns(at);
}

std::optional<RemoteThrottle::TimePoint> RemoteThrottle::await_grant(
    TimePoint deadline, std::int64_t n, const Interrupt& interrupt) noexcept {
  Interrupt intr = interrupt;
  intr.period = detail::interrupt_period(intr.period);
  const std::int64_t at = impl_->acquire(deadline == TimePoint::max() ? kForever : to_ns(deadline),
                                         n, intr.check ? &intr : nullptr);
  if (at < 0) return std::nullopt;
  return detail::from_ns(at);
}

std::optional<RemoteThrottle::TimePoint> RemoteThrottle::reserve(std::int64_t n, TimePoint now,
                                                                 TimePoint deadline) noexcept {
  const auto due =
      impl_->reserve(n, to_ns(now), deadline == TimePoint::max() ? kForever : to_ns(deadline));
  if (!due) return std::nullopt;
  return detail::from_ns(*due);
}

void RemoteThrottle::release() noexcept {
  impl_->release();
}

std::int64_t RemoteThrottle::available() const noexcept {
  return impl_->available();
}

void RemoteThrottle::set_rate(std::int64_t max_n, std::chrono::duration<double> per) {
  detail::validate_rate(max_n, per.count(), impl_->config().correction);
  impl_->set_rate(max_n, per.count());
}

void RemoteThrottle::emit() noexcept {
  impl_->emit(detail::mono_ns());
}

void RemoteThrottle::emit(TimePoint timestamp) noexcept {
  impl_->emit(to_ns(timestamp));
}

Event RemoteThrottle::kill_flag() const {
  return impl_->fallback().kill_flag();
}

Rate RemoteThrottle::latest() const noexcept {
  return impl_->latest();
}

Rate RemoteThrottle::mean() const noexcept {
  return impl_->mean();
}

Rate RemoteThrottle::lo_hi() const noexcept {
  return impl_->lo_hi();
}

Rate RemoteThrottle::hi_lo() const noexcept {
  return impl_->hi_lo();
}

std::uint64_t RemoteThrottle::total() const noexcept {
  return impl_->total();
}

Snapshot RemoteThrottle::snapshot() const {
  return impl_->snapshot();
}

std::uint64_t RemoteThrottle::id() const noexcept {
  return impl_->id();
}

const std::string& RemoteThrottle::name() const noexcept {
  return impl_->name();
}

std::chrono::nanoseconds RemoteThrottle::interval() const noexcept {
  return std::chrono::nanoseconds(impl_->interval_ns());
}

std::chrono::nanoseconds RemoteThrottle::spin_lead() const noexcept {
  return impl_->fallback().spin_lead();
}

}  // namespace mpt
