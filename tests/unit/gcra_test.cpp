// The GCRA arithmetic with an injected clock: no sleeping, exact nanoseconds.
#include "gcra.hpp"

#include <gtest/gtest.h>

namespace mpt::detail {
namespace {

constexpr std::int64_t kT = 250'000'000;  // 4 per second

TEST(GcraTest, LimitBurstIsMaxN) {
  const GcraParams p{kT, 3 * kT};           // max_n = 4
  std::int64_t tat = 0;                     // start() at t = 0
  const std::int64_t now = 10'000'000'000;  // long idle: the bucket is full, not fuller
  EXPECT_EQ(gcra_available(tat, now, p), 4);
  for (int i = 0; i < 4; ++i) {
    auto r = gcra_reserve(tat, now, 1, p);
    EXPECT_LE(r.due_ns, now) << "unit " << i << " of the burst must be immediate";
    tat = r.new_tat_ns;
  }
  EXPECT_EQ(gcra_available(tat, now, p), 0);
  auto r = gcra_reserve(tat, now, 1, p);
  EXPECT_EQ(r.due_ns, now + kT);
}

TEST(GcraTest, StartGivesOneUnitThenSpacing) {
  const GcraParams p{kT, 3 * kT};
  std::int64_t tat = 1000;  // start() at t = 1000
  EXPECT_EQ(gcra_available(tat, 1000, p), 1);
  auto r = gcra_reserve(tat, 1000, 1, p);
  EXPECT_EQ(r.due_ns, 1000);
  tat = r.new_tat_ns;
  EXPECT_EQ(gcra_available(tat, 1000, p), 0);
  // Queued reservations are spaced exactly one interval apart, in the order made.
  for (int i = 1; i <= 5; ++i) {
    r = gcra_reserve(tat, 1000, 1, p);
    EXPECT_EQ(r.due_ns, 1000 + i * kT);
    tat = r.new_tat_ns;
  }
}

TEST(GcraTest, FiveSecondsAtFourPerSecondGiveTwentyOrTwentyOne) {
  const GcraParams p{kT, 3 * kT};
  std::int64_t tat = 0;
  int taken = 0;
  // Greedy takers polling every millisecond for 5 s.
  for (std::int64_t now = 0; now < 5'000'000'000; now += 1'000'000) {
    while (gcra_available(tat, now, p) > 0) {
      tat = gcra_reserve(tat, now, 1, p).new_tat_ns;
      ++taken;
    }
  }
  EXPECT_GE(taken, 20);
  EXPECT_LE(taken, 21);
}

TEST(GcraTest, OneNeverBurstsAfterIdle) {
  const GcraParams p{kT, 0};
  std::int64_t tat = 0;
  const std::int64_t now = 60'000'000'000;
  EXPECT_EQ(gcra_available(tat, now, p), 1);
  tat = gcra_reserve(tat, now, 1, p).new_tat_ns;
  EXPECT_EQ(gcra_available(tat, now, p), 0);
  EXPECT_EQ(gcra_reserve(tat, now, 1, p).due_ns, now + kT);
}

TEST(GcraTest, NoneAccumulatesUnusedFuel) {
  const GcraParams p{kT, -1};
  const std::int64_t tat = 0;
  EXPECT_EQ(gcra_available(tat, 10'000'000'000, p), 41);  // 10 s of fuel, plus the first unit
  auto r = gcra_reserve(tat, 10'000'000'000, 41, p);
  EXPECT_LE(r.due_ns, 10'000'000'000);
}

TEST(GcraTest, TakeNAtOnce) {
  const GcraParams p{kT, 3 * kT};
  std::int64_t tat = 0;
  auto r = gcra_reserve(tat, 0, 3, p);  // one available now, the third is due two intervals later
  EXPECT_EQ(r.due_ns, 2 * kT);
  EXPECT_EQ(r.new_tat_ns, 3 * kT);
  // n larger than the burst waits for the remainder.
  r = gcra_reserve(0, 100 * kT, 6, p);
  EXPECT_EQ(r.due_ns, 100 * kT + 2 * kT);
}

TEST(GcraTest, CorrectionShortensInterval) {
  // per/max_n * (1 - correction): 250 ms * 0.9 = 225 ms
  const GcraParams p{225'000'000, 0};
  std::int64_t tat = 0;
  for (int i = 0; i < 3; ++i)
    tat = gcra_reserve(tat, 0, 1, p).new_tat_ns;
  EXPECT_EQ(tat, 3 * 225'000'000);
}

TEST(GcraTest, RescaleKeepsOrderAndSpacing) {
  // Slots at 10, 20, 30 (interval 10) rebased at 5 to interval 40: 5 + 5*4, 5 + 15*4, 5 + 25*4.
  EXPECT_EQ(gcra_rescale(10, 5, 10, 40), 25);
  EXPECT_EQ(gcra_rescale(20, 5, 10, 40), 65);
  EXPECT_EQ(gcra_rescale(30, 5, 10, 40), 105);
  EXPECT_EQ(gcra_rescale(4, 5, 10, 40), 4) << "slots already due keep their time";
  // Rate doubled: halves the distances.
  EXPECT_EQ(gcra_rescale(105, 5, 40, 20), 55);
  // No overflow with large values.
  EXPECT_EQ(gcra_rescale(int64_t{1} << 55, 0, 1'000'000'000, 1'000'000'000), int64_t{1} << 55);
}

}  // namespace
}  // namespace mpt::detail
