#include "mpt/process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "mpt/event.hpp"
#include "mpt/queue.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

TEST(ProcessTest, ExitCodeOfNormalExitReturnedStatusAndException) {
  Process ok([] {});
  Process three([] { return 3; });
  Process exits([] { _exit(7); });
  Process throws([] { throw std::runtime_error("boom"); });
  for (Process* p : {&ok, &three, &exits, &throws}) {
    EXPECT_EQ(p->exitcode(), std::nullopt);
    p->start();
  }
  for (Process* p : {&ok, &three, &exits, &throws})
    ASSERT_TRUE(p->join(10s)) << p->name();
  EXPECT_EQ(ok.exitcode(), 0);
  EXPECT_EQ(three.exitcode(), 3);
  EXPECT_EQ(exits.exitcode(), 7);
  EXPECT_EQ(throws.exitcode(), 1);
}

TEST(ProcessTest, TerminateAndKillGiveMinusTheSignal) {
  auto forever = [] {
    for (;;)
      pause();
  };
  Process term(forever), kill(forever);
  term.start();
  kill.start();
  EXPECT_TRUE(term.is_alive());
  term.terminate();
  kill.kill();
  ASSERT_TRUE(term.join(10s));
  ASSERT_TRUE(kill.join(10s));
  EXPECT_EQ(term.exitcode(), -SIGTERM);
  EXPECT_EQ(kill.exitcode(), -SIGKILL);
  EXPECT_FALSE(term.is_alive());
  EXPECT_EQ(describe_exitcode(-9), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(describe_exitcode(3), "exited with status 3");
}

TEST(ProcessTest, JoinWithTimeoutReturnsWhileTheChildRuns) {
  auto release = Event::anonymous();
  Process p([release] { release.wait(10s); });
  p.start();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(100ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 2s);
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  release.set();
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.join(0ns) == false);
}

TEST(ProcessTest, NamesDefaultAndCustomAndSeenByTheChild) {
  auto q = Queue::anonymous({.capacity = 4, .max_message_bytes = 64});
  Process a([q]() mutable { (void)q.put(current_process_name(), 5s); });
  Process b([q]() mutable { (void)q.put(current_process_name(), 5s); }, {.name = "worker-b"});
  EXPECT_EQ(a.name().rfind("Process-", 0), 0u) << a.name();
  EXPECT_EQ(b.name(), "worker-b");
  EXPECT_EQ(current_process_name(), "MainProcess");
  a.start();
  ASSERT_TRUE(a.join(10s));
  b.start();
  ASSERT_TRUE(b.join(10s));
  EXPECT_EQ(q.get_value<std::string>(1s), a.name());
  EXPECT_EQ(q.get_value<std::string>(1s), "worker-b");
  EXPECT_THROW(a.start(), InvalidArgument);
}

// A harness child becomes a subreaper, forks a parent that starts a daemon and a non-daemon child
// (each sleeping 30 s) and exits. The daemon must then die of SIGKILL at once; the non-daemon
// keeps running. Both are reparented to the harness, which reaps them.
TEST(ProcessTest, DaemonChildrenDieWithTheirParentOthersDoNot) {
  auto pids = Queue::anonymous({.capacity = 4, .max_message_bytes = 16});
  const pid_t harness = fork();
  if (harness == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const pid_t parent = fork();
    if (parent == 0) {
      auto sleeper = [] { std::this_thread::sleep_for(30s); };
      Process d(sleeper, {.daemon = true});
      Process n(sleeper, {.daemon = false});
      d.start();
      n.start();
      (void)pids.put_value(d.pid(), 1s);
      (void)pids.put_value(n.pid(), 1s);
      _exit(0);  // no destructors: the children outlive this process's objects
    }
    waitpid(parent, nullptr, 0);
    auto d = pids.get_value<pid_t>(1s);
    auto n = pids.get_value<pid_t>(1s);
    if (!d || !n) _exit(10);
    int status = 0;
    // The daemon: reaped within 2 s, killed by SIGKILL.
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    pid_t r = 0;
    while ((r = waitpid(*d, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    const bool daemon_killed = r == *d && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    // The non-daemon: still running.
    const bool other_alive = waitpid(*n, &status, WNOHANG) == 0;
    kill(*n, SIGKILL);
    waitpid(*n, nullptr, 0);
    if (!daemon_killed) _exit(11);
    if (!other_alive) _exit(12);
    _exit(0);
  }
  EXPECT_EQ(test::wait_child(harness, 20s), 0)
      << "11: daemon not killed with its parent, 12: non-daemon did not survive";
}

TEST(ProcessTest, DestroyingARunningDaemonKillsAndReapsIt) {
  pid_t pid = 0;
  {
    Process d([] { std::this_thread::sleep_for(30s); }, {.daemon = true});
    d.start();
    pid = d.pid();
  }
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);  // already reaped: not our child any more
  EXPECT_EQ(errno, ECHILD);
}

// A group of four: member i runs target(i) and is named "w-<i+1>"; exit statuses come back per
// member, and the first that failed is named by its index.
TEST(ProcessGroupTest, RunsTheTargetWithEachIndexAndReportsTheFirstFailure) {
  auto q = Queue::anonymous({.capacity = 8, .max_message_bytes = 64});
  ProcessGroup g(4,
                 [q](int i) mutable {
                   (void)q.put(std::to_string(i) + " " + current_process_name(), 5s);
                   return i == 2 || i == 3 ? 10 + i : 0;
                 },
                 {.name = "w"});
  EXPECT_EQ(g.size(), 4);
  EXPECT_EQ(g.started(), 0);
  EXPECT_EQ(g[0].name(), "w-1");
  g.start();
  EXPECT_EQ(g.started(), 4);
  ASSERT_TRUE(g.join(10s));
  EXPECT_TRUE(g.all_exited());
  EXPECT_EQ(g.succeeded(), 2);
  const auto f = g.first_failure();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->index, 2);
  EXPECT_EQ(f->exitcode, 12);
  EXPECT_EQ(g[3].exitcode(), 13);
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i)
    seen.insert(q.get_value<std::string>(1s).value_or("(none)"));
  EXPECT_EQ(seen, (std::set<std::string>{"0 w-1", "1 w-2", "2 w-3", "3 w-4"}));
  std::set<pid_t> pids;
  for (pid_t p : g.pids())
    pids.insert(p);
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_EQ(pids.count(0), 0u);
}

TEST(ProcessGroupTest, NoFailureWhenEveryMemberExitsZero) {
  ProcessGroup g(3, [](int) {});
  g.start();
  ASSERT_TRUE(g.join(10s));
  EXPECT_EQ(g.first_failure(), std::nullopt);
  EXPECT_EQ(g.succeeded(), 3);
  EXPECT_THROW(ProcessGroup(0, [](int) {}), InvalidArgument);
}

// join() gives up at its deadline; join_or_kill() then kills and reaps what still runs.
TEST(ProcessGroupTest, JoinOrKillKillsWhatIsStillRunningAfterTheGrace) {
  auto release = Event::anonymous();
  ProcessGroup g(3,
                 [release](int i) {
                   if (i == 0) return;  // exits at once
                   (void)release.wait(30s);
                 },
                 {.daemon = true});
  g.start();
  ASSERT_TRUE(g[0].join(10s));
  EXPECT_TRUE(g.any_exited());
  EXPECT_FALSE(g.join(50ms));
  EXPECT_FALSE(g.all_exited());
  EXPECT_FALSE(g.join_or_kill(50ms));
  EXPECT_TRUE(g.all_exited());
  EXPECT_EQ(g[0].exitcode(), 0);
  EXPECT_EQ(g[1].exitcode(), -SIGKILL);
  EXPECT_EQ(g[2].exitcode(), -SIGKILL);
  ASSERT_TRUE(g.first_failure().has_value());
  EXPECT_EQ(g.first_failure()->index, 1);
}

TEST(ProcessGroupTest, DestroyingARunningDaemonGroupKillsAndReapsEveryMember) {
  std::vector<pid_t> pids;
  {
    ProcessGroup g(2, [](int) { std::this_thread::sleep_for(30s); }, {.daemon = true});
    g.start();
    pids = g.pids();
  }
  for (pid_t pid : pids) {
    EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);  // already reaped: not our child any more
    EXPECT_EQ(errno, ECHILD);
  }
}

}  // namespace
}  // namespace mpt
