// hardcap one's promise, with real processes: never more than max_n grants in any window of
// `per`, whatever the wake-up lateness, the correction or the way units are taken. The check is
// exact (it is a guarantee, not a timing target): for sorted grant times t, t[i + max_n] - t[i] is
// at least `per` for every i.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/throttle.hpp"
#include "trial.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::int64_t ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The first i where max_n + 1 consecutive grants span less than `per`, or -1.
std::int64_t first_violation(const std::vector<std::int64_t>& sorted, std::int64_t max_n,
                             std::int64_t per_ns) {
  for (std::size_t i = 0; i + static_cast<std::size_t>(max_n) < sorted.size(); ++i) {
    if (sorted[i + static_cast<std::size_t>(max_n)] - sorted[i] < per_ns)
      return static_cast<std::int64_t>(i);
  }
  return -1;
}

// Grant times recorded by forked workers in a shared anonymous mapping.
class Stamps {
 public:
  explicit Stamps(std::size_t capacity) : capacity_(capacity) {
    bytes_ = sizeof(std::atomic<std::uint64_t>) + capacity * sizeof(std::int64_t);
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    base_ = p;
    new (base_) std::atomic<std::uint64_t>(0);
  }
  ~Stamps() { munmap(base_, bytes_); }
  void add(std::int64_t t) {
    const std::uint64_t i = count().fetch_add(1);
    if (i < capacity_) data()[i] = t;
  }
  std::vector<std::int64_t> sorted() {
    const std::uint64_t n = std::min<std::uint64_t>(count().load(), capacity_);
    std::vector<std::int64_t> v(data(), data() + n);
    std::sort(v.begin(), v.end());
    return v;
  }
  std::uint64_t recorded() { return count().load(); }

 private:
  std::atomic<std::uint64_t>& count() { return *static_cast<std::atomic<std::uint64_t>*>(base_); }
  std::int64_t* data() {
    return reinterpret_cast<std::int64_t*>(static_cast<char*>(base_) + sizeof(std::uint64_t));
  }
  std::size_t capacity_;
  std::size_t bytes_ = 0;
  void* base_ = nullptr;
};

// Every unit the workers stamped keeps the promise (max_n per `per_ns`), at least `want` of them,
// and the stamps are exactly the units the throttle counted.
void expect_promise_kept(Stamps& stamps, Throttle& t, std::size_t want, std::int64_t max_n,
                         std::int64_t per_ns) {
  const auto v = stamps.sorted();
  ASSERT_GE(v.size(), want);
  EXPECT_EQ(first_violation(v, max_n, per_ns), -1);
  EXPECT_EQ(stamps.recorded(), t.total());
}

// Runs `workers` processes doing `body` until the kill flag, which is set once `stamps` holds
// `want` grants (or after a minute): the property is checked over that many grants however slowly
// a loaded machine runs them.
void run_processes(Throttle& t, int workers, Stamps& stamps, std::uint64_t want,
                   const std::function<void()>& body) {
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      const Event kill = t.kill_flag();
      while (!kill.is_set())
        body();
      _exit(0);
    }
    pids.push_back(pid);
  }
  t.start();
  const auto give_up = Clock::now() + 60s;
  while (stamps.recorded() < want && Clock::now() < give_up)
    std::this_thread::sleep_for(1ms);
  (void)t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
}

// A started hardcap-one throttle of max_n per `per` whose slots come twice as fast as its window
// allows (correction 0.5), so that the gate alone decides; the clock is injected from t0.
Throttle gate_decides(std::int64_t max_n, std::chrono::duration<double> per, Clock::time_point t0) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.correction = 0.5;
  Throttle t(max_n, per, o);
  t.start(t0);
  return t;
}

TEST(HardcapOneTest, AwaitGrantNeverMoreThanMaxNInAWindowWithoutSpinLead) {
  // No spin lead: every grant wakes late, which is where a slot schedule alone over-fills.
  trial::TrialOptions o;
  o.rate_per_sec = 5000;
  o.workers = 4;
  o.seconds = 2.5;
  o.throttle.hardcap = Hardcap::kOne;
  o.throttle.auto_calibrate = false;
  o.throttle.spin_lead = 0ns;
  const trial::TrialResult r = trial::run_trial(o);
  ASSERT_GT(r.times.size(), 5000u);
  EXPECT_TRUE(r.totals_match());
  EXPECT_LE(r.max_in_window, 5000u);
  EXPECT_EQ(first_violation(r.times, 5000, 1'000'000'000), -1);
}

TEST(HardcapOneTest, APositiveCorrectionCannotBreakThePromise) {
  // The correction makes slots come 30 % early; the gate still spaces grants by per / max_n.
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.correction = 0.3;
  o.spin_lead = 50us;
  Throttle t(200, 100ms, o);  // 2,000/s in windows of 100 ms
  Stamps stamps(20000);
  run_processes(t, 3, stamps, 2400, [&] {
    if (auto g = t.await_grant()) stamps.add(ns(*g));
  });
  const auto v = stamps.sorted();
  ASSERT_GE(v.size(), 2400u);
  EXPECT_EQ(first_violation(v, 200, 100'000'000), -1);
  EXPECT_LE(trial::max_in_window(v, 100'000'000), 200u);
}

TEST(HardcapOneTest, HasFuelSpinnersNeverMoreThanMaxNInAWindow) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.auto_calibrate = false;
  Throttle t(300, 100ms, o);  // 3,000/s in windows of 100 ms
  Stamps stamps(20000);
  run_processes(t, 3, stamps, 3000, [&] {
    const auto now = Clock::now();
    if (t.has_fuel(1, now)) stamps.add(ns(now));
  });
  expect_promise_kept(stamps, t, 3000, 300, 100'000'000);
}

TEST(HardcapOneTest, SeveralUnitsAtOnceAreCountedUnitByUnit) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.auto_calibrate = false;
  Throttle t(100, 100ms, o);  // 1,000/s
  Stamps stamps(20000);
  run_processes(t, 2, stamps, 333, [&] {
    if (auto g = t.await_grant(Clock::time_point::max(), 3)) stamps.add(ns(*g));
  });
  const auto v = stamps.sorted();  // the time of each call's last unit
  ASSERT_GE(v.size(), 333u);
  // 35 calls ending in one window would put at least 35 + 34 * 2 = 104 units in it.
  EXPECT_EQ(first_violation(v, 100 / 3 + 1, 100'000'000), -1);
  EXPECT_GE(t.total(), 3 * v.size());
}

TEST(HardcapOneTest, BatchesKeepThePromiseUnitByUnit) {
  // await_grant(n) grants its n units at one instant: every unit is stamped with that time, and
  // the promise holds over the units, not only the calls. correction 0.5: slots come twice as
  // fast as the window allows, so the gate decides every grant.
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.correction = 0.5;
  o.spin_lead = 0ns;
  Throttle t(20, 100ms, o);  // 200/s in windows of 100 ms
  Stamps stamps(20000);
  std::atomic<std::uint64_t> calls{0};
  run_processes(t, 3, stamps, 400, [&] {
    const std::int64_t n = 1 + static_cast<std::int64_t>(calls.fetch_add(1) % 3);  // per process
    if (auto g = t.await_grant(Clock::time_point::max(), n)) {
      for (std::int64_t i = 0; i < n; ++i)
        stamps.add(ns(*g));
    }
  });
  expect_promise_kept(stamps, t, 400, 20, 100'000'000);
}

TEST(HardcapOneTest, ThreadsSharingOneHandleKeepThePromise) {
  // The same gate from 4 threads of one process (what the tsan preset can see into): batches of 1
  // to 3 units and has_fuel() calls race for each unit.
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.correction = 0.5;
  o.spin_lead = 0ns;
  Throttle t(30, 100ms, o);  // 300/s in windows of 100 ms
  std::mutex mu;
  std::vector<std::int64_t> v;
  t.start();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (std::int64_t call = 0; t.running(); ++call) {
        const std::int64_t n = i == 3 ? 1 : 1 + (call + i) % 3;
        std::optional<Clock::time_point> g;
        if (i == 3) {
          const auto now = Clock::now();
          if (t.has_fuel(1, now)) g = now;
        } else {
          g = t.await_grant(Clock::now() + 50ms, n);
        }
        if (!g) continue;
        std::lock_guard<std::mutex> lock(mu);
        v.insert(v.end(), static_cast<std::size_t>(n), ns(*g));
      }
    });
  }
  std::this_thread::sleep_for(1200ms);
  (void)t.stop();
  for (auto& th : threads)
    th.join();
  std::sort(v.begin(), v.end());
  ASSERT_GE(v.size(), 300u);
  EXPECT_EQ(first_violation(v, 30, 100'000'000), -1);
  EXPECT_EQ(v.size(), t.total());
}

TEST(HardcapOneTest, MoreUnitsThanAWindowHoldsAreRefusedTakingNothing) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.auto_calibrate = false;
  Throttle t(4, 400ms, o);
  t.start();
  EXPECT_FALSE(t.await_fuel(5, 10s));  // at once: 5 units at one instant would break the window
  EXPECT_FALSE(t.has_fuel(2));         // one unit at most is ever there at once
  EXPECT_EQ(t.total(), 0u);
  EXPECT_TRUE(t.await_fuel(4, 10s));  // 4 fit in a window: granted together
  EXPECT_EQ(t.total(), 4u);
}

TEST(HardcapOneTest, TheGateHoldsWhenTheCorrectionWouldBurst) {
  // correction 0.5: slots every 0.5 s, so four grants come early (catching up is allowed within
  // the gate's span of m = 4 grants), but never a fifth within 4 s of the first. Clock injected.
  const auto t0 = Clock::now();
  Throttle t = gate_decides(4, 4s, t0);
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(t.has_fuel(1, t0 + i * 500ms)) << i;
  EXPECT_FALSE(t.has_fuel(1, t0 + 2s));
  EXPECT_FALSE(t.has_fuel(1, t0 + 3999ms));
  EXPECT_TRUE(t.has_fuel(1, t0 + 4s));
}

TEST(HardcapOneTest, ALateGrantDelaysOnlyTheGrantMaxNAfterIt) {
  // The gate spans max_n grants: unit k waits for unit k - max_n plus `per`, nothing shorter. 100
  // per 1 s, slots every 5 ms (correction 0.5) so that only the gate decides; grants asked every
  // 10 ms, unit 50 late by 5 ms. Clock injected.
  const auto t0 = Clock::now();
  Throttle t = gate_decides(100, 1s, t0);
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(t.has_fuel(1, t0 + i * 10ms + (i == 50 ? 5ms : 0ms))) << i;
  // The second window's first grant is due a window after the first one's, not held back by the
  // late one (a gate spanning 50 grants would hold it until 50's time + 0.5 s = 1,005 ms).
  for (int i = 100; i < 150; ++i)
    EXPECT_TRUE(t.has_fuel(1, t0 + i * 10ms)) << i;
  EXPECT_FALSE(t.has_fuel(1, t0 + 1500ms));  // unit 150: a window after 50's late grant
  EXPECT_FALSE(t.has_fuel(1, t0 + 1504ms));
  EXPECT_TRUE(t.has_fuel(1, t0 + 1505ms));
  EXPECT_TRUE(t.has_fuel(1, t0 + 1510ms));  // unit 151 is on time again
  EXPECT_EQ(t.total(), 152u);
}

TEST(HardcapOneTest, AMaxNBeyondTheRingKeepsThePromise) {
  // 70,001 per 1 s is more than the gate's ring holds (2^16 grants): the gate then spans q = 2
  // steps of m = 35,000 grants, each at least 0.5 s, and lets 70,000 through per second. Slots
  // every 7.1 us (correction 0.5), asked every 5 us for 2.5 s of injected time.
  const auto t0 = Clock::now();
  Throttle t = gate_decides(70001, 1s, t0);
  std::vector<std::int64_t> granted;
  for (std::int64_t us = 0; us < 2'500'000; us += 5) {
    const auto now = t0 + std::chrono::microseconds(us);
    if (t.has_fuel(1, now)) granted.push_back(ns(now));
  }
  EXPECT_EQ(first_violation(granted, 70001, 1'000'000'000), -1);
  EXPECT_EQ(first_violation(granted, 70000, 1'000'000'000), -1);  // exactly: q * m per window
  std::int64_t in_second = 0;  // the second second: the gate's rate, not the first window's burst
  for (std::int64_t g : granted)
    in_second += g >= ns(t0 + 1s) && g < ns(t0 + 2s);
  EXPECT_EQ(in_second, 70000);
}

}  // namespace
}  // namespace mpt
