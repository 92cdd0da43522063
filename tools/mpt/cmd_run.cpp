// tools/mpt/cmd_run.cpp — `mpt run`: the seed README example as a command.
//
// Forks W workers that loop on await_grant() until the throttle is stopped, each keeping the count
// and the first and last time of its grants; samples latest() and mean() every --every seconds,
// then stops the throttle and prints the seed's summary and the rate achieved: (count - 1) / (last
// - first), by the kernel's count with --probe, else by the workers' grants (the same figure as
// `mpt calibrate` and mpt_scenario). SIGINT and SIGTERM end the run early; the summary is still
// printed and every worker is reaped; so do SIGHUP, SIGQUIT and SIGPIPE (a reader that went away).
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "mpt/process.hpp"
#include "mpt/redis.hpp"
#include "mpt/throttle.hpp"
#include "witness.hpp"

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

// Sleeps until `t` or until a signal arrives.
void sleep_until(Clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  // steady_clock is CLOCK_MONOTONIC on Linux; EINTR (a stop signal) ends the sleep early.
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

// What one worker leaves for the parent: how many grants it had, and the first and the last one's
// time (CLOCK_MONOTONIC ns). Written by that worker only; read after it has exited.
struct alignas(64) GrantRecord {
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::int64_t> first_ns{0};
  std::atomic<std::int64_t> last_ns{0};
};

// Every worker's GrantRecord, in one shared anonymous mapping made before the fork.
class GrantLog {
 public:
  explicit GrantLog(int workers) : workers_(workers), bytes_(sizeof(GrantRecord) * workers) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      throw SystemError(std::string("cannot map the workers' grant records: ") + std::strerror(e),
                        e);
    }
    records_ = static_cast<GrantRecord*>(p);
    for (int w = 0; w < workers; ++w)
      new (&records_[w]) GrantRecord();
  }
  ~GrantLog() { ::munmap(records_, bytes_); }
  GrantLog(const GrantLog&) = delete;
  GrantLog& operator=(const GrantLog&) = delete;

  GrantRecord& at(int w) const noexcept { return records_[w]; }

  // Over every worker: the count summed, the earliest first and the latest last.
  struct Combined {
    std::uint64_t count = 0;
    std::int64_t first_ns = 0;
    std::int64_t last_ns = 0;
  };
  Combined combined() const noexcept {
    Combined c;
    for (int w = 0; w < workers_; ++w) {
      const std::uint64_t n = records_[w].count.load(std::memory_order_acquire);
      if (n == 0) continue;
      const std::int64_t first = records_[w].first_ns.load(std::memory_order_relaxed);
      const std::int64_t last = records_[w].last_ns.load(std::memory_order_relaxed);
      c.first_ns = c.count == 0 ? first : std::min(c.first_ns, first);
      c.last_ns = std::max(c.last_ns, last);
      c.count += n;
    }
    return c;
  }

 private:
  int workers_;
  std::size_t bytes_;
  GrantRecord* records_ = nullptr;
};

// A worker: takes grants until the throttle is stopped, keeping their count and times.
template <ThrottleLike T>
void worker_main(T& throttle, GrantRecord& record) {
  ::signal(SIGINT, SIG_IGN);  // the parent stops the run; Ctrl-C reaches the whole group
  ::signal(SIGTERM, SIG_DFL);
  auto kill = throttle.kill_flag();
  std::uint64_t n = 0;
  while (!kill.is_set()) {
    const auto granted = throttle.await_grant();
    if (!granted) continue;
    const std::int64_t t =
        std::chrono::duration_cast<std::chrono::nanoseconds>(granted->time_since_epoch()).count();
    if (n == 0) record.first_ns.store(t, std::memory_order_relaxed);
    record.last_ns.store(t, std::memory_order_relaxed);
    record.count.store(++n, std::memory_order_release);
  }
  // A Redis worker reports its leased grants now: it leaves on the kill flag, with no further
  // call that would carry them, and a daemon's _exit skips the handle's destructor.
  if constexpr (requires { throttle.release(); }) throttle.release();
}

// stop()'s total, with the grants the workers reported after it (Redis leases: each worker reports
// its own when it sees the kill flag, see release()); a local throttle's total is final at stop().
template <ThrottleLike T>
Summary final_summary(T& throttle, Summary s) {
  if constexpr (requires { throttle.release(); }) {
    s.total = std::max(s.total, throttle.total());
    const double runtime = s.runtime.count();
    s.mean_interval_s = s.total > 0 ? runtime / static_cast<double>(s.total) : 0;
    s.mean_rate_per_sec = runtime > 0 ? static_cast<double>(s.total) / runtime : 0;
  }
  return s;
}

// The options --hardcap and --correction give, for either kind of throttle.
template <class Options>
Options shaped(const RunOptions& opts) {
  Options o;
  o.hardcap = hardcap_named(opts.hardcap);
  if (!std::isnan(opts.correction)) o.correction = opts.correction;
  return o;
}

// The throttle `mpt run` drives: anonymous or named (--name)...
Throttle make_local(const RunOptions& opts) {
  const auto to = shaped<ThrottleOptions>(opts);
  const std::chrono::duration<double> per(opts.per_s);
  if (opts.name.empty()) return Throttle(opts.rate, per, to);
  return Throttle::create(opts.name, opts.rate, per, to);
}

// ... or in Redis (--backend; a stored throttle's configuration is adopted, and said so on stderr).
RemoteThrottle connect_backend(const RunOptions& opts) {
  auto to = shaped<RemoteOptions>(opts);
  to.on_unavailable = parse_on_unavailable(opts.on_unavailable);
  const std::chrono::duration<double> per(opts.per_s);
  RemoteThrottle throttle = RemoteThrottle::connect(opts.backend, opts.rate, per, to);
  const Snapshot s = throttle.snapshot();
  if (s.max_n != opts.rate || s.per_s != opts.per_s || s.hardcap != to.hardcap) {
    std::fprintf(stderr, "mpt run: %s exists: using its stored rate, %lld per %g s, hardcap %s\n",
                 throttle.url().c_str(), static_cast<long long>(s.max_n), s.per_s,
                 to_string(s.hardcap));
  }
  return throttle;
}

// The URL of a throttle in Redis; empty for a local one.
std::string backend_url(const Throttle&) {
  return {};
}
std::string backend_url(const RemoteThrottle& throttle) {
  return throttle.url();
}

// The configuration in force: the throttle's own (a stored throttle in Redis may have another
// rate or hardcap than asked for), read after it was made.
struct InForce {
  std::int64_t max_n = 0;
  double per_s = 1;
  std::string hardcap;
  double rate_per_sec() const { return static_cast<double>(max_n) / per_s; }
};

template <ThrottleLike T>
InForce in_force(const T& throttle) {
  const Snapshot s = throttle.snapshot();
  return {s.max_n, s.per_s, to_string(s.hardcap)};
}

// Starts the workers, daemons that never outlive `mpt run`; if one cannot be forked, stops the
// throttle, reaps those started and throws SystemError.
template <ThrottleLike T>
void start_workers(ProcessGroup& workers, T& throttle) {
  try {
    workers.start();
  } catch (const SystemError& e) {
    const int started = workers.started();
    throttle.stop();
    workers.join_or_kill(std::chrono::seconds(5));
    throw SystemError("cannot fork worker " + std::to_string(started + 1) + " for throttle " +
                          hex_id(throttle.id()) + ": " + std::strerror(e.sys_errno()),
                      e.sys_errno());
  }
}

template <ThrottleLike T>
void print_header(const RunOptions& opts, const T& throttle, const InForce& f) {
  std::printf("mpt run: %lld per %g s (%g/s), hardcap %s, %d workers, %g s, throttle %s%s%s\n",
              static_cast<long long>(f.max_n), f.per_s, f.rate_per_sec(), f.hardcap.c_str(),
              opts.workers, opts.seconds, hex_id(throttle.id()).c_str(),
              opts.name.empty() && backend_url(throttle).empty() ? "" : " ",
              !backend_url(throttle).empty() ? backend_url(throttle).c_str() : opts.name.c_str());
  std::printf("%9s %10s %12s %12s %12s %12s\n", "TIME(s)", "TOTAL", "LATEST(/s)", "LATEST(s)",
              "MEAN(/s)", "MEAN(s)");
  std::fflush(stdout);
}

template <ThrottleLike T>
Sample take_sample(const T& throttle, Clock::time_point t0, Clock::time_point now) {
  Sample s;
  s.elapsed_s = std::chrono::duration<double>(now - t0).count();
  s.total = throttle.total();
  s.latest = throttle.latest();
  s.mean = throttle.mean();
  return s;
}

// Starts the throttle and samples it every --every seconds until --seconds have passed or a stop
// signal came; on a terminal, a status line between the samples.
template <ThrottleLike T>
std::vector<Sample> run_and_sample(const RunOptions& opts, T& throttle, bool tty) {
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
      const Sample& s = samples.emplace_back(take_sample(throttle, t0, now));
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
  return samples;
}

// What a run measured, for the JSON document and the text.
struct RunResult {
  InForce config;
  std::vector<Sample> samples;
  Summary summary;  // stop()'s: the seed's (runtime, total, mean interval, mean rate)
  int interrupted = 0;
  int clean = 0;
  GrantLog::Combined grants;                 // the workers' grants
  std::optional<trial::KernelCount> kernel;  // with --probe
  std::vector<std::string> warnings;         // the library's, during the run (WarningLog)

  // What the achieved rate is measured on: the kernel's count and timestamps with --probe, else
  // the workers' grants. The rate is (count - 1) / (last - first); nullopt with fewer than two.
  GrantLog::Combined achieved() const {
    if (!kernel) return grants;
    return {kernel->total, static_cast<std::int64_t>(kernel->first_ns),
            static_cast<std::int64_t>(kernel->last_ns)};
  }
  std::optional<double> achieved_rate_per_sec() const {
    const GrantLog::Combined a = achieved();
    return calibration::achieved_rate_per_sec(a.count, a.first_ns, a.last_ns);
  }
  std::optional<double> grants_rate_per_sec() const {
    return calibration::achieved_rate_per_sec(grants.count, grants.first_ns, grants.last_ns);
  }
  std::optional<double> rel_error() const {
    return calibration::rel_error(achieved_rate_per_sec(), config.rate_per_sec());
  }
};

nlohmann::json or_null(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json achieved_json(const RunResult& r) {
  const GrantLog::Combined a = r.achieved();
  const auto time_or_null = [&](std::int64_t ns) {
    return a.count > 0 ? nlohmann::json(ns) : nlohmann::json(nullptr);
  };
  return {{"counted_by", r.kernel ? "kernel" : "workers"},
          {"count", a.count},
          {"first_ns", time_or_null(a.first_ns)},
          {"last_ns", time_or_null(a.last_ns)},
          {"rate_per_sec", or_null(r.achieved_rate_per_sec())},
          {"rel_error", or_null(r.rel_error())}};
}

nlohmann::json probe_json(const RunResult& r) {
  const trial::KernelCount& k = *r.kernel;
  return {{"kernel_count", k.total},
          {"kernel_rate_per_sec", or_null(k.achieved_rate_per_sec())},
          {"monitor_total", r.summary.total},
          {"monitor_rate_per_sec", or_null(r.grants_rate_per_sec())},
          {"difference",
           static_cast<std::int64_t>(k.total) - static_cast<std::int64_t>(r.summary.total)},
          {"processes", k.processes},
          {"dropped", k.dropped}};
}

template <ThrottleLike T>
void print_run_json(const RunOptions& opts, const T& throttle, const RunResult& r) {
  const std::string url = backend_url(throttle);
  const nlohmann::json config = {
      {"rate", r.config.max_n},
      {"per_s", r.config.per_s},
      {"rate_per_sec", r.config.rate_per_sec()},
      {"workers", opts.workers},
      {"seconds", opts.seconds},
      {"hardcap", r.config.hardcap},
      {"correction",
       std::isnan(opts.correction) ? nlohmann::json(nullptr) : nlohmann::json(opts.correction)},
      {"every_s", opts.every_s},
      {"interval_ns", throttle.interval().count()},
      {"spin_lead_ns", throttle.spin_lead().count()},
      {"backend", !url.empty() ? nlohmann::json(url) : nlohmann::json("local")},
      {"on_unavailable",
       !url.empty() ? nlohmann::json(opts.on_unavailable) : nlohmann::json(nullptr)},
  };
  nlohmann::json doc = {
      {"schema", kRunSchemaVersion},
      {"command", "run"},
      {"throttle_id", hex_id(throttle.id())},
      {"name", !opts.name.empty() ? nlohmann::json(opts.name)
               : !url.empty()     ? nlohmann::json(throttle.name())
                                  : nlohmann::json(nullptr)},
      {"config", config},
      {"samples", r.samples},
      {"summary", r.summary},
      {"achieved", achieved_json(r)},
      {"interrupted",
       r.interrupted ? nlohmann::json(signal_name(r.interrupted)) : nlohmann::json(nullptr)},
      {"workers_exited_cleanly", r.clean},
      {"host", HostIdentity::current()},
      {"warnings", r.warnings},
  };
  if (r.kernel) doc["probe"] = probe_json(r);
  print_json(doc);
}

// "1234.5678" or "n/a" (fewer than two emissions: no rate).
std::string rate_text(const std::optional<double>& v) {
  char buf[48];
  if (!v) return "n/a";
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

void print_run_text(const RunOptions& opts, const RunResult& r) {
  if (r.interrupted) std::printf("interrupted by %s\n", signal_name(r.interrupted));
  std::printf("Runtime: %.6f s\n", r.summary.runtime.count());
  std::printf("Total: %llu\n", static_cast<unsigned long long>(r.summary.total));
  std::printf("Mean interval: %.6f s\n", r.summary.mean_interval_s);
  std::printf("Mean rate: %.4f per second (total / runtime, the seed's summary)\n",
              r.summary.mean_rate_per_sec);
  const auto count = static_cast<unsigned long long>(r.achieved().count);
  const char* counted_by =
      r.kernel ? (count == 1 ? "emission counted by the kernel" : "emissions counted by the kernel")
               : (count == 1 ? "grant to the workers" : "grants to the workers");
  if (const std::optional<double> rate = r.achieved_rate_per_sec()) {
    std::printf("Achieved rate: %.4f per second, error %+.3f %%\n", *rate, *r.rel_error() * 100);
    std::printf("  ((count - 1) / (last - first) of %llu %s)\n", count, counted_by);
  } else {
    std::printf("Achieved rate: n/a (%llu %s; a rate needs two)\n", count, counted_by);
  }
  if (r.kernel) {
    std::printf("\n%-10s %12s %14s\n", "COUNTED BY", "EMISSIONS", "RATE(/s)");
    std::printf("%-10s %12llu %14s\n", "kernel", static_cast<unsigned long long>(r.kernel->total),
                rate_text(r.kernel->achieved_rate_per_sec()).c_str());
    std::printf("%-10s %12llu %14s\n", "monitor", static_cast<unsigned long long>(r.summary.total),
                rate_text(r.grants_rate_per_sec()).c_str());
    std::printf("difference: %lld (kernel - monitor; must be 0), %zu processes seen\n",
                static_cast<long long>(r.kernel->total) - static_cast<long long>(r.summary.total),
                r.kernel->processes);
  }
  if (r.clean != opts.workers) {
    std::fprintf(stderr, "mpt run: %d of %d workers did not exit cleanly\n", opts.workers - r.clean,
                 opts.workers);
  }
  std::fflush(stdout);
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

namespace {

// Runs the workers on `throttle`, samples it, stops it and prints the result.
template <ThrottleLike T>
int run_on(const RunOptions& opts, T& throttle, const WarningLog& warnings) {
  RunResult r;
  r.config = in_force(throttle);
  // The kernel's count: attached before any worker exists, so it sees every emission.
  std::optional<trial::KernelWitness> witness;
  if (opts.probe) witness.emplace("on", "--probe");

  install_stop_handlers();
  const bool tty = !opts.json && ::isatty(STDOUT_FILENO);
  const GrantLog grants(opts.workers);
  ProcessGroup workers(opts.workers, [&](int i) { worker_main(throttle, grants.at(i)); },
                       {.name = "mpt-run", .daemon = true});
  start_workers(workers, throttle);
  if (!opts.json) print_header(opts, throttle, r.config);

  r.samples = run_and_sample(opts, throttle, tty);
  r.summary = throttle.stop();
  r.interrupted = stop_signal();
  workers.join_or_kill(std::chrono::seconds(5));
  r.clean = workers.succeeded();
  r.summary = final_summary(throttle, r.summary);
  if (tty) std::printf("\r\033[K");
  r.grants = grants.combined();
  if (witness) r.kernel = witness->count(throttle.id());
  r.warnings = warnings.messages();

  if (opts.json) {
    print_run_json(opts, throttle, r);
  } else {
    print_run_text(opts, r);
  }
  return kExitOk;
}

}  // namespace

int run_run(const RunOptions& opts) {
  if (!opts.backend.empty() && opts.probe) {
    throw UsageError("--probe counts this host's emissions only; it does not go with --backend");
  }
  const WarningLog warnings;  // e.g. a throttle that runs uncalibrated where that falls short
  if (!opts.backend.empty()) {
    RemoteThrottle throttle = connect_backend(opts);
    return run_on(opts, throttle, warnings);
  }
  Throttle throttle = make_local(opts);
  return run_on(opts, throttle, warnings);
}

}  // namespace mpt::cli
