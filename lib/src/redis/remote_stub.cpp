// mpt::RemoteThrottle in a library built without Redis (MPT_REDIS=OFF; lib/CMakeLists.txt builds
// this file instead of the backend): connect() checks its arguments as the real one does, then
// throws InvalidArgument saying so. No RemoteThrottle can exist in this build, so the other calls
// are never made; they are here for programs that name them (the `mpt` command) to link.
#include <cstdlib>

#include "mpt/error.hpp"
#include "redis_url.hpp"
#include "remote_options.hpp"

namespace mpt {

namespace {

[[noreturn]] void no_redis(const detail::RedisUrl& url) {
  throw InvalidArgument(url.display() +
                        ": this mpthrottle was built without Redis support (MPT_REDIS=OFF)");
}

[[noreturn]] void unreachable() noexcept {
  std::abort();  // no RemoteThrottle exists to call it on
}

}  // namespace

RemoteThrottle RemoteThrottle::connect(std::string_view url, std::int64_t max_n,
                                       std::chrono::duration<double> per,
                                       const RemoteOptions& options) {
  const auto parsed = detail::parse_redis_url(url);
  detail::validate_remote_options(options);
  detail::validate_remote_rate(max_n, per, options);
  no_redis(parsed);
}

RemoteThrottle RemoteThrottle::connect(std::string_view url, const RemoteOptions& options) {
  const auto parsed = detail::parse_redis_url(url);
  detail::validate_remote_options(options);
  no_redis(parsed);
}

// clang-format off
std::string RemoteThrottle::url() const { unreachable(); }
std::string RemoteThrottle::last_error() const { unreachable(); }
std::uint64_t RemoteThrottle::round_trips() const noexcept { unreachable(); }
void RemoteThrottle::start() { unreachable(); }
Summary RemoteThrottle::stop() { unreachable(); }
ThrottleState RemoteThrottle::state() const noexcept { unreachable(); }
bool RemoteThrottle::has_fuel(std::int64_t) noexcept { unreachable(); }
std::optional<RemoteThrottle::TimePoint> RemoteThrottle::await_grant(TimePoint, std::int64_t) noexcept { unreachable(); }
std::optional<RemoteThrottle::TimePoint> RemoteThrottle::await_grant(TimePoint, std::int64_t, const Interrupt&) noexcept { unreachable(); }
std::optional<RemoteThrottle::TimePoint> RemoteThrottle::reserve(std::int64_t, TimePoint, TimePoint) noexcept { unreachable(); }
std::int64_t RemoteThrottle::available() const noexcept { unreachable(); }
void RemoteThrottle::release() noexcept { unreachable(); }
void RemoteThrottle::set_rate(std::int64_t, std::chrono::duration<double>) { unreachable(); }
void RemoteThrottle::emit() noexcept { unreachable(); }
void RemoteThrottle::emit(TimePoint) noexcept { unreachable(); }
Event RemoteThrottle::kill_flag() const { unreachable(); }
Rate RemoteThrottle::latest() const noexcept { unreachable(); }
Rate RemoteThrottle::mean() const noexcept { unreachable(); }
Rate RemoteThrottle::lo_hi() const noexcept { unreachable(); }
Rate RemoteThrottle::hi_lo() const noexcept { unreachable(); }
std::uint64_t RemoteThrottle::total() const noexcept { unreachable(); }
Snapshot RemoteThrottle::snapshot() const { unreachable(); }
std::uint64_t RemoteThrottle::id() const noexcept { unreachable(); }
const std::string& RemoteThrottle::name() const noexcept { unreachable(); }
std::chrono::nanoseconds RemoteThrottle::interval() const noexcept { unreachable(); }
std::chrono::nanoseconds RemoteThrottle::spin_lead() const noexcept { unreachable(); }
// clang-format on

}  // namespace mpt
