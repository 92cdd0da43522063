// Internal: the one clock mpthrottle uses (CLOCK_MONOTONIC, nanoseconds).
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace mpt::detail {

inline std::int64_t mono_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// steady_clock is CLOCK_MONOTONIC on Linux with libstdc++; these convert at the API edge.
inline std::int64_t to_ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::chrono::steady_clock::time_point from_ns(std::int64_t ns) noexcept {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::nanoseconds(ns)));
}

// The absolute CLOCK_MONOTONIC time `timeout_ns` from now: now for a negative timeout, INT64_MAX
// (futex.hpp's kForever) where the sum would overflow. The deadline of await_fuel(n, timeout).
inline std::int64_t deadline_after_ns(std::int64_t timeout_ns) noexcept {
  const std::int64_t now = mono_ns();
  return timeout_ns > INT64_MAX - now ? INT64_MAX : now + (timeout_ns < 0 ? 0 : timeout_ns);
}

// Interrupt::period (mpt/throttle_like.hpp) clamped to its bounds, 1 us to 100 ms.
inline std::chrono::nanoseconds interrupt_period(std::chrono::nanoseconds period) noexcept {
  return std::clamp<std::chrono::nanoseconds>(period, std::chrono::microseconds(1),
                                              std::chrono::milliseconds(100));
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace mpt::detail
