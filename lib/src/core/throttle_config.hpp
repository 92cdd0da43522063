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
// hardcap one's gate for max_n per per_s with a ring of 2^bits grants: unit k waits for
// time(k - m) + span_ns. q = ceil(max_n / 2^bits) and m = floor(max_n / q), so q * m <= max_n and
// q * span_ns >= per: m = max_n up to 2^bits; beyond it the gate allows at least max_n - q + 1
// per `per` (within 1 / 2^bits of max_n). {0, 0} for the other hardcaps.
struct GateShape {
  std::int64_t m = 0;
  std::int64_t span_ns = 0;
};
GateShape compute_gate(Hardcap h, std::int64_t max_n, double per_s, std::uint32_t bits);
// The ring a new throttle gets: max_n rounded up to a power of two, within kGateMinBits to
// kGateMaxBits; 0 (no ring) but for hardcap one.
std::uint32_t compute_gate_bits(Hardcap h, std::int64_t max_n);

// Throw InvalidArgument naming what is wrong.
void validate_rate(std::int64_t max_n, double per_s, double correction);
void validate_options(const ThrottleOptions& o);

// Copies what never changes out of a throttle segment, checked; IncompatibleSegment if corrupt.
Throttle::Fixed read_fixed(const Segment& seg);

}  // namespace mpt::detail
