// bench/redis_bench.cpp — mpt_redis_bench: the Redis backend's cost and accuracy.
//
//   mpt_redis_bench [--url redis://HOST:PORT] [--rate 10000] [--workers 4] [--seconds 2]
//                   [--repeat 3] [--json]
//
// Without --url it starts its own redis-server on a free loopback port (and kills it at the end).
// Measures, each --repeat times, and reports the medians:
//   round_trips_per_acquisition  client requests per has_fuel() (the library's own counter), and
//                                EVALSHA calls per has_fuel() from the server's INFO commandstats
//   acquisitions_per_sec         has_fuel() on a throttle too fast to refuse, from 1 process and
//                                from --workers processes at once (the server's throughput)
//   achieved_over_target         --workers processes in await_fuel() loops at --rate for --seconds
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpt/process.hpp"
#include "mpt/redis.hpp"
#include "redis/redis_fixture.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Args {
  std::string url;  // redis://HOST:PORT (no name); empty: start a server
  std::int64_t rate = 10000;
  int workers = 4;
  double seconds = 2;
  int repeat = 3;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::int64_t evalsha_calls(const std::string& info) {
  const auto p = info.find("cmdstat_evalsha:calls=");
  return p == std::string::npos ? 0 : std::strtoll(info.c_str() + p + 22, nullptr, 10);
}

struct Counters {
  std::atomic<std::int64_t> n[64];
};

// Forks `workers` processes running `body(throttle, i)` until the kill flag; returns their counts.
template <class F>
std::int64_t in_processes(mpt::RemoteThrottle& t, int workers, double seconds, F body,
                          mpt::Summary* summary = nullptr) {
  void* mem =
      ::mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* c = new (mem) Counters();
  mpt::ProcessGroup group(workers,
                          [&t, c, &body](int i) {
                            auto kill = t.kill_flag();
                            std::int64_t n = 0;
                            while (!kill.is_set())
                              n += body(t) ? 1 : 0;
                            c->n[i].store(n);
                          },
                          {.daemon = true});
  group.start();
  t.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const mpt::Summary s = t.stop();
  if (summary) *summary = s;
  std::int64_t total = 0;
  group.join();
  for (int i = 0; i < workers; ++i)
    total += c->n[i].load();
  ::munmap(mem, sizeof(Counters));
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mpt_redis_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--url")
      a.url = next();
    else if (k == "--rate")
      a.rate = std::atoll(next().c_str());
    else if (k == "--workers")
      a.workers = std::atoi(next().c_str());
    else if (k == "--seconds")
      a.seconds = std::atof(next().c_str());
    else if (k == "--repeat")
      a.repeat = std::atoi(next().c_str());
    else if (k == "--json")
      a.json = true;
    else {
      const bool help = k == "--help" || k == "-h";
      std::fprintf(help ? stdout : stderr,
                   "usage: mpt_redis_bench [--url redis://HOST:PORT] [--rate N] [--workers W] "
                   "[--seconds S] [--repeat R] [--json]\n");
      return help ? 0 : 2;
    }
  }
  a.workers = std::clamp(a.workers, 1, 64);
  a.repeat = std::max(1, a.repeat);

  std::unique_ptr<mpt::test::RedisServer> server;
  if (a.url.empty()) {
    if (mpt::test::redis_server_path().empty()) {
      std::fprintf(stderr, "mpt_redis_bench: redis-server is not installed; give --url\n");
      return 1;
    }
    server = std::make_unique<mpt::test::RedisServer>();
    if (!server->ready()) {
      std::fprintf(stderr, "mpt_redis_bench: redis-server did not start\n");
      return 1;
    }
    a.url = "redis://127.0.0.1:" + std::to_string(server->port());
  }
  auto url = [&](const std::string& name) {
    return a.url + "/" + name + "-" + std::to_string(::getpid());
  };

  std::vector<double> trips, evalsha, acq1, acqw, achieved;
  for (int r = 0; r < a.repeat; ++r) {
    const std::string tag = std::to_string(r);
    // Round trips per acquisition, and throughput from one process.
    {
      mpt::RemoteThrottle t = mpt::RemoteThrottle::connect(url("fast1-" + tag), 1'000'000'000);
      t.start();
      const std::string info0 = server ? server->command({"INFO", "commandstats"}) : "";
      const std::uint64_t rt0 = t.round_trips();
      std::int64_t n = 0;
      const auto t0 = Clock::now();
      const auto end = t0 + std::chrono::duration<double>(std::min(a.seconds, 1.0));
      while (Clock::now() < end)
        n += t.has_fuel() ? 1 : 0;
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      trips.push_back(static_cast<double>(t.round_trips() - rt0) / static_cast<double>(n));
      if (server) {
        const std::string info1 = server->command({"INFO", "commandstats"});
        evalsha.push_back(static_cast<double>(evalsha_calls(info1) - evalsha_calls(info0)) /
                          static_cast<double>(n));
      }
      acq1.push_back(static_cast<double>(n) / el);
      t.stop();
    }
    // Throughput from --workers processes.
    {
      mpt::RemoteThrottle t = mpt::RemoteThrottle::connect(url("fastw-" + tag), 1'000'000'000);
      const auto n = in_processes(t, a.workers, std::min(a.seconds, 1.0),
                                  [](mpt::RemoteThrottle& th) { return th.has_fuel(); });
      acqw.push_back(static_cast<double>(n) / std::min(a.seconds, 1.0));
    }
    // Achieved / target at --rate with --workers processes.
    {
      mpt::RemoteThrottle t = mpt::RemoteThrottle::connect(url("rate-" + tag), a.rate);
      mpt::Summary s;
      in_processes(
          t, a.workers, a.seconds, [](mpt::RemoteThrottle& th) { return th.await_fuel(1s); }, &s);
      achieved.push_back(s.mean_rate_per_sec / static_cast<double>(a.rate));
    }
  }

  nlohmann::json doc = {
      {"schema", 1},
      {"url", a.url},
      {"repeat", a.repeat},
      {"workers", a.workers},
      {"rate_per_sec", a.rate},
      {"seconds", a.seconds},
      {"round_trips_per_acquisition", median(trips)},
      {"evalsha_per_acquisition",
       evalsha.empty() ? nlohmann::json(nullptr) : nlohmann::json(median(evalsha))},
      {"acquisitions_per_sec_1_process", median(acq1)},
      {"acquisitions_per_sec_workers", median(acqw)},
      {"achieved_over_target", median(achieved)},
      {"runs",
       {{"round_trips_per_acquisition", trips},
        {"acquisitions_per_sec_1_process", acq1},
        {"acquisitions_per_sec_workers", acqw},
        {"achieved_over_target", achieved}}},
  };
  if (a.json) {
    std::printf("%s\n", doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("mpt_redis_bench: %s, medians of %d\n", a.url.c_str(), a.repeat);
    std::printf("%-40s %12.4f\n", "round trips per acquisition", median(trips));
    if (!evalsha.empty())
      std::printf("%-40s %12.4f\n", "EVALSHA calls per acquisition (server)", median(evalsha));
    std::printf("%-40s %12.0f\n", "acquisitions/s, 1 process", median(acq1));
    std::printf("%-40s %12.0f\n",
                ("acquisitions/s, " + std::to_string(a.workers) + " processes").c_str(),
                median(acqw));
    std::printf("%-40s %12.5f\n",
                ("achieved/target at " + std::to_string(a.rate) + "/s, " +
                 std::to_string(a.workers) + " processes")
                    .c_str(),
                median(achieved));
  }
  return 0;
}
