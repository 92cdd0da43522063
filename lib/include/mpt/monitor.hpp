// mpt/monitor.hpp — what the monitor inside every Throttle reports.
//
// The monitor is a set of lock-free counters in the throttle's segment: the total number of
// emissions, a ring of rf_rate-wide buckets covering the last second, the first and last emission
// and the shortest and longest interval between consecutive emissions. Emissions are counted by
// Throttle::emit(), and by has_fuel()/await_fuel() themselves when auto_emit is on.
//
// Every accessor returns a Rate: seconds between emissions and emissions per second, as the seed's
// tuples do. When there is nothing to measure (no emission yet, or a zero-length run) both are 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mpt {

struct Rate {
  double interval_s = 0;    // seconds between emissions
  double rate_per_sec = 0;  // emissions per second
};

// What Throttle::stop() returns, in the seed's order:
//   auto [runtime, total, mean_interval_s, mean_rate_per_sec] = throttle.stop();
struct Summary {
  std::chrono::duration<double> runtime{};  // time spent running, summed over start/stop cycles
  std::uint64_t total = 0;                  // emissions, summed over start/stop cycles
  double mean_interval_s = 0;               // runtime / total
  double mean_rate_per_sec = 0;             // total / runtime
};

enum class Hardcap : std::uint32_t {
  kLimit = 0,  // burst up to max_n (the seed's default): optimises the latest rate
  kOne = 1,    // burst 1: never more than max_n in any window of `per`
  kNone = 2,   // unused fuel accumulates without bound: optimises the mean rate
};
const char* to_string(Hardcap h) noexcept;  // "limit", "one", "none"

enum class ThrottleState : std::uint32_t { kCreated = 0, kRunning = 1, kStopped = 2 };
const char* to_string(ThrottleState s) noexcept;  // "created", "running", "stopped"

// Everything at once, for `mpt stat` and JSON reports.
struct Snapshot {
  std::uint64_t id = 0;
  std::string name;  // empty when anonymous
  std::int64_t max_n = 0;
  double per_s = 0;
  Hardcap hardcap = Hardcap::kLimit;
  bool as_monitor = true;
  bool as_throttle = true;
  bool auto_emit = true;
  bool auto_calibrate = false;
  double rf_rate_s = 0;
  std::int64_t interval_ns = 0;  // effective slot interval, correction applied
  double correction = 0;
  std::string correction_source;  // "none", "explicit", or where it was loaded from
  std::int64_t spin_lead_ns = 0;
  ThrottleState state = ThrottleState::kCreated;
  std::int64_t available = 0;  // units that could be taken now without waiting
  std::uint64_t total = 0;
  double runtime_s = 0;
  Rate latest;
  Rate mean;
  Rate lo_hi;  // shortest interval seen, and the rate it corresponds to
  Rate hi_lo;  // longest interval seen, and the rate it corresponds to
  std::int32_t creator_pid = 0;
  std::int64_t created_realtime_ns = 0;
};

}  // namespace mpt
