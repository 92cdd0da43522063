#include "mpt/event.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "../test_util.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

TEST(EventTest, SetClearIsSet) {
  auto e = Event::anonymous();
  EXPECT_FALSE(e.is_set());
  e.set();
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait(0ns));
  e.clear();
  EXPECT_FALSE(e.is_set());
}

TEST(EventTest, WaitTimesOut) {
  auto e = Event::anonymous();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(e.wait(50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_FALSE(e.wait(0ns));
  EXPECT_FALSE(e.wait(-5ms));
  EXPECT_FALSE(e.wait_until(std::chrono::steady_clock::now() - 1s));
}

TEST(EventTest, ChildWakesParentAcrossProcesses) {
  auto e = Event::anonymous();
  const pid_t parent = getpid();
  const pid_t waiter = static_cast<pid_t>(::syscall(SYS_gettid));
  pid_t pid = fork();
  if (pid == 0) {
    // Set it only once the parent is asleep in its wait: the case named is the case run.
    const bool asleep = test::wait_until_asleep_in(parent, waiter);
    e.set();
    _exit(asleep ? 0 : 1);
  }
  EXPECT_TRUE(e.wait(10s));
  EXPECT_EQ(test::wait_child(pid), 0);
}

TEST(EventTest, ParentReleasesManyWaitingChildren) {
  auto e = Event::anonymous();
  pid_t pids[4];
  for (auto& p : pids) {
    p = fork();
    if (p == 0) _exit(e.wait(10s) ? 0 : 1);  // blocks without a busy loop until set
  }
  for (pid_t p : pids)
    EXPECT_TRUE(test::wait_until_futex_asleep(p)) << "child " << p << " never waited";
  e.set();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p), 0);
}

TEST(EventTest, NamedEventIsSharedByName) {
  const std::string name = test::unique_name("event");
  auto a = Event::create(name);
  auto b = Event::open(name);
  a.set();
  EXPECT_TRUE(b.is_set());
  b.clear();
  EXPECT_FALSE(a.is_set());
}

}  // namespace
}  // namespace mpt
