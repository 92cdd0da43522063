// Internal: the GCRA arithmetic, pure functions of (state, now, parameters) so that tests can
// drive it with an injected clock. All times are nanoseconds on one clock.
//
// `tat` (theoretical arrival time) is the time at which the next unit becomes available when no
// burst allowance is left. The burst allowance is expressed as `tau`: a bucket may hold up to
// tau / interval + 1 units, so tau = (burst - 1) * interval; tau < 0 means unbounded (hardcap
// none).
#pragma once

#include <algorithm>
#include <cstdint>

namespace mpt::detail {

struct GcraParams {
  std::int64_t interval_ns;  // > 0
  std::int64_t tau_ns;       // >= 0, or < 0 for unbounded
};

struct GcraReservation {
  std::int64_t due_ns;      // when the last of the n units is due: <= now means "go now"
  std::int64_t new_tat_ns;  // the state after taking them
};

// The state with the burst cap applied at `now`.
constexpr std::int64_t gcra_effective_tat(std::int64_t tat, std::int64_t now, GcraParams p) {
  return p.tau_ns >= 0 ? std::max(tat, now - p.tau_ns) : tat;
}

// Reserving n >= 1 units at `now`.
constexpr GcraReservation gcra_reserve(std::int64_t tat, std::int64_t now, std::int64_t n,
                                       GcraParams p) {
  const std::int64_t eff = gcra_effective_tat(tat, now, p);
  return {eff + (n - 1) * p.interval_ns, eff + n * p.interval_ns};
}

// Units that could be taken at `now` without waiting.
constexpr std::int64_t gcra_available(std::int64_t tat, std::int64_t now, GcraParams p) {
  const std::int64_t eff = gcra_effective_tat(tat, now, p);
  return now < eff ? 0 : (now - eff) / p.interval_ns + 1;
}

// A slot reserved under an old interval, moved onto the new schedule that set_rate() started at
// `at`: the distance to `at` is scaled by new/old, so the queue keeps its order and spacing.
constexpr std::int64_t gcra_rescale(std::int64_t t, std::int64_t at, std::int64_t old_interval_ns,
                                    std::int64_t new_interval_ns) {
  if (t <= at) return t;
  const __int128 d = static_cast<__int128>(t - at) * new_interval_ns / old_interval_ns;
  return at + static_cast<std::int64_t>(d);
}

}  // namespace mpt::detail
