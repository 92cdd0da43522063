#include "mpt/throttle.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <new>
#include <random>
#include <sstream>

#include "clock.hpp"
#include "futex.hpp"
#include "gcra.hpp"
#include "log.hpp"
#include "mpt/error.hpp"
#include "probes.hpp"
#include "redis_backend.hpp"
#include "throttle_shared.hpp"
#include "tuning.hpp"

namespace mpt {

using detail::kForever;
using detail::mono_ns;
using detail::to_ns;

namespace {

constexpr double kMaxPerS = 30.0 * 86400;  // keeps every slot far inside the 56-bit GCRA word
constexpr std::int64_t kMaxN = 1'000'000'000;
constexpr std::int64_t kMaxSpinLeadNs = 10'000'000;
constexpr int kGateTries = 1000;  // try_gate's retries before it gives the caller a way out
// How long start(), stop() and set_rate() wait for the admin lock held by a live thread (a holder
// stopped in a debugger, or a scribbled word naming a live thread): stop() then goes on without.
constexpr std::int64_t kAdminWaitNs = 1'000'000'000;

// a + b without signed overflow: saturates at the int64 limits (kForever stays kForever).
constexpr std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

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

// hardcap one's least distance between grants: per / max_n rounded up, no correction applied, so
// that the promise of at most max_n in any window of `per` holds whatever the correction.
std::int64_t compute_gate_ns(Hardcap h, std::int64_t max_n, double per_s) {
  if (h != Hardcap::kOne) return 0;
  return static_cast<std::int64_t>(std::ceil(per_s * 1e9 / static_cast<double>(max_n)));
}
std::int64_t compute_gate_m(std::int64_t max_n) {
  for (std::int64_t m = detail::kGateSlots; m > 1; --m)
    if (max_n % m == 0) return m;
  return 1;
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

// Whether the thread `tid` can still let go of a lock: it exists (kill() accepts a thread's id)
// and is not a zombie (a holder killed mid-operation whose parent has not reaped it yet). 0 and
// values beyond any pid (which kill() would read as a process group) name no thread. Thread ids
// are those of this PID namespace: processes sharing a throttle must share one (README).
bool thread_can_release(std::uint32_t tid) {
  if (tid == 0 || tid > (1u << 22)) return false;  // PID_MAX_LIMIT
  if (::kill(static_cast<pid_t>(tid), 0) != 0 && errno != EPERM) return false;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%u/stat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // no /proc: trust kill()
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');  // "tid (comm) S ...": comm may hold anything
  return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

class AdminLock {
 public:
  AdminLock(std::atomic<std::uint32_t>* word, const Segment& seg)
      : word_(word), me_(static_cast<std::uint32_t>(::gettid())) {
    const std::int64_t deadline = mono_ns() + kAdminWaitNs;
    for (;;) {
      const std::int64_t now = mono_ns();
      std::uint32_t cur = 0;
      if (word_->compare_exchange_strong(cur, me_, std::memory_order_acquire)) break;
      // A holder that is gone (killed mid-operation: each admin operation leaves the throttle in
      // a state the next one completes, see start()), or a word that names no thread: take it
      // over. Never from a word naming this thread: no admin call nests, so that is a scribble
      // (or another PID namespace), and waiting out the bound is the safe answer.
      if (cur != me_ && !thread_can_release(cur) &&
          word_->compare_exchange_strong(cur, me_, std::memory_order_acquire)) {
        break;
      }
      if (now >= deadline) {
        why_ = "throttle '" + seg.name() + "': its admin lock was held by thread " +
               std::to_string(cur) + " for over 1 s (a stuck process, or a corrupt segment)";
        return;
      }
      detail::futex_wait(word_, cur, std::min(deadline, now + 10'000'000));  // re-check liveness
    }
    held_ = true;
  }
  ~AdminLock() {
    if (!held_) return;
    std::uint32_t me = me_;
    word_->compare_exchange_strong(me, 0, std::memory_order_release);
    detail::futex_wake(word_, 1);
  }
  AdminLock(const AdminLock&) = delete;
  AdminLock& operator=(const AdminLock&) = delete;
  bool held() const { return held_; }
  const std::string& why() const { return why_; }
  // For start() and set_rate(): nothing is changed without the lock.
  void require() const {
    if (!held_) throw SystemError(why_, ETIMEDOUT);
  }

 private:
  std::atomic<std::uint32_t>* word_;
  std::uint32_t me_;
  bool held_ = false;
  std::string why_;
};

Segment::Init make_init(std::int64_t max_n, double per_s, const ThrottleOptions& o,
                        const detail::Tuning& tuning, std::uint32_t window,
                        std::uint32_t ring_len) {
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
    s->cfg[0].gate_ns = compute_gate_ns(o.hardcap, max_n, per_s);
    s->cfg[0].gate_m = compute_gate_m(max_n);
    s->gate_head = detail::kGateFirst;
    for (std::uint64_t i = 0; i < detail::kGateSlots; ++i) {
      const std::uint64_t k = detail::kGateFirst - detail::kGateSlots + i;
      s->gate_ring[k % detail::kGateSlots] = detail::gate_entry(k, 0);
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

std::pair<std::uint32_t, std::uint32_t> ring_shape(const ThrottleOptions& o) {
  const auto window =
      static_cast<std::uint32_t>(std::max<long long>(1, std::llround(1.0 / o.rf_rate.count())));
  return {window, window + 1};
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
  if (f.ring_len < 2 || f.ring_len > 1001 || f.window_buckets + 1 != f.ring_len)
    corrupt("bad monitor ring");
  if (Segment::kBodyOffset + Throttle::Shared::size_for(f.ring_len) != seg.size_bytes())
    corrupt("size does not match its monitor ring");
  if (f.hardcap > static_cast<std::uint32_t>(Hardcap::kNone)) corrupt("bad hardcap");
  if (f.rf_ns <= 0 || f.rf_ns > 1'000'000'000) corrupt("bad rf_rate");
  if (f.base_ns < 0) corrupt("bad time origin");
  if (s->state.load() > static_cast<std::uint32_t>(ThrottleState::kStopped)) corrupt("bad state");
  for (const auto& c : s->cfg) {
    if (c.interval_ns.load() < 0) corrupt("negative interval");
  }
  const auto& now_cfg = s->cfg[detail::word_epoch(s->word.load()) & (detail::kRingSlots - 1)];
  if (now_cfg.interval_ns.load() <= 0) corrupt("no interval for the current epoch");
  if (f.hardcap == static_cast<std::uint32_t>(Hardcap::kOne) &&
      (now_cfg.gate_ns.load() <= 0 || now_cfg.gate_m.load() < 1 ||
       now_cfg.gate_m.load() > static_cast<std::int64_t>(detail::kGateSlots))) {
    corrupt("bad gate for hardcap one");
  }
  return f;
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

// hardcap one's gate (see Shared::gate_ring): tries to grant one unit at `now`. True when granted
// (with commit false: when it could be, taking nothing); false with *need set to the earliest time
// the gate could allow it.
inline bool try_gate(Throttle::Shared* s, std::int64_t now, std::int64_t* need,
                     bool commit = true) noexcept {
  using detail::gate_entry;
  using detail::gate_tag;
  using detail::gate_time;
  constexpr std::uint64_t kSlots = detail::kGateSlots;
  for (int tries = 0;; ++tries) {
    // Each retry below means another grant moved the head, unless the ring is corrupt: a bound,
    // and the caller (which checks for stop() between calls) tries again a millisecond later.
    if (tries == kGateTries) {
      *need = sat_add(now, 1'000'000);
      return false;
    }
    const std::uint64_t k = s->gate_head.load(std::memory_order_acquire);
    auto& mine = s->gate_ring[k % kSlots];
    std::uint64_t cur = mine.load(std::memory_order_acquire);
    if (gate_tag(cur) == (k & 0xff)) {  // unit k is granted; move the head on for its granter
      std::uint64_t kk = k;
      s->gate_head.compare_exchange_strong(kk, k + 1, std::memory_order_acq_rel);
      continue;
    }
    if (gate_tag(cur) != ((k - kSlots) & 0xff)) continue;  // the head moved under us
    const std::uint32_t e = detail::word_epoch(s->word.load(std::memory_order_acquire));
    const auto& c = s->cfg[e & (detail::kRingSlots - 1)];
    const std::int64_t gi = c.gate_ns.load(std::memory_order_relaxed);
    const std::int64_t m = c.gate_m.load(std::memory_order_relaxed);
    if (gi <= 0 || m < 1 || m > static_cast<std::int64_t>(kSlots)) return true;  // being written
    const std::uint64_t prev = s->gate_ring[(k - 1) % kSlots].load(std::memory_order_acquire);
    const std::uint64_t back =
        s->gate_ring[(k - static_cast<std::uint64_t>(m)) % kSlots].load(std::memory_order_acquire);
    if (gate_tag(prev) != ((k - 1) & 0xff) ||
        gate_tag(back) != ((k - static_cast<std::uint64_t>(m)) & 0xff)) {
      continue;  // the head moved under us
    }
    std::int64_t n = gate_time(prev);
    if (gate_time(back) > 0) {
      std::int64_t span;
      if (__builtin_mul_overflow(m, gi, &span) ||
          __builtin_add_overflow(gate_time(back), span, &span))
        span = kForever;
      n = std::max(n, span);
    }
    if (now < n) {
      *need = n;
      return false;
    }
    if (!commit) return true;
    if (mine.compare_exchange_strong(cur, gate_entry(k, now), std::memory_order_acq_rel)) {
      std::uint64_t kk = k;
      s->gate_head.compare_exchange_strong(kk, k + 1, std::memory_order_acq_rel);
      return true;
    }
  }
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

const char* to_string(OnUnavailable o) noexcept {
  switch (o) {
    case OnUnavailable::kFail:
      return "fail";
    case OnUnavailable::kFailOpen:
      return "fail_open";
    case OnUnavailable::kFailClosed:
      return "fail_closed";
    case OnUnavailable::kLocalFallback:
      return "local_fallback";
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
  auto [window, ring_len] = ring_shape(options);
  segment_ =
      Segment::anonymous(SegmentKind::kThrottle, Segment::kBodyOffset + Shared::size_for(ring_len),
                         make_init(max_n, per.count(), options, tuning, window, ring_len));
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
  auto [window, ring_len] = ring_shape(options);
  return Throttle(Segment::create(
      name, SegmentKind::kThrottle, Segment::kBodyOffset + Shared::size_for(ring_len),
      make_init(max_n, per.count(), options, tuning, window, ring_len), options.segment));
}

Throttle Throttle::open(std::string_view name, const OpenOptions& options) {
  return Throttle(Segment::open(name, SegmentKind::kThrottle, options));
}

void Throttle::remove(std::string_view name) {
  Segment::remove(name);
}

namespace {

void validate_remote_options(const ThrottleOptions& o) {
  const auto u = static_cast<std::uint32_t>(o.on_unavailable);
  if (u > static_cast<std::uint32_t>(OnUnavailable::kLocalFallback))
    throw InvalidArgument("on_unavailable must be fail, fail_open, fail_closed or local_fallback");
  if (o.fallback_divisor < 1 || o.fallback_divisor > 1'000'000) {
    throw InvalidArgument("fallback_divisor must be between 1 and 1000000, got " +
                          std::to_string(o.fallback_divisor));
  }
  auto check_ms = [](const char* what, std::chrono::milliseconds v, std::int64_t lo) {
    if (v.count() < lo || v.count() > 60'000) {
      throw InvalidArgument(std::string(what) + " must be between " + std::to_string(lo) +
                            " ms and 60 s, got " + std::to_string(v.count()) + " ms");
    }
  };
  check_ms("connect_timeout", o.connect_timeout, 1);
  check_ms("command_timeout", o.command_timeout, 1);
  check_ms("reconnect_backoff_max", o.reconnect_backoff_max, 10);
}

// The handle for a remote throttle: a local anonymous throttle at rate / k (the kill flag, the
// spin lead and the kLocalFallback schedule of this process) with the backend attached.
Throttle attach_remote(std::shared_ptr<detail::RemoteBackend> backend,
                       const ThrottleOptions& options) {
  const detail::RemoteConfig& c = backend->config();
  ThrottleOptions lo = options;
  lo.hardcap = c.hardcap;
  lo.as_monitor = c.as_monitor;
  lo.as_throttle = c.as_throttle;
  lo.auto_emit = c.auto_emit;
  lo.correction = c.correction;
  return detail::RemoteBackend::attach(
      std::move(backend), Throttle(c.max_n,
                                   std::chrono::duration<double>(
                                       c.per_s * static_cast<double>(options.fallback_divisor)),
                                   lo));
}

}  // namespace

namespace detail {
Throttle RemoteBackend::attach(std::shared_ptr<RemoteBackend> backend, Throttle fallback) {
  backend->set_fallback(fallback);
  if (backend->config().state == ThrottleState::kRunning) fallback.start();
  fallback.remote_ = std::move(backend);
  return fallback;
}
}  // namespace detail

Throttle Throttle::connect(std::string_view url, std::int64_t max_n,
                           std::chrono::duration<double> per, const ThrottleOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  validate_options(options);
  validate_remote_options(options);
  validate_rate(max_n, per.count(), options.correction.value_or(0.0));
  detail::RemoteConfig c;
  c.max_n = max_n;
  c.per_s = per.count();
  c.hardcap = options.hardcap;
  c.correction = options.correction.value_or(0.0);
  c.correction_given = options.correction.has_value();
  c.as_monitor = options.as_monitor;
  c.as_throttle = options.as_throttle;
  c.auto_emit = options.auto_emit;
  std::random_device rd;
  c.id = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  c.creator_pid = static_cast<std::int32_t>(::getpid());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) c.creator_host = host;
  c.created_realtime_ns = detail::realtime_ns();
  auto backend = std::make_shared<detail::RemoteBackend>(std::move(parsed), options, &c);
  return attach_remote(std::move(backend), options);
}

Throttle Throttle::connect(std::string_view url, const ThrottleOptions& options) {
  auto parsed = detail::parse_redis_url(url);
  validate_options(options);
  validate_remote_options(options);
  auto backend = std::make_shared<detail::RemoteBackend>(std::move(parsed), options, nullptr);
  return attach_remote(std::move(backend), options);
}

std::string Throttle::url() const {
  return remote_ ? remote_->url() : std::string();
}

std::string Throttle::last_error() const {
  return remote_ ? remote_->last_error() : std::string();
}

std::uint64_t Throttle::round_trips() const noexcept {
  return remote_ ? remote_->round_trips() : 0;
}

ThrottleState Throttle::state() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->state();
  return load_state(s_);
}

void Throttle::start() {
  start(Clock::now());
}

void Throttle::start(TimePoint now_tp) {
  if (remote_) [[unlikely]]
    return remote_->start();
  AdminLock lock(&s_->admin_owner, *segment_);
  lock.require();
  // Running and open: nothing to do. Running but sealed is a stop() killed half-way: start again.
  if (load_state(s_) == ThrottleState::kRunning &&
      !(s_->total.load(std::memory_order_acquire) & detail::kTotalSealed)) {
    return;
  }
  const std::int64_t now = to_ns(now_tp) - f_.base_ns;
  s_->kill_flag.store(0, std::memory_order_release);
  s_->started_at_rel_ns.store(now, std::memory_order_relaxed);
  // A fresh schedule: one unit available now, the burst allowance builds up from here.
  std::uint64_t w = s_->word.load(std::memory_order_acquire);
  while (!s_->word.compare_exchange_weak(w, detail::pack_word(detail::word_epoch(w), now),
                                         std::memory_order_acq_rel)) {
  }
  const std::uint32_t run = s_->run_gen.fetch_add(1, std::memory_order_acq_rel) + 1;
  // Open the total for this run (see Shared::total); the count goes on from where it was.
  std::uint64_t tw = s_->total.load(std::memory_order_acquire);
  while (!s_->total.compare_exchange_weak(
      tw,
      detail::total_count(tw) |
          (std::uint64_t{run & detail::kTotalRunMask} << detail::kTotalRunShift),
      std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  s_->state.store(static_cast<std::uint32_t>(ThrottleState::kRunning), std::memory_order_release);
  s_->wake_seq.fetch_add(1, std::memory_order_acq_rel);
  detail::futex_wake(&s_->wake_seq, INT32_MAX);
}

Summary Throttle::stop() {
  if (remote_) [[unlikely]]
    return remote_->stop();
  {
    // A lock another process broke cannot keep stop() from stopping: past the bound it goes on
    // without it (every step below is an atomic store, so nothing worse than a racing admin call's
    // mixed runtime can follow) and says so through the log hook.
    AdminLock lock(&s_->admin_owner, *segment_);
    const ThrottleState st = load_state(s_);
    if (st != ThrottleState::kStopped) {
      // Seal the total first: from here no unit is granted and nothing is counted until start()
      // (a worker past its slot finds the seal in its commit and returns false). Nothing waits for
      // the workers, so one killed anywhere cannot delay stop().
      s_->total.fetch_or(detail::kTotalSealed, std::memory_order_acq_rel);
      const std::int64_t run =
          detail::sat_sub(detail::sat_sub(mono_ns(), f_.base_ns), s_->started_at_rel_ns.load());
      s_->run_gen.fetch_add(1, std::memory_order_acq_rel);
      s_->state.store(static_cast<std::uint32_t>(ThrottleState::kStopped),
                      std::memory_order_release);
      // After the state: a reader (runtime_ns) may miss this run for a moment, never count it
      // twice.
      if (st == ThrottleState::kRunning) {
        s_->runtime_accum_ns.store(sat_add(s_->runtime_accum_ns.load(), run),
                                   std::memory_order_release);
      }
      s_->kill_flag.store(1, std::memory_order_release);
      detail::futex_wake(&s_->kill_flag, INT32_MAX);
      s_->wake_seq.fetch_add(1, std::memory_order_acq_rel);
      detail::futex_wake(&s_->wake_seq, INT32_MAX);
    }
    if (!lock.held()) detail::warn(lock.why() + "; stopped without it");
  }
  Summary sum;
  sum.total = total();  // final: sealed above (or by the stop() before)
  const Rate m = mean();
  sum.runtime = std::chrono::duration<double>(
      static_cast<double>(s_->runtime_accum_ns.load(std::memory_order_relaxed)) / 1e9);
  sum.mean_interval_s = m.interval_s;
  sum.mean_rate_per_sec = m.rate_per_sec;
  return sum;
}

bool Throttle::has_fuel(std::int64_t n) noexcept {
  return has_fuel(n, Clock::now());
}

bool Throttle::has_fuel(std::int64_t n, TimePoint now_tp) noexcept {
  if (remote_) [[unlikely]]
    return remote_->has_fuel(n);
  if (n < 1 || load_state(s_) != ThrottleState::kRunning) return false;
  const std::int64_t now = to_ns(now_tp);
  if (f_.flags & detail::kFlagThrottle) {
    if (f_.hardcap == static_cast<std::uint32_t>(Hardcap::kOne)) return has_fuel_one(n, now);
    std::int64_t due;
    std::uint32_t e;
    const std::int64_t rel = detail::sat_sub(now, f_.base_ns);
    if (!reserve_rel(s_, n, rel, rel, &due, &e)) return false;
  }
  return grant_at(s_, f_, n, now, detail::kAnyRun, 0);
}

// has_fuel() for hardcap one: takes nothing unless the gate allows a unit now. The n units then
// go through the gate one after the other; if another grant closes it in between, the call
// returns false and what it took is lost (the rate under-shoots, never over-shoots).
bool Throttle::has_fuel_one(std::int64_t n, std::int64_t now) noexcept {
  const std::int64_t rel = detail::sat_sub(now, f_.base_ns);
  std::int64_t need;
  if (!try_gate(s_, rel, &need, false)) return false;
  std::int64_t due;
  std::uint32_t e;
  if (!reserve_rel(s_, n, rel, rel, &due, &e)) return false;
  for (std::int64_t i = 0; i < n; ++i)
    if (!try_gate(s_, rel, &need)) return false;
  return grant_at(s_, f_, n, now, detail::kAnyRun, 0);
}

std::optional<Throttle::TimePoint> Throttle::reserve(std::int64_t n, TimePoint now_tp,
                                                     TimePoint deadline_tp) noexcept {
  if (remote_) [[unlikely]] {
    const auto due = remote_->reserve(
        n, to_ns(now_tp), deadline_tp == TimePoint::max() ? kForever : to_ns(deadline_tp));
    if (!due) return std::nullopt;
    return detail::from_ns(*due);
  }
  if (n < 1 || load_state(s_) != ThrottleState::kRunning) return std::nullopt;
  if (!(f_.flags & detail::kFlagThrottle)) return now_tp;
  std::int64_t due;
  std::uint32_t e;
  if (!reserve_rel(s_, n, detail::sat_sub(to_ns(now_tp), f_.base_ns),
                   detail::sat_sub(to_ns(deadline_tp), f_.base_ns), &due, &e)) {
    return std::nullopt;
  }
  return detail::from_ns(due + f_.base_ns);
}

bool Throttle::await_fuel() noexcept {
  return await_fuel_until(TimePoint::max(), 1);
}

bool Throttle::await_fuel(std::chrono::nanoseconds timeout) noexcept {
  return await_fuel(1, timeout);
}

bool Throttle::await_fuel(std::int64_t n,
                          std::optional<std::chrono::nanoseconds> timeout) noexcept {
  if (!timeout) return await_fuel_until(TimePoint::max(), n);
  const std::int64_t now = mono_ns();
  const std::int64_t t = timeout->count();
  const std::int64_t deadline = t > kForever - now ? kForever : now + std::max<std::int64_t>(t, 0);
  return await_fuel_until(detail::from_ns(deadline), n);
}

bool Throttle::await_fuel_until(TimePoint deadline_tp, std::int64_t n) noexcept {
  return acquire(deadline_tp, n) >= 0;
}

std::optional<Throttle::TimePoint> Throttle::await_grant(TimePoint deadline,
                                                         std::int64_t n) noexcept {
  const std::int64_t at = acquire(deadline, n);
  if (at < 0) return std::nullopt;
  return detail::from_ns(at);
}

// Throttle::acquire(): await_fuel_until that returns the grant's CLOCK_MONOTONIC time, or -1.
std::int64_t Throttle::acquire(TimePoint deadline_tp, std::int64_t n) noexcept {
  if (n < 1) return -1;
  const std::int64_t deadline = deadline_tp == TimePoint::max() ? kForever : to_ns(deadline_tp);
  if (remote_) [[unlikely]]
    return remote_->acquire(deadline, n);
  const std::int64_t base = f_.base_ns;
  const std::int64_t deadline_rel =
      deadline == kForever ? kForever : detail::sat_sub(deadline, base);
  for (;;) {
    // In this order: a run seen running is the run read after it, or one that began later (whose
    // start or stop then fails the slot, as it must).
    const std::uint32_t seq = s_->wake_seq.load(std::memory_order_acquire);
    const ThrottleState st = load_state(s_);
    const std::uint32_t run = s_->run_gen.load(std::memory_order_acquire);
    // Created once a run has ended (run_gen >= 2: the first start() makes it 1 before it stores
    // Running) can only be a scribble: as stopped, so nothing waits for ever.
    if (st == ThrottleState::kStopped || (st == ThrottleState::kCreated && run >= 2)) return -1;
    if (st == ThrottleState::kCreated) {  // wait for start()
      if (deadline != kForever && mono_ns() >= deadline) return -1;
      detail::futex_wait(&s_->wake_seq, seq, deadline);
      continue;
    }
    const std::int64_t t0 = mono_ns();
    std::int64_t now = t0;
    if (f_.flags & detail::kFlagThrottle) {
      std::int64_t due;
      std::uint32_t epoch;
      if (!reserve_rel(s_, n, now - base, deadline_rel, &due, &epoch)) return -1;
      if (due > now - base) now = wait_for_slot(due, epoch, seq, run, deadline_rel);
      if (now == kLostSlot) continue;  // the slot could not be re-timed: reserve a new one
      if (now < 0) return -1;
      if (f_.hardcap == static_cast<std::uint32_t>(Hardcap::kOne)) {
        // Unit by unit through the gate; then all n are granted (and counted) in one step at the
        // last unit's time, so that a stop() or a missed deadline on the way grants none of them.
        for (std::int64_t i = 0; i < n; ++i) {
          now = pass_gate(now, seq, run, deadline_rel);
          if (now < 0) return -1;
        }
      }
    }
    return grant_at(s_, f_, n, now, run, now - t0) ? now : -1;
  }
}

// Throttle::pass_gate(): hardcap one's last step for one unit after the slot is reached. Grants
// woken late can close the gate past the next slot: sleep while the gate is more than the spin
// lead away, spin the rest. Returns the grant time, or -1 if the throttle
// stopped or the gate opens after the deadline (the slot is then lost: the rate under-shoots).
std::int64_t Throttle::pass_gate(std::int64_t now, std::uint32_t seq, std::uint32_t run,
                                 std::int64_t deadline_rel) noexcept {
  const std::int64_t base = f_.base_ns;
  for (;;) {
    const std::int64_t rel = now - base;
    std::int64_t need;
    if (try_gate(s_, rel, &need)) return now;
    if (need > deadline_rel) return -1;
    const std::int64_t lead = load_lead(s_);
    if (detail::sat_sub(need, rel) > lead) {
      detail::futex_wait(&s_->wake_seq, seq, sat_add(need - lead, base));
    } else {
      detail::cpu_relax();
    }
    // The state on every wake, not only when wake_seq moved: a process writing into the
    // segment could have put wake_seq back where stop() then left it.
    const std::uint32_t cur = s_->wake_seq.load(std::memory_order_acquire);
    if (load_state(s_) != ThrottleState::kRunning ||
        s_->run_gen.load(std::memory_order_acquire) != run) {
      return -1;
    }
    seq = cur;
    now = mono_ns();
  }
}

// Throttle::wait_for_slot(): sleeps until the slot minus the spin lead, then spins. stop() and
// set_rate() bump wake_seq, which wakes the sleep; set_rate() re-times the slot. Returns the
// absolute time the slot was reached; -1 if the throttle stopped (or was stopped and restarted:
// a slot belongs to one run) or a re-timed slot fell after the deadline; kLostSlot if the slot
// could not be re-timed (more rate changes than the rebase records keep).
std::int64_t Throttle::wait_for_slot(std::int64_t due, std::uint32_t epoch, std::uint32_t seq,
                                     std::uint32_t run, std::int64_t deadline_rel) noexcept {
  const std::int64_t base = f_.base_ns;
  for (;;) {
    const std::int64_t now = mono_ns() - base;
    if (due > deadline_rel && now >= deadline_rel) return -1;  // re-timed past the deadline
    const std::int64_t lead = load_lead(s_);
    const std::int64_t wake_at = due > deadline_rel ? deadline_rel : due - lead;
    if (now >= due) return now + base;
    if (now >= wake_at) {
      detail::cpu_relax();
    } else {
      detail::futex_wait(&s_->wake_seq, seq, sat_add(wake_at, base));
    }
    const std::uint32_t cur = s_->wake_seq.load(std::memory_order_acquire);
    if (load_state(s_) != ThrottleState::kRunning ||
        s_->run_gen.load(std::memory_order_acquire) != run) {
      return -1;  // checked on every wake (see pass_gate)
    }
    if (cur != seq) {
      seq = cur;
      const std::uint32_t e2 = detail::word_epoch(s_->word.load(std::memory_order_acquire));
      if (e2 != epoch) {
        if (!retime(s_, &due, epoch, e2)) return kLostSlot;
        epoch = e2;
      }
    }
  }
}

std::int64_t Throttle::available() const noexcept {
  return available(Clock::now());
}

std::int64_t Throttle::available(TimePoint now_tp) const noexcept {
  if (remote_) [[unlikely]]
    return remote_->available();
  if (load_state(s_) != ThrottleState::kRunning) return 0;
  if (!(f_.flags & detail::kFlagThrottle)) return INT64_MAX;
  const std::uint64_t w = s_->word.load(std::memory_order_acquire);
  const auto& c = s_->cfg[detail::word_epoch(w) & (detail::kRingSlots - 1)];
  const detail::GcraParams p{c.interval_ns.load(std::memory_order_relaxed),
                             c.tau_ns.load(std::memory_order_relaxed)};
  if (p.interval_ns <= 0) return 0;
  return detail::gcra_available(detail::word_tat(w), to_ns(now_tp) - f_.base_ns, p);
}

void Throttle::set_rate(std::int64_t max_n, std::chrono::duration<double> per) {
  set_rate(max_n, per, Clock::now());
}

void Throttle::set_rate(std::int64_t max_n, std::chrono::duration<double> per, TimePoint now_tp) {
  if (remote_) [[unlikely]] {
    validate_rate(max_n, per.count(), remote_->config().correction);
    remote_->set_rate(max_n, per.count());
    return;
  }
  const auto hardcap = static_cast<Hardcap>(f_.hardcap);
  // An auto-calibrated throttle takes the correction (and spin lead) for its new rate from the
  // calibration file; an explicit correction stays.
  std::optional<detail::Tuning> retuned;
  if ((f_.flags & detail::kFlagAutoCalibrate) && correction_source(s_) != "explicit") {
    ThrottleOptions o;
    o.hardcap = hardcap;
    o.auto_calibrate = true;
    if (f_.flags & detail::kFlagSpinLeadGiven) o.spin_lead = spin_lead();
    validate_rate(max_n, per.count(), 0.0);
    retuned = detail::resolve_tuning(max_n, per.count(), o);
  }
  AdminLock lock(&s_->admin_owner, *segment_);
  lock.require();
  if (retuned) {
    s_->correction.store(retuned->correction, std::memory_order_relaxed);
    s_->spin_lead_ns.store(retuned->spin_lead_ns, std::memory_order_relaxed);
    const std::uint32_t next = (s_->source_index.load(std::memory_order_relaxed) + 1) & 1;
    char* buf = s_->correction_source[next];
    std::memset(buf, 0, sizeof s_->correction_source[next]);
    std::strncpy(buf, retuned->source.c_str(), sizeof s_->correction_source[next] - 1);
    s_->source_index.store(next, std::memory_order_release);
  }
  const double c = s_->correction.load(std::memory_order_relaxed);
  validate_rate(max_n, per.count(), c);
  const std::int64_t ni = compute_interval_ns(max_n, per.count(), c);
  const std::int64_t at = to_ns(now_tp) - f_.base_ns;

  std::uint64_t w = s_->word.load(std::memory_order_acquire);
  const std::uint32_t e = detail::word_epoch(w);
  const std::uint32_t e1 = (e + 1) & detail::kEpochMask;
  std::int64_t oi =
      s_->cfg[e & (detail::kRingSlots - 1)].interval_ns.load(std::memory_order_relaxed);
  if (oi <= 0) oi = ni;  // a corrupt interval: no rescale (gcra_rescale divides by it)

  auto& cfg = s_->cfg[e1 & (detail::kRingSlots - 1)];
  cfg.interval_ns.store(ni, std::memory_order_relaxed);
  cfg.tau_ns.store(compute_tau_ns(hardcap, max_n, ni), std::memory_order_relaxed);
  const std::int64_t new_gate = compute_gate_ns(hardcap, max_n, per.count());
  cfg.gate_ns.store(new_gate, std::memory_order_relaxed);
  cfg.gate_m.store(compute_gate_m(max_n), std::memory_order_relaxed);
  auto& rec = s_->rebase[e1 & (detail::kRingSlots - 1)];
  rec.epoch.store(detail::kNoEpoch, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // seqlock: invalidate before the fields
  rec.at_rel_ns.store(at, std::memory_order_relaxed);
  rec.old_interval_ns.store(oi, std::memory_order_relaxed);
  rec.new_interval_ns.store(ni, std::memory_order_relaxed);
  rec.epoch.store(e1, std::memory_order_release);

  // Only admin operations change the epoch, and they hold the lock: acquirers only move tat.
  while (!s_->word.compare_exchange_weak(
      w, detail::pack_word(e1, detail::gcra_rescale(detail::word_tat(w), at, oi, ni)),
      std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  // The gate (hardcap one) needs nothing: it compares past grant times with the new spacing.
  s_->max_n.store(max_n, std::memory_order_relaxed);
  s_->per_s.store(per.count(), std::memory_order_relaxed);
  s_->wake_seq.fetch_add(1, std::memory_order_acq_rel);
  detail::futex_wake(&s_->wake_seq, INT32_MAX);
}

void Throttle::emit() noexcept {
  if (remote_) [[unlikely]]
    return remote_->emit(mono_ns());
  emit_at(s_, f_, 1, mono_ns(), detail::kAnyRun);
}

void Throttle::emit(TimePoint timestamp) noexcept {
  if (remote_) [[unlikely]]
    return remote_->emit(to_ns(timestamp));
  // A timestamp before the segment existed or over a second ahead is counted, but it cannot move
  // the bucket ring or the interval tracking (which would hide later emissions).
  const std::int64_t ts = to_ns(timestamp);
  const bool in_range = ts >= f_.base_ns && ts <= mono_ns() + 1'000'000'000;
  emit_at(s_, f_, 1, ts, detail::kAnyRun, in_range);
}

Event Throttle::kill_flag() const {
  return Event(segment_, &s_->kill_flag);
}

std::uint64_t Throttle::total() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->total();
  return detail::total_count(s_->total.load(std::memory_order_acquire));
}

Rate Throttle::latest() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->latest();
  const std::int64_t now = mono_ns() - f_.base_ns;
  const std::int64_t b = now / f_.rf_ns;
  std::int64_t count = 0;
  for (std::uint32_t k = 1; k <= f_.window_buckets; ++k) {
    const std::int64_t bk = b - k;
    if (bk < 0) break;
    const std::uint64_t w =
        s_->buckets[static_cast<std::uint64_t>(bk) % f_.ring_len].load(std::memory_order_relaxed);
    if (bucket_tag(w) == (static_cast<std::uint64_t>(bk) & detail::kBucketTagMask))
      count += bucket_count(w);
  }
  if (count == 0) return {0, 0};
  const double window_s =
      static_cast<double>(f_.window_buckets) * static_cast<double>(f_.rf_ns) / 1e9;
  const double rate = static_cast<double>(count) / window_s;
  return {1.0 / rate, rate};
}

Rate Throttle::mean() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->mean();
  const std::int64_t runtime = runtime_ns(s_, f_.base_ns);
  const auto n = total();
  if (n == 0 || runtime <= 0) return {0, 0};
  const double rt = static_cast<double>(runtime) / 1e9;
  return {rt / static_cast<double>(n), static_cast<double>(n) / rt};
}

Rate Throttle::lo_hi() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->lo_hi();
  const std::int64_t v = s_->min_interval_ns.load(std::memory_order_relaxed);
  return v == INT64_MAX ? Rate{} : rate_from_interval_ns(v);
}

Rate Throttle::hi_lo() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->hi_lo();
  return rate_from_interval_ns(s_->max_interval_ns.load(std::memory_order_relaxed));
}

std::uint64_t Throttle::id() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->id();
  return f_.id;
}

const std::string& Throttle::name() const noexcept {
  if (remote_) [[unlikely]]
    return remote_->name();
  return segment_->name();
}

std::chrono::nanoseconds Throttle::interval() const noexcept {
  if (remote_) [[unlikely]]
    return std::chrono::nanoseconds(remote_->interval_ns());
  const std::uint64_t w = s_->word.load(std::memory_order_acquire);
  return std::chrono::nanoseconds(
      s_->cfg[detail::word_epoch(w) & (detail::kRingSlots - 1)].interval_ns.load(
          std::memory_order_relaxed));
}

std::chrono::nanoseconds Throttle::spin_lead() const noexcept {
  return std::chrono::nanoseconds(load_lead(s_));
}

Snapshot Throttle::snapshot() const {
  if (remote_) [[unlikely]]
    return remote_->snapshot();
  Snapshot out;
  out.id = id();
  out.name = name();
  out.max_n = s_->max_n.load(std::memory_order_relaxed);
  out.per_s = s_->per_s.load(std::memory_order_relaxed);
  out.hardcap = static_cast<Hardcap>(f_.hardcap);
  out.as_monitor = f_.flags & detail::kFlagMonitor;
  out.as_throttle = f_.flags & detail::kFlagThrottle;
  out.auto_emit = f_.flags & detail::kFlagAutoEmit;
  out.auto_calibrate = f_.flags & detail::kFlagAutoCalibrate;
  out.rf_rate_s = static_cast<double>(f_.rf_ns) / 1e9;
  out.interval_ns = interval().count();
  out.correction = s_->correction.load(std::memory_order_relaxed);
  out.correction_source = correction_source(s_);
  out.spin_lead_ns = spin_lead().count();
  out.state = state();
  out.available = available();
  out.total = total();
  out.runtime_s = static_cast<double>(runtime_ns(s_, f_.base_ns)) / 1e9;
  out.latest = latest();
  out.mean = mean();
  out.lo_hi = lo_hi();
  out.hi_lo = hi_lo();
  out.creator_pid = segment_->header().creator_pid;
  out.created_realtime_ns = segment_->header().created_realtime_ns;
  return out;
}

}  // namespace mpt
