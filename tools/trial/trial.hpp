// tools/trial/trial.hpp — one accuracy run: W worker processes on one throttle for S seconds.
//
// Shared by `mpt calibrate` and bench/mpt_scenario. Makes one anonymous throttle of `rate` per
// second, forks `workers` processes that each loop
//
//   while (auto t = throttle.await_grant()) record(*t);
//
// recording every grant's CLOCK_MONOTONIC time in their own part of a shared anonymous mapping.
// The parent starts the throttle, sleeps `seconds` (absolute deadline, calling `tick` about every
// 100 ms), stops it, reaps the workers and merges the timestamps. The workers die with the thread
// that called run_trial() (PR_SET_PDEATHSIG): killing the caller, even with SIGKILL, leaves none.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mpt/throttle.hpp"

namespace mpt::trial {

struct TrialOptions {
  std::int64_t rate_per_sec = 0;  // max_n per 1 s
  int workers = 4;
  double seconds = 5;
  ThrottleOptions throttle;  // hardcap, correction, spin lead, auto_calibrate
  // Called about every 100 ms while the throttle runs, with the seconds elapsed; and once, before
  // start(), with the throttle (to attach a probe to its id, say).
  std::function<void(double elapsed_s)> tick;
  std::function<void(const Throttle&)> before_start;
};

struct TrialResult {
  // Configuration, as the throttle reports it.
  std::uint64_t throttle_id = 0;
  std::int64_t interval_ns = 0;
  double correction = 0;
  std::string correction_source;
  std::int64_t spin_lead_ns = 0;
  // Counts.
  double target_total = 0;
  std::uint64_t achieved_total = 0;  // recorded grants between start and stop
  std::uint64_t monitor_total = 0;   // stop()'s summary
  std::uint64_t monitor_total_after_reap = 0;
  std::uint64_t recorded_total = 0;  // every recorded grant
  std::uint64_t dropped = 0;         // grants that did not fit in the record
  double runtime_s = 0;              // stop()'s summary
  double mean_rate_per_sec = 0;  // stop()'s summary: total / runtime, the unit at start included
  std::int64_t start_ns = 0;     // the CLOCK_MONOTONIC time start() was given
  // The recorded grants' first and last times (0 when none), and the rate they achieved:
  // calibration::achieved_rate_per_sec(achieved_total, first_ns, last_ns), free of the unit given
  // at start; nullopt with fewer than two grants. rel_error: achieved / rate - 1.
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  std::optional<double> achieved_rate_per_sec;
  std::optional<double> rel_error;
  std::uint64_t max_in_window = 0;  // most grants in any window [t, t + 1 s)
  std::int64_t interval_p50_ns = 0;
  std::int64_t interval_p99_ns = 0;
  std::int64_t interval_max_ns = 0;
  double cpu_s = 0;  // the workers' user + system time
  double cpu_s_per_1000 = 0;
  std::vector<std::int64_t> times;  // every grant in the run, sorted

  // The record agrees with the monitor and nothing was dropped.
  bool totals_match() const {
    return achieved_total == monitor_total && recorded_total == monitor_total_after_reap &&
           dropped == 0;
  }
};

// Runs one trial. Throws std::runtime_error (naming the worker and its signal or status) if a
// worker fails, or InvalidArgument for bad options.
TrialResult run_trial(const TrialOptions& options);

// The most of `sorted` times in any half-open window [t, t + width).
std::uint64_t max_in_window(const std::vector<std::int64_t>& sorted, std::int64_t width);

}  // namespace mpt::trial
