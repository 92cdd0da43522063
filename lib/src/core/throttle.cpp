// Throttle's hot path: has_fuel(), await_fuel() and its waits, reserve(), available(), emit().
#include "mpt/throttle.hpp"

#include <algorithm>
#include <climits>

#include "clock.hpp"
#include "futex.hpp"
#include "gcra.hpp"
#include "throttle_ops.hpp"
#include "throttle_shared.hpp"

namespace mpt {

using detail::emit_at;
using detail::grant_at;
using detail::kForever;
using detail::load_lead;
using detail::load_state;
using detail::mono_ns;
using detail::reserve_rel;
using detail::retime;
using detail::sat_add;
using detail::to_ns;
using detail::try_gate;

namespace {

// The end of one sleep that should last until `until` (absolute ns): with an interrupt, no later
// than one period from now, so that its check runs at least that often.
std::int64_t sleep_end(std::int64_t until, const Interrupt* intr) noexcept {
  if (!intr) return until;
  return std::min(until, sat_add(mono_ns(), intr->period.count()));
}

bool interrupted(const Interrupt* intr) noexcept {
  return intr && intr->check(intr->context);
}

}  // namespace

bool Throttle::has_fuel(std::int64_t n) noexcept {
  return has_fuel(n, Clock::now());
}

bool Throttle::has_fuel(std::int64_t n, TimePoint now_tp) noexcept {
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

// has_fuel() for hardcap one: takes nothing unless the gate allows a unit now. One unit only:
// hardcap one's bucket never holds more, so n > 1 units are never there at once.
bool Throttle::has_fuel_one(std::int64_t n, std::int64_t now) noexcept {
  if (n != 1) return false;
  const std::int64_t rel = detail::sat_sub(now, f_.base_ns);
  std::int64_t need;
  if (!try_gate(s_, f_, rel, &need, 1, false)) return false;
  std::int64_t due;
  std::uint32_t e;
  if (!reserve_rel(s_, 1, rel, rel, &due, &e)) return false;
  if (!try_gate(s_, f_, rel, &need)) return false;  // another grant came first: the slot is lost
  return grant_at(s_, f_, 1, now, detail::kAnyRun, 0);
}

std::optional<Throttle::TimePoint> Throttle::reserve(std::int64_t n, TimePoint now_tp,
                                                     TimePoint deadline_tp) noexcept {
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
  // A zero (or negative) timeout is has_fuel(): a deadline of "now" would already have passed
  // when the slot is reserved, and the call would refuse fuel that is there.
  if (timeout->count() <= 0) return has_fuel(n);
  return await_fuel_until(detail::from_ns(detail::deadline_after_ns(timeout->count())), n);
}

bool Throttle::await_fuel_until(TimePoint deadline_tp, std::int64_t n) noexcept {
  return acquire(deadline_tp, n, nullptr) >= 0;
}

std::optional<Throttle::TimePoint> Throttle::await_grant(TimePoint deadline,
                                                         std::int64_t n) noexcept {
  const std::int64_t at = acquire(deadline, n, nullptr);
  if (at < 0) return std::nullopt;
  return detail::from_ns(at);
}

std::optional<Throttle::TimePoint> Throttle::await_grant(TimePoint deadline, std::int64_t n,
                                                         const Interrupt& interrupt) noexcept {
  Interrupt intr = interrupt;
  intr.period = detail::interrupt_period(intr.period);
  const std::int64_t at = acquire(deadline, n, intr.check ? &intr : nullptr);
  if (at < 0) return std::nullopt;
  return detail::from_ns(at);
}

// Throttle::acquire(): await_fuel_until that returns the grant's CLOCK_MONOTONIC time, or -1.
std::int64_t Throttle::acquire(TimePoint deadline_tp, std::int64_t n,
                               const Interrupt* intr) noexcept {
  if (n < 1) return -1;
  const std::int64_t deadline = deadline_tp == TimePoint::max() ? kForever : to_ns(deadline_tp);
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
      detail::futex_wait(&s_->wake_seq, seq, sleep_end(deadline, intr));
      if (interrupted(intr)) return -1;
      continue;
    }
    const std::int64_t t0 = mono_ns();
    std::int64_t now = t0;
    if (f_.flags & detail::kFlagThrottle) {
      const bool one = f_.hardcap == static_cast<std::uint32_t>(Hardcap::kOne);
      // More than the gate's step can never pass at one instant: take nothing (a step is >= 1).
      if (one && n > 1 && n > detail::gate_step(s_, f_)) return -1;
      std::int64_t due;
      std::uint32_t epoch;
      if (!reserve_rel(s_, n, now - base, deadline_rel, &due, &epoch)) return -1;
      if (due > now - base) now = wait_for_slot(due, epoch, seq, run, deadline_rel, intr);
      if (now == kLostSlot) continue;  // the slot could not be re-timed: reserve a new one
      if (now < 0) return -1;
      if (one) {
        // All n through the gate at one instant, then granted (and counted) in one step at that
        // time, so that the ring holds each unit at the time it is granted.
        now = pass_gate(now, n, seq, run, deadline_rel, intr);
        if (now < 0) return -1;
      }
    }
    return grant_at(s_, f_, n, now, run, now - t0) ? now : -1;
  }
}

// Throttle::pass_gate(): hardcap one's last step for n units after their slot is reached. Grants
// woken late can close the gate past the next slot: sleep while the gate is more than the spin
// lead away, spin the rest. Returns the grant time, or -1 if the throttle stopped, the gate opens
// after the deadline or the interrupt (if any) fired (the slot is then lost: the rate
// under-shoots).
std::int64_t Throttle::pass_gate(std::int64_t now, std::int64_t n, std::uint32_t seq,
                                 std::uint32_t run, std::int64_t deadline_rel,
                                 const Interrupt* intr) noexcept {
  const std::int64_t base = f_.base_ns;
  for (;;) {
    const std::int64_t rel = now - base;
    std::int64_t need;
    if (try_gate(s_, f_, rel, &need, n)) return now;
    if (need > deadline_rel || need == kForever) return -1;
    const std::int64_t lead = load_lead(s_);
    if (detail::sat_sub(need, rel) > lead) {
      detail::futex_wait(&s_->wake_seq, seq, sleep_end(sat_add(need - lead, base), intr));
      if (interrupted(intr)) return -1;
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
// a slot belongs to one run), a re-timed slot fell after the deadline or the interrupt (if any)
// fired on a wake; kLostSlot if the slot
// could not be re-timed (more rate changes than the rebase records keep).
std::int64_t Throttle::wait_for_slot(std::int64_t due, std::uint32_t epoch, std::uint32_t seq,
                                     std::uint32_t run, std::int64_t deadline_rel,
                                     const Interrupt* intr) noexcept {
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
      detail::futex_wait(&s_->wake_seq, seq, sleep_end(sat_add(wake_at, base), intr));
      if (interrupted(intr)) return -1;
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
  if (load_state(s_) != ThrottleState::kRunning) return 0;
  if (!(f_.flags & detail::kFlagThrottle)) return INT64_MAX;
  const std::uint64_t w = s_->word.load(std::memory_order_acquire);
  const auto& c = s_->cfg[detail::word_epoch(w) & (detail::kRingSlots - 1)];
  const detail::GcraParams p{c.interval_ns.load(std::memory_order_relaxed),
                             c.tau_ns.load(std::memory_order_relaxed)};
  if (p.interval_ns <= 0) return 0;
  return detail::gcra_available(detail::word_tat(w), to_ns(now_tp) - f_.base_ns, p);
}

void Throttle::emit() noexcept {
  emit_at(s_, f_, 1, mono_ns(), detail::kAnyRun);
}

void Throttle::emit(TimePoint timestamp) noexcept {
  // A timestamp before the segment existed or over a second ahead is counted, but it cannot move
  // the bucket ring or the interval tracking (which would hide later emissions).
  const std::int64_t ts = to_ns(timestamp);
  const bool in_range = ts >= f_.base_ns && ts <= mono_ns() + 1'000'000'000;
  emit_at(s_, f_, 1, ts, detail::kAnyRun, in_range);
}

}  // namespace mpt
