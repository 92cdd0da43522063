// Internal: the steps of the throttle's hot path and of its monitor, shared by the files that
// make up mpt::Throttle (throttle.cpp: acquiring; throttle_admin.cpp: start, stop, set_rate;
// monitor.cpp: the counters). In an unnamed namespace, as they were inside throttle.cpp before the
// split: internal linkage, so GCC inlines them into has_fuel(), acquire() and emit() and none is
// exported from libmpthrottle.so (an exported one would be called through the PLT, and could be
// interposed). bench/bm_throttle.cpp measures the hot path against a clock + CAS floor.
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "clock.hpp"
#include "futex.hpp"
#include "gcra.hpp"
#include "mpt/throttle.hpp"
#include "probes.hpp"
#include "throttle_shared.hpp"
#include "tuning.hpp"

namespace mpt::detail {
namespace {

inline constexpr int kGateTries = 1000;  // try_gate's retries before it gives the caller a way out

// a + b without signed overflow: saturates at the int64 limits (kForever stays kForever).
inline constexpr std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

inline std::int64_t bucket_count(std::uint64_t w) {
  return static_cast<std::int64_t>(w & detail::kBucketCountMask);
}
inline std::uint64_t bucket_tag(std::uint64_t w) {
  return w >> detail::kBucketCountBits;
}
inline std::uint64_t make_bucket(std::uint64_t tag, std::int64_t count) {
  const auto c =
      static_cast<std::uint64_t>(std::min<std::int64_t>(count, detail::kBucketCountMask));
  return (tag << detail::kBucketCountBits) | c;
}
// How many buckets `a` is ahead of `b`, on the 36-bit circle of bucket numbers.
inline std::int64_t tag_diff(std::uint64_t a, std::uint64_t b) {
  constexpr int kShift = detail::kBucketCountBits;
  return static_cast<std::int64_t>(((a - b) & detail::kBucketTagMask) << kShift) >> kShift;
}

inline Rate rate_from_interval_ns(std::int64_t ns) {
  if (ns <= 0) return {0, 0};
  const double s = static_cast<double>(ns) / 1e9;
  return {s, 1.0 / s};
}

// The step that makes n units final (see Shared::total): counts them (count false: counts nothing)
// unless stop() has sealed the total or, for run != kAnyRun, another run has begun. One CAS (one
// load when nothing is counted), so a unit is either in the total stop() returns or never granted.
inline bool commit_units(Throttle::Shared* s, std::int64_t n, std::uint32_t run,
                         bool count) noexcept {
  std::uint64_t w = s->total.load(std::memory_order_acquire);
  for (;;) {
    if (w & detail::kTotalSealed) return false;
    if (run != detail::kAnyRun && detail::total_run(w) != (run & detail::kTotalRunMask))
      return false;
    if (!count) return true;
    const std::uint64_t c = detail::total_count(w);
    const std::uint64_t add = static_cast<std::uint64_t>(n);
    const std::uint64_t nc = add > detail::kTotalCountMask - c ? detail::kTotalCountMask : c + add;
    if (s->total.compare_exchange_weak(w, (w & ~detail::kTotalCountMask) | nc,
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
      return true;
    }
  }
}

// Counts n emissions at absolute time ts in the monitor (lock-free) and fires the probe; false,
// counting nothing, once stop() has sealed the total (or run `run` is over; see commit_units).
// With record_time false (a caller's timestamp out of range) only the total and the probe count it.
inline bool emit_at(Throttle::Shared* s, const Throttle::Fixed& f, std::int64_t n, std::int64_t ts,
                    std::uint32_t run, bool record_time = true) noexcept {
  const bool monitor = f.flags & detail::kFlagMonitor;
  if (!commit_units(s, n, run, monitor)) return false;
  if (!monitor) return true;
  const std::int64_t t = record_time ? detail::sat_sub(ts, f.base_ns) : -1;

  // The bucket of `t`, unless its slot already holds a newer second (an emission stamped more than
  // a ring's length in the past belongs to no bucket latest() can still see).
  if (t >= 0) {
    const std::int64_t b = t / f.rf_ns;
    const std::uint64_t tag = static_cast<std::uint64_t>(b) & detail::kBucketTagMask;
    auto& slot = s->buckets[static_cast<std::uint64_t>(b) % f.ring_len];
    std::uint64_t w = slot.load(std::memory_order_relaxed);
    for (;;) {
      const std::int64_t ahead = tag_diff(tag, bucket_tag(w));
      std::uint64_t nw;
      if (ahead == 0) {
        nw = make_bucket(tag, bucket_count(w) + n);
      } else if (ahead > 0) {
        nw = make_bucket(tag, n);  // a new bucket
      } else {
        break;
      }
      if (slot.compare_exchange_weak(w, nw, std::memory_order_relaxed)) break;
    }
  }

  // Intervals between consecutive emission events. An emission stamped before the latest one seen
  // (another process got there first) has no known predecessor and adds no interval.
  std::int64_t last = s->last_emit_rel_ns.load(std::memory_order_relaxed);
  while (t >= 0 && t > last) {
    if (s->last_emit_rel_ns.compare_exchange_weak(last, t, std::memory_order_relaxed)) {
      if (last >= 0) {
        const std::int64_t d = t - last;
        std::int64_t lo = s->min_interval_ns.load(std::memory_order_relaxed);
        while (d < lo &&
               !s->min_interval_ns.compare_exchange_weak(lo, d, std::memory_order_relaxed)) {
        }
        std::int64_t hi = s->max_interval_ns.load(std::memory_order_relaxed);
        while (d > hi &&
               !s->max_interval_ns.compare_exchange_weak(hi, d, std::memory_order_relaxed)) {
        }
      }
      break;
    }
  }
  if (MPT_PROBE_EMIT_ENABLED()) {
    const std::uint64_t id = f.id;
    for (std::int64_t i = 0; i < n; ++i)
      MPT_PROBE_EMIT(id, ts);
  }
  return true;
}

// Grants n units at ts in run `run`: counts them when auto_emit, then fires mpthrottle:fuel with
// the time waited. False (nothing granted, nothing counted) once stop() has sealed the run.
inline bool grant_at(Throttle::Shared* s, const Throttle::Fixed& f, std::int64_t n, std::int64_t ts,
                     std::uint32_t run, std::int64_t waited_ns) noexcept {
  const bool granted = (f.flags & detail::kFlagAutoEmit) ? emit_at(s, f, n, ts, run)
                                                         : commit_units(s, n, run, false);
  if (granted && MPT_PROBE_FUEL_ENABLED()) MPT_PROBE_FUEL(f.id, waited_ns);
  return granted;
}

// One CAS: reserves n units at `now` (relative), or nothing if they would be due after `deadline`.
inline bool reserve_rel(Throttle::Shared* s, std::int64_t n, std::int64_t now,
                        std::int64_t deadline, std::int64_t* due, std::uint32_t* epoch) noexcept {
  std::uint64_t w = s->word.load(std::memory_order_acquire);
  for (;;) {
    const std::uint32_t e = detail::word_epoch(w);
    const auto& c = s->cfg[e & (detail::kRingSlots - 1)];
    const detail::GcraParams p{c.interval_ns.load(std::memory_order_relaxed),
                               c.tau_ns.load(std::memory_order_relaxed)};
    if (p.interval_ns <= 0)
      return false;  // torn read of a slot being rewritten; the CAS would fail
    // n units must fit in the 56-bit word: beyond that (about 833 days of slots) nothing is taken.
    if (n > static_cast<std::int64_t>(detail::kTatMask) / p.interval_ns) return false;
    const auto r = detail::gcra_reserve(detail::word_tat(w), now, n, p);
    if (r.due_ns > deadline || r.new_tat_ns > static_cast<std::int64_t>(detail::kTatMask))
      return false;
    if (s->word.compare_exchange_weak(w, detail::pack_word(e, r.new_tat_ns),
                                      std::memory_order_acq_rel, std::memory_order_acquire)) {
      *due = r.due_ns;
      *epoch = e;
      return true;
    }
  }
}

// Moves a slot reserved in epoch `from` onto the schedule of epoch `to`, through every rebase
// between them. Returns false (slot unchanged) if the records have been overwritten.
inline bool retime(const Throttle::Shared* s, std::int64_t* due, std::uint32_t from,
                   std::uint32_t to) noexcept {
  std::int64_t t = *due;
  for (std::uint32_t e = (from + 1) & detail::kEpochMask;; e = (e + 1) & detail::kEpochMask) {
    const auto& r = s->rebase[e & (detail::kRingSlots - 1)];
    if (r.epoch.load(std::memory_order_acquire) != e) return false;
    const std::int64_t at = r.at_rel_ns.load(std::memory_order_relaxed);
    const std::int64_t oi = r.old_interval_ns.load(std::memory_order_relaxed);
    const std::int64_t ni = r.new_interval_ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);  // seqlock: the fields before the re-check
    if (r.epoch.load(std::memory_order_relaxed) != e || oi <= 0 || ni <= 0) return false;
    t = detail::gcra_rescale(t, at, oi, ni);
    if (e == to) break;
  }
  *due = t;
  return true;
}

// hardcap one's gate ring (see Shared::gate_head), after the monitor's buckets.
inline std::atomic<std::uint64_t>* gate_ring(Throttle::Shared* s, const Throttle::Fixed& f) {
  return reinterpret_cast<std::atomic<std::uint64_t>*>(reinterpret_cast<char*>(s) + f.gate_offset);
}

// The earliest time units k .. k + n - 1 (n <= m) may all be granted: after unit k - 1 and
// `span` after unit k + n - 1 - m (grant times never decrease, so that one bounds the rest); -1
// when the entries read are not those units (the head moved under us).
inline std::int64_t gate_opens(const std::atomic<std::uint64_t>* ring, std::uint32_t bits,
                               std::uint64_t k, std::int64_t n, std::int64_t m,
                               std::int64_t span) noexcept {
  using detail::gate_lap;
  using detail::gate_time;
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  const std::uint64_t kb = k + static_cast<std::uint64_t>(n - 1) - static_cast<std::uint64_t>(m);
  const std::uint64_t prev = ring[(k - 1) & mask].load(std::memory_order_acquire);
  const std::uint64_t back = ring[kb & mask].load(std::memory_order_acquire);
  if (detail::gate_tag(prev) != gate_lap(k - 1, bits) ||
      detail::gate_tag(back) != gate_lap(kb, bits))
    return -1;
  std::int64_t at = gate_time(prev);
  if (gate_time(back) > 0) {
    std::int64_t after;
    if (__builtin_add_overflow(gate_time(back), span, &after)) after = kForever;
    at = std::max(at, after);
  }
  return at;
}

// The gate's step m and span in the current rate configuration, read as a seqlock reads: the
// word's epoch again after the fields. False when set_rate() moved on meanwhile or the slot is
// corrupt (m outside 1 .. the ring, span <= 0): the caller retries, and never grants unchecked.
inline bool gate_config(const Throttle::Shared* s, std::uint64_t size, std::int64_t* m,
                        std::int64_t* span) noexcept {
  const std::uint32_t e = detail::word_epoch(s->word.load(std::memory_order_acquire));
  const auto& c = s->cfg[e & (detail::kRingSlots - 1)];
  *span = c.gate_span_ns.load(std::memory_order_relaxed);
  *m = c.gate_m.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (detail::word_epoch(s->word.load(std::memory_order_relaxed)) != e) return false;
  return *span > 0 && *m >= 1 && *m <= static_cast<std::int64_t>(size);
}

// Records units k .. k + n - 1 at `now`, moving the head past each. False when another granter
// took one of them first: those recorded before it stay in the ring unused (lost time, never
// extra grants).
inline bool gate_commit(Throttle::Shared* s, std::atomic<std::uint64_t>* ring, std::uint32_t bits,
                        std::uint64_t k, std::int64_t n, std::int64_t now) noexcept {
  const std::uint64_t size = std::uint64_t{1} << bits;
  for (std::uint64_t u = k; u < k + static_cast<std::uint64_t>(n); ++u) {
    auto& entry = ring[u & (size - 1)];
    std::uint64_t old = entry.load(std::memory_order_acquire);
    if (detail::gate_tag(old) != detail::gate_lap(u - size, bits) ||
        !entry.compare_exchange_strong(old, detail::gate_entry(u, bits, now),
                                       std::memory_order_acq_rel)) {
      return false;
    }
    std::uint64_t h = u;
    s->gate_head.compare_exchange_strong(h, u + 1, std::memory_order_acq_rel);
  }
  return true;
}

// hardcap one's gate: tries to grant n units (1 .. m) at `now`, all at that instant. True when
// granted (with commit false: when they could be, taking nothing); false with *need set to the
// earliest time the gate could allow them (kForever: never, n is more than the gate's step m).
inline bool try_gate(Throttle::Shared* s, const Throttle::Fixed& f, std::int64_t now,
                     std::int64_t* need, std::int64_t n = 1, bool commit = true) noexcept {
  using detail::gate_lap;
  using detail::gate_tag;
  const std::uint32_t bits = f.gate_bits;
  const std::uint64_t size = std::uint64_t{1} << bits;
  std::atomic<std::uint64_t>* ring = gate_ring(s, f);
  for (int tries = 0;; ++tries) {
    // Each retry below means another grant moved the head or set_rate() changed the rate, unless
    // the segment is corrupt: a bound, and the caller (which checks for stop() between calls)
    // tries again a millisecond later.
    if (tries == kGateTries) {
      *need = sat_add(now, 1'000'000);
      return false;
    }
    const std::uint64_t k = s->gate_head.load(std::memory_order_acquire);
    const std::uint64_t cur = ring[k & (size - 1)].load(std::memory_order_acquire);
    if (gate_tag(cur) == gate_lap(k, bits)) {
      std::uint64_t kk = k;  // unit k is granted: move the head on for its granter
      s->gate_head.compare_exchange_strong(kk, k + 1, std::memory_order_acq_rel);
      continue;
    }
    if (gate_tag(cur) != gate_lap(k - size, bits)) continue;  // the head moved under us
    std::int64_t m, span;
    if (!gate_config(s, size, &m, &span)) continue;
    if (n > m) {
      *need = kForever;
      return false;
    }
    const std::int64_t at = gate_opens(ring, bits, k, n, m, span);
    if (at < 0) continue;  // the head moved under us
    if (now < at) {
      *need = at;
      return false;
    }
    if (!commit || gate_commit(s, ring, bits, k, n, now)) return true;
  }
}

// The most units one call may take at once under hardcap one: the gate's step m (max_n up to
// the ring's length), as the current rate configuration says; 0 while it cannot be read.
inline std::int64_t gate_step(const Throttle::Shared* s, const Throttle::Fixed& f) noexcept {
  std::int64_t m, span;
  for (int tries = 0; tries < kGateTries; ++tries)
    if (gate_config(s, std::uint64_t{1} << f.gate_bits, &m, &span)) return m;
  return 0;
}

// The spin lead, bounded: the segment's word may hold anything.
inline std::int64_t load_lead(const Throttle::Shared* s) {
  return std::clamp<std::int64_t>(s->spin_lead_ns.load(std::memory_order_relaxed), 0,
                                  kMaxSpinLeadNs);
}

// The runtime so far: the runs before plus the current one, saturating (the words may hold
// anything). Read runtime_accum_ns between two reads of the state, so that a stop() folding the
// current run into it meanwhile is not counted twice.
inline std::int64_t runtime_ns(const Throttle::Shared* s, std::int64_t base_ns) {
  for (int tries = 0;; ++tries) {
    const auto st = s->state.load(std::memory_order_acquire);
    const std::int64_t accum = s->runtime_accum_ns.load(std::memory_order_acquire);
    const std::int64_t started = s->started_at_rel_ns.load(std::memory_order_acquire);
    if (s->state.load(std::memory_order_acquire) != st && tries < 3) continue;
    if (st != static_cast<std::uint32_t>(ThrottleState::kRunning)) return accum;
    return sat_add(accum, detail::sat_sub(detail::sat_sub(mono_ns(), base_ns), started));
  }
}

// The correction's source, read without the admin lock (see Shared::correction_source).
inline std::string correction_source(const Throttle::Shared* s) {
  const char* b = s->correction_source[s->source_index.load(std::memory_order_acquire) & 1];
  return std::string(b, strnlen(b, sizeof s->correction_source[0]));
}

inline ThrottleState load_state(const Throttle::Shared* s) {
  return static_cast<ThrottleState>(s->state.load(std::memory_order_acquire));
}

}  // namespace
}  // namespace mpt::detail
