// The Redis backend against a real redis-server (tests/redis/redis_fixture.hpp): the rate held by
// several processes, skewed clocks, the server killed and restarted under each on_unavailable
// mode, and clear errors for bad URLs, refused passwords and keys of the wrong type.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpt/error.hpp"
#include "mpt/redis.hpp"
#include "redis_fixture.hpp"
#include "remote_impl.hpp"  // internal: the clock-skew seam
#include "test_util.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::RedisServer;

// Counters shared with forked children.
struct SharedCounters {
  std::atomic<std::int64_t> n[12];
};

// Polls `done` every millisecond until it holds; false after `limit`.
template <class Pred>
bool wait_for(Pred done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
SharedCounters* shared_counters() {
  void* p = ::mmap(nullptr, sizeof(SharedCounters), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* c = new (p) SharedCounters();
  for (auto& x : c->n)
    x.store(0);
  return c;
}

template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(RedisUrlTest, BadUrlsAreClearErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://127.0.0.1:6379/x", "scheme must be redis://"},
      {"redis://127.0.0.1:6379", "no throttle name"},
      {"redis://127.0.0.1:6379/", "no throttle name"},
      {"redis://:6379/x", "no host"},
      {"redis://127.0.0.1:99999/x", "port must be a number"},
      {"redis://127.0.0.1:abc/x", "port must be a number"},
      {"redis://127.0.0.1:6379/a/b", "bad throttle name"},
      {"redis://127.0.0.1:6379/x?db=1", "query strings"},
      {"redis://u:%zz@127.0.0.1/x", "%-escape"},
  };
  for (const auto& [url, why] : cases) {
    const std::string e =
        error_of<InvalidArgument>([&] { (void)RemoteThrottle::connect(url, 10); });
    EXPECT_NE(e.find(why), std::string::npos) << url << " -> " << e;
  }
  RemoteOptions o;
  o.fallback_divisor = 0;
  EXPECT_NE(error_of<InvalidArgument>([&] {
              (void)RemoteThrottle::connect("redis://h/x", 10, 1s, o);
            }).find("fallback_divisor"),
            std::string::npos);
}

TEST(RedisTest, NothingListeningIsUnavailable) {
  const int port = test::free_port();
  RemoteOptions o;
  o.connect_timeout = 200ms;
  try {
    (void)RemoteThrottle::connect("redis://127.0.0.1:" + std::to_string(port) + "/x", 10, 1s, o);
    FAIL() << "connected to nothing";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
}

TEST(RedisTest, AuthFailuresAreClearErrors) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.ready());
  const std::string hostport = "127.0.0.1:" + std::to_string(server.port());
  try {
    (void)RemoteThrottle::connect("redis://" + hostport + "/a", 10);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(std::string(e.what()).find("requires a password"), std::string::npos) << e.what();
  }
  try {
    (void)RemoteThrottle::connect("redis://:wrong@" + hostport + "/a", 10);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(std::string(e.what()).find("authentication failed"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("wrong@"), std::string::npos) << "password shown";
  }
  RemoteThrottle t = RemoteThrottle::connect("redis://:s3cret@" + hostport + "/a", 10);
  EXPECT_EQ(t.url(), "redis://" + hostport + "/a");
  t.start();
  EXPECT_TRUE(t.has_fuel());
}

TEST(RedisTest, KeysOfTheWrongTypeAreClearErrors) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  server.command({"SET", "mpt:{str}:throttle", "hello"});
  try {
    (void)RemoteThrottle::connect(server.url("str"), 10);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIncompatible);
    EXPECT_NE(std::string(e.what()).find("wrong type"), std::string::npos) << e.what();
  }
  server.command({"HSET", "mpt:{foreign}:throttle", "a", "b"});
  try {
    (void)RemoteThrottle::connect(server.url("foreign"), 10);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIncompatible);
  }
  try {
    (void)RemoteThrottle::connect(server.url("missing"));
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  // Clobbered while in use: has_fuel() is false and last_error() says why.
  RemoteThrottle t = RemoteThrottle::connect(server.url("clobbered"), 10);
  t.start();
  EXPECT_TRUE(t.has_fuel());
  server.command({"DEL", "mpt:{clobbered}:throttle"});
  server.command({"SET", "mpt:{clobbered}:throttle", "x"});
  EXPECT_FALSE(t.has_fuel());
  EXPECT_NE(t.last_error().find("wrong type"), std::string::npos) << t.last_error();
}

TEST(RedisTest, SameApiAsTheLocalThrottle) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteThrottle t = RemoteThrottle::connect(server.url("api"), 5, 1s);
  static_assert(ThrottleLike<decltype(t)>);  // the calls of a local Throttle, in Redis
  EXPECT_EQ(t.name(), "api");
  EXPECT_EQ(t.state(), ThrottleState::kCreated);
  EXPECT_FALSE(t.has_fuel());
  t.start();
  EXPECT_TRUE(t.running());
  EXPECT_EQ(t.interval(), 200ms);
  EXPECT_TRUE(t.has_fuel());         // one unit at start
  EXPECT_FALSE(t.has_fuel());        // the next is 200 ms away
  EXPECT_FALSE(t.await_fuel(50ms));  // cannot be met: false at once
  const auto t0 = Clock::now();
  EXPECT_TRUE(t.await_fuel(1s));
  const auto waited = Clock::now() - t0;
  EXPECT_GT(waited, 120ms);
  EXPECT_LT(waited, 400ms);
  EXPECT_EQ(t.total(), 2u);
  EXPECT_EQ(t.round_trips() > 0, true);

  // A second handle adopts the stored configuration, whatever it asks for.
  RemoteThrottle other = RemoteThrottle::connect(server.url("api"), 1000, 1s);
  EXPECT_EQ(other.id(), t.id());
  EXPECT_EQ(other.snapshot().max_n, 5);
  EXPECT_TRUE(other.running());

  other.set_rate(50, 1s);
  EXPECT_EQ(t.snapshot().max_n, 50);
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(t.has_fuel());
  t.emit();
  const Snapshot s = t.snapshot();
  EXPECT_EQ(s.interval_ns, 20'000'000);
  EXPECT_GE(s.total, 4u);
  EXPECT_EQ(s.state, ThrottleState::kRunning);
  EXPECT_GT(s.runtime_s, 0.1);
  EXPECT_GT(s.hi_lo.interval_s, 0.1);

  const Summary sum = other.stop();
  EXPECT_EQ(sum.total, s.total);
  EXPECT_TRUE(other.kill_flag().is_set());
  // t learns at its next acquisition, and its kill flag is then set too.
  EXPECT_FALSE(t.await_fuel(100ms));
  EXPECT_TRUE(t.kill_flag().is_set());
  EXPECT_EQ(t.state(), ThrottleState::kStopped);
}

// 4 processes at 1,000/s for 3 s through Redis: the achieved rate within 1% of the target, and
// one round trip per acquisition.
// As for a local throttle, a zero timeout is has_fuel(): it takes the fuel that is there.
TEST(RedisTest, AZeroTimeoutTakesFuelThatIsThere) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteThrottle t = RemoteThrottle::connect(server.url("zero"), 2, 10s);
  EXPECT_FALSE(t.await_fuel(0ns));  // before start()
  t.start();
  EXPECT_TRUE(t.await_fuel(0ns));
  EXPECT_FALSE(t.await_fuel(1, std::chrono::nanoseconds(-5)));  // none left
  EXPECT_EQ(t.total(), 1u);
}

TEST(RedisTest, FourProcessesHoldTheRate) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteThrottle t = RemoteThrottle::connect(server.url("four"), 1000, 1s);
  SharedCounters* c = shared_counters();
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto kill = t.kill_flag();
      std::int64_t n = 0;
      while (!kill.is_set())
        n += t.await_fuel(1s) ? 1 : 0;
      c->n[i].store(n);
      c->n[4 + i].store(static_cast<std::int64_t>(t.round_trips()));
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  t.start();
  std::this_thread::sleep_for(3s);
  const Summary sum = t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  std::int64_t got = 0, trips = 0;
  for (int i = 0; i < 4; ++i) {
    got += c->n[i].load();
    trips += c->n[4 + i].load();
    EXPECT_GT(c->n[i].load(), 300) << "worker " << i;
  }
  EXPECT_NEAR(sum.mean_rate_per_sec, 1000.0, 10.0) << sum.total << " in " << sum.runtime.count();
  EXPECT_NEAR(static_cast<double>(sum.total), static_cast<double>(got), 8.0);
  // One round trip per acquisition: a few more for the workers' first connections (the script
  // is already loaded) and the last calls that find the throttle stopped.
  EXPECT_LE(trips, got + 4 * 3) << trips << " round trips for " << got << " units";
}

// Many processes at a low rate (64 at 10/s) and fewer at a high one (16 at 1,000/s: grants
// right at the stop), stopped after 1 s. A unit counts as an emission when it is granted, at its
// slot, so stop()'s total is exactly what the workers were granted and no more than the rate
// allows -- not the slots reserved for after the stop (at 10/s: 75 before) -- and nothing is
// added later.
TEST(RedisTest, StopTotalIsWhatTheWorkersWereGranted) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  constexpr int kMaxWorkers = 64;
  struct Granted {
    std::atomic<std::int64_t> n[kMaxWorkers];
  };
  void* mem =
      ::mmap(nullptr, sizeof(Granted), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* g = new (mem) Granted();
  for (const auto& [rate, workers] : {std::pair{10, 64}, std::pair{1000, 16}}) {
    const std::string name = "granted" + std::to_string(rate);
    RemoteThrottle t = RemoteThrottle::connect(server.url(name), rate, 1s);
    for (auto& x : g->n)
      x.store(0);
    std::vector<pid_t> pids;
    for (int i = 0; i < workers; ++i) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        auto kill = t.kill_flag();
        while (!kill.is_set())
          if (t.await_fuel()) g->n[i].fetch_add(1);
        ::_exit(0);
      }
      pids.push_back(pid);
    }
    std::this_thread::sleep_for(300ms);  // connected and waiting for the start
    t.start();
    std::this_thread::sleep_for(1s);
    const Summary sum = t.stop();
    for (pid_t p : pids)
      EXPECT_EQ(test::wait_child(p, 10s), 0);
    std::int64_t granted = 0;
    for (int i = 0; i < workers; ++i)
      granted += g->n[i].load();
    std::printf("%d workers at %d/s for %.3f s: total %llu, granted %lld\n", workers, rate,
                sum.runtime.count(), static_cast<unsigned long long>(sum.total),
                static_cast<long long>(granted));
    EXPECT_EQ(static_cast<std::int64_t>(sum.total), granted) << rate << "/s";
    EXPECT_LE(static_cast<double>(sum.total), rate * sum.runtime.count() + 1.0) << rate << "/s";
    EXPECT_GE(static_cast<double>(sum.total), 0.9 * rate) << rate << "/s";
    // The server's total stays what stop() said, read from another handle after the slots that
    // were reserved have passed.
    std::this_thread::sleep_for(300ms);
    RemoteThrottle other = RemoteThrottle::connect(server.url(name));
    EXPECT_EQ(other.snapshot().total, sum.total) << rate << "/s";
    EXPECT_EQ(other.total(), sum.total) << rate << "/s";
  }
  ::munmap(mem, sizeof(Granted));
}

// Two processes whose clocks are 600 ms apart share one schedule: the server's.
TEST(RedisTest, SkewedClocksShareOneSchedule) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteThrottle t = RemoteThrottle::connect(server.url("skew"), 1000, 1s);
  SharedCounters* c = shared_counters();
  std::vector<pid_t> pids;
  const std::chrono::nanoseconds offsets[] = {300ms, -300ms};
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      detail::set_redis_clock_offset_for_testing(offsets[i]);
      // One script call per grant (no lease): this test is about one schedule under skewed
      // clocks, and its count check below is exact only without leases. With leases a process
      // other than the stopping one may grant the rest of its lease after stop(), uncounted
      // (docs/redis.md, "Leases"; tested in lease_test.cpp): CI saw 2,005 against 2,000.
      RemoteOptions one_call;
      one_call.max_lease = 1;
      RemoteThrottle mine = RemoteThrottle::connect(server.url("skew"), one_call);
      c->n[8 + i].store(1);  // connected, about to wait for the start
      auto kill = mine.kill_flag();
      std::int64_t n = 0;
      const auto give_up = Clock::now() + 10s;
      while (!kill.is_set() && Clock::now() < give_up)
        n += mine.await_fuel(1s) ? 1 : 0;
      c->n[i].store(n);
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  ASSERT_TRUE(wait_for([&] { return c->n[8].load() == 1 && c->n[9].load() == 1; }))
      << "the workers never connected";
  t.start();
  std::this_thread::sleep_for(2s);
  const Summary sum = t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  EXPECT_NEAR(sum.mean_rate_per_sec, 1000.0, 10.0);
  const double a = static_cast<double>(c->n[0].load()), b = static_cast<double>(c->n[1].load());
  EXPECT_NEAR(a + b, static_cast<double>(sum.total), 4.0);
  // Interleaved: each process gets a fair share (they take turns in the queue of slots).
  EXPECT_GT(a / (a + b), 0.4) << a << " / " << b;
  EXPECT_GT(b / (a + b), 0.4) << a << " / " << b;
}

// The server killed mid-run: what each mode does, and recovery when it comes back.
class RedisOutageTest : public ::testing::TestWithParam<OnUnavailable> {};

TEST_P(RedisOutageTest, ModeDoesWhatItSaysThenRecovers) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const OnUnavailable mode = GetParam();
  RemoteOptions o;
  o.on_unavailable = mode;
  o.fallback_divisor = 2;
  o.hardcap = Hardcap::kOne;
  o.reconnect_backoff_max = 200ms;
  std::atomic<int> errors{0};
  o.on_error = [&](const std::string&) { ++errors; };
  RemoteThrottle t = RemoteThrottle::connect(server.url("outage"), 100, 1s, o);
  t.start();
  ASSERT_TRUE(t.await_fuel(1s));
  const std::uint64_t total_before = t.total();
  ASSERT_GE(total_before, 1u);

  server.kill();
  const auto t0 = Clock::now();
  switch (mode) {
    case OnUnavailable::kFail: {
      EXPECT_FALSE(t.has_fuel());
      EXPECT_NE(t.last_error().find(server.url("outage")), std::string::npos) << t.last_error();
      EXPECT_FALSE(t.await_fuel(5s));
      EXPECT_LT(Clock::now() - t0, 2s);  // at most one more attempt, no waiting for the server
      EXPECT_GE(errors.load(), 1);
      EXPECT_THROW(t.snapshot(), RemoteError);
      break;
    }
    case OnUnavailable::kFailOpen: {
      for (int i = 0; i < 100; ++i)
        EXPECT_TRUE(t.await_fuel(10ms));
      EXPECT_LT(Clock::now() - t0, 1s);
      EXPECT_FALSE(t.last_error().empty());
      break;
    }
    case OnUnavailable::kFailClosed: {
      EXPECT_FALSE(t.has_fuel());
      EXPECT_FALSE(t.await_fuel(400ms));
      EXPECT_GE(Clock::now() - t0, 350ms);  // it waited for the server, until its timeout
      break;
    }
    case OnUnavailable::kLocalFallback: {
      // 100/s in Redis, k = 2: 50/s alone (hardcap one: no burst) for 1 s.
      int n = 0;
      while (Clock::now() - t0 < 1s)
        n += t.await_fuel(100ms) ? 1 : 0;
      EXPECT_GE(n, 44);
      EXPECT_LE(n, 56);
      break;
    }
  }

  // Back, on the same port, empty (no persistence): the throttle recovers by itself, with its
  // configuration put back.
  server.start();
  ASSERT_TRUE(server.ready());
  // (kLocalFallback grants locally until the next reconnection attempt is due.)
  bool ok = false;
  const auto t1 = Clock::now();
  while (!ok && Clock::now() - t1 < 5s)
    ok = t.await_fuel(1s) && t.last_error().empty();
  EXPECT_TRUE(ok) << t.last_error();
  EXPECT_LT(Clock::now() - t1, 3s);
  EXPECT_TRUE(t.last_error().empty()) << t.last_error();
  const Snapshot s = t.snapshot();
  EXPECT_EQ(s.max_n, 100);
  EXPECT_EQ(s.hardcap, Hardcap::kOne);
  EXPECT_EQ(s.state, ThrottleState::kRunning);
  EXPECT_GE(s.total, 1u);
  // Schedule held by the server again: 100/s.
  const auto t2 = Clock::now();
  int n = 0;
  while (Clock::now() - t2 < 500ms)
    n += t.await_fuel(100ms) ? 1 : 0;
  EXPECT_GE(n, 45);
  EXPECT_LE(n, 56);
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisOutageTest,
                         ::testing::Values(OnUnavailable::kFail, OnUnavailable::kFailOpen,
                                           OnUnavailable::kFailClosed,
                                           OnUnavailable::kLocalFallback),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// Worker processes keep running through an outage and pick up again when the server is back.
TEST(RedisTest, WorkersRecoverWithoutRestart) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteOptions o;
  o.reconnect_backoff_max = 100ms;
  RemoteThrottle t = RemoteThrottle::connect(server.url("recover"), 200, 1s, o);
  SharedCounters* c = shared_counters();
  std::vector<pid_t> pids;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto kill = t.kill_flag();
      const auto give_up = Clock::now() + 20s;
      while (!kill.is_set() && Clock::now() < give_up) {
        if (t.await_fuel(500ms)) {
          c->n[i].fetch_add(1);
        } else {
          c->n[2 + i].fetch_add(1);  // refused: the server is gone
        }
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  const auto granted = [c] { return c->n[0].load() + c->n[1].load(); };
  t.start();
  ASSERT_TRUE(wait_for([&] { return c->n[0].load() > 10 && c->n[1].load() > 10; }))
      << "the workers never got going";
  const std::int64_t refused[2] = {c->n[2].load(), c->n[3].load()};
  server.kill();
  // Each worker has found the server gone (a call that started before the kill may still have
  // been granted); from then on nothing is granted for as long as it stays down.
  ASSERT_TRUE(wait_for([&] { return c->n[2].load() > refused[0] && c->n[3].load() > refused[1]; }))
      << "the workers never noticed the outage";
  const std::int64_t during = granted();
  std::this_thread::sleep_for(500ms);  // the outage, observed
  EXPECT_EQ(granted(), during) << "fuel granted with no server (kFail)";
  server.start();
  ASSERT_TRUE(server.ready());
  EXPECT_TRUE(wait_for([&] { return granted() - during > 100; })) << "workers did not recover";
  t.stop();  // the local kill flag ends the forked workers at once
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
}

}  // namespace
}  // namespace mpt

namespace mpt {
namespace {

// `mpt run --backend redis://...` and `mpt stat redis://...`: the fleet's throttle from the CLI.
TEST(RedisCliTest, RunAndStatThroughRedis) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string url = server.url("crawl");
  const test::ProgramResult ran = test::run_mpt(
      {"run", "--backend", url, "--rate", "200", "--workers", "2", "--seconds", "1", "--json"});
  int rc = ran.code;
  const std::string& run = ran.out;
  ASSERT_EQ(rc, 0) << run;
  const auto doc = nlohmann::json::parse(run);
  EXPECT_EQ(doc["config"]["backend"], url);
  EXPECT_EQ(doc["name"], "crawl");
  EXPECT_NEAR(doc["summary"]["mean_rate_per_sec"].get<double>(), 200.0, 6.0);
  EXPECT_EQ(doc["workers_exited_cleanly"], 2);

  const test::ProgramResult stated = test::run_mpt({"stat", "--json", url});
  rc = stated.code;
  const std::string& stat = stated.out;
  ASSERT_EQ(rc, 0) << stat;
  const auto s = nlohmann::json::parse(stat);
  EXPECT_EQ(s["backend"], url);
  EXPECT_EQ(s["state"], "stopped");
  EXPECT_EQ(s["max_n"], 200);
  EXPECT_EQ(s["total"], doc["summary"]["total"]);

  rc = test::run_mpt({"stat", "redis://127.0.0.1:1/x"}).code;
  EXPECT_EQ(rc, 1);
  rc = test::run_mpt({"stat", "redis://nohost"}).code;
  EXPECT_EQ(rc, 2);
}

// `mpt run --backend` on a throttle that exists adopts its stored rate and hardcap: the JSON says
// what was in force (and held), not what --rate and --hardcap asked for.
TEST(RedisCliTest, RunReportsTheStoredConfigurationItAdopted) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string url = server.url("stored");
  RemoteOptions o;
  o.hardcap = Hardcap::kOne;
  RemoteThrottle stored = RemoteThrottle::connect(url, 300, 1s, o);
  const test::ProgramResult ran =
      test::run_mpt({"run", "--backend", url, "--rate", "100", "--hardcap", "limit", "--workers",
                     "2", "--seconds", "1", "--json"});
  // The notice on stderr; stdout is the JSON document and nothing else.
  ASSERT_EQ(ran.code, 0) << ran.err << ran.out;
  EXPECT_NE(ran.err.find("using its stored rate, 300 per 1 s, hardcap one"), std::string::npos)
      << ran.err;
  const std::string& json = ran.out;
  ASSERT_TRUE(nlohmann::json::accept(json)) << json;
  const auto doc = nlohmann::json::parse(json);
  EXPECT_EQ(doc["schema"], 2);
  EXPECT_EQ(doc["config"]["rate"], 300);
  EXPECT_EQ(doc["config"]["per_s"], 1.0);
  EXPECT_EQ(doc["config"]["rate_per_sec"], 300.0);
  EXPECT_EQ(doc["config"]["hardcap"], "one");
  // The achieved rate is (count - 1) / (last - first) of the workers' grants, and its error is
  // against the rate in force, 300/s. (How close to 300 the run came depends on the host's load
  // and on how late the workers' first grant came after start(): not asserted here.)
  const auto& a = doc["achieved"];
  EXPECT_EQ(a["counted_by"], "workers");
  const auto count = a["count"].get<std::uint64_t>();
  ASSERT_GE(count, 2u) << json;
  const double span_s =
      static_cast<double>(a["last_ns"].get<std::int64_t>() - a["first_ns"].get<std::int64_t>()) /
      1e9;
  EXPECT_DOUBLE_EQ(a["rate_per_sec"].get<double>(), static_cast<double>(count - 1) / span_s);
  EXPECT_DOUBLE_EQ(a["rel_error"].get<double>(), a["rate_per_sec"].get<double>() / 300.0 - 1.0);
}

// `mpt run --backend ... --rate 10 --workers 64 --seconds 1`: the total is what the workers were
// granted in that second (at most 11, as a local throttle), not the slots they had reserved.
TEST(RedisCliTest, ManyWorkersAtALowRateReportWhatWasGranted) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string url = server.url("low");
  const test::ProgramResult ran = test::run_mpt(
      {"run", "--backend", url, "--rate", "10", "--workers", "64", "--seconds", "1", "--json"});
  int rc = ran.code;
  const std::string& run = ran.out;
  ASSERT_EQ(rc, 0) << run;
  const auto doc = nlohmann::json::parse(run);
  const auto total = doc["summary"]["total"].get<std::uint64_t>();
  const double runtime = doc["summary"]["runtime_s"].get<double>();
  std::printf("mpt run --backend, 64 workers at 10/s for 1 s: total %llu in %.3f s\n",
              static_cast<unsigned long long>(total), runtime);
  EXPECT_LE(static_cast<double>(total), 10.0 * runtime + 1.0);
  EXPECT_GE(total, 9u);
  EXPECT_EQ(doc["workers_exited_cleanly"], 64);
  std::this_thread::sleep_for(300ms);
  const test::ProgramResult stated = test::run_mpt({"stat", "--json", url});
  rc = stated.code;
  const std::string& stat = stated.out;
  ASSERT_EQ(rc, 0) << stat;
  EXPECT_EQ(nlohmann::json::parse(stat)["total"].get<std::uint64_t>(), total);
}

}  // namespace
}  // namespace mpt
