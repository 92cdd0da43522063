// tests/chaos/chaos.cpp — mpt_chaos: SIGKILL processes at random moments inside the library and
// check, after every kill, that nothing is wedged, lost, duplicated or corrupt.
//
// Each round forks one victim that loops on one operation, waits until it runs, lets it run a
// random 0–3 ms and SIGKILLs it. Kinds:
//   await_sleeping  await_fuel() on a slow throttle (the victim dies asleep on the futex)
//   await_busy      await_fuel() on a fast throttle (dies reserving, spinning or in the monitor)
//   await_gate      await_fuel() on a fast hardcap-one throttle (dies in the gate, too)
//   emit            emit() on a monitor (dies inside the lock-free counters)
//   lock            Lock held for a random while (dies holding it, or taking it)
//   queue_put       a producer putting numbered messages (dies in put, or blocked on a full queue)
//   queue_get       a consumer getting numbered messages (dies in get)
// After each kill: the victim is reaped within 2 s (else a hang); the lock is taken within 1 s
// and reports its dead owner when the victim died holding it; a producer's queue holds exactly
// the messages whose put completed (plus at most the one in flight), in order, intact, once; a
// consumer's messages were each delivered at most once and at most one is missing (the one it got
// but had not recorded); the monitor's total stays between what the victims recorded and that
// plus one per kill. Every 250 kills and at the end: every segment header validates, and each
// throttle still holds its rate within 1 % over one second of two fresh workers.
//
// usage: mpt_chaos [--kills N] [--seconds S] [--seed X]    (defaults 1000, 60, time)
// Prints what it did (kills per kind, recoveries, worst stall); exits 1 on any violation.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpt/queue.hpp"
#include "mpt/segment.hpp"
#include "mpt/sync.hpp"
#include "mpt/throttle.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What victims tell the parent, in a shared anonymous mapping.
struct Board {
  std::atomic<std::uint32_t> ready;    // the victim reached its loop
  std::atomic<std::uint32_t> holding;  // lock: set after lock() returned, cleared before unlock
  std::atomic<std::int64_t> last_put;  // queue_put: the last seq whose put() returned
  std::atomic<std::uint64_t> done;     // await/emit: operations that returned
  std::atomic<std::uint64_t> log_len;  // queue_get: entries in `log`
  std::int64_t log[256];               // queue_get: seqs received, in order
};

struct Message {
  std::uint32_t round;
  std::int32_t seq;
  std::uint32_t len;
  std::uint32_t sum;  // of the payload bytes
};
constexpr std::size_t kMaxMessage = 200;

std::vector<std::byte> make_message(std::uint32_t round, std::int32_t seq) {
  const std::uint32_t len = 16 + static_cast<std::uint32_t>((seq * 37 + round) % 150);
  std::vector<std::byte> m(sizeof(Message) + len);
  Message h{round, seq, len, 0};
  for (std::uint32_t i = 0; i < len; ++i) {
    const auto b = static_cast<std::uint8_t>(seq * 7 + i * 13 + round);
    m[sizeof(Message) + i] = std::byte{b};
    h.sum += b;
  }
  std::memcpy(m.data(), &h, sizeof h);
  return m;
}

// The message's seq if it is intact and of this round, else -1.
std::int32_t check_message(const std::vector<std::byte>& m, std::uint32_t round) {
  if (m.size() < sizeof(Message)) return -1;
  Message h;
  std::memcpy(&h, m.data(), sizeof h);
  if (h.round != round || m.size() != sizeof(Message) + h.len) return -1;
  std::uint32_t sum = 0;
  for (std::uint32_t i = 0; i < h.len; ++i)
    sum += std::to_integer<std::uint8_t>(m[sizeof(Message) + i]);
  return sum == h.sum ? h.seq : -1;
}

struct Stats {
  std::map<std::string, int> kills;
  int lock_recoveries = 0;
  int lock_held_at_kill = 0;
  std::uint64_t messages_checked = 0;
  int messages_in_flight_lost = 0;
  double worst_stall_ms = 0;
  int rate_checks = 0;
  std::vector<std::string> violations;

  void fail(const std::string& what) {
    if (violations.size() < 50) std::fprintf(stderr, "VIOLATION: %s\n", what.c_str());
    violations.push_back(what);
  }
  void stall(Clock::time_point since) {
    worst_stall_ms = std::max(
        worst_stall_ms, std::chrono::duration<double, std::milli>(Clock::now() - since).count());
  }
};

// Waits for the child with a bound; SIGKILLs and reports it if it outlives the bound.
bool reap(pid_t pid, std::chrono::milliseconds limit, Stats& st, const std::string& what,
          bool count_stall = true) {
  const auto t0 = Clock::now();
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (count_stall) st.stall(t0);
      return true;
    }
    if (Clock::now() - t0 > limit) {
      st.fail(what + ": process " + std::to_string(pid) + " did not finish (a hang)");
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return false;
    }
    std::this_thread::sleep_for(200us);
  }
}

class Harness {
 public:
  explicit Harness(unsigned seed) : rng_(seed), tag_(std::to_string(getpid())) {
    void* p =
        mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    board_ = new (p) Board();
    mpt::ThrottleOptions slow;
    slow.auto_calibrate = false;
    sleeping_ = mpt::Throttle::create(name("sleep"), 50, 1s, slow);
    mpt::ThrottleOptions fast = slow;
    fast.spin_lead = 100us;
    busy_ = mpt::Throttle::create(name("busy"), 2000, 1s, fast);
    fast.hardcap = mpt::Hardcap::kOne;
    gated_ = mpt::Throttle::create(name("gate"), 2000, 1s, fast);
    mpt::ThrottleOptions mon = slow;
    mon.as_throttle = false;
    mon.auto_emit = false;
    monitor_ = mpt::Throttle::create(name("emit"), 1, 1s, mon);
    lock_ = mpt::Lock::create(name("lock"));
    mpt::QueueOptions qo;
    qo.capacity = 64;
    qo.max_message_bytes = sizeof(Message) + kMaxMessage;
    queue_ = mpt::Queue::create(name("queue"), qo);
    sleeping_->start();
    busy_->start();
    gated_->start();
    monitor_->start();
  }

  std::string name(const std::string& what) const { return "chaos-" + what + "-" + tag_; }

  void run(int kills, double seconds) {
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    const std::vector<std::string> kinds = {"await_sleeping", "await_busy", "await_gate", "emit",
                                            "lock",           "queue_put",  "queue_get"};
    rate_check();
    for (int k = 0; k < kills && Clock::now() < end; ++k) {
      const std::string& kind = kinds[rng_() % kinds.size()];
      round(kind, static_cast<std::uint32_t>(k + 1));
      ++st_.kills[kind];
      if ((k + 1) % 250 == 0) periodic();
    }
    periodic();
    rate_check();
  }

  int report() const {
    int total = 0;
    for (const auto& [k, n] : st_.kills)
      total += n;
    std::printf("mpt_chaos: %d kills", total);
    for (const auto& [k, n] : st_.kills)
      std::printf(", %s %d", k.c_str(), n);
    std::printf("\n  lock: died holding it %d times, recovered (owner died reported) %d times\n",
                st_.lock_held_at_kill, st_.lock_recoveries);
    std::printf(
        "  queue: %llu messages checked intact and once; %d in flight at a consumer's "
        "death\n",
        static_cast<unsigned long long>(st_.messages_checked), st_.messages_in_flight_lost);
    std::printf("  throttles: %d rate checks; monitor totals consistent with what victims saw\n",
                st_.rate_checks);
    std::printf("  worst stall (reap, lock, queue drain): %.1f ms\n", st_.worst_stall_ms);
    std::printf("  violations: %zu\n", st_.violations.size());
    return st_.violations.empty() ? 0 : 1;
  }

  ~Harness() {
    for (const char* w : {"sleep", "busy", "gate", "emit", "lock", "queue"})
      try {
        mpt::Segment::remove(name(w));
      } catch (...) {
      }
  }

 private:
  // Forks a victim running `body` forever, kills it at a random moment after it is ready.
  void kill_victim(const std::string& kind, const std::function<void()>& body) {
    board_->ready.store(0);
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      board_->ready.store(1);
      for (;;)
        body();
    }
    const auto t0 = Clock::now();
    while (board_->ready.load() == 0 && Clock::now() - t0 < 2s)
      std::this_thread::sleep_for(20us);
    if (board_->ready.load() == 0) st_.fail(kind + ": victim never started");
    const auto delay = std::chrono::microseconds(rng_() % 3000);
    std::this_thread::sleep_for(delay);
    kill(pid, SIGKILL);
    reap(pid, 2s, st_, kind);
  }

  void round(const std::string& kind, std::uint32_t r) {
    if (kind == "await_sleeping" || kind == "await_busy" || kind == "await_gate") {
      mpt::Throttle& t = kind == "await_busy"   ? *busy_
                         : kind == "await_gate" ? *gated_
                                                : *sleeping_;
      const std::uint64_t before = t.total();
      board_->done.store(0);
      kill_victim(kind, [&] {
        if (t.await_fuel()) board_->done.fetch_add(1);
      });
      check_total(kind, before, t.total(), board_->done.load());
    } else if (kind == "emit") {
      const std::uint64_t before = monitor_->total();
      board_->done.store(0);
      kill_victim(kind, [&] {
        monitor_->emit();
        board_->done.fetch_add(1);
      });
      check_total(kind, before, monitor_->total(), board_->done.load());
    } else if (kind == "lock") {
      board_->holding.store(0);
      const unsigned hold_us = rng_() % 1500;
      kill_victim(kind, [&, hold_us] {
        lock_->lock();
        board_->holding.store(1);
        const auto until = Clock::now() + std::chrono::microseconds(hold_us);
        while (Clock::now() < until) {
        }
        board_->holding.store(0);
        lock_->unlock();
      });
      const bool was_holding = board_->holding.load() == 1;
      st_.lock_held_at_kill += was_holding;
      const auto t0 = Clock::now();
      const mpt::LockStatus s = lock_->try_lock_for(1s);
      st_.stall(t0);
      if (s == mpt::LockStatus::kTimeout) {
        st_.fail("lock: not acquired within 1 s after its owner was killed");
        return;
      }
      if (s == mpt::LockStatus::kOwnerDied) ++st_.lock_recoveries;
      if (was_holding && s != mpt::LockStatus::kOwnerDied) {
        st_.fail("lock: the victim died holding it, but lock() did not report the dead owner");
      }
      lock_->unlock();
    } else if (kind == "queue_put") {
      board_->last_put.store(-1);
      kill_victim(kind, [&, r] {
        for (std::int32_t seq = 0;; ++seq) {
          const auto m = make_message(r, seq);
          if (queue_->put(std::span<const std::byte>(m))) board_->last_put.store(seq);
        }
      });
      const std::int64_t last = board_->last_put.load();
      const auto got = drain(r, kind);
      // Exactly 0..n-1, in order, with n - 1 == last or last + 1 (a put that committed before it
      // could record).
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (got[i] != static_cast<std::int32_t>(i)) {
          st_.fail("queue_put: message " + std::to_string(i) + " is seq " + std::to_string(got[i]) +
                   " (lost, duplicated or out of order)");
          break;
        }
      }
      const auto n = static_cast<std::int64_t>(got.size());
      if (n - 1 != last && n - 1 != last + 1) {
        st_.fail("queue_put: " + std::to_string(n) +
                 " messages delivered, but puts completed up "
                 "to seq " +
                 std::to_string(last));
      }
    } else if (kind == "queue_get") {
      constexpr std::int32_t kCount = 48;
      for (std::int32_t seq = 0; seq < kCount; ++seq) {
        const auto m = make_message(r, seq);
        if (!queue_->put(std::span<const std::byte>(m), 1s)) {
          st_.fail("queue_get: could not fill the queue");
          return;
        }
      }
      board_->log_len.store(0);
      kill_victim(kind, [&, r] {
        std::vector<std::byte> buf;
        if (!queue_->get_into(buf)) return;
        const std::int32_t seq = check_message(buf, r);
        const std::uint64_t i = board_->log_len.load();
        if (i < 256) board_->log[i] = seq;
        board_->log_len.store(i + 1);
      });
      std::vector<std::int32_t> seen;
      for (std::uint64_t i = 0; i < std::min<std::uint64_t>(board_->log_len.load(), 256); ++i)
        seen.push_back(static_cast<std::int32_t>(board_->log[i]));
      const auto rest = drain(r, kind);
      seen.insert(seen.end(), rest.begin(), rest.end());
      std::set<std::int32_t> once;
      for (std::int32_t s : seen) {
        if (s < 0 || s >= kCount) {
          st_.fail("queue_get: a consumer received a corrupt message");
        } else if (!once.insert(s).second) {
          st_.fail("queue_get: seq " + std::to_string(s) + " delivered twice");
        }
      }
      const int missing = kCount - static_cast<int>(once.size());
      if (missing > 1) {
        st_.fail("queue_get: " + std::to_string(missing) + " messages lost");
      }
      st_.messages_in_flight_lost += missing;
    }
  }

  // Everything left in the queue, checked; seqs in order of delivery.
  std::vector<std::int32_t> drain(std::uint32_t r, const std::string& kind) {
    std::vector<std::int32_t> out;
    std::vector<std::byte> buf;
    const auto t0 = Clock::now();
    while (queue_->get_into(buf, 0ns)) {
      const std::int32_t seq = check_message(buf, r);
      if (seq < 0) st_.fail(kind + ": a message came out corrupt or from another round");
      out.push_back(seq);
      ++st_.messages_checked;
    }
    st_.stall(t0);
    return out;
  }

  // The monitor's total moved by what the victim saw return, plus at most n in flight.
  void check_total(const std::string& kind, std::uint64_t before, std::uint64_t after,
                   std::uint64_t done) {
    if (after < before + done || after > before + done + 1) {
      st_.fail(kind + ": monitor total moved by " + std::to_string(after - before) + " but " +
               std::to_string(done) + " operations returned");
    }
  }

  void periodic() {
    for (const char* w : {"sleep", "busy", "gate", "emit", "lock", "queue"}) {
      const mpt::SegmentInfo info = mpt::Segment::inspect(name(w));
      if (!info.valid)
        st_.fail(std::string("segment ") + w + " no longer validates: " + info.problem);
    }
    for (mpt::Throttle* t : {&*sleeping_, &*busy_, &*gated_, &*monitor_}) {
      const mpt::Snapshot s = t->snapshot();
      if (s.lo_hi.interval_s > s.hi_lo.interval_s && s.hi_lo.interval_s > 0)
        st_.fail("monitor: shortest interval above the longest");
    }
  }

  // Two fresh workers on the busy throttle (hardcap limit, the victims' throttle) for one second,
  // after taking the burst it saved while idle: within 1 % of its rate.
  void rate_check() {
    ++st_.rate_checks;
    while (busy_->has_fuel(1)) {
    }
    const std::uint64_t before = busy_->total();
    std::vector<pid_t> pids;
    const auto t0 = Clock::now();
    const auto until = t0 + 1s;
    for (int i = 0; i < 2; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        while (Clock::now() < until)
          (void)busy_->await_fuel_until(until);
        _exit(0);
      }
      pids.push_back(pid);
    }
    for (pid_t p : pids)
      reap(p, 5s, st_, "rate check", false);  // they run for the second on purpose
    const double got = static_cast<double>(busy_->total() - before);
    const double want = 2000.0;
    if (std::abs(got / want - 1) > 0.01) {
      st_.fail("rate check: " + std::to_string(static_cast<long long>(got)) +
               " grants in one second at 2000/s (more than 1 % off)");
    }
  }

  std::mt19937 rng_;
  std::string tag_;
  Board* board_ = nullptr;
  std::optional<mpt::Throttle> sleeping_, busy_, gated_, monitor_;
  std::optional<mpt::Lock> lock_;
  std::optional<mpt::Queue> queue_;
  Stats st_;
};

}  // namespace

int main(int argc, char** argv) {
  int kills = 1000;
  double seconds = 60;
  unsigned seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--kills" || a == "--seconds" || a == "--seed") && i + 1 < argc) {
      const char* v = argv[++i];
      char* end = nullptr;
      const double d = std::strtod(v, &end);
      if (*v == '\0' || *end != '\0' || !(d > 0) || d > 1e9) {
        std::fprintf(stderr, "mpt_chaos: %s needs a positive number, got '%s'\n", a.c_str(), v);
        return 2;
      }
      if (a == "--kills") kills = static_cast<int>(d);
      if (a == "--seconds") seconds = d;
      if (a == "--seed") seed = static_cast<unsigned>(d);
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: mpt_chaos [--kills N] [--seconds S] [--seed X]\n");
      return 0;
    } else {
      std::fprintf(stderr, "mpt_chaos: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  std::printf("mpt_chaos: seed %u, up to %d kills in %g s\n", seed, kills, seconds);
  try {
    Harness h(seed);
    h.run(kills, seconds);
    return h.report();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpt_chaos: %s\n", e.what());
    return 1;
  }
}
