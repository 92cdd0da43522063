// RemoteThrottle's options and the calls that need no server of their own: the await_fuel forms,
// which all come down to await_grant(). Built with and without Redis support.
#include <algorithm>
#include <string>

#include "clock.hpp"
#include "mpt/error.hpp"
#include "remote_options.hpp"
#include "throttle_config.hpp"

namespace mpt {

const char* to_string(OnUnavailable o) noexcept {
  switch (o) {
    case OnUnavailable::kFail:
      return "fail";
    case OnUnavailable::kFailOpen:
      return "fail_open";
    case OnUnavailable::kFailClosed:
      return "fail_closed";
    case OnUnavailable::kLocalFallback:
      return "local_fallback";
  }
  return "unknown";
}

namespace detail {

ThrottleOptions local_options(const RemoteOptions& o) {
  ThrottleOptions lo;
  lo.as_monitor = o.as_monitor;
  lo.as_throttle = o.as_throttle;
  lo.auto_emit = o.auto_emit;
  lo.hardcap = o.hardcap;
  lo.correction = o.correction.value_or(0.0);
  lo.spin_lead = o.spin_lead;
  return lo;
}

void validate_remote_options(const RemoteOptions& o) {
  ThrottleOptions shared = local_options(o);
  shared.correction = o.correction;
  validate_options(shared);
  const auto u = static_cast<std::uint32_t>(o.on_unavailable);
  if (u > static_cast<std::uint32_t>(OnUnavailable::kLocalFallback))
    throw InvalidArgument("on_unavailable must be fail, fail_open, fail_closed or local_fallback");
  if (o.fallback_divisor < 1 || o.fallback_divisor > 1'000'000) {
    throw InvalidArgument("fallback_divisor must be between 1 and 1000000, got " +
                          std::to_string(o.fallback_divisor));
  }
  if (o.max_lease < 1 || o.max_lease > 4096) {
    throw InvalidArgument("max_lease must be between 1 and 4096, got " +
                          std::to_string(o.max_lease));
  }
  auto check_ms = [](const char* what, std::chrono::milliseconds v, std::int64_t lo) {
    if (v.count() < lo || v.count() > 60'000) {
      throw InvalidArgument(std::string(what) + " must be between " + std::to_string(lo) +
                            " ms and 60 s, got " + std::to_string(v.count()) + " ms");
    }
  };
  check_ms("connect_timeout", o.connect_timeout, 1);
  check_ms("command_timeout", o.command_timeout, 1);
  check_ms("reconnect_backoff_max", o.reconnect_backoff_max, 10);
}

void validate_remote_rate(std::int64_t max_n, std::chrono::duration<double> per,
                          const RemoteOptions& o) {
  validate_rate(max_n, per.count(), o.correction.value_or(0.0));
}

}  // namespace detail

bool RemoteThrottle::await_fuel() noexcept {
  return await_fuel_until(TimePoint::max(), 1);
}

bool RemoteThrottle::await_fuel(std::chrono::nanoseconds timeout) noexcept {
  return await_fuel(1, timeout);
}

bool RemoteThrottle::await_fuel(std::int64_t n,
                                std::optional<std::chrono::nanoseconds> timeout) noexcept {
  if (!timeout) return await_fuel_until(TimePoint::max(), n);
  // A zero (or negative) timeout is has_fuel(): a deadline of "now" would already have passed
  // when the slot is reserved, and the call would refuse fuel that is there.
  if (timeout->count() <= 0) return has_fuel(n);
  return await_fuel_until(detail::from_ns(detail::deadline_after_ns(timeout->count())), n);
}

bool RemoteThrottle::await_fuel_until(TimePoint deadline, std::int64_t n) noexcept {
  return await_grant(deadline, n).has_value();
}

}  // namespace mpt
