// Throttle's administration: start(), stop() and set_rate(), serialised by the admin lock.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "clock.hpp"
#include "futex.hpp"
#include "gcra.hpp"
#include "log.hpp"
#include "mpt/error.hpp"
#include "mpt/throttle.hpp"
#include "throttle_config.hpp"
#include "throttle_ops.hpp"
#include "throttle_shared.hpp"
#include "tuning.hpp"

namespace mpt {

using detail::compute_gate;
using detail::compute_interval_ns;
using detail::compute_tau_ns;
using detail::correction_source;
using detail::load_state;
using detail::mono_ns;
using detail::sat_add;
using detail::to_ns;
using detail::validate_rate;

namespace {

// How long start(), stop() and set_rate() wait for the admin lock held by a live thread (a holder
// stopped in a debugger, or a scribbled word naming a live thread): stop() then goes on without.
constexpr std::int64_t kAdminWaitNs = 1'000'000'000;

// Whether the thread `tid` can still let go of a lock: it exists (kill() accepts a thread's id)
// and is not a zombie (a holder killed mid-operation whose parent has not reaped it yet). 0 and
// values beyond any pid (which kill() would read as a process group) name no thread. Thread ids
// are those of this PID namespace: processes sharing a throttle must share one (docs/design.md).
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

}  // namespace

void Throttle::start() {
  start(Clock::now());
}

void Throttle::start(TimePoint now_tp) {
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

void Throttle::set_rate(std::int64_t max_n, std::chrono::duration<double> per) {
  set_rate(max_n, per, Clock::now());
}

void Throttle::set_rate(std::int64_t max_n, std::chrono::duration<double> per, TimePoint now_tp) {
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
  const detail::GateShape gate = compute_gate(hardcap, max_n, per.count(), f_.gate_bits);
  cfg.gate_span_ns.store(gate.span_ns, std::memory_order_relaxed);
  cfg.gate_m.store(gate.m, std::memory_order_relaxed);
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

}  // namespace mpt
