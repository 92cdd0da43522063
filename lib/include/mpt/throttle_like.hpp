// mpt/throttle_like.hpp — what mpt::Throttle (throttle.hpp) and mpt::RemoteThrottle (redis.hpp)
// have in common, for code that works with either (a worker loop, the `mpt` command):
//
//   template <mpt::ThrottleLike T>
//   void work(T& throttle) {
//     while (!throttle.kill_flag().is_set()) if (throttle.await_fuel()) do_one();
//   }
//
// The calls mean the same on both types; what they cost differs (a local throttle never blocks
// but in the calls that wait for fuel; a remote one makes a round trip): see each type's header.
// A header of its own so that neither type's header needs the other's.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>

#include "mpt/event.hpp"
#include "mpt/monitor.hpp"

namespace mpt {

// A way to give up a wait for fuel from outside it (Throttle::await_grant(deadline, n, Interrupt),
// RemoteThrottle's likewise): while the call waits, no sleep lasts longer than `period`, and
// `check(context)` is called on each wake from a sleep (never while spinning the last
// microseconds before a slot). When it returns true the call gives up and returns nullopt; a slot
// it had reserved is lost (the rate under-shoots, never over-shoots). A Python binding uses it to
// honour Ctrl-C: its check takes the interpreter lock and runs the pending signal handlers.
// `period` is clamped to 1 us .. 100 ms. `check` runs on the waiting thread and must not call the
// throttle.
struct Interrupt {
  bool (*check)(void* context) = nullptr;
  void* context = nullptr;
  std::chrono::nanoseconds period = std::chrono::milliseconds(100);
};

template <class T>
concept ThrottleLike = requires(T& t, const T& ct, std::int64_t n, std::chrono::nanoseconds d,
                                std::chrono::steady_clock::time_point tp) {
  t.start();
  { t.stop() } -> std::same_as<Summary>;
  { ct.state() } -> std::same_as<ThrottleState>;
  { ct.running() } -> std::same_as<bool>;
  { t.has_fuel(n) } -> std::same_as<bool>;
  { t.await_fuel() } -> std::same_as<bool>;
  { t.await_fuel(d) } -> std::same_as<bool>;
  { t.await_fuel(n, std::optional<std::chrono::nanoseconds>(d)) } -> std::same_as<bool>;
  { t.await_fuel_until(tp, n) } -> std::same_as<bool>;
  { t.await_grant(tp, n) } -> std::same_as<std::optional<std::chrono::steady_clock::time_point>>;
  t.emit();
  { ct.kill_flag() } -> std::same_as<Event>;
  { ct.latest() } -> std::same_as<Rate>;
  { ct.mean() } -> std::same_as<Rate>;
  { ct.lo_hi() } -> std::same_as<Rate>;
  { ct.hi_lo() } -> std::same_as<Rate>;
  { ct.total() } -> std::same_as<std::uint64_t>;
  { ct.snapshot() } -> std::same_as<Snapshot>;
  { ct.id() } -> std::same_as<std::uint64_t>;
  { ct.name() } -> std::convertible_to<const std::string&>;
  { ct.interval() } -> std::same_as<std::chrono::nanoseconds>;
  { ct.spin_lead() } -> std::same_as<std::chrono::nanoseconds>;
};

}  // namespace mpt
