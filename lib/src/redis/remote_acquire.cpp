// RemoteThrottle::Impl's hot path: has_fuel, acquire (await_fuel), reserve and emit, each one
// call of the script; what they do while the server cannot be reached (OnUnavailable); and the
// local sleep until a slot, on this process's kill flag (see remote_impl.hpp).
#include <hiredis/hiredis.h>

#include <algorithm>

#include "clock.hpp"
#include "futex.hpp"
#include "remote_impl.hpp"

namespace mpt {

using detail::fmt17;
using detail::kForever;
using detail::mono_ns;
using detail::reply_int;
using detail::reply_str;
using detail::to_ns;

namespace {

constexpr std::int64_t kStartPollNs = 20'000'000;  // await_fuel() before start(): 20 ms polls

}  // namespace

std::int64_t RemoteThrottle::Impl::now_local() const noexcept {
  return mono_ns() + clock_offset_ns_;
}

bool RemoteThrottle::Impl::kill_set() const noexcept {
  return kill_ && kill_->is_set();
}

// The server says stopped: stop the local fallback too (its kill flag ends this process's waiters).
// Never throws: it runs in noexcept paths (stop() itself does not throw but for a throwing hook).
void RemoteThrottle::Impl::stop_fallback() noexcept {
  try {
    fallback_->stop();
  } catch (...) {
    kill_->set();  // at least end the waiters
  }
}

// Sleeps (waiting on the local kill flag, so that stop() in this process or a forked sibling
// wakes it) until `due_local` minus the spin lead, then spins. kKilled if the kill flag was set,
// kInterrupted if the interrupt (if any) fired on a wake.
RemoteThrottle::Impl::Woke RemoteThrottle::Impl::sleep_until_local(std::int64_t due_local,
                                                                   const Interrupt* intr) noexcept {
  const std::int64_t lead = fallback_->spin_lead().count();  // clamped: the word may hold anything
  for (;;) {
    if (kill_->is_set()) return Woke::kKilled;
    const std::int64_t now = now_local();
    if (now >= due_local) return Woke::kReached;
    if (due_local - now > lead) {
      std::int64_t until = due_local - lead - clock_offset_ns_;
      if (intr) until = std::min(until, mono_ns() + intr->period.count());
      kill_->wait_until(detail::from_ns(until));
      if (intr && intr->check(intr->context)) return Woke::kInterrupted;
    } else {
      detail::cpu_relax();
    }
  }
}

// Waits (within the deadline) until the next reconnection attempt is due. False if the deadline
// or the kill flag comes first.
bool RemoteThrottle::Impl::wait_for_retry(std::int64_t deadline_local,
                                          const Interrupt* intr) noexcept {
  std::int64_t at;
  {
    Locked lock(*this);
    at = next_attempt_ns_ + clock_offset_ns_;
  }
  if (at <= now_local()) return true;
  if (at > deadline_local) {
    if (deadline_local > now_local()) (void)sleep_until_local(deadline_local, intr);
    return false;
  }
  return sleep_until_local(at, intr) == Woke::kReached;
}

RemoteThrottle::Impl::Acq RemoteThrottle::Impl::call_acquire(std::int64_t n,
                                                             std::int64_t max_wait_ns,
                                                             bool emit) noexcept {
  Acq a;
  try {
    Locked lock(*this);
    const std::int64_t extra = pending_emits_.exchange(0, std::memory_order_relaxed);
    const std::string max_wait_us = max_wait_ns < 0 ? "-1" : fmt17(max_wait_ns / 1000.0);
    for (int attempt = 0; attempt < 2; ++attempt) {
      a.t_send = now_local();
      Outcome o = script_locked(
          {"acq", std::to_string(n), max_wait_us, emit ? "1" : "0", std::to_string(extra)});
      a.t_recv = now_local();
      if (!o) {
        pending_emits_.fetch_add(extra, std::memory_order_relaxed);
        fail_locked(o);
        a.fail = o.fail;
        return a;
      }
      const redisReply* r = o.reply.get();
      if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        fail_locked(url_.display() + ": unexpected reply from the script");
        a.fail = Fail::kError;
        return a;
      }
      a.status = static_cast<int>(reply_int(r->element[0]));
      a.due_in_ns = reply_int(r->element[1]);
      const std::int64_t iv = reply_int(r->element[2]);
      if (iv > 0) interval_ns_.store(iv, std::memory_order_relaxed);
      if (a.status == 1 && r->elements >= 4) a.member = reply_str(r->element[3]);
      if (a.status == -3) {  // gone: put it back and ask again
        if (!recreate_locked()) {
          pending_emits_.fetch_add(extra, std::memory_order_relaxed);
          a.fail = Fail::kError;
          return a;
        }
        continue;
      }
      ok_locked();
      return a;
    }
    a.fail = Fail::kError;
  } catch (...) {  // std::bad_alloc, std::system_error from the mutex
    a.fail = Fail::kError;
  }
  return a;
}

std::int64_t RemoteThrottle::Impl::unavailable_grant(std::int64_t deadline_ns, std::int64_t n,
                                                     bool counts, const Interrupt* intr) noexcept {
  if (kill_set()) return -1;
  switch (options_.on_unavailable) {
    case OnUnavailable::kFailOpen:
      if (counts) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return mono_ns();
    case OnUnavailable::kLocalFallback: {
      if (!fallback_) return -1;
      // start() and stop() on the local fallback can throw (its admin lock held past its bound):
      // in this noexcept path that is no grant, never std::terminate.
      try {
        if (fallback_->state() == ThrottleState::kCreated) fallback_->start();
      } catch (...) {
        return -1;
      }
      const auto deadline =
          deadline_ns == kForever ? Throttle::TimePoint::max() : detail::from_ns(deadline_ns);
      const auto g =
          intr ? fallback_->await_grant(deadline, n, *intr) : fallback_->await_grant(deadline, n);
      if (!g) return -1;
      if (counts) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return to_ns(*g);
    }
    case OnUnavailable::kFail:
    case OnUnavailable::kFailClosed:
      break;
  }
  return -1;
}

bool RemoteThrottle::Impl::has_fuel(std::int64_t n) noexcept {
  if (n < 1 || kill_set()) return false;
  const Acq a = call_acquire(n, 0, cfg_.auto_emit);
  if (a.fail == Fail::kUnavailable) {
    if (options_.on_unavailable == OnUnavailable::kLocalFallback) {
      if (!fallback_ || !fallback_->has_fuel(n)) return false;
      if (cfg_.auto_emit) pending_emits_.fetch_add(n, std::memory_order_relaxed);
      return true;
    }
    if (options_.on_unavailable != OnUnavailable::kFailOpen) return false;
    if (cfg_.auto_emit) pending_emits_.fetch_add(n, std::memory_order_relaxed);
    return true;
  }
  if (a.fail != Fail::kNone) return false;
  if (a.status == -2 && fallback_) stop_fallback();
  return a.status == 1 && a.due_in_ns == 0;
}

std::int64_t RemoteThrottle::Impl::acquire(std::int64_t deadline_ns, std::int64_t n,
                                           const Interrupt* intr) noexcept {
  if (n < 1) return -1;
  const std::int64_t deadline_local =
      deadline_ns == kForever ? kForever : deadline_ns + clock_offset_ns_;
  bool tried_after_wait = false;
  for (;;) {
    if (kill_set()) return -1;
    const std::int64_t now = now_local();
    const std::int64_t max_wait = deadline_local == kForever ? -1 : deadline_local - now;
    if (max_wait < 0 && deadline_local != kForever) return -1;
    const Acq a = call_acquire(n, max_wait, cfg_.auto_emit);
    if (a.fail == Fail::kUnavailable) {
      if (options_.on_unavailable == OnUnavailable::kFailOpen ||
          options_.on_unavailable == OnUnavailable::kLocalFallback)
        return unavailable_grant(deadline_ns, n, cfg_.auto_emit, intr);
      // kFail: at most one more attempt, when the backoff allows it within the deadline;
      // kFailClosed: keep waiting for the server until the deadline.
      if (options_.on_unavailable == OnUnavailable::kFail && tried_after_wait) return -1;
      if (!wait_for_retry(deadline_local, intr)) return -1;
      tried_after_wait = true;
      continue;
    }
    if (a.fail != Fail::kNone) return -1;
    switch (a.status) {
      case 1: {
        // The script ran between send and receive, so the slot is at most due_in after the
        // reply came: wake there. A process whose kill flag is still clear then holds a slot
        // that came before any stop() on this host (stop() sets the flag before it tells the
        // server), which the server has counted or will count.
        const std::int64_t due = a.t_recv + a.due_in_ns;
        const bool counted_now = a.member.empty() && a.due_in_ns == 0;
        if (counted_now) return due - clock_offset_ns_;
        const Woke w = sleep_until_local(due, intr);
        if (w == Woke::kReached) return due - clock_offset_ns_;
        // Stopped (or interrupted) while it waited. Counted by the server only if the slot came
        // first, and then granted (the caller gets every unit the server counts); otherwise
        // confirm() withdraws the reservation.
        if (a.member.empty() || !confirm(a.member)) return -1;
        return std::min(due, now_local()) - clock_offset_ns_;
      }
      case -1: {  // created: wait for start()
        const std::int64_t next = std::min(now_local() + kStartPollNs, deadline_local);
        if (deadline_local != kForever && now_local() >= deadline_local) return -1;
        if (sleep_until_local(next, intr) != Woke::kReached) return -1;
        continue;
      }
      case -2:
        if (fallback_) stop_fallback();
        return -1;
      default:
        return -1;  // denied: the slot would come after the deadline
    }
  }
}

// Asks the server whether the reservation `member` was granted (its slot came before the stop:
// counted) or not (given up now, never counted). False too when the server cannot say.
bool RemoteThrottle::Impl::confirm(const std::string& member) noexcept {
  try {
    Locked lock(*this);
    Outcome o = script_locked({"chk", member});
    if (!o) {
      fail_locked(o);
      return false;
    }
    ok_locked();
    const redisReply* r = o.reply.get();
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && reply_int(r->element[0]) == 1;
  } catch (...) {
    return false;
  }
}

std::optional<std::int64_t> RemoteThrottle::Impl::reserve(std::int64_t n, std::int64_t now_ns,
                                                          std::int64_t deadline_ns) noexcept {
  if (n < 1 || kill_set()) return std::nullopt;
  const std::int64_t max_wait = deadline_ns == kForever ? -1 : deadline_ns - now_ns;
  if (max_wait < 0 && deadline_ns != kForever) return std::nullopt;
  const Acq a = call_acquire(n, max_wait, false);
  if (a.fail != Fail::kNone || a.status != 1) return std::nullopt;
  return a.t_send + (a.t_recv - a.t_send) / 2 + a.due_in_ns - clock_offset_ns_;
}

void RemoteThrottle::Impl::emit(std::int64_t timestamp_ns) noexcept {
  if (!cfg_.as_monitor) return;
  try {
    Locked lock(*this);
    const std::int64_t offset_ns = timestamp_ns - mono_ns();
    Outcome o = script_locked({"emit", fmt17(static_cast<double>(offset_ns) / 1000.0), "1"});
    if (!o) {
      pending_emits_.fetch_add(1, std::memory_order_relaxed);
      fail_locked(o);
      return;
    }
    ok_locked();
  } catch (...) {
    pending_emits_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace mpt
