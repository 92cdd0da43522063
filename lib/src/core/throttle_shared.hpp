// Internal: the layout of a throttle segment's body. Every field a process may write while others
// read is a lock-free atomic; the rest is written once before the segment is published.
#pragma once

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "mpt/throttle.hpp"

namespace mpt {

namespace detail {

inline constexpr int kEpochShift = 56;
inline constexpr std::uint64_t kTatMask = (std::uint64_t{1} << kEpochShift) - 1;
inline constexpr std::uint32_t kEpochMask = 0xff;
inline constexpr std::uint32_t kRingSlots = 16;  // rate configurations / rebase records kept

inline constexpr std::uint32_t kFlagMonitor = 1;
inline constexpr std::uint32_t kFlagThrottle = 2;
inline constexpr std::uint32_t kFlagAutoEmit = 4;
inline constexpr std::uint32_t kFlagAutoCalibrate = 8;
inline constexpr std::uint32_t kFlagSpinLeadGiven = 16;  // options.spin_lead was set explicitly

constexpr std::uint64_t pack_word(std::uint32_t epoch, std::int64_t tat_rel) {
  return (std::uint64_t{epoch & kEpochMask} << kEpochShift) |
         (static_cast<std::uint64_t>(tat_rel < 0 ? 0 : tat_rel) & kTatMask);
}
constexpr std::uint32_t word_epoch(std::uint64_t w) {
  return static_cast<std::uint32_t>(w >> kEpochShift);
}
constexpr std::int64_t word_tat(std::uint64_t w) {
  return static_cast<std::int64_t>(w & kTatMask);
}

struct ConfigSlot {
  std::atomic<std::int64_t> interval_ns;
  std::atomic<std::int64_t> tau_ns;  // < 0: unbounded
  // hardcap one (0 for the others): the gate's step m (grants) and span (ns), the least time any
  // m + 1 consecutive grants take (see compute_gate and Throttle::Shared::gate_head).
  std::atomic<std::int64_t> gate_span_ns;
  std::atomic<std::int64_t> gate_m;
};

// hardcap one's gate ring: 2^gate_bits entries after the monitor's buckets (none for the other
// hardcaps), max_n at creation rounded up to a power of two, from 2^12 to 2^16 (32 to 512 KiB):
// the floor leaves a slow throttle room for set_rate() to raise it to 4,096 per window.
inline constexpr std::uint32_t kGateMinBits = 12;
inline constexpr std::uint32_t kGateMaxBits = 16;
inline constexpr int kGateTagShift = 56;
// Entry k (in slot k mod 2^bits) is tagged with its lap, k / 2^bits, modulo 256: the entry it
// replaces, k - 2^bits, has the lap before. Grant numbers start at 2^bits, so a ring of zeros
// holds units 0 .. 2^bits - 1 of lap 0 at time 0 (none yet).
constexpr std::uint64_t gate_lap(std::uint64_t k, std::uint32_t bits) {
  return (k >> bits) & 0xff;
}
constexpr std::uint64_t gate_entry(std::uint64_t k, std::uint32_t bits, std::int64_t t_rel) {
  return (gate_lap(k, bits) << kGateTagShift) | (static_cast<std::uint64_t>(t_rel) & kTatMask);
}
constexpr std::uint64_t gate_tag(std::uint64_t e) {
  return e >> kGateTagShift;
}
constexpr std::int64_t gate_time(std::uint64_t e) {
  return static_cast<std::int64_t>(e & kTatMask);
}

// What set_rate() did at epoch `epoch`, so sleepers can move their slot onto the new schedule.
struct RebaseRecord {
  std::atomic<std::uint32_t> epoch;  // kNoEpoch while being written
  std::uint32_t pad;
  std::atomic<std::int64_t> at_rel_ns;
  std::atomic<std::int64_t> old_interval_ns;
  std::atomic<std::int64_t> new_interval_ns;
};
inline constexpr std::uint32_t kNoEpoch = 0xffffffff;

inline constexpr int kBucketCountBits = 28;
inline constexpr std::uint64_t kBucketCountMask = (std::uint64_t{1} << kBucketCountBits) - 1;
inline constexpr std::uint64_t kBucketTagMask = (std::uint64_t{1} << (64 - kBucketCountBits)) - 1;

// Throttle::Shared::total: the monitor's total and the run it belongs to in one word, so that
// granting a unit and counting it is one step that stop() can close. Bits 0-46: the total
// (emissions counted, saturating at 1.4e14); bit 47: sealed (set by stop(), cleared by start());
// bits 48-63: the low 16 bits of run_gen of the run start() began (a worker descheduled across
// 32,768 stop/start cycles would be needed to mistake one run for another).
inline constexpr int kTotalRunShift = 48;
inline constexpr std::uint64_t kTotalSealed = std::uint64_t{1} << 47;
inline constexpr std::uint64_t kTotalCountMask = kTotalSealed - 1;
inline constexpr std::uint32_t kTotalRunMask = 0xffff;
inline constexpr std::uint32_t kAnyRun = 0xffffffff;  // a commit that belongs to no one run
constexpr std::uint64_t total_count(std::uint64_t w) {
  return w & kTotalCountMask;
}
constexpr std::uint32_t total_run(std::uint64_t w) {
  return static_cast<std::uint32_t>(w >> kTotalRunShift);
}

// a - b for 64-bit nanosecond values without signed overflow: saturates at the int64 limits.
constexpr std::int64_t sat_sub(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? INT64_MIN : INT64_MAX;
  return r;
}

}  // namespace detail

struct Throttle::Shared {
  // Written once before publishing.
  std::int64_t base_ns;  // CLOCK_MONOTONIC origin of every *_rel_ns value and of the GCRA word
  std::uint32_t flags;
  std::uint32_t hardcap;
  std::int64_t rf_ns;
  std::uint32_t ring_len;  // monitor buckets: one second's worth plus the current one
  std::uint32_t window_buckets;
  std::uint32_t gate_bits;  // hardcap one: log2 of the gate ring's entries; 0 for the others
  std::uint32_t gate_pad;

  // Administration (start/stop/set_rate) is serialised by this lock word: the thread id of the
  // holder, 0 when free. Not a pthread mutex: glibc trusts a mutex's words (a scribbled one can
  // abort the caller in an assertion), while this one is bounded and robust by construction — a
  // holder that no longer exists (or a word that names no thread) is taken over, a live one is
  // waited for at most 1 s (see AdminLock in throttle.cpp). Readers use the atomics without it.
  std::atomic<std::uint32_t> admin_owner;
  std::uint32_t admin_pad;
  std::atomic<std::int64_t> max_n;
  std::atomic<double> per_s;
  std::atomic<double> correction;
  std::atomic<std::int64_t> spin_lead_ns;
  // Where the correction came from, double-buffered so readers never take the admin lock:
  // set_rate() writes the other buffer, then flips source_index.
  char correction_source[2][96];
  std::atomic<std::uint32_t> source_index;

  // Hot: the GCRA word alone on its line.
  alignas(64) std::atomic<std::uint64_t> word;
  alignas(64) std::atomic<std::uint32_t> state;  // ThrottleState
  std::atomic<std::uint32_t> wake_seq;   // bumped by start/stop/set_rate; sleepers wait here
  std::atomic<std::uint32_t> kill_flag;  // the Event word
  std::atomic<std::uint32_t> run_gen;    // bumped by start and stop: a slot belongs to one run
  detail::ConfigSlot cfg[detail::kRingSlots];
  // hardcap one's gate: the grant times of the last 2^gate_bits units, numbered k = gate_head - 1,
  // gate_head - 2, ... in a ring after the monitor's buckets (gate_ring(); see detail::gate_lap).
  // Unit k may be granted at g when g >= time(k - 1) and g >= time(k - m) + span, where max_n >=
  // q * m and q * span >= per (compute_gate): chaining q times gives time(k) >= time(k - q * m) +
  // per >= time(k - max_n) + per, so never more than max_n grants in any window of `per`. m is
  // max_n itself up to 2^gate_bits, so a late grant delays only the grant max_n after it, and only
  // when that one would have been earlier. A grant is one CAS on its ring entry, then gate_head
  // moves on (any process helps it): lock-free.
  alignas(64) std::atomic<std::uint64_t> gate_head;
  detail::RebaseRecord rebase[detail::kRingSlots];

  // Monitor. `total` is also where a grant becomes final (see detail::kTotalSealed): a unit is
  // granted by the CAS that counts it (or, when nothing is counted, by a load that finds the run
  // open), and stop() seals the word, so the total stop() returns is final.
  alignas(64) std::atomic<std::uint64_t> total;
  std::atomic<std::int64_t> last_emit_rel_ns;  // -1: none yet
  std::atomic<std::int64_t> min_interval_ns;   // INT64_MAX: none yet
  std::atomic<std::int64_t> max_interval_ns;   // -1: none yet
  alignas(64) std::atomic<std::int64_t> runtime_accum_ns;
  std::atomic<std::int64_t> started_at_rel_ns;
  // ring_len of them, each bucket no. << kBucketCountBits | count
  alignas(64) std::atomic<std::uint64_t> buckets[1];

  // Where the gate ring starts (a cache line after the buckets), and the body's size.
  static std::size_t gate_offset(std::uint32_t ring_len) {
    const std::size_t end =
        offsetof(Shared, buckets) + sizeof(std::atomic<std::uint64_t>) * ring_len;
    return (end + 63) / 64 * 64;
  }
  static std::size_t size_for(std::uint32_t ring_len, std::uint32_t gate_bits) {
    if (gate_bits == 0)
      return offsetof(Shared, buckets) + sizeof(std::atomic<std::uint64_t>) * ring_len;
    return gate_offset(ring_len) + (sizeof(std::atomic<std::uint64_t>) << gate_bits);
  }
};

static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<double>::is_always_lock_free);

}  // namespace mpt
