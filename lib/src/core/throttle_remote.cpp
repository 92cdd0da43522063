// Throttle::connect() and the remote accessors (the Redis backend behind a Throttle handle).
#include <unistd.h>

#include <random>

#include "clock.hpp"
#include "mpt/error.hpp"
#include "mpt/throttle.hpp"
#include "redis_backend.hpp"
#include "throttle_config.hpp"

namespace mpt {

using detail::validate_options;
using detail::validate_rate;

namespace {

void validate_remote_options(const ThrottleOptions& o) {
  const auto u = static_cast<std::uint32_t>(o.on_unavailable);
  if (u > static_cast<std::uint32_t>(OnUnavailable::kLocalFallback))
    throw InvalidArgument("on_unavailable must be fail, fail_open, fail_closed or local_fallback");
  if (o.fallback_divisor < 1 || o.fallback_divisor > 1'000'000) {
    throw InvalidArgument("fallback_divisor must be between 1 and 1000000, got " +
                          std::to_string(o.fallback_divisor));
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

// The handle for a remote throttle: a local anonymous throttle at rate / k (the kill flag, the
// spin lead and the kLocalFallback schedule of this process) with the backend attached.
Throttle attach_remote(std::shared_ptr<detail::RemoteBackend> backend,
                       const ThrottleOptions& options) {
  const detail::RemoteConfig& c = backend->config();
  ThrottleOptions lo = options;
  lo.hardcap = c.hardcap;
  lo.as_monitor = c.as_monitor;
  lo.as_throttle = c.as_throttle;
  lo.auto_emit = c.auto_emit;
  lo.correction = c.correction;
  return detail::RemoteBackend::attach(
      std::move(backend), Throttle(c.max_n,
                                   std::chrono::duration<double>(
                                       c.per_s * static_cast<double>(options.fallback_divisor)),
                                   lo));
}

}  // namespace

namespace detail {
Throttle RemoteBackend::attach(std::shared_ptr<RemoteBackend> backend, Throttle fallback) {
  backend->set_fallback(fallback);
  if (backend->config().state == ThrottleState::kRunning) fallback.start();
  fallback.remote_ = std::move(backend);
  return fallback;
}
}  // namespace detail

Throttle Throttle::connect(std::string_view url, std::int64_t max_n,
                           std::chrono::duration<double> per, const ThrottleOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  validate_options(options);
  validate_remote_options(options);
  validate_rate(max_n, per.count(), options.correction.value_or(0.0));
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
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) c.creator_host = host;
  c.created_realtime_ns = detail::realtime_ns();
  auto backend = std::make_shared<detail::RemoteBackend>(std::move(parsed), options, &c);
  return attach_remote(std::move(backend), options);
}

Throttle Throttle::connect(std::string_view url, const ThrottleOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  validate_options(options);
  validate_remote_options(options);
  auto backend = std::make_shared<detail::RemoteBackend>(std::move(parsed), options, nullptr);
  return attach_remote(std::move(backend), options);
}

std::string Throttle::url() const {
  return remote_ ? remote_->url() : std::string();
}

std::string Throttle::last_error() const {
  return remote_ ? remote_->last_error() : std::string();
}

std::uint64_t Throttle::round_trips() const noexcept {
  return remote_ ? remote_->round_trips() : 0;
}

}  // namespace mpt
