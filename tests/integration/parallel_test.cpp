// Pool and process_parallel with real worker processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "mpt/pipeline.hpp"
#include "mpt/pool.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

// Counters in shared memory, visible to the workers (forked after they are made).
struct Shared {
  std::atomic<std::int64_t> generated{0};
  std::atomic<std::int64_t> started{0};
  std::atomic<std::int64_t> processed{0};
  std::atomic<std::int64_t> consumed{0};
  std::atomic<std::int64_t> worst_jobs{0};
  std::atomic<std::int64_t> worst_results{0};
  std::atomic<pid_t> pids[64];
  std::atomic<int> npids{0};
  std::atomic<std::int64_t> died_at_ns{0};  // CLOCK_MONOTONIC, just before a worker kills itself
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// True when the process sleeps in nanosleep(2)/clock_nanosleep(2) (a worker on a hung item).
bool asleep_in_a_sleep(pid_t pid) {
  return test::asleep_in(pid, pid, SYS_clock_nanosleep) || test::asleep_in(pid, pid, SYS_nanosleep);
}

Shared* shared_counters() {
  void* p =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  return new (p) Shared{};
}

void raise_max(std::atomic<std::int64_t>& m, std::int64_t v) {
  std::int64_t cur = m.load();
  while (v > cur && !m.compare_exchange_weak(cur, v)) {
  }
}

void note_pid(Shared* s) {
  const pid_t me = getpid();
  for (int i = 0; i < s->npids.load(); ++i)
    if (s->pids[i].load() == me) return;
  const int i = s->npids.fetch_add(1);
  if (i < 64) s->pids[i].store(me);
}

// No child of ours is left: not running, not a zombie.
void expect_no_children(Shared* s) {
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "a child (zombie or running) is left";
  for (int i = 0; i < std::min(s->npids.load(), 64); ++i)
    EXPECT_NE(kill(s->pids[i].load(), 0), 0) << "worker " << s->pids[i].load() << " still exists";
}

int square(int x) {
  return x * x;
}

TEST(PoolTest, MapReturnsResultsInOrder) {
  Pool pool(3);
  std::vector<int> in(10000);
  std::iota(in.begin(), in.end(), 0);
  const auto out = pool.map(&square, in);
  ASSERT_EQ(out.size(), in.size());
  for (int i = 0; i < 10000; ++i)
    ASSERT_EQ(out[i], i * i) << i;
  // Strings, small chunks, a second call on the same workers.
  std::vector<std::string> words{"alpha", "beta", "", "gamma"};
  const auto lens = pool.map(
      +[](std::string s) { return s.size(); }, words);
  EXPECT_EQ(lens, (std::vector<std::size_t>{5, 4, 0, 5}));
  EXPECT_TRUE(pool.map(&square, std::vector<int>{}).empty());
}

TEST(PoolTest, InitializerRunsInEveryWorkerAndCloseJoinEnds) {
  Shared* s = shared_counters();
  {
    Pool pool(3, [s] {
      s->started.fetch_add(1);
      note_pid(s);
    });
    pool.close();
    EXPECT_TRUE(pool.join(10s));
    EXPECT_THROW(pool.map(&square, std::vector<int>{1}), InvalidArgument);
  }
  EXPECT_EQ(s->started.load(), 3);
  expect_no_children(s);
}

TEST(PoolTest, MapReduceCountsWords) {
  Pool pool(2);
  std::vector<std::string> lines{"a b a", "c a", "b"};
  auto counts = map_reduce(
      pool, lines,
      +[](std::string line) {
        std::vector<std::pair<std::string, int>> kv;
        std::size_t i = 0;
        while (i < line.size()) {
          std::size_t j = line.find(' ', i);
          if (j == std::string::npos) j = line.size();
          if (j > i) kv.emplace_back(line.substr(i, j - i), 1);
          i = j + 1;
        }
        return kv;
      },
      +[](std::pair<std::string, std::vector<int>> kv) {
        return std::make_pair(kv.first, std::accumulate(kv.second.begin(), kv.second.end(), 0));
      });
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[0], std::make_pair(std::string("a"), 3));
  EXPECT_EQ(counts[1], std::make_pair(std::string("b"), 2));
  EXPECT_EQ(counts[2], std::make_pair(std::string("c"), 1));
}

TEST(PoolTest, AWorkerKilledDuringMapFailsFastNamingTheItemAndSignal) {
  Shared* s = shared_counters();
  {
    Pool pool(2, [s] { note_pid(s); });
    std::vector<int> in(200);
    std::iota(in.begin(), in.end(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      pool.map(
          +[](int x) {
            if (x == 137) raise(SIGKILL);
            return x;
          },
          in);
      FAIL() << "map returned although a worker died";
    } catch (const WorkerDied& e) {
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
      EXPECT_EQ(e.item(), 137);
      EXPECT_EQ(e.exitcode(), -SIGKILL);
      const std::string what = e.what();
      EXPECT_NE(what.find("item 137"), std::string::npos) << what;
      EXPECT_NE(what.find("SIGKILL"), std::string::npos) << what;
    }
    // The pool recovers with fresh workers.
    EXPECT_EQ(pool.map(&square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
  }
  expect_no_children(s);
}

TEST(PoolTest, AnExceptionInTheWorkerNamesTheItemAndTheMessage) {
  Pool pool(2);
  try {
    pool.map(
        +[](int x) {
          if (x == 5) throw std::runtime_error("five is bad");
          return x;
        },
        std::vector<int>{1, 2, 3, 4, 5, 6});
    FAIL();
  } catch (const WorkerDied& e) {
    EXPECT_EQ(e.item(), 4);  // the index of the value 5
    EXPECT_EQ(e.exitcode(), 1);
    EXPECT_NE(std::string(e.what()).find("five is bad"), std::string::npos) << e.what();
  }
}

TEST(ProcessParallelTest, TokenizesEverythingExactlyOnce) {
  std::int64_t n = 0, tokens = 0, sum = 0;
  process_parallel(
      [&]() -> std::optional<std::int64_t> {
        if (n == 100000) return std::nullopt;
        return n++;
      },
      [](std::int64_t x) {
        return std::vector<std::int64_t>{x, x};
      },
      [&](std::vector<std::int64_t> v) {
        tokens += static_cast<std::int64_t>(v.size());
        sum += v[0];
      },
      {.workers = 2});
  EXPECT_EQ(tokens, 200000);
  EXPECT_EQ(sum, 99999LL * 100000 / 2);
}

TEST(ProcessParallelTest, StringViewsInAndOut) {
  std::vector<std::string> lines{"this is an example text", "another text with no meaning",
                                 "some more text here"};
  std::size_t i = 0, tokens = 0;
  process_parallel(
      [&]() -> std::optional<std::string_view> {
        if (i == 3000) return std::nullopt;
        return lines[i++ % 3];
      },
      [](std::string_view line) {
        std::vector<std::string_view> t;
        std::size_t a = 0;
        while (a < line.size()) {
          std::size_t b = line.find(' ', a);
          if (b == std::string_view::npos) b = line.size();
          t.push_back(line.substr(a, b - a));
          a = b + 1;
        }
        return t;
      },
      [&](std::vector<std::string_view> t) { tokens += t.size(); }, {.workers = 2});
  EXPECT_EQ(tokens, 1000u * (5 + 5 + 4));
}

// The parent checks its workers at least every 100 ms (docs/multiprocessing.md); a death must be
// reported by that check, not found when the work runs out: the input here never ends, so only
// the check can end the call. Its latency is bounded at 1 s, ten check periods, for a loaded
// machine; docs/multiprocessing.md gives the latency measured.
TEST(ProcessParallelTest, AWorkerKilledMidRunFailsWithinASecondWithoutZombies) {
  Shared* s = shared_counters();
  std::int64_t n = 0;
  try {
    process_parallel([&]() -> std::optional<std::int64_t> { return n++; },  // endless input
                     [s](std::int64_t x) {
                       note_pid(s);
                       if (x == 5000) {
                         s->died_at_ns.store(now_ns());
                         raise(SIGKILL);
                       }
                       return x;
                     },
                     [&](std::int64_t) {}, {.workers = 2, .chunk_size = 64});
    FAIL() << "process_parallel returned although a worker was killed";
  } catch (const WorkerDied& e) {
    const auto latency = std::chrono::nanoseconds(now_ns() - s->died_at_ns.load());
    ASSERT_GT(s->died_at_ns.load(), 0) << "item 5000 never reached a worker";
    EXPECT_LT(latency, 1s) << "reported " << latency.count() / 1e6 << " ms after the death";
    RecordProperty("latency_us", static_cast<int>(latency.count() / 1000));
    EXPECT_EQ(e.item(), 5000);
    const std::string what = e.what();
    EXPECT_NE(what.find("item 5000"), std::string::npos) << what;
    EXPECT_NE(what.find("killed by signal 9 (SIGKILL)"), std::string::npos) << what;
  }
  expect_no_children(s);
}

TEST(ProcessParallelTest, AWorkerKilledFromOutsideIsNoticedWithinASecond) {
  Shared* s = shared_counters();
  std::int64_t n = 0;
  std::atomic<bool> killed{false};
  std::chrono::steady_clock::time_point killed_at;
  try {
    process_parallel(
        [&]() -> std::optional<std::int64_t> {
          if (n == 4 && !killed) {  // wait until both workers are stuck on their first item
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while ((s->npids.load() < 2 || !asleep_in_a_sleep(s->pids[0].load()) ||
                    !asleep_in_a_sleep(s->pids[1].load())) &&
                   std::chrono::steady_clock::now() < deadline)
              std::this_thread::sleep_for(1ms);
            const pid_t victim = s->pids[0].load();
            if (victim <= 0 || !asleep_in_a_sleep(victim))
              throw std::logic_error("the workers never got stuck on their items");
            kill(victim, SIGKILL);
            killed_at = std::chrono::steady_clock::now();
            killed = true;
          }
          return n++;  // endless input: only a failure ends the call
        },
        [s](std::int64_t x) {
          note_pid(s);
          std::this_thread::sleep_for(30s);  // a hung item: no result will ever come
          return x;
        },
        [&](std::int64_t) {}, {.workers = 2, .max_jobs = 8, .chunk_size = 1});
    FAIL();
  } catch (const WorkerDied& e) {
    ASSERT_TRUE(killed);
    EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 1s);
    EXPECT_EQ(e.exitcode(), -SIGKILL);
    EXPECT_NE(std::string(e.what()).find("while processing item"), std::string::npos) << e.what();
  }
  expect_no_children(s);
}

TEST(ProcessParallelTest, WorkerExitStatusIsReported) {
  std::int64_t n = 0;
  try {
    process_parallel(
        [&]() -> std::optional<std::int64_t> {
          if (n == 1000) return std::nullopt;
          return n++;
        },
        [](std::int64_t x) {
          if (x == 10) _exit(3);
          return x;
        },
        [](std::int64_t) {}, {.workers = 2, .chunk_size = 4});
    FAIL();
  } catch (const WorkerDied& e) {
    EXPECT_EQ(e.exitcode(), 3);
    EXPECT_EQ(e.item(), 10);
    EXPECT_NE(std::string(e.what()).find("exited with status 3"), std::string::npos) << e.what();
  }
}

// The bounds, observed from inside: the generator sees at most max_jobs items generated and not
// yet processed, the processor at most max_results items started and not yet consumed.
TEST(ProcessParallelTest, MaxJobsAndMaxResultsAreNeverExceeded) {
  Shared* s = shared_counters();
  constexpr std::int64_t kMaxJobs = 40, kMaxResults = 24, kItems = 20000;
  process_parallel(
      [&]() -> std::optional<std::int64_t> {
        if (s->generated.load() == kItems) return std::nullopt;
        const std::int64_t g = s->generated.fetch_add(1) + 1;
        raise_max(s->worst_jobs, g - s->processed.load());
        return g;
      },
      [s](std::int64_t x) {
        const std::int64_t st = s->started.fetch_add(1) + 1;
        raise_max(s->worst_results, st - s->consumed.load());
        s->processed.fetch_add(1);
        return x;
      },
      [&](std::int64_t) {
        s->consumed.fetch_add(1);
        if (s->consumed.load() % 1000 == 0) std::this_thread::sleep_for(2ms);  // a slow consumer
      },
      {.workers = 2, .max_jobs = kMaxJobs, .max_results = kMaxResults, .chunk_size = 8});
  EXPECT_EQ(s->consumed.load(), kItems);
  EXPECT_LE(s->worst_jobs.load(), kMaxJobs);
  EXPECT_LE(s->worst_results.load(), kMaxResults);
  EXPECT_GT(s->worst_jobs.load(), 8);  // the bound was approached, so the check means something
  EXPECT_GT(s->worst_results.load(), 8);
}

TEST(ProcessParallelTest, AnItemTooLargeIsAClearError) {
  int calls = 0;
  try {
    process_parallel(
        [&]() -> std::optional<std::string> {
          if (calls++ == 1) return std::string(5000, 'x');
          return std::string("small");
        },
        [](std::string v) { return v.size(); }, [](std::size_t) {},
        {.workers = 1, .max_message_bytes = 1024});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("item 1 encodes to 5000 bytes"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
}

TEST(ProcessParallelTest, ConsumerExceptionPropagatesAndWorkersAreReaped) {
  std::int64_t n = 0;
  EXPECT_THROW(process_parallel(
                   [&]() -> std::optional<std::int64_t> {
                     if (n == 100000) return std::nullopt;
                     return n++;
                   },
                   [](std::int64_t x) { return x; },
                   [](std::int64_t x) {
                     if (x == 777) throw std::logic_error("consumer");
                   },
                   {.workers = 2}),
               std::logic_error);
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
}

}  // namespace
}  // namespace mpt
