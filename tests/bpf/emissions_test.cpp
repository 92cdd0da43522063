// The kernel as witness: the eBPF counter attached to the library's USDT probes must count exactly
// what the monitor counted. Needs CAP_BPF + CAP_PERFMON (root in CI); skipped with the reason
// otherwise.
#include "emissions.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/throttle.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

class EmissionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = probe::missing_privileges();
    if (!missing.empty()) GTEST_SKIP() << "skipped: " << missing;
  }
};

using test::fork_worker;

struct Totals {
  std::uint64_t emits = 0, fuels = 0, fuel_hist = 0;
  std::uint64_t first_ns = UINT64_MAX, last_ns = 0;
  std::map<std::uint32_t, std::uint64_t> per_pid;
};

Totals totals_for(const probe::EmissionCounter& c, std::uint64_t id) {
  Totals t;
  for (const auto& e : c.read()) {
    if (e.throttle_id != id) continue;
    if (e.kind == MPT_KIND_EMIT) {
      t.emits += e.stats.count;
      t.per_pid[e.tgid] += e.stats.count;
      t.first_ns = std::min<std::uint64_t>(t.first_ns, e.stats.first_ns);
      t.last_ns = std::max<std::uint64_t>(t.last_ns, e.stats.last_ns);
    } else {
      t.fuels += e.stats.count;
      for (auto h : e.stats.hist)
        t.fuel_hist += h;
    }
  }
  return t;
}

TEST_F(EmissionsTest, KernelCountEqualsMonitorTotal) {
  Throttle t(1000, 1s);
  // Filtered in the kernel: other tests' throttles never reach this counter's map.
  probe::EmissionCounter counter({-1, probe::default_library_path(), t.id()});
  const auto r = test::run_workers(t, 4, 2s);
  ASSERT_TRUE(r.all_exited);
  const Summary& s = r.summary;
  const Totals k = totals_for(counter, t.id());
  EXPECT_EQ(k.emits, s.total) << "kernel and monitor disagree";
  EXPECT_EQ(k.fuels, s.total) << "one fuel event per unit taken";
  EXPECT_EQ(k.fuel_hist, k.fuels) << "fuel-wait histogram filled";
  EXPECT_EQ(k.per_pid.size(), 4u) << "every worker seen";
  std::uint64_t sum = 0;
  for (auto& [pid, n] : k.per_pid)
    sum += n;
  EXPECT_EQ(sum, k.emits) << "per-pid counts add up";
  const double rate =
      static_cast<double>(k.emits - 1) / (static_cast<double>(k.last_ns - k.first_ns) / 1e9);
  EXPECT_NEAR(rate / 1000.0, 1.0, 0.005) << "kernel-timed rate " << rate;
  EXPECT_EQ(counter.dropped(), 0u);
}

TEST_F(EmissionsTest, UnrelatedProcessesAndEarlyExitsAreAllSeen) {
  const std::string name = test::unique_name("bpf");
  auto t = Throttle::create(name, 500, 1s);
  probe::EmissionCounter counter({-1, probe::default_library_path(), t.id()});
  std::vector<pid_t> pids;
  for (int i = 0; i < 2; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      execl(MPT_HELPER_PATH, MPT_HELPER_PATH, name.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  const pid_t early = fork_worker(t, 50);    // exits after 50 units, mid-run
  for (pid_t p : {pids[0], pids[1], early})  // every process attached and waiting for the start
    EXPECT_TRUE(test::wait_until_futex_asleep(p)) << "process " << p << " never waited";
  t.start();
  std::this_thread::sleep_for(1s);
  const Summary s = t.stop();
  for (pid_t p : pids)
    ASSERT_EQ(test::wait_child(p, 5s), 0);
  ASSERT_EQ(test::wait_child(early, 5s), 50) << "the early worker took its 50 units";
  Totals k = totals_for(counter, t.id());
  EXPECT_EQ(k.emits, s.total);
  EXPECT_EQ(k.per_pid.size(), 3u);
  EXPECT_EQ(k.per_pid[static_cast<std::uint32_t>(early)], 50u) << "the early exit keeps its count";
  for (pid_t p : pids)
    EXPECT_GT(k.per_pid[static_cast<std::uint32_t>(p)], 0u);
}

TEST_F(EmissionsTest, StaticallyLinkedBinaryIsProbedThroughItsOwnFile) {
  const std::string name = test::unique_name("static");
  auto t = Throttle::create(name, 500, 1s);
  probe::EmissionCounter counter({-1, MPT_STATIC_HELPER_PATH, t.id()});
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(MPT_STATIC_HELPER_PATH, MPT_STATIC_HELPER_PATH, name.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  EXPECT_TRUE(test::wait_until_futex_asleep(pid)) << "the static helper never waited";
  t.start();
  std::this_thread::sleep_for(500ms);
  const Summary s = t.stop();
  ASSERT_EQ(test::wait_child(pid, 5s), 0);
  const Totals k = totals_for(counter, t.id());
  EXPECT_EQ(k.emits, s.total) << "every emission of the static binary seen";
  EXPECT_GT(k.emits, 200u);
}

TEST_F(EmissionsTest, PidFilterCountsOnlyThatProcess) {
  Throttle t(2000, 1s);
  // Both workers wait for the start; the counter attaches after the fork (the filter names the
  // first child) and before the start, so it sees every unit either takes.
  pid_t a = fork_worker(t, 200);
  pid_t b = fork_worker(t, 200);
  probe::EmissionCounter counter({a, probe::default_library_path()});
  t.start();
  EXPECT_EQ(test::wait_child(a, 5s), 200);
  EXPECT_EQ(test::wait_child(b, 5s), 200);
  t.stop();
  const Totals k = totals_for(counter, t.id());
  EXPECT_EQ(k.per_pid.size(), 1u);
  EXPECT_EQ(k.per_pid.count(static_cast<std::uint32_t>(a)), 1u) << "only the first child";
  EXPECT_EQ(k.emits, 200u) << "every unit the first child took, none of the second's";
  EXPECT_EQ(t.total(), 400u);
}

TEST_F(EmissionsTest, ThrottleIdFilterCountsOnlyThatThrottle) {
  Throttle mine(2000, 1s), other(2000, 1s);
  probe::EmissionCounter counter({-1, probe::default_library_path(), mine.id()});
  const pid_t a = fork_worker(mine, 100);
  const pid_t b = fork_worker(other, 100);
  mine.start();
  other.start();
  EXPECT_EQ(test::wait_child(a, 5s), 100);
  EXPECT_EQ(test::wait_child(b, 5s), 100);
  EXPECT_EQ(totals_for(counter, mine.id()).emits, 100u);
  for (const auto& e : counter.read())
    EXPECT_EQ(e.throttle_id, mine.id()) << "the kernel recorded another throttle";
}

// stop() is final (throttle.hpp): for every hardcap at 100,000/s with 4 spinning workers, stopped
// mid-stream ten times, the total stop() returns, the monitor's total once every worker has exited
// and the kernel's count are one number. (Before stop() sealed the total, every hardcap counted 1
// to 4 units after stop() returned in almost every round: a waiter past its slot was granted
// anyway.)
class StopIsFinalTest : public EmissionsTest, public ::testing::WithParamInterface<Hardcap> {};

TEST_P(StopIsFinalTest, StopTotalMonitorAfterExitAndKernelAreEqual) {
  probe::EmissionCounter counter({-1, probe::default_library_path()});
  for (int round = 0; round < 10; ++round) {
    ThrottleOptions o;
    o.hardcap = GetParam();
    o.auto_calibrate = false;
    o.spin_lead = 150us;  // waiters spin through their slot, as calibrated ones do at this rate
    Throttle t(100'000, 1s, o);
    const auto r = test::run_workers(t, 4, 300ms);
    ASSERT_TRUE(r.all_exited) << "round " << round;
    const Totals k = totals_for(counter, t.id());
    EXPECT_GT(r.summary.total, 1000u) << "round " << round;
    EXPECT_EQ(t.total(), r.summary.total) << "round " << round << ": counted after stop()";
    EXPECT_EQ(k.emits, r.summary.total) << "round " << round << ": kernel and monitor disagree";
    EXPECT_EQ(k.fuels, r.summary.total) << "round " << round << ": one fuel event per unit";
  }
  EXPECT_EQ(counter.dropped(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Hardcaps, StopIsFinalTest,
                         ::testing::Values(Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace mpt
