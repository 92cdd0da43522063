// Internal: a throttle's configuration — the rate arithmetic, the checks of max_n, per and the
// options, and the copy of what never changes in a segment (Throttle::Fixed).
#pragma once

#include <cstdint>
#include <string>

#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"

namespace mpt::detail {

// The slot interval, per / max_n * (1 - correction), in ns.
std::int64_t compute_interval_ns(std::int64_t max_n, double per_s, double correction);
// GCRA's burst tolerance for the hardcap: (max_n - 1) intervals, 0 for one, -1 (none) unbounded.
std::int64_t compute_tau_ns(Hardcap h, std::int64_t max_n, std::int64_t interval_ns);
// hardcap one's gate: the least distance between grants and the span it is checked over.
std::int64_t compute_gate_ns(Hardcap h, std::int64_t max_n, double per_s);
std::int64_t compute_gate_m(std::int64_t max_n);

// Throw InvalidArgument naming what is wrong.
void validate_rate(std::int64_t max_n, double per_s, double correction);
void validate_options(const ThrottleOptions& o);

// Copies what never changes out of a throttle segment, checked; IncompatibleSegment if corrupt.
Throttle::Fixed read_fixed(const Segment& seg);

}  // namespace mpt::detail
