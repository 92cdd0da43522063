// tools/mpt/cmd_run.cpp — `mpt run`: the seed README example as a command.
//
// Forks W workers that loop on await_fuel() until the throttle is stopped, samples latest() and
// mean() every --every seconds, then stops the throttle and prints the summary. SIGINT and SIGTERM
// end the run early; the summary is still printed and every worker is reaped.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "commands.hpp"
#ifdef MPT_HAVE_BPF
#include "emissions.hpp"
#endif
#include "common.hpp"
#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

namespace mpt::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double elapsed_s = 0;
  std::uint64_t total = 0;
  Rate latest;
  Rate mean;
};

void to_json(nlohmann::json& j, const Sample& s) {
  j = {{"elapsed_s", s.elapsed_s}, {"total", s.total}, {"latest", s.latest}, {"mean", s.mean}};
}

OnUnavailable parse_on_unavailable(const std::string& s) {
  if (s == "fail_open") return OnUnavailable::kFailOpen;
  if (s == "fail_closed") return OnUnavailable::kFailClosed;
  if (s == "local_fallback") return OnUnavailable::kLocalFallback;
  return OnUnavailable::kFail;
}

Hardcap parse_hardcap(const std::string& s) {
  if (s == "one") return Hardcap::kOne;
  if (s == "none") return Hardcap::kNone;
  return Hardcap::kLimit;
}

// Sleeps until `t` or until a signal arrives.
void sleep_until(Clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  // steady_clock is CLOCK_MONOTONIC on Linux; EINTR (a stop signal) ends the sleep early.
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

[[noreturn]] void worker_main(Throttle& throttle, pid_t parent) {
  ::signal(SIGINT, SIG_IGN);  // the parent stops the run; Ctrl-C reaches the whole group
  ::signal(SIGTERM, SIG_DFL);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive `mpt run`
  if (::getppid() != parent) ::_exit(1);
  auto kill = throttle.kill_flag();
  while (!kill.is_set()) {
    (void)throttle.await_fuel();
  }
  ::_exit(0);
}

// Waits for every worker; kills those still there after `grace`. Returns how many exited 0.
int reap(std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
  int clean = 0;
  const auto deadline = Clock::now() + grace;
  while (!pids.empty()) {
    for (auto it = pids.begin(); it != pids.end();) {
      int status = 0;
      const pid_t r = ::waitpid(*it, &status, WNOHANG);
      if (r == *it || (r < 0 && errno == ECHILD)) {
        if (r == *it && WIFEXITED(status) && WEXITSTATUS(status) == 0) ++clean;
        it = pids.erase(it);
      } else {
        ++it;
      }
    }
    if (pids.empty()) break;
    if (Clock::now() >= deadline) {
      for (pid_t p : pids)
        ::kill(p, SIGKILL);
      for (pid_t p : pids)
        ::waitpid(p, nullptr, 0);
      pids.clear();
      break;
    }
    ::usleep(2000);
  }
  return clean;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal";
  }
}

}  // namespace

CLI::App* setup_run(CLI::App& app, RunOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "run", "Run W worker processes on a throttle for T seconds and report the rate achieved");
  cmd->add_option("--rate", opts.rate, "units per --per seconds (the seed's max_n)")
      ->required()
      ->check(integer_in(1, 1'000'000'000));
  cmd->add_option("--per", opts.per_s, "seconds the rate refers to (default 1)")
      ->check(number_in(0, 86400, true));
  cmd->add_option("--workers", opts.workers, "worker processes")
      ->required()
      ->check(integer_in(1, 1024));
  cmd->add_option("--seconds", opts.seconds, "how long to run")
      ->required()
      ->check(number_in(0, 86400, true));
  cmd->add_option("--hardcap", opts.hardcap, "limit (default), one or none")
      ->check(CLI::IsMember({"limit", "one", "none"}));
  cmd->add_option("--correction", opts.correction,
                  "slot interval is per/rate * (1 - C); -1 < C < 1 (default: calibration)")
      ->check(number_in(-1, 1, true, true));
  CLI::Option* name_opt = cmd->add_option("--name", opts.name,
                                          "create a named throttle (mpt stat NAME works meanwhile)")
                              ->check(segment_name());
  cmd->add_option(
         "--backend", opts.backend,
         "a throttle in Redis shared by many hosts: redis://[[USER]:PASSWORD@]HOST[:PORT]/NAME "
         "(created, or adopted with its stored rate)")
      ->excludes(name_opt);
  cmd->add_option("--on-unavailable", opts.on_unavailable,
                  "with --backend, when Redis cannot be reached: fail (default), fail_open, "
                  "fail_closed, local_fallback")
      ->check(CLI::IsMember({"fail", "fail_open", "fail_closed", "local_fallback"}));
  cmd->add_option("--every", opts.every_s, "seconds between samples (default 1)")
      ->check(number_in(0.01, 3600));
#ifdef MPT_HAVE_BPF
  cmd->add_flag("--probe", opts.probe,
                "also count emissions in the kernel (eBPF) and compare with the monitor; needs "
                "CAP_BPF and CAP_PERFMON");
#endif
  cmd->add_flag("--json", opts.json, "print one JSON document and nothing else");
  return cmd;
}

int run_run(const RunOptions& opts) {
  ThrottleOptions to;
  to.hardcap = parse_hardcap(opts.hardcap);
  if (!std::isnan(opts.correction)) to.correction = opts.correction;
  to.on_unavailable = parse_on_unavailable(opts.on_unavailable);
  if (!opts.backend.empty() && opts.probe) {
    throw UsageError("--probe counts this host's emissions only; it does not go with --backend");
  }
  const WarningLog warnings;  // e.g. a throttle that runs uncalibrated where that falls short
  Throttle throttle =
      !opts.backend.empty() ? Throttle::connect(opts.backend, opts.rate,
                                                std::chrono::duration<double>(opts.per_s), to)
      : opts.name.empty()
          ? Throttle(opts.rate, std::chrono::duration<double>(opts.per_s), to)
          : Throttle::create(opts.name, opts.rate, std::chrono::duration<double>(opts.per_s), to);
  if (throttle.remote()) {
    const Snapshot s = throttle.snapshot();
    if (s.max_n != opts.rate || s.per_s != opts.per_s || s.hardcap != to.hardcap) {
      std::fprintf(stderr, "mpt run: %s exists: using its stored rate, %lld per %g s, hardcap %s\n",
                   throttle.url().c_str(), static_cast<long long>(s.max_n), s.per_s,
                   to_string(s.hardcap));
    }
  }

#ifdef MPT_HAVE_BPF
  // The kernel's count: attached before any worker exists, so it sees every emission.
  std::unique_ptr<probe::EmissionCounter> counter;
  if (opts.probe) {
    if (const std::string missing = probe::missing_privileges(); !missing.empty()) {
      throw std::runtime_error("--probe: " + missing);
    }
    counter =
        std::make_unique<probe::EmissionCounter>(probe::Target{-1, probe::default_library_path()});
  }
#endif

  install_stop_handlers();
  const bool tty = !opts.json && ::isatty(STDOUT_FILENO);
  std::cout << std::flush;  // nothing buffered may be written twice by the children
  std::fflush(stdout);

  const pid_t parent = ::getpid();
  std::vector<pid_t> pids;
  for (int i = 0; i < opts.workers; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) worker_main(throttle, parent);
    if (pid < 0) {
      const int e = errno;
      throttle.stop();
      reap(pids, std::chrono::seconds(5));
      throw SystemError("cannot fork worker " + std::to_string(i + 1) + " for throttle " +
                            hex_id(throttle.id()) + ": " + std::strerror(e),
                        e);
    }
    pids.push_back(pid);
  }

  if (!opts.json) {
    std::printf("mpt run: %lld per %g s (%g/s), hardcap %s, %d workers, %g s, throttle %s%s%s\n",
                static_cast<long long>(opts.rate), opts.per_s,
                static_cast<double>(opts.rate) / opts.per_s, opts.hardcap.c_str(), opts.workers,
                opts.seconds, hex_id(throttle.id()).c_str(),
                opts.name.empty() && !throttle.remote() ? "" : " ",
                throttle.remote() ? throttle.url().c_str() : opts.name.c_str());
    std::printf("%9s %10s %12s %12s %12s %12s\n", "TIME(s)", "TOTAL", "LATEST(/s)", "LATEST(s)",
                "MEAN(/s)", "MEAN(s)");
    std::fflush(stdout);
  }

  std::vector<Sample> samples;
  throttle.start();
  const auto t0 = Clock::now();
  const auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts.seconds));
  const auto every =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts.every_s));
  auto next_sample = t0 + every;
  const auto status_every = std::chrono::milliseconds(100);
  while (stop_signal() == 0) {
    const auto now = Clock::now();
    if (now >= next_sample) {
      Sample s;
      s.elapsed_s = std::chrono::duration<double>(now - t0).count();
      s.total = throttle.total();
      s.latest = throttle.latest();
      s.mean = throttle.mean();
      samples.push_back(s);
      if (!opts.json) {
        if (tty) std::printf("\r\033[K");
        std::printf("%9.2f %10llu %12.2f %12.6f %12.2f %12.6f\n", s.elapsed_s,
                    static_cast<unsigned long long>(s.total), s.latest.rate_per_sec,
                    s.latest.interval_s, s.mean.rate_per_sec, s.mean.interval_s);
      }
      while (next_sample <= now)
        next_sample += every;
    }
    // A signal that came during the sample (a Redis call it interrupted) ends the run now.
    if (now >= deadline || stop_signal() != 0) break;
    if (tty) {
      const double elapsed = std::chrono::duration<double>(now - t0).count();
      std::printf("\r\033[K  elapsed %.1f s, remaining %.1f s, rate %.2f/s, total %llu", elapsed,
                  std::max(0.0, opts.seconds - elapsed), throttle.latest().rate_per_sec,
                  static_cast<unsigned long long>(throttle.total()));
      std::fflush(stdout);
    }
    auto wake = std::min(next_sample, deadline);
    if (tty) wake = std::min(wake, now + status_every);
    sleep_until(wake);
  }
  const Summary summary = throttle.stop();
  const int interrupted = stop_signal();
  const int clean = reap(pids, std::chrono::seconds(5));
  if (tty) std::printf("\r\033[K");

  nlohmann::json probe_doc = nullptr;
#ifdef MPT_HAVE_BPF
  if (counter) {
    std::uint64_t count = 0, first = UINT64_MAX, last = 0;
    std::set<std::uint32_t> pids_seen;
    for (const auto& e : counter->read()) {
      if (e.throttle_id != throttle.id() || e.kind != MPT_KIND_EMIT) continue;
      count += e.stats.count;
      first = std::min<std::uint64_t>(first, e.stats.first_ns);
      last = std::max<std::uint64_t>(last, e.stats.last_ns);
      pids_seen.insert(e.tgid);
    }
    const double kernel_rate =
        count > 1 && last > first
            ? static_cast<double>(count - 1) / (static_cast<double>(last - first) / 1e9)
            : 0.0;
    probe_doc = {
        {"kernel_count", count},
        {"kernel_rate_per_sec", kernel_rate},
        {"monitor_total", summary.total},
        {"monitor_rate_per_sec", summary.mean_rate_per_sec},
        {"difference", static_cast<std::int64_t>(count) - static_cast<std::int64_t>(summary.total)},
        {"processes", pids_seen.size()},
        {"dropped", counter->dropped()}};
  }
#endif

  if (opts.json) {
    nlohmann::json config = {
        {"rate", opts.rate},
        {"per_s", opts.per_s},
        {"rate_per_sec", static_cast<double>(opts.rate) / opts.per_s},
        {"workers", opts.workers},
        {"seconds", opts.seconds},
        {"hardcap", opts.hardcap},
        {"correction",
         std::isnan(opts.correction) ? nlohmann::json(nullptr) : nlohmann::json(opts.correction)},
        {"every_s", opts.every_s},
        {"interval_ns", throttle.interval().count()},
        {"spin_lead_ns", throttle.spin_lead().count()},
        {"backend", throttle.remote() ? nlohmann::json(throttle.url()) : nlohmann::json("local")},
        {"on_unavailable",
         throttle.remote() ? nlohmann::json(opts.on_unavailable) : nlohmann::json(nullptr)},
    };
    nlohmann::json doc = {
        {"schema", kSchemaVersion},
        {"command", "run"},
        {"throttle_id", hex_id(throttle.id())},
        {"name", !opts.name.empty()  ? nlohmann::json(opts.name)
                 : throttle.remote() ? nlohmann::json(throttle.name())
                                     : nlohmann::json(nullptr)},
        {"config", config},
        {"samples", samples},
        {"summary", summary},
        {"interrupted",
         interrupted ? nlohmann::json(signal_name(interrupted)) : nlohmann::json(nullptr)},
        {"workers_exited_cleanly", clean},
        {"host", host_info()},
        {"warnings", warnings.messages()},
    };
    if (!probe_doc.is_null()) doc["probe"] = probe_doc;
    print_json(doc);
  } else {
    if (interrupted) std::printf("interrupted by %s\n", signal_name(interrupted));
    std::printf("Runtime: %.6f s\n", summary.runtime.count());
    std::printf("Total: %llu\n", static_cast<unsigned long long>(summary.total));
    std::printf("Mean interval: %.6f s\n", summary.mean_interval_s);
    std::printf("Mean rate: %.4f per second\n", summary.mean_rate_per_sec);
    if (!probe_doc.is_null()) {
      std::printf("\n%-10s %12s %14s\n", "COUNTED BY", "EMISSIONS", "RATE(/s)");
      std::printf("%-10s %12llu %14.4f\n", "kernel",
                  probe_doc["kernel_count"].get<unsigned long long>(),
                  probe_doc["kernel_rate_per_sec"].get<double>());
      std::printf("%-10s %12llu %14.4f\n", "monitor",
                  static_cast<unsigned long long>(summary.total), summary.mean_rate_per_sec);
      std::printf("difference: %lld (kernel - monitor; must be 0), %zu processes seen\n",
                  probe_doc["difference"].get<long long>(),
                  probe_doc["processes"].get<std::size_t>());
    }
    if (clean != opts.workers) {
      std::fprintf(stderr, "mpt run: %d of %d workers did not exit cleanly\n", opts.workers - clean,
                   opts.workers);
    }
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace mpt::cli
