// Throttle in one process: the arithmetic through the public "now" twins, options, bad input,
// and blocking behaviour with threads (multi-process behaviour is in tests/integration).
#include "mpt/throttle.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "throttle_config.hpp"
#include "throttle_shared.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ThrottleOptions with_hardcap(Hardcap h) {
  ThrottleOptions o;
  o.hardcap = h;
  return o;
}

TEST(ThrottleTest, BadConfigurationThrowsInvalidArgument) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(Throttle(0), InvalidArgument);
  EXPECT_THROW(Throttle(-4), InvalidArgument);
  EXPECT_THROW(Throttle(4, std::chrono::duration<double>(0)), InvalidArgument);
  EXPECT_THROW(Throttle(4, std::chrono::duration<double>(-1)), InvalidArgument);
  EXPECT_THROW(Throttle(4, std::chrono::duration<double>(nan)), InvalidArgument);
  EXPECT_THROW(Throttle(4, std::chrono::duration<double>(inf)), InvalidArgument);
  EXPECT_THROW(Throttle(4, std::chrono::duration<double>(1e12)), InvalidArgument);
  EXPECT_THROW(Throttle(2'000'000'000), InvalidArgument);
  for (double rf : {0.0, -0.01, nan, inf, 2.0, 0.0001}) {
    ThrottleOptions o;
    o.rf_rate = std::chrono::duration<double>(rf);
    EXPECT_THROW(Throttle(4, 1s, o), InvalidArgument) << "rf_rate " << rf;
  }
  for (double c : {nan, inf, 1.0, -1.0, 5.0}) {
    ThrottleOptions o;
    o.correction = c;
    EXPECT_THROW(Throttle(4, 1s, o), InvalidArgument) << "correction " << c;
  }
  ThrottleOptions o;
  o.spin_lead = -1ns;
  EXPECT_THROW(Throttle(4, 1s, o), InvalidArgument);
  o.spin_lead = 11ms;
  EXPECT_THROW(Throttle(4, 1s, o), InvalidArgument);
  ThrottleOptions bad_cap;
  bad_cap.hardcap = static_cast<Hardcap>(7);
  EXPECT_THROW(Throttle(4, 1s, bad_cap), InvalidArgument);
  EXPECT_THROW(Throttle::create("", 4), InvalidArgument);
  EXPECT_THROW(Throttle::create("a/b", 4), InvalidArgument);
  EXPECT_THROW(Throttle::create(std::string(300, 'n'), 4), InvalidArgument);
  try {
    Throttle(4, std::chrono::duration<double>(nan));
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("per"), std::string::npos) << e.what();
  }
  Throttle t(4);
  EXPECT_THROW(t.set_rate(0, 1s), InvalidArgument);
  EXPECT_THROW(t.set_rate(4, std::chrono::duration<double>(nan)), InvalidArgument);
}

TEST(ThrottleTest, NothingBeforeStartOneUnitAtStart) {
  Throttle t(4, 1s);
  const auto t0 = Clock::now();
  EXPECT_EQ(t.state(), ThrottleState::kCreated);
  EXPECT_FALSE(t.has_fuel(1, t0));
  EXPECT_EQ(t.available(t0), 0);
  t.start(t0);
  EXPECT_EQ(t.available(t0), 1);
  EXPECT_TRUE(t.has_fuel(1, t0));
  EXPECT_FALSE(t.has_fuel(1, t0));
  EXPECT_FALSE(t.has_fuel(1, t0 + 249ms));
  EXPECT_TRUE(t.has_fuel(1, t0 + 250ms));
  EXPECT_EQ(t.total(), 2u);
}

TEST(ThrottleTest, LimitBurstsUpToMaxN) {
  Throttle t(4, 1s, with_hardcap(Hardcap::kLimit));
  const auto t0 = Clock::now();
  t.start(t0);
  const auto later = t0 + 10s;
  EXPECT_EQ(t.available(later), 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(t.has_fuel(1, later)) << i;
  EXPECT_FALSE(t.has_fuel(1, later));
}

TEST(ThrottleTest, OneNeverBursts) {
  Throttle t(4, 1s, with_hardcap(Hardcap::kOne));
  const auto t0 = Clock::now();
  t.start(t0);
  const auto later = t0 + 10s;
  EXPECT_EQ(t.available(later), 1);
  EXPECT_TRUE(t.has_fuel(1, later));
  EXPECT_FALSE(t.has_fuel(1, later));
  EXPECT_FALSE(t.has_fuel(1, later + 249ms));
  EXPECT_TRUE(t.has_fuel(1, later + 250ms));
}

TEST(ThrottleTest, NoneAccumulatesUnusedFuel) {
  Throttle t(4, 1s, with_hardcap(Hardcap::kNone));
  const auto t0 = Clock::now();
  t.start(t0);
  EXPECT_EQ(t.available(t0 + 10s), 41);
  EXPECT_TRUE(t.has_fuel(41, t0 + 10s));
  EXPECT_FALSE(t.has_fuel(1, t0 + 10s));
}

TEST(ThrottleTest, ReserveRespectsDeadlineAndOrder) {
  Throttle t(10, 1s, with_hardcap(Hardcap::kOne));  // 100 ms apart
  const auto t0 = Clock::now();
  t.start(t0);
  std::vector<Clock::time_point> dues;
  for (int i = 0; i < 5; ++i) {
    auto due = t.reserve(1, t0, Clock::time_point::max());
    ASSERT_TRUE(due);
    dues.push_back(*due);
  }
  for (int i = 1; i < 5; ++i)
    EXPECT_EQ(dues[i] - dues[i - 1], 100ms) << "served in the order asked";
  // The next slot is at t0 + 500 ms: a deadline before it takes nothing.
  EXPECT_FALSE(t.reserve(1, t0, t0 + 499ms));
  EXPECT_FALSE(t.reserve(1, t0, t0 + 499ms));
  auto due = t.reserve(1, t0, t0 + 500ms);
  ASSERT_TRUE(due);
  EXPECT_EQ(*due - t0, 500ms);
}

TEST(ThrottleTest, TakeNAtOnce) {
  Throttle t(4, 1s);
  const auto t0 = Clock::now();
  t.start(t0);
  EXPECT_FALSE(t.has_fuel(2, t0)) << "only one unit at start";
  EXPECT_TRUE(t.has_fuel(4, t0 + 10s));
  EXPECT_EQ(t.total(), 4u) << "n units count n emissions";
  auto due = t.reserve(3, t0 + 10s, Clock::time_point::max());
  ASSERT_TRUE(due);
  EXPECT_EQ(*due - (t0 + 10s), 750ms);
  EXPECT_FALSE(t.has_fuel(0));
  EXPECT_FALSE(t.has_fuel(-1));
  EXPECT_FALSE(t.await_fuel(0, 1s));
}

TEST(ThrottleTest, CorrectionShortensTheInterval) {
  ThrottleOptions o;
  o.correction = 0.1;
  Throttle t(4, 1s, o);
  EXPECT_EQ(t.interval(), 225ms);
  EXPECT_EQ(t.snapshot().correction_source, "explicit");
  Throttle plain(4, 1s);
  EXPECT_EQ(plain.interval(), 250ms);
  EXPECT_EQ(plain.snapshot().correction_source, "none");
  ThrottleOptions slower;
  slower.correction = -0.2;
  EXPECT_EQ(Throttle(4, 1s, slower).interval(), 300ms);
}

TEST(ThrottleTest, SetRateRescalesQueuedReservations) {
  Throttle t(4, 1s, with_hardcap(Hardcap::kOne));  // 250 ms
  const auto t0 = Clock::now();
  t.start(t0);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(t.reserve(1, t0, Clock::time_point::max()));
  // Queue: t0, t0+250, t0+500; next free t0+750. Doubling the rate at t0 halves the distances.
  t.set_rate(8, 1s, t0);
  EXPECT_EQ(t.interval(), 125ms);
  auto due = t.reserve(1, t0, Clock::time_point::max());
  ASSERT_TRUE(due);
  EXPECT_EQ(*due - t0, 375ms);
  EXPECT_EQ(t.snapshot().max_n, 8);
  // Slower again, from a later point: the distance beyond `at` is stretched.
  t.set_rate(1, 1s, t0 + 100ms);  // next free was t0+500 -> 100 + 400*8
  due = t.reserve(1, t0 + 100ms, Clock::time_point::max());
  ASSERT_TRUE(due);
  EXPECT_EQ(*due - t0, 100ms + 3200ms);
}

TEST(ThrottleTest, SetRateWakesAndRetimesASleepingWaiter) {
  Throttle t(1, 10s, with_hardcap(Hardcap::kOne));
  t.start();
  ASSERT_TRUE(t.has_fuel());  // the first unit; the next is 10 s away
  std::atomic<bool> done{false};
  test::TidThread waiter([&] {
    EXPECT_TRUE(t.await_fuel());
    done = true;
  });
  EXPECT_TRUE(waiter.wait_until_futex_asleep()) << "the waiter never went to sleep on its slot";
  EXPECT_FALSE(done);
  const auto t_set = Clock::now();
  t.set_rate(100, 1s);  // the waiter's slot moves from ~9.9 s away to ~10 ms away
  waiter.join();
  EXPECT_TRUE(done);
  EXPECT_LT(Clock::now() - t_set, 2s) << "the waiter was stranded on the old schedule";
}

TEST(ThrottleTest, AwaitTimeoutThatCannotBeMetReturnsAtOnceTakingNothing) {
  Throttle t(1, 10s);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  const auto t0 = Clock::now();
  EXPECT_FALSE(t.await_fuel(100ms));
  EXPECT_LT(Clock::now() - t0, 50ms) << "should not sleep for a slot it cannot have";
  EXPECT_FALSE(t.await_fuel_until(Clock::now() + 1s));
  // Nothing was taken: the next free slot is still the first one after the start.
  auto due = t.reserve(1, Clock::now(), Clock::time_point::max());
  ASSERT_TRUE(due);
  EXPECT_LE(*due - t0, 10s);
  EXPECT_GT(*due - t0, 9s);
}

// "A zero timeout is has_fuel()": fuel that is there is taken, none that is not (the deadline
// "now" must not have passed by the time the slot is reserved).
TEST(ThrottleTest, AZeroTimeoutTakesFuelThatIsThere) {
  for (const Hardcap h : {Hardcap::kLimit, Hardcap::kOne, Hardcap::kNone}) {
    Throttle t(2, 10s, with_hardcap(h));
    EXPECT_FALSE(t.await_fuel(0ns)) << to_string(h) << ": before start()";
    t.start();
    EXPECT_TRUE(t.await_fuel(0ns)) << to_string(h);
    EXPECT_FALSE(t.await_fuel(1, std::chrono::nanoseconds(-5))) << to_string(h) << ": none left";
    EXPECT_EQ(t.total(), 1u) << to_string(h);
  }
}

TEST(ThrottleTest, AwaitWithTimeoutThatCanBeMetWaits) {
  Throttle t(20, 1s, with_hardcap(Hardcap::kOne));  // 50 ms
  t.start();
  ASSERT_TRUE(t.has_fuel());
  const auto t0 = Clock::now();
  EXPECT_TRUE(t.await_fuel(1s));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 40ms);
  EXPECT_LT(waited, 1s);
}

TEST(ThrottleTest, AwaitBeforeStartWaitsForStart) {
  Throttle t(100, 1s);
  std::atomic<bool> got{false};
  test::TidThread w([&] { got = t.await_fuel(); });
  EXPECT_TRUE(w.wait_until_futex_asleep()) << "the waiter never went to sleep before the start";
  EXPECT_FALSE(got);
  t.start();
  w.join();
  EXPECT_TRUE(got);
  Throttle t2(100, 1s);
  EXPECT_FALSE(t2.await_fuel(20ms)) << "not started within the timeout";
}

TEST(ThrottleTest, StopReleasesWaitersAndKillFlag) {
  Throttle t(1, 100s);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  EXPECT_FALSE(t.kill_flag().is_set());
  std::vector<std::unique_ptr<test::TidThread>> ws;
  std::atomic<int> released{0};
  for (int i = 0; i < 3; ++i) {
    ws.push_back(std::make_unique<test::TidThread>([&] {
      if (!t.await_fuel()) ++released;
    }));
  }
  for (auto& w : ws)
    EXPECT_TRUE(w->wait_until_futex_asleep()) << "a waiter never went to sleep";
  const auto t0 = Clock::now();
  t.stop();
  for (auto& w : ws)
    w->join();
  EXPECT_EQ(released, 3);
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_TRUE(t.kill_flag().is_set());
  EXPECT_FALSE(t.await_fuel());
  EXPECT_FALSE(t.has_fuel());
  EXPECT_EQ(t.state(), ThrottleState::kStopped);
}

// The check counts its calls and fires at the third: a wait that would last 100 s (or for ever,
// before the start) gives up after about three periods.
TEST(ThrottleTest, AnInterruptGivesUpTheWaitOnItsCheck) {
  struct Counter {
    std::atomic<int> calls{0};
  };
  auto check = [](void* c) { return ++static_cast<Counter*>(c)->calls >= 3; };
  for (const bool started : {false, true}) {
    Throttle t(1, 100s);
    if (started) {
      t.start();
      ASSERT_TRUE(t.has_fuel());
    }
    Counter counter;
    const Interrupt intr{check, &counter, 5ms};
    EXPECT_FALSE(t.await_grant(Throttle::TimePoint::max(), 1, intr)) << "started " << started;
    EXPECT_EQ(counter.calls, 3) << "started " << started;
    EXPECT_FALSE(t.kill_flag().is_set()) << "an interrupt is not a stop";
  }
  // A check that never fires changes nothing: the unit is granted at once.
  Throttle t(10, 1s);
  t.start();
  Counter counter;
  const Interrupt never{[](void*) { return false; }, &counter, 1ms};
  EXPECT_TRUE(t.await_grant(Throttle::TimePoint::max(), 1, never));
}

TEST(ThrottleTest, StatsSurviveStopAndStart) {
  Throttle t(1000, 1s);
  t.start();
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(t.await_fuel(1s));
  std::this_thread::sleep_for(20ms);
  const Summary s1 = t.stop();
  EXPECT_EQ(s1.total, 5u);
  EXPECT_GT(s1.runtime.count(), 0.015);
  EXPECT_NEAR(s1.mean_rate_per_sec, 5 / s1.runtime.count(), 1e-6);
  EXPECT_NEAR(s1.mean_interval_s, s1.runtime.count() / 5, 1e-9);
  std::this_thread::sleep_for(50ms);  // stopped time does not count
  t.start();
  EXPECT_FALSE(t.kill_flag().is_set());
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(t.await_fuel(1s));
  const auto [runtime, total, mean_interval_s, mean_rate] = t.stop();
  EXPECT_EQ(total, 10u);
  EXPECT_GT(runtime.count(), s1.runtime.count());
  EXPECT_LT(runtime.count(), s1.runtime.count() + 0.045);
  EXPECT_GT(mean_rate, 0);
  EXPECT_GT(mean_interval_s, 0);
}

TEST(ThrottleTest, ManualEmitWhenAutoEmitIsOff) {
  ThrottleOptions o;
  o.auto_emit = false;
  Throttle t(1000, 1s, o);
  t.start();
  EXPECT_TRUE(t.has_fuel());
  EXPECT_TRUE(t.await_fuel(1s));
  EXPECT_EQ(t.total(), 0u) << "auto_emit=false: taking fuel counts nothing";
  t.emit();
  t.emit();
  EXPECT_EQ(t.total(), 2u);
}

TEST(ThrottleTest, LoHiAndHiLoFromEmissionIntervals) {
  ThrottleOptions o;
  o.auto_emit = false;
  Throttle t(1000, 1s, o);
  const auto t0 = Clock::now();
  EXPECT_EQ(t.lo_hi().interval_s, 0);
  t.emit(t0);
  t.emit(t0 + 10ms);
  t.emit(t0 + 30ms);
  t.emit(t0 + 25ms);  // out of order: no interval of its own
  t.emit(t0 + 80ms);
  EXPECT_NEAR(t.lo_hi().interval_s, 0.010, 1e-9);
  EXPECT_NEAR(t.lo_hi().rate_per_sec, 100, 1e-6);
  EXPECT_NEAR(t.hi_lo().interval_s, 0.050, 1e-9);
  EXPECT_NEAR(t.hi_lo().rate_per_sec, 20, 1e-6);
  EXPECT_EQ(t.total(), 5u);
}

TEST(ThrottleTest, LatestCountsTheLastSecond) {
  ThrottleOptions o;
  o.auto_emit = false;
  Throttle t(1000, 1s, o);
  const auto now = Clock::now();
  for (int i = 0; i < 50; ++i)
    t.emit(now - 500ms + i * 1ms);
  for (int i = 0; i < 30; ++i)
    t.emit(now - 3s);  // too old
  const Rate r = t.latest();
  EXPECT_NEAR(r.rate_per_sec, 50, 1e-9);
  EXPECT_NEAR(r.interval_s, 0.02, 1e-12);
}

TEST(ThrottleTest, LatestIgnoresEmissionsOlderThanItsRing) {
  ThrottleOptions o;
  o.auto_emit = false;
  Throttle t(1000, 1s, o);
  const auto now = Clock::now();
  t.emit(now - 200ms);
  // Lands in the ring slot that now holds the bucket of now - 200 ms: it must not be counted there.
  t.emit(now - 200ms - 1010ms);
  t.emit(now - 200ms - 3030ms);
  EXPECT_NEAR(t.latest().rate_per_sec, 1, 1e-9);
  EXPECT_EQ(t.total(), 3u);
}

TEST(ThrottleTest, MonitorOnlyNeverWaits) {
  ThrottleOptions o;
  o.as_throttle = false;
  Throttle t(1, 100s, o);
  t.start();
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(t.await_fuel(0ns));
  EXPECT_EQ(t.total(), 100u);
}

TEST(ThrottleTest, ThrottleOnlyCountsNothing) {
  ThrottleOptions o;
  o.as_monitor = false;
  Throttle t(1000, 1s, o);
  t.start();
  EXPECT_TRUE(t.await_fuel(1s));
  t.emit();
  EXPECT_EQ(t.total(), 0u);
  EXPECT_FALSE(t.snapshot().as_monitor);
}

TEST(ThrottleTest, AutoCalibrateDefaultFollowsTheSeed) {
  EXPECT_FALSE(Throttle(48, 1s).snapshot().auto_calibrate);
  EXPECT_TRUE(Throttle(49, 1s).snapshot().auto_calibrate);
  ThrottleOptions o;
  o.auto_calibrate = false;
  EXPECT_FALSE(Throttle(1000, 1s, o).snapshot().auto_calibrate);
}

TEST(ThrottleTest, ThreadsAreServedInTheOrderTheyAsked) {
  Throttle t(20, 1s, with_hardcap(Hardcap::kOne));  // 50 ms apart
  t.start();
  ASSERT_TRUE(t.has_fuel());
  std::mutex m;
  std::vector<int> order;
  std::vector<std::unique_ptr<test::TidThread>> ws;
  for (int i = 0; i < 4; ++i) {
    ws.push_back(std::make_unique<test::TidThread>([&, i] {
      EXPECT_TRUE(t.await_fuel(5s));
      std::lock_guard<std::mutex> g(m);
      order.push_back(i);
    }));
    // Ask in order 0, 1, 2, 3: a waiter sleeps only after it has reserved its slot.
    EXPECT_TRUE(ws.back()->wait_until_futex_asleep()) << "waiter " << i << " never slept";
  }
  for (auto& w : ws)
    w->join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(ThrottleTest, SnapshotHasEverything) {
  const std::string name = test::unique_name("snap");
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  o.spin_lead = 20us;
  auto t = Throttle::create(name, 100, 2s, o);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  const Snapshot s = t.snapshot();
  EXPECT_EQ(s.name, name);
  EXPECT_EQ(s.id, t.id());
  EXPECT_EQ(s.max_n, 100);
  EXPECT_EQ(s.per_s, 2.0);
  EXPECT_EQ(s.hardcap, Hardcap::kOne);
  EXPECT_EQ(s.interval_ns, 20'000'000);
  EXPECT_EQ(s.spin_lead_ns, 20'000);
  EXPECT_EQ(s.state, ThrottleState::kRunning);
  EXPECT_EQ(s.total, 1u);
  EXPECT_EQ(s.creator_pid, getpid());
  EXPECT_NEAR(s.rf_rate_s, 0.01, 1e-12);
}

TEST(ThrottleTest, NamedThrottleOpenedTwiceSharesState) {
  const std::string name = test::unique_name("named");
  auto a = Throttle::create(name, 4, 1s);
  auto b = Throttle::open(name);
  EXPECT_EQ(a.id(), b.id());
  a.start();
  EXPECT_TRUE(b.has_fuel());
  EXPECT_FALSE(a.has_fuel());
  EXPECT_EQ(a.total(), 1u);
  EXPECT_THROW(Throttle::create(name, 4, 1s), AlreadyExists);
  EXPECT_THROW(Throttle::open(test::unique_name("nope")), NotFound);
}

}  // namespace
}  // namespace mpt

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(ThrottleEdgeTest, AWaiterThatMissedStopAndStartDoesNotKeepItsOldSlot) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  Throttle t(1, 2s, o);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  std::atomic<int> result{-1};
  test::TidThread waiter([&] { result = t.await_fuel() ? 1 : 0; });  // slot 2 s away
  EXPECT_TRUE(waiter.wait_until_futex_asleep()) << "the waiter never went to sleep on its slot";
  t.stop();
  t.start();  // both before the waiter runs again: its slot belonged to the old run
  waiter.join();
  EXPECT_EQ(result, 0);
}

TEST(ThrottleEdgeTest, HugeNTakesNothing) {
  Throttle t(4, 1s);
  const auto t0 = Clock::now();
  t.start(t0);
  ASSERT_TRUE(t.has_fuel(1, t0));
  EXPECT_FALSE(t.has_fuel(36893488148LL, t0 + 1s));
  EXPECT_FALSE(t.has_fuel(INT64_MAX, t0 + 1s));
  EXPECT_FALSE(t.reserve(INT64_MAX / 2, t0, Clock::time_point::max()));
  EXPECT_EQ(t.total(), 1u);
  EXPECT_TRUE(t.has_fuel(4, t0 + 10s)) << "the schedule was not moved";
}

TEST(ThrottleEdgeTest, OutOfRangeTimestampsDoNotHideLaterEmissions) {
  ThrottleOptions o;
  o.auto_emit = false;
  Throttle t(1000, 1s, o);
  const auto now = Clock::now();
  t.emit(now + 1h);
  t.emit(Clock::time_point::max());
  t.emit(Clock::time_point::min());
  t.emit(now - 20ms);
  t.emit(now - 10ms);
  EXPECT_EQ(t.total(), 5u);
  EXPECT_NEAR(t.lo_hi().interval_s, 0.010, 1e-9);
}

TEST(ThrottleEdgeTest, ExtremeDeadlinesDoNotOverflow) {
  Throttle t(1, 100s);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  const auto t0 = Clock::now();
  EXPECT_FALSE(t.await_fuel_until(Clock::time_point::min()));
  EXPECT_FALSE(t.reserve(1, Clock::now(), Clock::time_point::min()));
  EXPECT_LT(Clock::now() - t0, 50ms);
  EXPECT_FALSE(t.has_fuel(1, Clock::time_point::min()));
}

TEST(ThrottleEdgeTest, ManyRateChangesDuringOneSleepStillFollowTheNewSchedule) {
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  Throttle t(1, 1s, o);
  t.start();
  ASSERT_TRUE(t.has_fuel());
  std::atomic<bool> done{false};
  Clock::time_point got;
  test::TidThread waiter([&] {
    EXPECT_TRUE(t.await_fuel());
    got = Clock::now();
    done = true;
  });
  EXPECT_TRUE(waiter.wait_until_futex_asleep()) << "the waiter never went to sleep on its slot";
  const auto t0 = Clock::now();
  for (int i = 0; i < 40; ++i)
    t.set_rate(1 + i % 3, 1s);
  t.set_rate(20, 1s);  // 50 ms
  waiter.join();
  EXPECT_LT(got - t0, 500ms) << "stranded on the 1 s schedule";
}

}  // namespace
}  // namespace mpt

namespace mpt {
namespace {

// open() checks hardcap one's gate like the rest of the body: a step longer than the segment's
// own ring, or a ring size other than the one the segment was made with, is refused.
void write_at(const std::string& name, off_t at, const void* data, std::size_t n) {
  const int fd = ::open(Segment::path_for(name).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, data, n, at), static_cast<ssize_t>(n));
  ::close(fd);
}

// The segment names contain "gate": the reasons are matched after "is corrupt: ".
void expect_refused(const std::string& name, const char* what, const std::string& why) {
  try {
    (void)Throttle::open(name);
    ADD_FAILURE() << "opened a throttle with " << what;
  } catch (const IncompatibleSegment& e) {
    EXPECT_NE(std::string(e.what()).find("is corrupt: " + why), std::string::npos) << e.what();
  }
}

TEST(ThrottleOpenTest, RejectsACorruptGate) {
  const std::string name = test::unique_name("gate");
  ThrottleOptions o;
  o.hardcap = Hardcap::kOne;
  Throttle t = Throttle::create(name, 100, std::chrono::seconds(1), o);
  EXPECT_NO_THROW(Throttle::open(name));
  const std::int64_t ring = std::int64_t{1} << detail::kGateMinBits;  // 100/s: the smallest ring
  const off_t m_at =
      Segment::kBodyOffset + offsetof(Throttle::Shared, cfg) + offsetof(detail::ConfigSlot, gate_m);
  const std::int64_t fits = ring, bad = ring + 1;  // one more than this segment's ring holds
  write_at(name, m_at, &fits, sizeof fits);
  EXPECT_NO_THROW(Throttle::open(name));
  write_at(name, m_at, &bad, sizeof bad);
  expect_refused(name, "a gate step longer than its ring", "bad gate for hardcap one");
}

TEST(ThrottleOpenTest, RejectsAGateRingOfAnotherSize) {
  const off_t bits_at = Segment::kBodyOffset + offsetof(Throttle::Shared, gate_bits);
  for (Hardcap h : {Hardcap::kOne, Hardcap::kLimit}) {
    const std::string name = test::unique_name("gatebits");
    ThrottleOptions o;
    o.hardcap = h;
    Throttle t = Throttle::create(name, 100, std::chrono::seconds(1), o);
    // One: none, one size up (the segment is not that long), out of range; limit: any ring.
    const std::vector<std::uint32_t> bad =
        h == Hardcap::kOne ? std::vector<std::uint32_t>{0, detail::kGateMinBits + 1, 64}
                           : std::vector<std::uint32_t>{detail::kGateMinBits};
    for (std::uint32_t b : bad) {
      write_at(name, bits_at, &b, sizeof b);
      const bool in_range = h == Hardcap::kOne && b >= detail::kGateMinBits && b <= 16;
      expect_refused(name, "a gate ring of another size",
                     in_range ? "size does not match its rings" : "bad gate ring");
    }
  }
}

// hardcap one's gate spans max_n grants while the ring holds them; beyond it q steps of m grants,
// with q * m <= max_n (the promise) and q * m > max_n - q (at most q - 1 grants a window lost).
TEST(GateShapeTest, SpansMaxNWhileTheRingHoldsIt) {
  using detail::compute_gate;
  using detail::compute_gate_bits;
  EXPECT_EQ(compute_gate_bits(Hardcap::kLimit, 100000), 0u);
  EXPECT_EQ(compute_gate_bits(Hardcap::kNone, 100000), 0u);
  EXPECT_EQ(compute_gate_bits(Hardcap::kOne, 4), detail::kGateMinBits);
  EXPECT_EQ(compute_gate_bits(Hardcap::kOne, 10000), 14u);
  EXPECT_EQ(compute_gate_bits(Hardcap::kOne, 16384), 14u);
  EXPECT_EQ(compute_gate_bits(Hardcap::kOne, 16385), 15u);
  EXPECT_EQ(compute_gate_bits(Hardcap::kOne, 100000), detail::kGateMaxBits);
  EXPECT_EQ(compute_gate(Hardcap::kLimit, 100, 1.0, 10).m, 0);

  const auto a = compute_gate(Hardcap::kOne, 10000, 1.0, 14);
  EXPECT_EQ(a.m, 10000);
  EXPECT_EQ(a.span_ns, 1'000'000'000);
  const auto b = compute_gate(Hardcap::kOne, 97, 0.25, 10);  // a prime: still one step of 97
  EXPECT_EQ(b.m, 97);
  EXPECT_EQ(b.span_ns, 250'000'000);
  // The smallest ring (made at up to 4,096/s) after a set_rate() to 100,000/s: q = 25 steps.
  const auto c = compute_gate(Hardcap::kOne, 100000, 1.0, detail::kGateMinBits);
  EXPECT_EQ(c.m, 4000);
  EXPECT_EQ(c.span_ns, 40'000'000);
  for (std::int64_t max_n : {65536, 65537, 100000, 100003, 131071, 1'000'000, 999'999'937}) {
    const auto g = compute_gate(Hardcap::kOne, max_n, 3.0, detail::kGateMaxBits);
    const std::int64_t q = (max_n + 65535) / 65536;
    EXPECT_GE(g.m, 1) << max_n;
    EXPECT_LE(g.m, 65536) << max_n;
    EXPECT_LE(q * g.m, max_n) << max_n;
    EXPECT_GT(q * g.m, max_n - q) << max_n;
    EXPECT_GE(static_cast<double>(q * g.span_ns), 3e9) << max_n;
    EXPECT_LT(static_cast<double>(q * (g.span_ns - 1)), 3e9) << max_n;
  }
}

}  // namespace
}  // namespace mpt
