#include "throttle_config.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <new>
#include <sstream>

#include "clock.hpp"
#include "mpt/error.hpp"
#include "throttle_ops.hpp"
#include "throttle_shared.hpp"
#include "tuning.hpp"

namespace mpt {

using detail::mono_ns;

namespace detail {

namespace {

constexpr double kMaxPerS = 30.0 * 86400;  // keeps every slot far inside the 56-bit GCRA word
constexpr std::int64_t kMaxN = 1'000'000'000;

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

std::int64_t compute_interval_ns(std::int64_t max_n, double per_s, double correction) {
  return std::llround(per_s * 1e9 / static_cast<double>(max_n) * (1.0 - correction));
}

std::int64_t compute_tau_ns(Hardcap h, std::int64_t max_n, std::int64_t interval_ns) {
  switch (h) {
    case Hardcap::kLimit:
      return (max_n - 1) * interval_ns;
    case Hardcap::kOne:
      return 0;
    case Hardcap::kNone:
      return -1;
  }
  return 0;
}

GateShape compute_gate(Hardcap h, std::int64_t max_n, double per_s, std::uint32_t bits) {
  if (h != Hardcap::kOne || max_n < 1) return {};
  const std::int64_t slots = std::int64_t{1} << bits;
  const std::int64_t q = (max_n + slots - 1) / slots;
  return {max_n / q, static_cast<std::int64_t>(std::ceil(per_s * 1e9 / static_cast<double>(q)))};
}

std::uint32_t compute_gate_bits(Hardcap h, std::int64_t max_n) {
  if (h != Hardcap::kOne) return 0;
  std::uint32_t bits = detail::kGateMinBits;
  while (bits < detail::kGateMaxBits && (std::int64_t{1} << bits) < max_n)
    ++bits;
  return bits;
}

void validate_rate(std::int64_t max_n, double per_s, double correction) {
  if (max_n < 1) throw InvalidArgument("max_n must be at least 1, got " + std::to_string(max_n));
  if (max_n > kMaxN) {
    throw InvalidArgument("max_n must be at most " + std::to_string(kMaxN) + ", got " +
                          std::to_string(max_n));
  }
  if (!std::isfinite(per_s) || per_s <= 0) {
    throw InvalidArgument("per must be a finite number of seconds greater than 0, got " +
                          num(per_s));
  }
  if (per_s > kMaxPerS) {
    throw InvalidArgument("per must be at most " + num(kMaxPerS) + " seconds (30 days), got " +
                          num(per_s));
  }
  if (compute_interval_ns(max_n, per_s, correction) < 1) {
    throw InvalidArgument("max_n " + std::to_string(max_n) + " per " + num(per_s) +
                          " s gives an interval under 1 ns");
  }
}

void validate_options(const ThrottleOptions& o) {
  const double rf = o.rf_rate.count();
  if (!std::isfinite(rf) || rf < 0.001 || rf > 1.0) {
    throw InvalidArgument("rf_rate must be between 0.001 and 1 seconds, got " + num(rf));
  }
  if (o.correction) {
    const double c = *o.correction;
    if (!std::isfinite(c) || c <= -1.0 || c >= 1.0) {
      throw InvalidArgument("correction must be a finite number with -1 < correction < 1, got " +
                            num(c));
    }
  }
  if (o.spin_lead && (o.spin_lead->count() < 0 || o.spin_lead->count() > kMaxSpinLeadNs)) {
    throw InvalidArgument("spin_lead must be between 0 and 10 ms, got " +
                          std::to_string(o.spin_lead->count()) + " ns");
  }
  const auto h = static_cast<std::uint32_t>(o.hardcap);
  if (h > static_cast<std::uint32_t>(Hardcap::kNone)) {
    throw InvalidArgument("hardcap must be limit, one or none, got " + std::to_string(h));
  }
}

// Copies what never changes out of a throttle body and checks the copy (the header was validated
// by Segment::open): later writes into the segment cannot change what this process computes with.
// The mutable fields are checked too, as a first line; every use bounds them again.
Throttle::Fixed read_fixed(const Segment& seg) {
  const auto* s = static_cast<const Throttle::Shared*>(seg.body());
  const std::string what = "segment '" + seg.name() + "'";
  auto corrupt = [&](const std::string& why) {
    throw IncompatibleSegment(what + " is corrupt: " + why);
  };
  if (seg.size_bytes() < Segment::kBodyOffset + offsetof(Throttle::Shared, buckets))
    corrupt("too small for a throttle");
  Throttle::Fixed f;
  f.base_ns = s->base_ns;
  f.rf_ns = s->rf_ns;
  f.id = seg.id();
  f.flags = s->flags;
  f.hardcap = s->hardcap;
  f.ring_len = s->ring_len;
  f.window_buckets = s->window_buckets;
  f.gate_bits = s->gate_bits;
  if (f.ring_len < 2 || f.ring_len > 1001 || f.window_buckets + 1 != f.ring_len)
    corrupt("bad monitor ring");
  if (f.hardcap > static_cast<std::uint32_t>(Hardcap::kNone)) corrupt("bad hardcap");
  const bool one = f.hardcap == static_cast<std::uint32_t>(Hardcap::kOne);
  if (one ? f.gate_bits < detail::kGateMinBits || f.gate_bits > detail::kGateMaxBits
          : f.gate_bits != 0)
    corrupt("bad gate ring");
  if (one) f.gate_offset = static_cast<std::uint32_t>(Throttle::Shared::gate_offset(f.ring_len));
  if (Segment::kBodyOffset + Throttle::Shared::size_for(f.ring_len, f.gate_bits) !=
      seg.size_bytes())
    corrupt("size does not match its rings");
  if (f.rf_ns <= 0 || f.rf_ns > 1'000'000'000) corrupt("bad rf_rate");
  if (f.base_ns < 0) corrupt("bad time origin");
  if (s->state.load() > static_cast<std::uint32_t>(ThrottleState::kStopped)) corrupt("bad state");
  for (const auto& c : s->cfg) {
    if (c.interval_ns.load() < 0) corrupt("negative interval");
  }
  const auto& now_cfg = s->cfg[detail::word_epoch(s->word.load()) & (detail::kRingSlots - 1)];
  if (now_cfg.interval_ns.load() <= 0) corrupt("no interval for the current epoch");
  if (one && (now_cfg.gate_span_ns.load() <= 0 || now_cfg.gate_m.load() < 1 ||
              now_cfg.gate_m.load() > (std::int64_t{1} << f.gate_bits))) {
    corrupt("bad gate for hardcap one");
  }
  return f;
}

}  // namespace detail

namespace {

using detail::compute_gate;
using detail::compute_gate_bits;
using detail::compute_interval_ns;
using detail::compute_tau_ns;
using detail::read_fixed;
using detail::validate_options;
using detail::validate_rate;

// The sizes a new throttle's body is made with: the monitor's window and ring, hardcap one's gate
// ring (see compute_gate_bits), and the bytes they take.
struct BodyShape {
  std::uint32_t window = 0;
  std::uint32_t ring_len = 0;
  std::uint32_t gate_bits = 0;
  std::size_t bytes() const { return Throttle::Shared::size_for(ring_len, gate_bits); }
};

Segment::Init make_init(std::int64_t max_n, double per_s, const ThrottleOptions& o,
                        const detail::Tuning& tuning, const BodyShape& shape) {
  const std::uint32_t window = shape.window, ring_len = shape.ring_len, bits = shape.gate_bits;
  return [=](void* data, std::size_t) {
    void* body = static_cast<char*>(data) + Segment::kBodyOffset;
    auto* s = new (body) Throttle::Shared();
    for (std::uint32_t i = 1; i < ring_len; ++i)
      new (&s->buckets[i]) std::atomic<std::uint64_t>(0);
    s->base_ns = mono_ns() - 1'000'000'000;  // so that relative times are positive from the start
    const bool auto_cal = o.auto_calibrate.value_or(static_cast<double>(max_n) / per_s >= 49.0);
    s->flags =
        (o.as_monitor ? detail::kFlagMonitor : 0) | (o.as_throttle ? detail::kFlagThrottle : 0) |
        (o.auto_emit ? detail::kFlagAutoEmit : 0) | (auto_cal ? detail::kFlagAutoCalibrate : 0) |
        (o.spin_lead ? detail::kFlagSpinLeadGiven : 0);
    s->hardcap = static_cast<std::uint32_t>(o.hardcap);
    s->rf_ns = std::llround(o.rf_rate.count() * 1e9);
    s->window_buckets = window;
    s->ring_len = ring_len;

    const double c = tuning.correction;
    s->max_n = max_n;
    s->per_s = per_s;
    s->correction = c;
    s->spin_lead_ns = tuning.spin_lead_ns;
    std::strncpy(s->correction_source[0], tuning.source.c_str(),
                 sizeof s->correction_source[0] - 1);

    const std::int64_t interval = compute_interval_ns(max_n, per_s, c);
    s->cfg[0].interval_ns = interval;
    s->cfg[0].tau_ns = compute_tau_ns(o.hardcap, max_n, interval);
    const detail::GateShape gate = compute_gate(o.hardcap, max_n, per_s, bits);
    s->cfg[0].gate_span_ns = gate.span_ns;
    s->cfg[0].gate_m = gate.m;
    s->gate_bits = bits;
    if (bits > 0) {  // units 0 .. 2^bits - 1 of lap 0, none granted (see detail::gate_lap)
      s->gate_head = std::uint64_t{1} << bits;
      auto* ring = reinterpret_cast<char*>(s) + Throttle::Shared::gate_offset(ring_len);
      for (std::uint64_t i = 0; i < (std::uint64_t{1} << bits); ++i)
        new (ring + i * sizeof(std::uint64_t)) std::atomic<std::uint64_t>(0);
    }
    for (auto& r : s->rebase)
      r.epoch = detail::kNoEpoch;
    s->word = detail::pack_word(0, 0);
    s->state = static_cast<std::uint32_t>(ThrottleState::kCreated);
    s->last_emit_rel_ns = -1;
    s->min_interval_ns = INT64_MAX;
    s->max_interval_ns = -1;
  };
}

BodyShape body_shape(std::int64_t max_n, const ThrottleOptions& o) {
  const auto window =
      static_cast<std::uint32_t>(std::max<long long>(1, std::llround(1.0 / o.rf_rate.count())));
  return {window, window + 1, compute_gate_bits(o.hardcap, max_n)};
}

}  // namespace

const char* to_string(Hardcap h) noexcept {
  switch (h) {
    case Hardcap::kLimit:
      return "limit";
    case Hardcap::kOne:
      return "one";
    case Hardcap::kNone:
      return "none";
  }
  return "unknown";
}

const char* to_string(ThrottleState s) noexcept {
  switch (s) {
    case ThrottleState::kCreated:
      return "created";
    case ThrottleState::kRunning:
      return "running";
    case ThrottleState::kStopped:
      return "stopped";
  }
  return "unknown";
}

Throttle::Throttle(std::shared_ptr<Segment> segment)
    : segment_(std::move(segment)),
      s_(static_cast<Shared*>(segment_->body())),
      f_(read_fixed(*segment_)) {}

Throttle::Throttle(std::int64_t max_n, std::chrono::duration<double> per,
                   const ThrottleOptions& options) {
  validate_options(options);
  validate_rate(max_n, per.count(), options.correction.value_or(0.0));
  const detail::Tuning tuning = detail::resolve_tuning(max_n, per.count(), options);
  validate_rate(max_n, per.count(), tuning.correction);
  const BodyShape shape = body_shape(max_n, options);
  segment_ = Segment::anonymous(SegmentKind::kThrottle, Segment::kBodyOffset + shape.bytes(),
                                make_init(max_n, per.count(), options, tuning, shape));
  s_ = static_cast<Shared*>(segment_->body());
  f_ = read_fixed(*segment_);
}

Throttle Throttle::create(std::string_view name, std::int64_t max_n,
                          std::chrono::duration<double> per, const ThrottleOptions& options) {
  Segment::validate_name(name);
  validate_options(options);
  validate_rate(max_n, per.count(), options.correction.value_or(0.0));
  const detail::Tuning tuning = detail::resolve_tuning(max_n, per.count(), options);
  validate_rate(max_n, per.count(), tuning.correction);
  const BodyShape shape = body_shape(max_n, options);
  return Throttle(
      Segment::create(name, SegmentKind::kThrottle, Segment::kBodyOffset + shape.bytes(),
                      make_init(max_n, per.count(), options, tuning, shape), options.segment));
}

Throttle Throttle::open(std::string_view name, const OpenOptions& options) {
  return Throttle(Segment::open(name, SegmentKind::kThrottle, options));
}

void Throttle::remove(std::string_view name) {
  Segment::remove(name);
}

}  // namespace mpt
