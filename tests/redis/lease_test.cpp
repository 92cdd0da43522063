// Leases (docs/design.md#redis-leased-slots) against a real redis-server and real processes: a
// busy process makes one script call for many grants and the fleet still holds the rate; a slow
// one keeps one call per grant; leased slots nobody uses are lost time, never extra grants, and
// never counted (a process that stops taking them, one SIGKILLed, children forked while the
// parent holds a lease); set_rate() reaches a process that holds a lease.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mpt/redis.hpp"
#include "redis_fixture.hpp"
#include "test_util.hpp"

namespace mpt::detail {
extern const char kThrottleScript[];  // lib/src/redis/script.hpp
}  // namespace mpt::detail

namespace mpt {
namespace {

using namespace std::chrono_literals;
using mpt::test::wait_for;
using Clock = std::chrono::steady_clock;
using test::RedisServer;

struct Shared {
  std::atomic<std::int64_t> granted[16];
  std::atomic<std::int64_t> flag[16];
};

Shared* shared() {
  void* p =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* s = new (p) Shared();
  for (int i = 0; i < 16; ++i) {
    s->granted[i].store(0);
    s->flag[i].store(0);
  }
  return s;
}

std::int64_t sum(const Shared* s, int n) {
  std::int64_t t = 0;
  for (int i = 0; i < n; ++i)
    t += s->granted[i].load();
  return t;
}

// EVALSHA calls the server has answered (INFO commandstats).
std::int64_t script_calls(RedisServer& server) {
  const std::string info = server.command({"INFO", "commandstats"});
  const auto p = info.find("cmdstat_evalsha:calls=");
  return p == std::string::npos ? 0 : std::strtoll(info.c_str() + p + 22, nullptr, 10);
}

std::int64_t sum_flags(const Shared* s, int n) {
  std::int64_t t = 0;
  for (int i = 0; i < n; ++i)
    t += s->flag[i].load();
  return t;
}

std::string unique(const std::string& what) {
  return what + "-" + std::to_string(::getpid());
}

// Units the schedule has for a run of `runtime_s` at `rate`/s from start() (one at once, then
// one per interval): no process may be granted more, whatever it leased.
double slots_in(double runtime_s, double rate) {
  return std::floor(runtime_s * rate) + 1;
}

// Forks `n` workers on `t` (they share its kill flag): each runs body(i) until the flag is set.
template <class F>
std::vector<pid_t> fork_workers(RemoteThrottle& t, int n, F body) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      body(i);
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  (void)t;
  return pids;
}

// 4 busy processes at 40,000/s: no more grants than the schedule has, and the server's total,
// once every worker has reported, exactly what the workers were granted. (Calls per grant:
// ABacklogLeasesAtTheCap; the benchmark measures the ratio here.)
TEST(RedisLeaseTest, BusyProcessesLeaseAndTheTotalIsExact) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  constexpr double kRate = 40'000;
  RemoteThrottle t = RemoteThrottle::connect(server.url(unique("busy")), 40'000, 1s);
  Shared* s = shared();
  auto pids = fork_workers(t, 4, [&](int i) {
    auto kill = t.kill_flag();
    (void)t.state();  // connected
    s->flag[i].store(1);
    while (!kill.is_set())
      if (t.await_fuel(1s)) s->granted[i].fetch_add(1);
  });
  ASSERT_TRUE(wait_for([&] { return sum_flags(s, 4) == 4; }, 30s));
  const std::int64_t calls0 = script_calls(server);
  t.start();
  ASSERT_TRUE(wait_for([&] { return sum(s, 4) >= 20'000; }, 60s));
  const Summary sum_at_stop = t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  const std::int64_t calls = script_calls(server) - calls0;
  const std::int64_t granted = sum(s, 4);
  const std::uint64_t total = RemoteThrottle::connect(server.url(unique("busy"))).total();
  std::printf(
      "4 processes at 40,000/s for %.3f s: granted %lld, total %llu (at stop %llu), %lld "
      "script calls\n",
      sum_at_stop.runtime.count(), static_cast<long long>(granted),
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(sum_at_stop.total),
      static_cast<long long>(calls));
  EXPECT_EQ(static_cast<std::int64_t>(total), granted);
  EXPECT_LE(sum_at_stop.total, total);
  EXPECT_LE(static_cast<double>(granted), slots_in(sum_at_stop.runtime.count(), kRate));
  EXPECT_LE(calls, granted + 4 * 100) << "more calls than grants (and waits for the start)";
}

// Forced high demand: hardcap none (no slot lapses) at a rate the processes cannot keep up with,
// so each finds a backlog and takes leases at the cap: at most one call per 5 grants however the
// processes are scheduled, and the total is exact.
TEST(RedisLeaseTest, ABacklogLeasesAtTheCap) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteOptions o;
  o.hardcap = Hardcap::kNone;
  const std::string name = unique("backlog");
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 2'000'000, 1s, o);
  t.start();
  Shared* s = shared();
  auto pids = fork_workers(t, 2, [&](int i) {
    auto kill = t.kill_flag();
    while (!kill.is_set())
      if (t.has_fuel()) s->granted[i].fetch_add(1);
    t.release();
  });
  const std::int64_t calls0 = script_calls(server);
  ASSERT_TRUE(wait_for([&] { return sum(s, 2) >= 50'000; }, 60s));
  t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  const std::int64_t calls = script_calls(server) - calls0;
  const std::int64_t granted = sum(s, 2);
  EXPECT_LE(calls * 5, granted) << calls << " calls for " << granted << " grants";
  EXPECT_EQ(static_cast<std::int64_t>(RemoteThrottle::connect(server.url(name)).total()), granted);
}

// A process that asks 20 times a second makes one call per grant (no lease).
TEST(RedisLeaseTest, ASlowCallerMakesOneCallPerGrant) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  RemoteThrottle t = RemoteThrottle::connect(server.url(unique("slow")), 1000, 1s);
  t.start();
  ASSERT_TRUE(t.await_fuel(1s));
  const std::int64_t calls0 = script_calls(server);
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(t.await_fuel(1s));
  }
  EXPECT_EQ(script_calls(server) - calls0, 20);
  EXPECT_EQ(t.total(), 21u);
}

// Process 0 leases at full speed, then stops taking units while it still holds leased slots (it
// waits for the kill flag); process 1 goes on. The slots process 0 left are nobody's: the two
// together are never granted more than the schedule has, and the total counts exactly the grants.
// Process 2 is SIGKILLed while it holds a lease: what it leased and did not report is never
// counted, so the total is at most what was granted.
TEST(RedisLeaseTest, UnusedLeasedSlotsAreLostNeverGranted) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  constexpr double kRate = 50'000;
  const std::string name = unique("lost");
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 50'000, 1s);
  Shared* s = shared();
  auto pids = fork_workers(t, 3, [&](int i) {
    auto kill = t.kill_flag();
    while (!kill.is_set()) {
      if (i != 1 && s->granted[i].load() >= 3000) {
        s->flag[i].store(1);  // holds what is left of its lease from here on
        if (i == 2) ::pause();
        kill.wait();
        t.release();  // reports its grants; the slots it left were never granted
        break;
      }
      if (t.await_fuel(1s)) s->granted[i].fetch_add(1);
    }
  });
  t.start();
  const bool idle = wait_for([&] { return s->flag[0].load() && s->flag[2].load(); }, 10s);
  std::this_thread::sleep_for(100ms);
  ::kill(pids[2], SIGKILL);
  const std::int64_t one_at_kill = s->granted[1].load();
  const bool went_on = wait_for([&] { return s->granted[1].load() > one_at_kill + 3000; }, 60s);
  const Summary at_stop = t.stop();
  for (pid_t p : pids)
    (void)test::wait_child(p, 10s);
  ASSERT_TRUE(idle) << "the workers never took 3000 units";
  const std::int64_t granted = sum(s, 3);
  const std::uint64_t total = RemoteThrottle::connect(server.url(name)).total();
  const std::int64_t survivors = s->granted[0].load() + s->granted[1].load();
  std::printf("granted %lld (killed one: %lld), total %llu, schedule %.0f\n",
              static_cast<long long>(granted), static_cast<long long>(s->granted[2].load()),
              static_cast<unsigned long long>(total), slots_in(at_stop.runtime.count(), kRate));
  EXPECT_LE(static_cast<double>(granted), slots_in(at_stop.runtime.count(), kRate));
  EXPECT_LE(static_cast<std::int64_t>(total), granted);
  EXPECT_GE(static_cast<std::int64_t>(total), survivors);
  EXPECT_TRUE(went_on) << "process 1 stopped getting units";
}

// A child forked while its parent holds a lease starts with none: the parent's slots are granted
// once (children's and parent's grants together never exceed the schedule). The children leave
// their has_fuel() loops on the kill flag and call release(), so the total is exact.
TEST(RedisLeaseTest, ForkedChildrenDoNotShareTheParentsLease) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  constexpr double kRate = 100'000;
  const std::string name = unique("fork");
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 100'000, 1s);
  t.start();
  Shared* s = shared();
  // The parent takes units fast enough to lease, then forks while holding one.
  const auto until = Clock::now() + 200ms;
  while (Clock::now() < until)
    if (t.has_fuel()) s->granted[0].fetch_add(1);
  auto pids = fork_workers(t, 3, [&](int i) {
    auto kill = t.kill_flag();
    while (!kill.is_set())
      if (t.has_fuel()) s->granted[1 + i].fetch_add(1);
    t.release();  // it leaves on the flag with no further call: report what it was granted
  });
  const auto until2 = Clock::now() + 300ms;
  while (Clock::now() < until2)
    if (t.has_fuel()) s->granted[0].fetch_add(1);
  const Summary at_stop = t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  const std::int64_t granted = sum(s, 4);
  const std::uint64_t total = RemoteThrottle::connect(server.url(name)).total();
  EXPECT_LE(static_cast<double>(granted), slots_in(at_stop.runtime.count(), kRate));
  EXPECT_EQ(static_cast<std::int64_t>(total), granted);
}

// set_rate() from another handle, slowing down, reaches a process that holds leases at its next
// call: once the change has returned (the server has it), the process grants at most what is left
// of its lease (max_lease slots) and the one in flight, then the new rate. Counted and timed from
// that return: what it granted while the call was on its way was at the old rate, legitimately
// (under load the call took milliseconds: 100,000/s grants in them). A loaded machine only
// loosens the bound (more elapsed time).
TEST(RedisLeaseTest, SetRateReachesALeaseHolder) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string name = unique("rate");
  RemoteOptions o;
  o.max_lease = 64;
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 100'000, 1s, o);
  Shared* s = shared();
  auto pids = fork_workers(t, 1, [&](int) {
    auto kill = t.kill_flag();
    while (!kill.is_set())
      if (t.await_fuel(1s)) s->granted[0].fetch_add(1);
  });
  t.start();
  ASSERT_TRUE(wait_for([&] { return s->granted[0].load() > 5000; }, 30s));
  RemoteThrottle admin = RemoteThrottle::connect(server.url(name));
  admin.set_rate(100, 1s);
  const auto t0 = Clock::now();
  const std::int64_t at_change = s->granted[0].load();
  const bool reached = wait_for([&] { return s->granted[0].load() >= at_change + 80; }, 30s);
  const std::int64_t after = s->granted[0].load() - at_change;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  t.stop();
  for (pid_t p : pids)
    EXPECT_EQ(test::wait_child(p, 10s), 0);
  EXPECT_TRUE(reached) << "no units at the new rate";
  EXPECT_LE(static_cast<double>(after), 64 + 1 + slots_in(elapsed, 100))
      << after << " units in the " << elapsed << " s after set_rate(100/s)";
}

// Speeding up, the server keeps its next free time at or after the end of the slots it leased
// (their holder grants them at their times; no one else may be given them). The lease is taken
// with the script itself (k = 1000 at 1,000/s: a second of slots).
TEST(RedisLeaseTest, SetRateKeepsLeasedTimeLeased) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string name = unique("faster");
  RemoteOptions o;
  o.hardcap = Hardcap::kOne;
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 1000, 1s, o);
  t.start();
  const std::string key = "mpt:{" + name + "}:throttle";
  const std::string script = detail::kThrottleScript;
  (void)server.command({"EVAL", script, "3", key, "mpt:{" + name + "}:sec:",
                        "mpt:{" + name + "}:pending", "acq", "1", "-1", "1", "0", "1000", ""});
  const double leased_end = std::strtod(server.command({"HGET", key, "tat_us"}).c_str(), nullptr);
  const double now = std::strtod(server.command({"HGET", key, "started_us"}).c_str(), nullptr);
  ASSERT_GT(leased_end, now + 500'000) << "the script leased no second of slots";
  RemoteThrottle::connect(server.url(name)).set_rate(10'000, 1s);
  const double tat = std::strtod(server.command({"HGET", key, "tat_us"}).c_str(), nullptr);
  EXPECT_GE(tat, leased_end);
  EXPECT_FALSE(t.has_fuel()) << "a slot inside the lease went to another process";
}

// Takes units from `t` (this process) until it has been granted at least `n` and its last grant
// came from a lease, without a round trip: it then holds grants not reported yet. -1 if it never
// leased.
std::int64_t lease_and_hold(RemoteThrottle& t, std::int64_t n) {
  std::int64_t granted = 0;
  const auto limit = Clock::now() + 60s;
  while (Clock::now() < limit) {
    const std::uint64_t rt = t.round_trips();
    if (!t.has_fuel()) continue;
    ++granted;
    if (granted >= n && t.round_trips() == rt) return granted;
  }
  return -1;
}

// A report whose reply never comes (the server asleep past command_timeout, DEBUG SLEEP; the
// script runs when it wakes) is resent with the next call and counted once.
TEST(RedisLeaseTest, AReportResentAfterATimeoutIsCountedOnce) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server({"--enable-debug-command", "yes"});
  ASSERT_TRUE(server.ready());
  const std::string name = unique("resent");
  RemoteOptions o;
  o.command_timeout = 200ms;
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 100'000, 1s, o);
  t.start();
  const std::int64_t granted = lease_and_hold(t, 2000);
  ASSERT_GT(granted, 0) << "the process never leased";
  // The server asleep for 1.5 s: DEBUG SLEEP sent, not waited for; a PING left unanswered past
  // 100 ms says it sleeps.
  redisContext* sleeper = redisConnect("127.0.0.1", server.port());
  ASSERT_TRUE(sleeper && !sleeper->err);
  redisAppendCommand(sleeper, "DEBUG SLEEP 1.5");
  int done = 0;
  while (!done)
    ASSERT_EQ(redisBufferWrite(sleeper, &done), REDIS_OK);
  ASSERT_TRUE(wait_for(
      [&] {
        timeval tv{0, 100'000};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", server.port(), tv);
        if (c && !c->err) redisSetTimeout(c, tv);
        auto* r = c && !c->err ? static_cast<redisReply*>(redisCommand(c, "PING")) : nullptr;
        if (r) freeReplyObject(r);
        if (c) redisFree(c);
        return r == nullptr;
      },
      30s));
  const std::int64_t calls0 = script_calls(server);  // waits for the server to wake
  EXPECT_EQ(t.total(), 0u) << "a reply came from a sleeping server";
  ASSERT_NE(t.last_error(), "");
  // The snapshot call that timed out (its report in it) ran when the server woke.
  EXPECT_TRUE(wait_for([&] { return script_calls(server) > calls0; }, 30s));
  redisFree(sleeper);
  const Snapshot snap = t.snapshot();  // resends the report
  EXPECT_EQ(static_cast<std::int64_t>(snap.total), granted);
  EXPECT_EQ(static_cast<std::int64_t>(RemoteThrottle::connect(server.url(name)).total()), granted);
}

// A process's leased grants from before a stop() and start() it has not seen are counted (at
// their slots, in the stopped run) when it reports them after the start.
TEST(RedisLeaseTest, GrantsReportedAfterAStopAndStartAreCounted) {
  MPT_REQUIRE_REDIS_SERVER();
  RedisServer server;
  ASSERT_TRUE(server.ready());
  const std::string name = unique("restart");
  RemoteThrottle t = RemoteThrottle::connect(server.url(name), 100'000, 1s);
  t.start();
  const std::int64_t granted = lease_and_hold(t, 2000);
  ASSERT_GT(granted, 0) << "the process never leased";
  RemoteThrottle admin = RemoteThrottle::connect(server.url(name));
  const Summary at_stop = admin.stop();
  EXPECT_LT(static_cast<std::int64_t>(at_stop.total), granted);  // the held grants: not yet
  admin.start();
  t.release();  // reports them
  EXPECT_EQ(static_cast<std::int64_t>(admin.total()), granted);
}

}  // namespace
}  // namespace mpt
