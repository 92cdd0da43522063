// stop() is final: the total it returns is the monitor's total for good (until the next start()),
// whatever the workers were doing when it was called, and it equals the units the workers were
// granted. Real forked workers at 100,000/s, stopped mid-stream many times, for every hardcap.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/throttle.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

// Per-worker grant counts in memory shared with the forked workers.
class SharedCounts {
 public:
  explicit SharedCounts(int n) : n_(n) {
    void* p = mmap(nullptr, sizeof(std::atomic<std::uint64_t>) * static_cast<std::size_t>(n),
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    counts_ = new (p) std::atomic<std::uint64_t>[static_cast<std::size_t>(n)]();
  }
  ~SharedCounts() { munmap(counts_, sizeof(std::atomic<std::uint64_t>) * n_); }
  std::atomic<std::uint64_t>& operator[](int i) { return counts_[i]; }
  std::uint64_t sum() const {
    std::uint64_t s = 0;
    for (int i = 0; i < n_; ++i)
      s += counts_[i].load();
    return s;
  }

 private:
  int n_;
  std::atomic<std::uint64_t>* counts_;
};

struct Round {
  std::uint64_t stop_total = 0;     // what stop() returned
  std::uint64_t after_exit = 0;     // the monitor's total once every worker has exited
  std::uint64_t granted = 0;        // the workers' own count of await_fuel() == true
  std::uint64_t after_further = 0;  // the total after more calls on the stopped throttle
  bool all_exited = true;
};

Round stop_mid_stream(Hardcap hardcap, std::chrono::milliseconds run) {
  ThrottleOptions o;
  o.hardcap = hardcap;
  o.auto_calibrate = false;
  // Waiters spin through the last 150 us before their slot, as a calibrated throttle's do at this
  // rate: a spinner is what can pass its slot at the very moment stop() is called.
  o.spin_lead = 150us;
  Throttle t(100'000, 1s, o);
  SharedCounts counts(4);
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      auto kill = t.kill_flag();
      while (!kill.is_set())
        if (t.await_fuel()) counts[i].fetch_add(1);
      _exit(0);
    }
    pids.push_back(pid);
  }
  t.start();
  std::this_thread::sleep_for(run);
  Round r;
  r.stop_total = t.stop().total;
  for (pid_t p : pids)
    if (test::wait_child(p, 5s) != 0) r.all_exited = false;
  r.after_exit = t.total();
  r.granted = counts.sum();
  // A stopped throttle grants and counts nothing, whoever asks.
  EXPECT_FALSE(t.has_fuel());
  EXPECT_FALSE(t.await_fuel(1ms));
  t.emit();
  r.after_further = t.total();
  return r;
}

class StopFinalityTest : public ::testing::TestWithParam<Hardcap> {};

TEST_P(StopFinalityTest, TotalReturnedByStopIsFinalAndEqualsTheUnitsGranted) {
  for (int i = 0; i < 10; ++i) {
    const Round r = stop_mid_stream(GetParam(), 300ms);
    ASSERT_TRUE(r.all_exited) << "round " << i;
    EXPECT_GT(r.stop_total, 1000u) << "round " << i << ": the workers ran";
    EXPECT_EQ(r.after_exit, r.stop_total) << "round " << i << ": counted after stop() returned";
    EXPECT_EQ(r.granted, r.stop_total) << "round " << i << ": granted after stop() returned";
    EXPECT_EQ(r.after_further, r.stop_total) << "round " << i << ": counted once stopped";
  }
}

INSTANTIATE_TEST_SUITE_P(Hardcaps, StopFinalityTest,
                         ::testing::Values(Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// A worker SIGKILLed while it waits (or anywhere in the hot path) cannot make stop() wait for it.
TEST(StopFinalityTest, KilledWorkerDoesNotDelayStop) {
  ThrottleOptions o;
  o.auto_calibrate = false;
  Throttle t(100'000, 1s, o);
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i)
    pids.push_back(test::fork_worker(t));
  t.start();
  std::this_thread::sleep_for(100ms);
  kill(pids[0], SIGKILL);
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  const Summary s = t.stop();
  // A bound, not a speed: stop() waits for no worker, so anything near a second means it did.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  for (pid_t p : pids)
    test::wait_child(p, 5s);
  EXPECT_EQ(t.total(), s.total);
}

}  // namespace
}  // namespace mpt
