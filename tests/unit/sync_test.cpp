#include "mpt/sync.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "../test_util.hpp"
#include "mpt/error.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

TEST(LockTest, LockTryLockUnlock) {
  auto l = Lock::anonymous();
  EXPECT_EQ(l.lock(), LockStatus::kAcquired);
  std::thread other([&] {
    EXPECT_EQ(l.try_lock(), LockStatus::kTimeout);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(l.try_lock_for(30ms), LockStatus::kTimeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  });
  other.join();
  l.unlock();
  EXPECT_EQ(l.try_lock(), LockStatus::kAcquired);
  l.unlock();
  { std::lock_guard<Lock> g(l); }  // BasicLockable
  LockGuard g(l);
  EXPECT_FALSE(g.recovered());
}

TEST(LockTest, UnlockByNonOwnerIsAnError) {
  auto l = Lock::anonymous();
  EXPECT_THROW(l.unlock(), SystemError);
}

TEST(LockTest, NamedLockIsSharedAndKindIsChecked) {
  const std::string name = test::unique_name("lock");
  auto a = Lock::create(name);
  auto b = Lock::open(name);
  ASSERT_EQ(a.lock(), LockStatus::kAcquired);
  std::thread t([&] { EXPECT_EQ(b.try_lock(), LockStatus::kTimeout); });
  t.join();
  a.unlock();
  EXPECT_THROW(Semaphore::open(name), IncompatibleSegment);
  EXPECT_THROW(Lock::create(name), AlreadyExists);
}

TEST(SemaphoreTest, CountsAndTimesOut) {
  auto s = Semaphore::anonymous(2);
  EXPECT_EQ(s.value(), 2);
  EXPECT_TRUE(s.try_acquire());
  s.acquire();
  EXPECT_FALSE(s.try_acquire());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.try_acquire_for(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  s.release(2);
  EXPECT_EQ(s.value(), 2);
  EXPECT_THROW(Semaphore::anonymous(~0u), InvalidArgument);
}

TEST(SemaphoreTest, NamedSemaphoreIsShared) {
  const std::string name = test::unique_name("sem");
  auto a = Semaphore::create(name, 1);
  auto b = Semaphore::open(name);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(a.try_acquire());
}

TEST(ConditionTest, WaitTimesOutAndNotifyWakes) {
  auto c = Condition::anonymous();
  ASSERT_EQ(c.lock(), LockStatus::kAcquired);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.wait(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  bool flag = false;
  const pid_t waiter = static_cast<pid_t>(::syscall(SYS_gettid));
  std::thread t([&] {
    // Notify only once the waiter sleeps in wait_for (which released the lock).
    EXPECT_TRUE(test::wait_until_asleep_in(getpid(), waiter));
    c.lock();
    flag = true;
    c.notify_all();
    c.unlock();
  });
  EXPECT_TRUE(c.wait_for([&] { return flag; }, 5s));
  c.unlock();
  t.join();
  const std::string name = test::unique_name("cond");
  auto n = Condition::create(name);
  EXPECT_NO_THROW(Condition::open(name));
}

}  // namespace
}  // namespace mpt
