// Pool::imap and Pool::imap_unordered over lazy sources, with real worker processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mpt/error.hpp"
#include "mpt/pool.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

std::int64_t twice(std::int64_t x) {
  return 2 * x;
}

// An endless generator, consumed lazily: the consumer stops it, and at every result the items
// pulled and not yet handed over stay within the documented bound (max_in_flight plus the
// results on their way: the results queue of 2 × processes + 2 messages and each worker's
// output, one chunk each, plus the one item the parent may hold). Twice on the same workers: the
// bound holds for every call, not only the first.
TEST(PoolImapTest, AnEndlessGeneratorIsPulledOnlyAsFastAsResultsAreConsumed) {
  constexpr int kProcesses = 2;
  constexpr std::int64_t kInFlight = 8;
  constexpr std::uint32_t kChunk = 1;
  const std::int64_t bound = kInFlight + (3 * kProcesses + 2) * kChunk + 1;
  Pool pool(kProcesses);
  for (int call = 0; call < 2; ++call) {
    std::int64_t pulled = 0, consumed = 0, worst = 0;
    auto endless = [&]() -> std::optional<std::int64_t> { return pulled++; };
    const std::uint64_t n = pool.imap(&twice, endless,
                                      [&](std::int64_t r) {
                                        EXPECT_EQ(r, 2 * consumed);  // in source order
                                        ++consumed;
                                        worst = std::max(worst, pulled - consumed);
                                        if (consumed % 1000 == 0)
                                          std::this_thread::sleep_for(1ms);  // a slow consumer too
                                        return consumed < 10000;
                                      },
                                      {.chunk_size = kChunk, .max_in_flight = kInFlight});
    EXPECT_EQ(n, 10000u);
    EXPECT_EQ(consumed, 10000);
    EXPECT_LE(worst, bound) << "call " << call;
    EXPECT_LE(pulled - consumed, bound);  // stopping pulls no more
  }
  // The workers are ready for the next call.
  EXPECT_EQ(pool.map(&twice, std::vector<std::int64_t>{1, 2}), (std::vector<std::int64_t>{2, 4}));
}

// One slow item holds back the in-order results after it; those parked count against the bound,
// so the source is not drained meanwhile.
TEST(PoolImapTest, ResultsWaitingForASlowItemCountAgainstTheBound) {
  Pool pool(2);
  std::int64_t pulled = 0, consumed = 0, worst = 0;
  auto source = [&]() -> std::optional<std::int64_t> {
    if (pulled == 2000) return std::nullopt;
    return pulled++;
  };
  pool.imap(
      +[](std::int64_t x) {
        if (x == 3) std::this_thread::sleep_for(300ms);
        return x;
      },
      source,
      [&](std::int64_t r) {
        EXPECT_EQ(r, consumed);
        ++consumed;
        worst = std::max(worst, pulled - consumed);
      },
      {.chunk_size = 1, .max_in_flight = 16});
  EXPECT_EQ(consumed, 2000);
  EXPECT_LE(worst, 16 + (3 * 2 + 2) + 1);
}

TEST(PoolImapTest, RangesAndIndicesInOrderAndUnordered) {
  Pool pool(3);
  // An infinite view, cut by take; strings; the index form of the consumer.
  std::vector<std::int64_t> got;
  pool.imap(&twice, std::views::iota(std::int64_t{0}) | std::views::take(1000),
            [&](std::int64_t r) { got.push_back(r); }, {.chunk_size = 7});
  ASSERT_EQ(got.size(), 1000u);
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], 2 * static_cast<std::int64_t>(i));

  const std::vector<std::string> words{"alpha", "beta", "", "gamma"};
  std::vector<std::pair<std::uint64_t, std::size_t>> lens;
  pool.imap(
      +[](std::string s) { return s.size(); }, words,
      [&](std::uint64_t i, std::size_t n) { lens.emplace_back(i, n); });
  EXPECT_EQ(lens,
            (std::vector<std::pair<std::uint64_t, std::size_t>>{{0, 5}, {1, 4}, {2, 0}, {3, 5}}));

  // Unordered: every result once, each with its index.
  std::set<std::uint64_t> seen;
  const std::uint64_t n = pool.imap_unordered(
      +[](std::int64_t x) {
        if (x % 10 == 0) std::this_thread::sleep_for(2ms);  // some finish late
        return -x;
      },
      std::views::iota(std::int64_t{0}, std::int64_t{500}),
      [&](std::uint64_t i, std::int64_t r) {
        EXPECT_EQ(r, -static_cast<std::int64_t>(i));
        EXPECT_TRUE(seen.insert(i).second) << i;
      });
  EXPECT_EQ(n, 500u);
  EXPECT_EQ(seen.size(), 500u);
  EXPECT_EQ(pool.imap(&twice, std::vector<std::int64_t>{}, [](std::int64_t) {}), 0u);
}

TEST(PoolImapTest, AWorkerKilledMidRunFailsTheCallAndThePoolRecovers) {
  Pool pool(2);
  std::int64_t pulled = 0, consumed = 0;
  auto endless = [&]() -> std::optional<std::int64_t> { return pulled++; };
  const auto t0 = std::chrono::steady_clock::now();
  try {
    pool.imap(
        +[](std::int64_t x) {
          if (x == 777) raise(SIGKILL);
          return x;
        },
        endless, [&](std::int64_t) { ++consumed; });
    FAIL() << "imap returned although a worker died";
  } catch (const WorkerDied& e) {
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(e.item(), 777);
    EXPECT_EQ(e.exitcode(), -SIGKILL);
    EXPECT_NE(std::string(e.what()).find("item 777"), std::string::npos) << e.what();
  }
  EXPECT_LE(consumed, 777);
  std::vector<std::int64_t> got;
  pool.imap_unordered(&twice, std::vector<std::int64_t>{5},
                      [&](std::int64_t r) { got.push_back(r); });
  EXPECT_EQ(got, std::vector<std::int64_t>{10});
}

TEST(PoolImapTest, ExceptionsOfTheSourceAndTheConsumerPropagate) {
  Pool pool(2);
  std::int64_t i = 0;
  auto failing = [&]() -> std::optional<std::int64_t> {
    if (i == 50) throw std::runtime_error("source broke");
    return i++;
  };
  EXPECT_THROW(pool.imap(&twice, failing, [](std::int64_t) {}), std::runtime_error);
  EXPECT_THROW(pool.imap(&twice, std::views::iota(std::int64_t{0}),
                         [](std::int64_t r) {
                           if (r == 20) throw std::logic_error("consumer broke");
                         }),
               std::logic_error);
  EXPECT_THROW(
      pool.imap(&twice, std::vector<std::int64_t>{1}, [](std::int64_t) {}, {.max_in_flight = -1}),
      InvalidArgument);
  EXPECT_EQ(pool.map(&twice, std::vector<std::int64_t>{3}), std::vector<std::int64_t>{6});
  pool.close();
  EXPECT_THROW(pool.imap(&twice, std::vector<std::int64_t>{1}, [](std::int64_t) {}),
               InvalidArgument);
  EXPECT_TRUE(pool.join(10s));
}

}  // namespace
}  // namespace mpt
