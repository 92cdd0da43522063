// Lock, Semaphore, Condition and Queue shared by real processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/event.hpp"
#include "mpt/process.hpp"
#include "mpt/queue.hpp"
#include "mpt/sync.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

TEST(LockProcessesTest, OwnerKilledWhileHoldingIsReportedAndTheLockStaysUsable) {
  auto lock = Lock::anonymous();
  auto held = Event::anonymous();
  Process owner([&] {
    (void)lock.lock();
    held.set();
    std::this_thread::sleep_for(30s);
  });
  owner.start();
  ASSERT_TRUE(held.wait(10s));
  EXPECT_EQ(lock.try_lock(), LockStatus::kTimeout);
  owner.kill();
  ASSERT_TRUE(owner.join(10s));
  EXPECT_EQ(owner.exitcode(), -SIGKILL);
  EXPECT_EQ(lock.try_lock_for(5s), LockStatus::kOwnerDied);
  lock.unlock();
  // Usable again, by this process and by another one.
  EXPECT_EQ(lock.try_lock_for(1s), LockStatus::kAcquired);
  lock.unlock();
  Process next([&] { return lock.try_lock_for(5s) == LockStatus::kAcquired ? 0 : 1; });
  next.start();
  ASSERT_TRUE(next.join(10s));
  EXPECT_EQ(next.exitcode(), 0);
}

TEST(LockProcessesTest, LockGuardReportsRecovery) {
  const std::string name = test::unique_name("lock-guard");
  auto lock = Lock::create(name);
  Process owner([&] {
    auto mine = Lock::open(name);
    (void)mine.lock();
    _exit(0);  // exits holding it
  });
  owner.start();
  ASSERT_TRUE(owner.join(10s));
  LockGuard g(lock);
  EXPECT_TRUE(g.recovered());
}

// Four processes increment a plain (non-atomic) counter under the lock.
TEST(LockProcessesTest, MutualExclusionAcrossProcesses) {
  auto lock = Lock::anonymous();
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* counter = static_cast<volatile long*>(mem);
  *counter = 0;
  std::vector<Process> ps;
  for (int i = 0; i < 4; ++i)
    ps.emplace_back([&] {
      for (int k = 0; k < 20000; ++k) {
        LockGuard g(lock);
        *counter = *counter + 1;
      }
    });
  for (auto& p : ps)
    p.start();
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(30s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(*counter, 80000);
  munmap(mem, 4096);
}

TEST(SemaphoreProcessesTest, NeverMoreHoldersThanUnits) {
  auto sem = Semaphore::anonymous(2);
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* inside = new (mem) std::atomic<int>(0);
  auto* most = new (static_cast<char*>(mem) + 64) std::atomic<int>(0);
  std::vector<Process> ps;
  for (int i = 0; i < 5; ++i)
    ps.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        if (!sem.try_acquire_for(10s)) return 1;
        const int now = inside->fetch_add(1) + 1;
        int m = most->load();
        while (now > m && !most->compare_exchange_weak(m, now)) {
        }
        std::this_thread::sleep_for(200us);
        inside->fetch_sub(1);
        sem.release();
      }
      return 0;
    });
  for (auto& p : ps)
    p.start();
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(30s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_LE(most->load(), 2);
  EXPECT_GE(most->load(), 1);
  EXPECT_EQ(sem.value(), 2);
  munmap(mem, 4096);
}

TEST(ConditionProcessesTest, ChildNotifiesParent) {
  auto cond = Condition::anonymous();
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* stage = static_cast<volatile int*>(mem);
  *stage = 0;
  const pid_t parent = getpid();
  Process child([&] {
    // Notify only once the parent sleeps in its wait (which released the lock).
    if (!test::wait_until_asleep_in(parent, parent)) return 1;
    (void)cond.lock();
    *stage = 1;
    cond.notify_all();
    cond.unlock();
    return 0;
  });
  child.start();
  ASSERT_EQ(cond.lock(), LockStatus::kAcquired);
  EXPECT_TRUE(cond.wait_for([&] { return *stage == 1; }, 10s));
  cond.unlock();
  ASSERT_TRUE(child.join(10s));
  EXPECT_EQ(child.exitcode(), 0) << "the parent was never seen waiting";
  munmap(mem, 4096);
}

// Two producers and two consumers: every message arrives exactly once.
TEST(QueueProcessesTest, TwoProducersTwoConsumersLoseAndDuplicateNothing) {
  constexpr int kPerProducer = 20000;
  auto q = Queue::anonymous({.capacity = 16, .max_message_bytes = 64});
  auto out = Queue::anonymous({.capacity = 4, .max_message_bytes = 8 * 2 * kPerProducer});
  std::vector<Process> ps;
  for (int p = 0; p < 2; ++p)
    ps.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const std::uint64_t v = std::uint64_t(p) << 32 | i;
        if (!q.put_value(v, 10s)) return 1;
      }
      return 0;
    });
  for (int c = 0; c < 2; ++c)
    ps.emplace_back([&] {
      std::vector<std::uint64_t> got;
      while (auto v = q.get_value<std::uint64_t>(10s))
        got.push_back(*v);  // ends when the queue is closed and empty
      return out.put_value(got, 10s) ? 0 : 1;
    });
  for (auto& p : ps)
    p.start();
  ASSERT_TRUE(ps[0].join(30s));
  ASSERT_TRUE(ps[1].join(30s));
  q.close();
  std::vector<std::uint64_t> all;
  for (int c = 0; c < 2; ++c) {
    auto part = out.get_value<std::vector<std::uint64_t>>(30s);
    ASSERT_TRUE(part);
    all.insert(all.end(), part->begin(), part->end());
  }
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(30s));
    EXPECT_EQ(p.exitcode(), 0) << p.name();
  }
  ASSERT_EQ(all.size(), 2u * kPerProducer);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a duplicate";
  for (int p = 0; p < 2; ++p)
    for (int i = 0; i < kPerProducer; i += 997)
      EXPECT_TRUE(std::binary_search(all.begin(), all.end(), std::uint64_t(p) << 32 | i));
}

// A consumer killed while blocked in get (and producers killed in put) must not wedge the queue.
TEST(QueueProcessesTest, KilledUsersDoNotWedgeTheQueue) {
  auto q = Queue::anonymous({.capacity = 2, .max_message_bytes = 64});
  std::vector<Process> ps;
  for (int i = 0; i < 3; ++i)
    ps.emplace_back([&] {
      for (;;)
        (void)q.put("spam", 10s);
    });
  for (auto& p : ps)
    p.start();
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(q.get(5s));
  for (auto& p : ps)
    p.kill();
  for (auto& p : ps)
    ASSERT_TRUE(p.join(10s));
  while (q.get(0ns)) {
  }
  // A consumer asleep in get() on the empty queue, killed there.
  Process dead([&] { (void)q.get(30s); });
  dead.start();
  ASSERT_TRUE(test::wait_until_futex_asleep(dead.pid())) << "the consumer never blocked in get()";
  dead.kill();
  ASSERT_TRUE(dead.join(10s));
  EXPECT_EQ(dead.exitcode(), -SIGKILL);
  // The next consumer to block is woken by the next message: the dead one swallows nothing.
  Process next([&] { return q.get_value<std::string>(10s) == "after" ? 0 : 1; });
  next.start();
  ASSERT_TRUE(test::wait_until_futex_asleep(next.pid())) << "the consumer never blocked in get()";
  EXPECT_TRUE(q.put("after", 1s));
  ASSERT_TRUE(next.join(10s));
  EXPECT_EQ(next.exitcode(), 0) << "the message put after the deaths did not reach the consumer";
  EXPECT_TRUE(q.put("again", 1s));
  EXPECT_EQ(q.get_value<std::string>(1s), "again");
}

TEST(QueueProcessesTest, NamedQueueBetweenUnrelatedHandles) {
  const std::string name = test::unique_name("queue-proc");
  auto q = Queue::create(name, {.capacity = 4, .max_message_bytes = 32});
  Process child([&] {
    auto mine = Queue::open(name);
    return mine.put("from child", 5s) ? 0 : 1;
  });
  child.start();
  EXPECT_EQ(q.get_value<std::string>(10s), "from child");
  ASSERT_TRUE(child.join(10s));
  EXPECT_EQ(child.exitcode(), 0);
}

}  // namespace
}  // namespace mpt
