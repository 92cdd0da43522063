// Throttles shared by real processes: forked workers on an anonymous throttle, unrelated programs
// (started with exec) on a named one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/throttle.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::fork_worker;

struct Spawned {
  pid_t pid;
  int out_fd;
};

Spawned spawn_helper(const std::string& name, const char* extra = nullptr) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    if (extra) {
      execl(MPT_HELPER_PATH, MPT_HELPER_PATH, name.c_str(), extra, static_cast<char*>(nullptr));
    } else {
      execl(MPT_HELPER_PATH, MPT_HELPER_PATH, name.c_str(), static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out;
}

TEST(ThrottleProcessesTest, FourForkedWorkersAtFourPerSecond) {
  Throttle t(4, 1s);
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i)
    pids.push_back(fork_worker(t));  // they wait for start()
  for (pid_t p : pids)
    EXPECT_TRUE(test::wait_until_futex_asleep(p)) << "worker " << p << " never waited";
  t.start();
  std::this_thread::sleep_for(2s);
  const Summary s = t.stop();
  int sum = 0;
  for (pid_t p : pids) {
    const int rc = test::wait_child(p, 5s);
    ASSERT_GE(rc, 0) << "worker hung after stop()";
    sum += rc;
  }
  EXPECT_GE(s.total, 8u);
  EXPECT_LE(s.total, 9u) << "start gives one unit, then 4 per second: 8 in 2 s, 9 at most";
  EXPECT_EQ(static_cast<std::uint64_t>(sum), s.total) << "workers' own counts match the monitor";
  EXPECT_NEAR(s.runtime.count(), 2.0, 0.2);
}

TEST(ThrottleProcessesTest, SeedExampleFourWorkersFiveSecondsTake20Or21) {
  Throttle t(4, 1s);
  const auto r = test::run_workers(t, 4, 5s);
  ASSERT_TRUE(r.all_exited) << "a worker hung after stop()";
  const Summary& s = r.summary;
  EXPECT_GE(s.total, 20u);
  EXPECT_LE(s.total, 21u) << "never the 24 a full bucket would give";
  EXPECT_EQ(r.reports, 4);
  EXPECT_EQ(r.units_reported, t.total()) << "the workers' own counts match the monitor";
}

TEST(ThrottleProcessesTest, UnrelatedProcessesShareANamedThrottle) {
  const std::string name = test::unique_name("unrelated");
  auto t = Throttle::create(name, 50, 1s);
  std::vector<Spawned> helpers = {spawn_helper(name), spawn_helper(name)};
  for (const Spawned& h : helpers)  // both attached and waiting for the start
    EXPECT_TRUE(test::wait_until_futex_asleep(h.pid)) << "helper " << h.pid << " never waited";
  t.start();
  std::this_thread::sleep_for(2s);
  const Summary s = t.stop();
  long sum = 0;
  for (auto& h : helpers) {
    const std::string out = read_all(h.out_fd);
    ASSERT_EQ(test::wait_child(h.pid, 5s), 0) << out;
    const long taken = std::stol(out);
    EXPECT_GT(taken, 10) << "each process got a share";
    sum += taken;
  }
  EXPECT_EQ(static_cast<std::uint64_t>(sum), s.total);
  EXPECT_GE(s.total, 98u);
  EXPECT_LE(s.total, 102u) << "two processes together hold 50/s";
}

TEST(ThrottleProcessesTest, StopReleasesAProcessBlockedWithoutTimeout) {
  const std::string name = test::unique_name("blocked");
  auto t = Throttle::create(name, 1, 100s);
  t.start();
  ASSERT_TRUE(t.has_fuel());  // the next unit is 100 s away
  Spawned h = spawn_helper(name, "--once");
  char buf[16] = {};
  ASSERT_GT(read(h.out_fd, buf, sizeof buf), 0);  // "waiting"
  EXPECT_TRUE(test::wait_until_futex_asleep(h.pid)) << "the helper never blocked in await_fuel";
  const auto t0 = Clock::now();
  t.stop();
  EXPECT_EQ(test::wait_child(h.pid, 5s), 3) << "await_fuel returns false after stop";
  EXPECT_LT(Clock::now() - t0, 1s);
  close(h.out_fd);
}

TEST(ThrottleProcessesTest, StatsSurviveRestartAcrossProcesses) {
  Throttle t(100, 1s);
  // A child that takes 10 units (1 s timeout each) and exits with how many it got.
  auto take_ten_in_a_child = [&t] {
    pid_t p = fork();
    if (p == 0) {
      int ok = 0;
      for (int i = 0; i < 10; ++i)
        ok += t.await_fuel(1s) ? 1 : 0;
      _exit(ok);
    }
    return test::wait_child(p);
  };
  t.start();
  ASSERT_EQ(take_ten_in_a_child(), 10);
  const Summary s1 = t.stop();
  EXPECT_EQ(s1.total, 10u);
  t.start();
  ASSERT_EQ(take_ten_in_a_child(), 10);
  const Summary s2 = t.stop();
  EXPECT_EQ(s2.total, 20u);
  EXPECT_GT(s2.runtime, s1.runtime);
}

TEST(ThrottleProcessesTest, ManyProcessesHoldAHighRate) {
  // 4 processes at 2,000/s for 1 s: every unit is accounted for (the workers' own counts add up
  // to the monitor's total once they have exited) and the rate is held (±1 %: hardcap limit makes
  // up for a worker's stall from its burst allowance, so scheduling noise does not move it).
  Throttle t(2000, 1s);
  const auto r = test::run_workers(t, 4, 1s);
  ASSERT_TRUE(r.all_exited) << "a worker hung after stop()";
  const Summary& s = r.summary;
  EXPECT_NEAR(static_cast<double>(s.total), 2000.0 * s.runtime.count(), 20.0 + 1);
  EXPECT_EQ(r.reports, 4) << "every worker reported its count";
  EXPECT_EQ(r.units_reported, t.total()) << "units the workers got = emissions the monitor counted";
}

TEST(ThrottleProcessesTest, KilledWaiterDoesNotWedgeTheThrottle) {
  Throttle t(50, 1s, [] {
    ThrottleOptions o;
    o.hardcap = Hardcap::kOne;
    return o;
  }());
  t.start();
  for (int round = 0; round < 20; ++round) {
    pid_t p = fork();
    if (p == 0) {
      for (;;)
        (void)t.await_fuel();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 + round % 7));
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
  }
  // Slots reserved by killed processes are lost time, not a stuck lock: we still get fuel.
  int ok = 0;
  for (int i = 0; i < 5; ++i)
    ok += t.await_fuel(1s) ? 1 : 0;
  EXPECT_EQ(ok, 5);
}

}  // namespace
}  // namespace mpt
