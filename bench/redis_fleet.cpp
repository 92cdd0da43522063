// bench/redis_fleet.cpp — mpt_redis_fleet: a fleet through one Redis, with leased slots.
//
//   mpt_redis_fleet [--url redis://HOST:PORT] [--rate R] [--hosts 1,2,4,...] [--seconds S]
//                   [--max-lease K] [--find-max] [--json]
//
// Each "host" is a process on this machine with its own connection (it connects after the fork,
// as a host elsewhere would: its own kill flag, it learns of the stop at its next call), looping
// on await_fuel(). For each W in --hosts (default 1,2,4,8,16,32) the parent creates a throttle of
// --rate per second (default 100000), starts it when every host is connected, sleeps --seconds
// (default 2), stops it, and reads INFO commandstats before the start and after the stop.
// --max-lease 1 is one script call per grant (what the library did before leases). --find-max
// doubles the rate from --rate, for the first W of --hosts, until the achieved rate falls more
// than 1 % short, and reports every step. Without --url it starts its own redis-server on a free
// loopback port (and kills it at the end).
//
// JSON (--json), schema 1:
//   {"schema": 1, "bench": "redis_fleet", "url": "...", "seconds": S, "max_lease": K,
//    "loadavg": [1 min, 5 min, 15 min] (/proc/loadavg at the end),
//    "runs": [{"hosts": W, "rate_per_sec": R,
//              "achieved_per_sec": total counted by the server / its runtime,
//              "achieved_over_target": achieved_per_sec / R,
//              "granted": units the hosts' await_fuel() returned true for (a host elsewhere may
//                         be granted a few leased slots after the stop, which are not counted),
//              "total": the server's total, "runtime_s": the server's runtime,
//              "script_calls": EVALSHA calls the server answered between start and stop,
//              "calls_per_sec": script_calls / runtime_s,
//              "calls_per_grant": script_calls / total}, ...]}
// Human text (a table, one row per run) without --json. Exit 0 ok, 1 runtime error, 2 bad usage.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpt/process.hpp"
#include "mpt/redis.hpp"
#include "redis/redis_fixture.hpp"

namespace {

using namespace std::chrono_literals;

struct Args {
  std::string url;  // redis://HOST:PORT (no name); empty: start a server
  std::int64_t rate = 100'000;
  std::vector<int> hosts{1, 2, 4, 8, 16, 32};
  double seconds = 2;
  std::int64_t max_lease = 256;
  bool find_max = false;
  bool json = false;
};

constexpr int kMaxHosts = 64;
struct Board {  // shared with the hosts
  std::atomic<std::int64_t> granted[kMaxHosts];
  std::atomic<int> connected;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "mpt_redis_fleet: %s\nusage: mpt_redis_fleet [--url redis://HOST:PORT] [--rate R] "
               "[--hosts 1,2,4,...] [--seconds S] [--max-lease K] [--find-max] [--json]\n",
               why);
  std::exit(2);
}

std::int64_t script_calls(const std::string& info) {
  const auto p = info.find("cmdstat_evalsha:calls=");
  return p == std::string::npos ? 0 : std::strtoll(info.c_str() + p + 22, nullptr, 10);
}

// INFO commandstats on a connection of its own.
std::string info(const std::string& host, int port) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout(host.c_str(), port, tv);
  std::string out;
  if (c && !c->err) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "INFO commandstats"));
    if (r && r->str) out.assign(r->str, r->len);
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return out;
}

std::vector<double> loadavg() {
  std::ifstream f("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  f >> a >> b >> c;
  return {a, b, c};
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage((k + " needs a value").c_str());
      return argv[++i];
    };
    if (k == "--url") {
      a.url = next();
    } else if (k == "--rate") {
      a.rate = std::atoll(next().c_str());
    } else if (k == "--hosts") {
      a.hosts.clear();
      std::stringstream ss(next());
      for (std::string p; std::getline(ss, p, ',');)
        a.hosts.push_back(std::atoi(p.c_str()));
    } else if (k == "--seconds") {
      a.seconds = std::atof(next().c_str());
    } else if (k == "--max-lease") {
      a.max_lease = std::atoll(next().c_str());
    } else if (k == "--find-max") {
      a.find_max = true;
    } else if (k == "--json") {
      a.json = true;
    } else if (k == "--help" || k == "-h") {
      std::printf(
          "mpt_redis_fleet: W processes (\"hosts\", each with its own connection) share one Redis\n"
          "throttle at a fixed total rate; prints the achieved rate and the script calls per\n"
          "second and per grant the server answered, one row per W.\n"
          "usage: mpt_redis_fleet [--url redis://HOST:PORT] [--rate R] [--hosts 1,2,4,...]\n"
          "                       [--seconds S] [--max-lease K] [--find-max] [--json]\n"
          "  --url        the server (default: a redis-server of its own on a free loopback port)\n"
          "  --rate       total units per second (default 100000)\n"
          "  --hosts      process counts, one run each (default 1,2,4,8,16,32; at most 64)\n"
          "  --seconds    seconds per run (default 2)\n"
          "  --max-lease  the lease cap, RemoteOptions::max_lease (default 256; 1: a call per "
          "grant)\n"
          "  --find-max   double the rate for the first --hosts until it falls 1 %% short\n"
          "  --json       one JSON document (schema 1, in bench/redis_fleet.cpp)\n");
      std::exit(0);
    } else {
      usage(("unknown argument " + k).c_str());
    }
  }
  if (a.rate < 1) usage("--rate must be at least 1");
  if (a.seconds <= 0) usage("--seconds must be positive");
  if (a.hosts.empty()) usage("--hosts needs at least one number");
  for (int w : a.hosts)
    if (w < 1 || w > kMaxHosts) usage("--hosts: each count must be between 1 and 64");
  if (a.max_lease < 1 || a.max_lease > 4096) usage("--max-lease must be between 1 and 4096");
  return a;
}

struct Target {
  std::string url, host;
  int port = 0;
};

nlohmann::json run_once(const Args& a, const Target& where, int hosts, std::int64_t rate, int seq) {
  const std::string url =
      where.url + "/fleet-" + std::to_string(::getpid()) + "-" + std::to_string(seq);
  mpt::RemoteOptions o;
  o.max_lease = a.max_lease;
  mpt::RemoteThrottle t = mpt::RemoteThrottle::connect(url, rate, 1s, o);
  void* mem =
      ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* b = new (mem) Board();
  mpt::ProcessGroup group(hosts,
                          [&](int i) {
                            // A host of its own: its own connection and kill flag.
                            mpt::RemoteThrottle mine = mpt::RemoteThrottle::connect(url, o);
                            b->connected.fetch_add(1);
                            auto kill = mine.kill_flag();
                            const auto give_up = std::chrono::steady_clock::now() +
                                                 std::chrono::duration<double>(a.seconds) + 30s;
                            std::int64_t n = 0;
                            while (!kill.is_set() && std::chrono::steady_clock::now() < give_up)
                              n += mine.await_fuel(1s) ? 1 : 0;
                            b->granted[i].store(n);
                          },
                          {.daemon = true});
  group.start();
  while (b->connected.load() < hosts)
    std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(50ms);  // each host's first call is in: waiting for the start
  const std::int64_t calls0 = script_calls(info(where.host, where.port));
  t.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  const mpt::Summary s = t.stop();
  const std::int64_t calls = script_calls(info(where.host, where.port)) - calls0;
  group.join();
  std::int64_t granted = 0;
  for (int i = 0; i < hosts; ++i)
    granted += b->granted[i].load();
  ::munmap(mem, sizeof(Board));
  const std::uint64_t total = t.total();  // with the hosts' last reports
  const double rt = s.runtime.count();
  const double achieved = rt > 0 ? static_cast<double>(total) / rt : 0;
  return {
      {"hosts", hosts},
      {"rate_per_sec", rate},
      {"achieved_per_sec", achieved},
      {"achieved_over_target", achieved / static_cast<double>(rate)},
      {"granted", granted},
      {"total", total},
      {"runtime_s", rt},
      {"script_calls", calls},
      {"calls_per_sec", rt > 0 ? static_cast<double>(calls) / rt : 0},
      {"calls_per_grant", total > 0 ? static_cast<double>(calls) / static_cast<double>(total) : 0}};
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::unique_ptr<mpt::test::RedisServer> server;
  Target where;
  if (a.url.empty()) {
    if (mpt::test::redis_server_path().empty()) {
      std::fprintf(stderr, "mpt_redis_fleet: redis-server is not installed; give --url\n");
      return 1;
    }
    server = std::make_unique<mpt::test::RedisServer>();
    if (!server->ready()) {
      std::fprintf(stderr, "mpt_redis_fleet: redis-server did not start\n");
      return 1;
    }
    where = {"redis://127.0.0.1:" + std::to_string(server->port()), "127.0.0.1", server->port()};
  } else {
    const auto at = a.url.rfind('@');
    const std::string hp = a.url.substr(at == std::string::npos ? 8 : at + 1);
    const auto colon = hp.rfind(':');
    where = {a.url, hp.substr(0, colon),
             colon == std::string::npos ? 6379 : std::atoi(hp.c_str() + colon + 1)};
  }
  nlohmann::json runs = nlohmann::json::array();
  try {
    int seq = 0;
    if (a.find_max) {
      for (std::int64_t rate = a.rate; rate <= 64'000'000; rate *= 2) {
        runs.push_back(run_once(a, where, a.hosts.front(), rate, seq++));
        if (runs.back()["achieved_over_target"].get<double>() < 0.99) break;
      }
    } else {
      for (int w : a.hosts)
        runs.push_back(run_once(a, where, w, a.rate, seq++));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpt_redis_fleet: %s\n", e.what());
    return 1;
  }
  const nlohmann::json doc = {
      {"schema", 1},          {"bench", "redis_fleet"},   {"url", where.url},
      {"seconds", a.seconds}, {"max_lease", a.max_lease}, {"loadavg", loadavg()},
      {"runs", runs}};
  if (a.json) {
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("mpt_redis_fleet: %s, %.1f s per run, max_lease %lld, load %.2f\n", where.url.c_str(),
              a.seconds, static_cast<long long>(a.max_lease), doc["loadavg"][0].get<double>());
  std::printf("%6s %10s %12s %9s %10s %12s %10s\n", "hosts", "rate/s", "achieved/s", "ratio",
              "calls", "calls/s", "calls/grant");
  for (const auto& r : runs) {
    std::printf("%6d %10lld %12.0f %9.5f %10lld %12.0f %10.4f\n", r["hosts"].get<int>(),
                static_cast<long long>(r["rate_per_sec"].get<std::int64_t>()),
                r["achieved_per_sec"].get<double>(), r["achieved_over_target"].get<double>(),
                static_cast<long long>(r["script_calls"].get<std::int64_t>()),
                r["calls_per_sec"].get<double>(), r["calls_per_grant"].get<double>());
  }
  return 0;
}
