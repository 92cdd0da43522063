// RemoteThrottle::Impl's hot path: has_fuel, acquire (await_fuel), reserve and emit, each one
// call of the script; leases (k slots from one call, handed out here one by one, each at its
// slot; see docs/design.md); what they do while the server cannot be reached (OnUnavailable); and
// the local sleep until a slot, on this process's kill flag (see remote_impl.hpp).
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>

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
// A lease is about this much of the process's recent demand.
constexpr std::int64_t kLeaseHorizonNs = 2'000'000;
constexpr std::int64_t kLeaseMin = 4;  // a smaller lease is not worth it: one call per unit

}  // namespace

// ---- leases -------------------------------------------------------------------------------------

bool RemoteThrottle::Impl::leases_for(std::int64_t n) const noexcept {
  return n == 1 && cfg_.as_throttle && options_.max_lease > 1;
}

// How many slots the next call asks for (mu_ held): this process's demand over the horizon, from
// the units the last call brought and the time since; 1 below kLeaseMin.
std::int64_t RemoteThrottle::Impl::lease_size() noexcept {
  const std::int64_t now = mono_ns();
  if (last_renewal_ > 0 && now > last_renewal_) {
    const double sample =
        static_cast<double>(last_got_) * 1e9 / static_cast<double>(now - last_renewal_);
    demand_per_s_ = demand_per_s_ <= 0 ? sample : (demand_per_s_ + sample) / 2;
  }
  last_renewal_ = now;
  auto k = static_cast<std::int64_t>(demand_per_s_ * static_cast<double>(kLeaseHorizonNs) / 1e9);
  const std::int64_t iv = interval_ns_.load(std::memory_order_relaxed);
  if (iv > 0) k = std::min(k, std::max<std::int64_t>(1, 2 * kLeaseHorizonNs / iv));
  k = std::min(k, options_.max_lease);
  return k < kLeaseMin ? 1 : k;
}

// lease_mu_ held. A process forked after connect() starts with no lease and nothing to report:
// the parent's slots and grants stay the parent's.
void RemoteThrottle::Impl::own_leases_locked() noexcept {
  const int pid = static_cast<int>(::getpid());
  if (lease_pid_ == pid) return;
  lease_pid_ = pid;
  lease_ = Lease();
  reports_.clear();
}

// The next slot of this process's lease that a waiter with this deadline may take. A slot passed
// (since it was leased) by more than tau is skipped: lost time, never granted (the server would
// not give it now either; hardcap one: a slot passed at all is lost).
RemoteThrottle::Impl::Claim RemoteThrottle::Impl::claim_leased(
    std::int64_t deadline_local) noexcept {
  Claim c;
  try {
    std::lock_guard<std::mutex> g(lease_mu_);
    own_leases_locked();
    if (!lease_.rec) return c;
    const std::int64_t now = now_local();
    while (lease_.next < lease_.k) {
      const std::int64_t i = lease_.next;
      const std::int64_t s = lease_.s0_local + std::llround(static_cast<double>(i) * lease_.iv_ns);
      const std::int64_t due = std::max(s, lease_.recv_local);
      if (due < now - lease_.grace_ns) {
        ++lease_.next;
        continue;
      }
      if (deadline_local != kForever && due > deadline_local) {
        c.beyond = true;
        return c;
      }
      ++lease_.next;
      ++lease_.rec->inflight;
      c.rec = lease_.rec;
      c.index = i;
      c.slot = due;
      return c;
    }
    lease_ = Lease();
  } catch (...) {  // std::system_error from the mutex: no slot
  }
  return c;
}

// The slot is reached: granted (and recorded for the report) unless the kill flag is set. Under
// lease_mu_, which stop() takes after it sets the flag: a grant is in stop()'s report or is none.
bool RemoteThrottle::Impl::record_grant(const Claim& c) noexcept {
  try {
    std::lock_guard<std::mutex> g(lease_mu_);
    --c.rec->inflight;
    if (kill_set()) return false;
    if (cfg_.auto_emit && cfg_.as_monitor) {
      auto& r = c.rec->ranges;
      if (!r.empty() && r.back().second + 1 == c.index)
        r.back().second = c.index;
      else
        r.emplace_back(c.index, c.index);
    }
    return true;
  } catch (...) {
    return false;
  }
}

std::int64_t RemoteThrottle::Impl::grant_leased(const Claim& c, const Interrupt* intr) noexcept {
  const Woke w = sleep_until_local(c.slot, intr);
  if (w == Woke::kReached && record_grant(c)) return c.slot - clock_offset_ns_;
  if (w != Woke::kReached) {
    try {
      std::lock_guard<std::mutex> g(lease_mu_);
      --c.rec->inflight;
    } catch (...) {
    }
  }
  if (kill_set()) {
    drop_lease();
    flush_report();
  }
  return -1;
}

void RemoteThrottle::Impl::release() noexcept {
  drop_lease();
  flush_report();
}

// A lease from acq's reply (mu_ held): K, the first slot and the interval as the server wrote
// them, tau, the run. Slot 0 is placed at the reply's arrival plus its "due in" (the latest it
// can be, as for a single slot).
void RemoteThrottle::Impl::install_lease(const redisReply* r, std::int64_t t_recv) {
  auto rec = std::make_shared<LeaseRec>();
  rec->s0 = reply_str(r->element[5]);
  rec->iv = reply_str(r->element[6]);
  rec->gen = reply_str(r->element[8]);
  const double tau_ns = detail::to_d(reply_str(r->element[7]), 0) * 1000;
  std::lock_guard<std::mutex> g(lease_mu_);
  own_leases_locked();
  lease_.rec = rec;
  lease_.s0_local = t_recv + reply_int(r->element[1]);
  lease_.recv_local = t_recv;
  lease_.iv_ns = detail::to_d(rec->iv, 0) * 1000;
  lease_.grace_ns = tau_ns < 0 ? kForever / 2 : static_cast<std::int64_t>(tau_ns);
  lease_.k = std::max<std::int64_t>(1, reply_int(r->element[4]));
  lease_.next = 0;
  reports_.push_back(rec);
  last_got_ = lease_.k;
}

void RemoteThrottle::Impl::drop_lease() noexcept {
  try {
    std::lock_guard<std::mutex> g(lease_mu_);
    lease_ = Lease();
  } catch (...) {
  }
}

// The report for the next call (mu_ held): the chunks sent before and not acknowledged, then a
// new chunk "TOKEN SEQ EXTRA;GEN S0 IV A B ...;..." with the units counted while the server was
// away and the leased grants not reported yet (none while 8 chunks wait: they stay here). A chunk
// is resent until a reply comes (ack_report()); the script counts each (token, seq) once, so a
// call whose reply was lost after the script ran counts nothing twice. Leases with nothing left
// to report are forgotten.
std::string RemoteThrottle::Impl::take_report() {
  const int pid = static_cast<int>(::getpid());
  if (report_pid_ != pid) {  // a forked child: its own token; the parent's chunks are the parent's
    report_pid_ = pid;
    std::random_device rd;
    token_ = std::to_string(pid) + '.' + std::to_string(rd()) + std::to_string(rd());
    report_seq_ = 0;
    unacked_.clear();
    unacked_chunks_ = 0;
  }
  if (unacked_chunks_ >= 8) return unacked_;
  std::string body;
  {
    std::lock_guard<std::mutex> g(lease_mu_);
    own_leases_locked();
    for (const auto& rec : reports_) {
      if (rec->ranges.empty()) continue;
      body += ';' + rec->gen + ' ' + rec->s0 + ' ' + rec->iv;
      for (const auto& [a, b] : rec->ranges)
        body += ' ' + std::to_string(a) + ' ' + std::to_string(b);
      rec->ranges.clear();
    }
    std::erase_if(reports_, [this](const std::shared_ptr<LeaseRec>& r) {
      return r != lease_.rec && r->inflight == 0 && r->ranges.empty();
    });
  }
  const std::int64_t extra = pending_emits_.exchange(0, std::memory_order_relaxed);
  if (body.empty() && extra == 0) return unacked_;
  if (!unacked_.empty()) unacked_ += '/';
  unacked_ += token_ + ' ' + std::to_string(++report_seq_) + ' ' + std::to_string(extra) + body;
  ++unacked_chunks_;
  return unacked_;
}

// The script answered the call that carried take_report()'s report: counted (or, a chunk it had
// seen, skipped), never to be sent again.
void RemoteThrottle::Impl::ack_report() noexcept {
  unacked_.clear();
  unacked_chunks_ = 0;
}

// Sends the leased grants not yet reported on their own (one round trip, only when there are
// some): a process that saw the stop, or a handle going away (only_if_connected: no new
// connection for it).
void RemoteThrottle::Impl::flush_report(bool only_if_connected) noexcept {
  try {
    Locked lock(*this);
    if (only_if_connected && (!conn_ || conn_->owner_pid() != static_cast<int>(::getpid()))) return;
    const std::string rep = take_report();
    if (rep.empty()) return;
    Outcome o = script_locked({"rep", rep});
    if (!o) {
      fail_locked(o);
      return;
    }
    ack_report();
    ok_locked();
  } catch (...) {
  }
}

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

// One acq call (lease: this process may take a lease of lease_size() slots, unless another
// thread's lease is already there: status 2 at once). This process's unreported leased grants go
// with it.
RemoteThrottle::Impl::Acq RemoteThrottle::Impl::call_acquire(std::int64_t n,
                                                             std::int64_t max_wait_ns, bool emit,
                                                             bool lease) noexcept {
  Acq a;
  try {
    Locked lock(*this);
    if (lease) {
      std::lock_guard<std::mutex> g(lease_mu_);
      own_leases_locked();
      if (lease_.rec && lease_.next < lease_.k) {
        a.status = 2;
        return a;
      }
    }
    const std::int64_t k = lease ? lease_size() : 1;
    const std::string report = take_report();
    const std::string max_wait_us = max_wait_ns < 0 ? "-1" : fmt17(max_wait_ns / 1000.0);
    for (int attempt = 0; attempt < 2; ++attempt) {
      a.t_send = now_local();
      Outcome o = script_locked({"acq", std::to_string(n), max_wait_us, emit ? "1" : "0", "0",
                                 std::to_string(k), report});
      a.t_recv = now_local();
      if (!o) {  // the report waits for the next call (it may have been counted: see take_report)
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
          a.fail = Fail::kError;
          return a;
        }
        continue;  // the script returned before it read the report: it goes again
      }
      ack_report();
      ok_locked();
      if (lease) last_got_ = a.status == 1 ? n : 0;
      if (a.status == 1 && r->elements >= 9) {
        install_lease(r, a.t_recv);
        a.status = 2;
      }
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
  if (n < 1) return false;
  const bool lease = leases_for(n);
  if (kill_set()) {
    if (lease) flush_report();
    return false;
  }
  Acq a;
  for (int round = 0; round < 3; ++round) {
    if (lease) {
      // A leased slot due now is this call's; one still to come means the server has none now
      // either (a lease is the next slots of the schedule): false without a round trip.
      const Claim c = claim_leased(now_local());
      if (c.rec) return record_grant(c);
      if (c.beyond) return false;
    }
    a = call_acquire(n, 0, cfg_.auto_emit, lease);
    if (a.fail != Fail::kNone || a.status != 2) break;
  }
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
  if (a.status == -2) {
    drop_lease();
    if (fallback_) stop_fallback();
  }
  return a.status == 1 && a.due_in_ns == 0;
}

// A single slot the server reserved (status 1): the grant time, or -1.
std::int64_t RemoteThrottle::Impl::grant_reserved(const Acq& a, const Interrupt* intr) noexcept {
  // The script ran between send and receive, so the slot is at most due_in after the reply
  // came: wake there. A process whose kill flag is still clear then holds a slot that came
  // before any stop() on this host (stop() sets the flag before it tells the server), which
  // the server has counted or will count.
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

std::int64_t RemoteThrottle::Impl::acquire(std::int64_t deadline_ns, std::int64_t n,
                                           const Interrupt* intr) noexcept {
  if (n < 1) return -1;
  const std::int64_t deadline_local =
      deadline_ns == kForever ? kForever : deadline_ns + clock_offset_ns_;
  const bool lease = leases_for(n);
  bool tried_after_wait = false;
  for (;;) {
    if (kill_set()) {
      if (lease) flush_report();  // what this process granted from its leases, for the total
      return -1;
    }
    if (lease) {
      const Claim c = claim_leased(deadline_local);
      if (c.rec) return grant_leased(c, intr);
      if (c.beyond) return -1;  // the next leased slot is after the deadline: nothing taken
    }
    const std::int64_t now = now_local();
    const std::int64_t max_wait = deadline_local == kForever ? -1 : deadline_local - now;
    if (max_wait < 0 && deadline_local != kForever) return -1;
    const Acq a = call_acquire(n, max_wait, cfg_.auto_emit, lease);
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
      case 2:  // a lease: take a slot from it
        continue;
      case 1:
        return grant_reserved(a, intr);
      case -1: {  // created: wait for start()
        const std::int64_t next = std::min(now_local() + kStartPollNs, deadline_local);
        if (deadline_local != kForever && now_local() >= deadline_local) return -1;
        if (sleep_until_local(next, intr) != Woke::kReached) return -1;
        continue;
      }
      case -2:
        drop_lease();
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
