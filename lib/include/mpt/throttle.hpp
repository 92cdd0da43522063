// mpt/throttle.hpp — a rate limit shared by many processes (the seed's mp_throttle.Throttle).
//
// A Throttle hands out "fuel" at max_n units per `per` seconds to any number of processes and
// counts the "emissions" they make (see monitor.hpp). Most users want three calls:
//
//   mpt::Throttle throttle(4, 1s);          // 4 per second, shared with children forked later
//   throttle.start();
//   while (!throttle.kill_flag().is_set()) { throttle.await_fuel(); /* work */ }   // in workers
//   auto [runtime, total, mean_interval_s, mean_rate] = throttle.stop();
//
// State: one atomic 64-bit word holds the GCRA "theoretical arrival time" (CLOCK_MONOTONIC ns) and
// an 8-bit rate epoch, updated by compare-and-swap. There is no lock on the hot path and no filler
// process, so a process killed at any instruction cannot wedge the throttle. Each call to
// await_fuel() reserves its slot with one CAS (so waiters are served in the order they asked), then
// sleeps on a futex until `slot - spin_lead` and spins the rest. stop() and set_rate() wake every
// sleeper at once; after set_rate() sleepers re-time their slot on the new schedule.
//
// Fuel: start() makes one unit available at once (under kOne once its gate allows it: the gate
// remembers the last window's grants across runs); unused time then builds the burst allowance up
// to the hardcap (max_n for kLimit, 1 for kOne, unbounded for kNone). So 4 workers at 4/s for 5 s
// take 20 units (21 at most), never the 24 a full bucket would give.
//
// Lifetime: Throttle(max_n, per) makes an anonymous throttle, shared with children forked after it.
// create(name, ...) makes /dev/shm/mpt.<name>, which unrelated processes attach with open(name);
// the creating process unlinks it when its last handle goes away (unless options.segment.persist).
// Handles are cheap to copy; copies share the mapping.
//
// Time: CLOCK_MONOTONIC (std::chrono::steady_clock) everywhere. Each non-blocking call has a twin
// that takes "now", so the arithmetic can be tested without sleeping.
//
// Many hosts: mpt::RemoteThrottle (mpt/redis.hpp) keeps the bucket in Redis, with the same calls.
//
// Safe for concurrent use by threads and processes; every value read may be stale on return.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mpt/event.hpp"
#include "mpt/monitor.hpp"
#include "mpt/segment.hpp"
#include "mpt/throttle_like.hpp"

namespace mpt {

struct ThrottleOptions {
  bool as_monitor = true;   // count emissions (latest/mean/lo_hi/hi_lo); false: throttle only
  bool as_throttle = true;  // limit the rate; false: monitor only (await_fuel never waits)
  bool auto_emit = true;    // has_fuel()/await_fuel() count an emission per unit taken
  // Load the correction for this rate from the host's calibration file. Default: on when the rate
  // is at least 49 per second (the seed's rule). Ignored when `correction` is given.
  std::optional<bool> auto_calibrate;
  Hardcap hardcap = Hardcap::kLimit;
  // Width of the monitor's buckets; latest() covers one second of them. 0.001 s to 1 s.
  std::chrono::duration<double> rf_rate{0.01};
  // The seed's _correction: the slot interval is per/max_n * (1 - correction). -1 < c < 1.
  std::optional<double> correction;
  // How long before its slot a waiter stops sleeping and spins (0 to 10 ms). Default
  // kDefaultSpinLead, or the calibrated value when auto_calibrate applies.
  std::optional<std::chrono::nanoseconds> spin_lead;
  CreateOptions segment;  // named throttles only
};

inline constexpr std::chrono::nanoseconds kDefaultSpinLead{0};

class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // Throttle::Throttle()
  // An anonymous throttle of max_n units per `per`, shared with children forked after it. Throws
  // InvalidArgument for max_n < 1, per <= 0 or not finite, or a bad option (the message names it).
  Throttle(std::int64_t max_n, std::chrono::duration<double> per = std::chrono::seconds(1),
           const ThrottleOptions& options = {});

  // Throttle::create(): a named throttle (see Segment::create for the errors).
  static Throttle create(std::string_view name, std::int64_t max_n,
                         std::chrono::duration<double> per = std::chrono::seconds(1),
                         const ThrottleOptions& options = {});
  // Throttle::open(): attaches to a named throttle made by any process of this user.
  static Throttle open(std::string_view name, const OpenOptions& options = {});
  // Throttle::remove(): unlinks a named throttle; processes attached to it keep working.
  static void remove(std::string_view name);

  // Throttle::start()
  // Starts (or restarts) the throttle: clears kill_flag, makes one unit available now, wakes
  // processes that were waiting for the start. Starting a running throttle does nothing. Throws
  // SystemError if the admin mutex (shared with stop() and set_rate()) cannot be taken within 1 s:
  // held by a stuck process, or corrupted by one.
  void start();
  void start(TimePoint now);

  // Throttle::stop()
  // Sets kill_flag, wakes every waiter (their await_fuel returns false) and returns the summary.
  // The total it returns is final: no unit is granted, and no emission counted (auto or emit()),
  // after stop() returns, until the next start(). A unit is granted by the same atomic step that
  // counts it, and stop() closes that step first, so a worker already past its slot gets false;
  // stop() never waits for workers, so one killed anywhere cannot make it hang. Totals and runtime
  // survive a later start(). Stopping a stopped throttle only returns the summary. If the admin
  // mutex cannot be taken within 1 s (a stuck or scribbling process), stop() stops without it and
  // says so through the log hook: it never waits unboundedly on what another process can break.
  Summary stop();

  ThrottleState state() const noexcept;
  bool running() const noexcept { return state() == ThrottleState::kRunning; }

  // Throttle::has_fuel()
  // Never blocks. Takes n units if they are available now and returns true (counting n emissions
  // when auto_emit); otherwise takes nothing and returns false. False too when not running or n
  // < 1, and under hardcap one for n > 1 (its bucket never holds more than one unit).
  [[nodiscard]] bool has_fuel(std::int64_t n = 1) noexcept;
  [[nodiscard]] bool has_fuel(std::int64_t n, TimePoint now) noexcept;

  // Throttle::await_fuel()
  // Blocks until n units are the caller's (true) or cannot be (false): the throttle was stopped,
  // the timeout cannot be met, or n < 1. A timeout that cannot be met by the earliest free slot
  // returns false at once without taking anything; no timeout waits forever; a zero timeout is
  // has_fuel(). Called before start(), it waits for the start. Counts n emissions when auto_emit.
  // Under hardcap one the n units are granted at one instant, so n may be at most max_n (the
  // gate's step: max_n up to 65,536, see docs/design.md); a larger n returns false at once.
  bool await_fuel() noexcept;
  bool await_fuel(std::chrono::nanoseconds timeout) noexcept;
  bool await_fuel(std::int64_t n,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt) noexcept;
  // Throttle::await_fuel_until(): the same with an absolute deadline.
  bool await_fuel_until(TimePoint deadline, std::int64_t n = 1) noexcept;
  // Throttle::await_grant(): await_fuel_until() that says when: the CLOCK_MONOTONIC time at which
  // the units were granted (the timestamp of the emissions it counts), or nullopt where
  // await_fuel_until() returns false. With hardcap one, grant times are what the promise is about:
  // any max_n + 1 consecutive granted units span at least `per`.
  [[nodiscard]] std::optional<TimePoint> await_grant(TimePoint deadline = TimePoint::max(),
                                                     std::int64_t n = 1) noexcept;
  // Throttle::await_grant(deadline, n, interrupt): the same, but the wait can be given up from
  // outside: sleeps last at most interrupt.period and interrupt.check is called on each wake; when
  // it returns true the call returns nullopt (see Interrupt in throttle_like.hpp). A reserved
  // slot is then lost. The calls without an Interrupt pay nothing for it but a null check per
  // wake.
  [[nodiscard]] std::optional<TimePoint> await_grant(TimePoint deadline, std::int64_t n,
                                                     const Interrupt& interrupt) noexcept;

  // Throttle::reserve()
  // Never blocks. Reserves n units and returns the time at which they are due (at or before `now`
  // means "go now"), or nullopt, taking nothing, if that time would be after `deadline` or the
  // throttle is not running. The caller waits by its own means (an event loop, say) and then calls
  // emit() if it counts emissions. Reservations are served in the order they were made.
  [[nodiscard]] std::optional<TimePoint> reserve(std::int64_t n, TimePoint now,
                                                 TimePoint deadline) noexcept;

  // Throttle::available(): units that could be taken now without waiting (0 when not running).
  // Never blocks; a gauge for saturation metrics.
  [[nodiscard]] std::int64_t available() const noexcept;
  [[nodiscard]] std::int64_t available(TimePoint now) const noexcept;

  // Throttle::set_rate()
  // Changes the rate to max_n per `per` while processes use it. Sleeping waiters are woken and
  // re-timed: the queue of reserved slots is rescaled to the new interval from now on, keeping its
  // order. Throws InvalidArgument like the constructor, SystemError like start().
  void set_rate(std::int64_t max_n, std::chrono::duration<double> per);
  void set_rate(std::int64_t max_n, std::chrono::duration<double> per, TimePoint now);

  // Throttle::emit(): counts one emission (at `timestamp`, default now). Never blocks; does nothing
  // when as_monitor is false or the throttle is stopped (stop()'s total is final). Counts before
  // the first start(). Fires the USDT probe mpthrottle:emit.
  void emit() noexcept;
  void emit(TimePoint timestamp) noexcept;

  // The event stop() sets and start() clears (the seed's kill_flag).
  Event kill_flag() const;

  // Monitor (see monitor.hpp). Never block; may be stale on return.
  Rate latest() const noexcept;  // the last complete second
  Rate mean() const noexcept;    // total / runtime
  Rate lo_hi() const noexcept;   // shortest interval between emissions, highest rate
  Rate hi_lo() const noexcept;   // longest interval between emissions, lowest rate
  std::uint64_t total() const noexcept;
  Snapshot snapshot() const;

  std::uint64_t id() const noexcept;
  const std::string& name() const noexcept;            // empty when anonymous
  std::chrono::nanoseconds interval() const noexcept;  // current slot interval, correction applied
  std::chrono::nanoseconds spin_lead() const noexcept;

  struct Shared;  // the layout in shared memory (lib/src/core/throttle_shared.hpp)
  // Internal: what never changes after creation, copied out of the segment (and checked) when a
  // handle is made, so that a process scribbling into a live segment cannot change the divisors,
  // ring sizes and origin this process computes with.
  struct Fixed {
    std::int64_t base_ns = 0;  // CLOCK_MONOTONIC origin of every relative time in the segment
    std::int64_t rf_ns = 0;    // > 0: the monitor's bucket width
    std::uint64_t id = 0;      // the segment's id (the probes' throttle_id)
    std::uint32_t flags = 0;
    std::uint32_t hardcap = 0;         // a Hardcap
    std::uint32_t ring_len = 0;        // 2 to 1001 monitor buckets
    std::uint32_t window_buckets = 0;  // ring_len - 1
    std::uint32_t gate_bits = 0;       // hardcap one: the gate ring holds 2^gate_bits grants
    std::uint32_t gate_offset = 0;     // hardcap one: where the gate ring starts in the body
  };

 private:
  explicit Throttle(std::shared_ptr<Segment> segment);
  static constexpr std::int64_t kLostSlot = -2;
  std::int64_t acquire(TimePoint deadline, std::int64_t n, const Interrupt* intr) noexcept;
  std::int64_t pass_gate(std::int64_t now, std::int64_t n, std::uint32_t seq, std::uint32_t run,
                         std::int64_t deadline_rel, const Interrupt* intr) noexcept;
  bool has_fuel_one(std::int64_t n, std::int64_t now) noexcept;
  std::int64_t wait_for_slot(std::int64_t due_rel, std::uint32_t epoch, std::uint32_t seq,
                             std::uint32_t run, std::int64_t deadline_rel,
                             const Interrupt* intr) noexcept;
  std::shared_ptr<Segment> segment_;
  Shared* s_;
  Fixed f_;
};

static_assert(ThrottleLike<Throttle>);

}  // namespace mpt
