// tools/mpt/cmd_stat.cpp — `mpt stat NAME`: a named throttle's live snapshot, once or every
// --watch seconds until SIGINT/SIGTERM (JSON Lines with --json --watch). `mpt stat [NAME...]
// --openmetrics`: those throttles (none named: every one) in the OpenMetrics text format.
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"
#include "metrics.hpp"
#include "mpt/redis.hpp"
#include "mpt/throttle.hpp"

namespace mpt::cli {

namespace {

void print_rate(const char* label, const Rate& r) {
  std::printf("%-12s %.4f per second (%.6f s between emissions)\n", label, r.rate_per_sec,
              r.interval_s);
}

void print_human(const Snapshot& s, const std::string& url) {
  std::printf("%-12s %s (id %s)\n", "throttle", printable(s.name).c_str(), hex_id(s.id).c_str());
  std::printf("%-12s %s\n", "state", to_string(s.state));
  std::printf("%-12s %lld per %g s (%g/s), hardcap %s, interval %lld ns\n", "rate",
              static_cast<long long>(s.max_n), s.per_s,
              s.per_s > 0 ? static_cast<double>(s.max_n) / s.per_s : 0.0, to_string(s.hardcap),
              static_cast<long long>(s.interval_ns));
  std::printf("%-12s as_monitor=%d as_throttle=%d auto_emit=%d auto_calibrate=%d rf_rate=%g s\n",
              "options", s.as_monitor, s.as_throttle, s.auto_emit, s.auto_calibrate, s.rf_rate_s);
  std::printf("%-12s %g (%s), spin lead %lld ns\n", "correction", s.correction,
              printable(s.correction_source).c_str(), static_cast<long long>(s.spin_lead_ns));
  std::printf("%-12s %llu in %.6f s, %lld available now\n", "total",
              static_cast<unsigned long long>(s.total), s.runtime_s,
              static_cast<long long>(s.available));
  print_rate("latest", s.latest);
  print_rate("mean", s.mean);
  print_rate("lo_hi", s.lo_hi);
  print_rate("hi_lo", s.hi_lo);
  if (!url.empty()) {  // another host's pid: nothing to check here
    std::printf("%-12s %s\n", "backend", printable(url).c_str());
    std::printf("%-12s pid %d, %.1f s ago\n", "created by", s.creator_pid,
                age_seconds(s.created_realtime_ns));
    return;
  }
  std::printf("%-12s pid %d (%s), %.1f s ago\n", "created by", s.creator_pid,
              pid_alive(s.creator_pid) ? "alive" : "gone", age_seconds(s.created_realtime_ns));
}

}  // namespace

CLI::App* setup_stat(CLI::App& app, StatOptions& opts) {
  CLI::App* cmd = app.add_subcommand("stat", "Show a named throttle's live statistics");
  // A segment name, or a redis:// URL (the fleet's throttle in Redis).
  const CLI::Validator name_or_url(
      [](std::string& s) -> std::string {
        if (s.rfind("redis://", 0) == 0) return {};
        std::string copy = s;
        return segment_name()(copy);
      },
      "NAME|URL");
  cmd->add_option("NAME", opts.names,
                  "throttle name (/dev/shm/mpt.NAME), or redis://HOST:PORT/NAME for one in Redis; "
                  "one, or with --openmetrics any number (none: every throttle)")
      ->check(name_or_url);
  cmd->add_option("--watch", opts.watch_s, "refresh every S seconds until interrupted")
      ->check(number_in(0.01, 3600));
  cmd->add_flag("--json", opts.json, "JSON (JSON Lines with --watch)");
  cmd->add_flag("--openmetrics", opts.openmetrics,
                "the throttles' metrics in the OpenMetrics text format (mpthrottle_* series "
                "labelled name=...); not with --json or --watch");
  return cmd;
}

namespace {

// Prints the snapshot of `throttle` once, or every --watch seconds until a stop signal. `url`: the
// backend of a throttle in Redis, empty for a local one.
template <ThrottleLike T>
int show(const StatOptions& opts, const T& throttle, const std::string& url) {
  if (opts.watch_s > 0) install_stop_handlers();
  Ticker ticker(opts.watch_s);
  bool first = true;
  do {
    const Snapshot s = throttle.snapshot();
    if (opts.json) {
      nlohmann::json j = s;
      j["schema"] = kSchemaVersion;
      if (!url.empty()) j["backend"] = url;
      print_json(j, opts.watch_s == 0);
    } else {
      if (!first) std::printf("\n");
      print_human(s, url);
      std::fflush(stdout);
    }
    first = false;
  } while (opts.watch_s > 0 && ticker.wait());
  return kExitOk;
}

int show_openmetrics(const StatOptions& opts) {
  if (opts.json) throw UsageError("--openmetrics: not with --json (choose one format)");
  if (opts.watch_s > 0) throw UsageError("--openmetrics: not with --watch");
  for (const std::string& n : opts.names) {
    if (n.rfind("redis://", 0) == 0)
      throw UsageError("--openmetrics: NAME " + n +
                       " is in Redis; only local throttles have metrics");
  }
  const std::string text =
      render_metrics(read_throttles(opts.names, true), MetricsFormat::kOpenMetrics);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

}  // namespace

int run_stat(const StatOptions& opts) {
  if (opts.openmetrics) return show_openmetrics(opts);
  if (opts.names.size() != 1) {
    throw UsageError(opts.names.empty()
                         ? "stat: NAME is required (several, or none, with --openmetrics)"
                         : "stat: one NAME (several with --openmetrics)");
  }
  const std::string& name = opts.names.front();
  if (name.rfind("redis://", 0) == 0) {
    const RemoteThrottle throttle = RemoteThrottle::connect(name);
    return show(opts, throttle, throttle.url());
  }
  return show(opts, Throttle::open(name), std::string());
}

}  // namespace mpt::cli
