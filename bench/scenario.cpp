// bench/scenario.cpp — mpt_scenario: how exactly a throttle holds a rate on this host.
//
// Runs one trial (tools/trial/trial.hpp): one anonymous throttle of --rate per second, --workers
// processes that each loop on await_grant() and record the CLOCK_MONOTONIC time of every grant.
// The parent starts the throttle, sleeps --seconds, stops it, reaps the workers, merges the
// timestamps and reports: the target and achieved totals, the achieved rate and its relative error,
// the most emissions in any window of one second, the intervals between consecutive emissions (p50,
// p99, max) and the workers' CPU time per 1,000 emissions.
//
// Definitions: achieved_total counts the recorded grants stamped between start() and the
// return of stop() (it should equal the total in stop()'s summary); achieved_rate_per_sec is
// (achieved_total - 1) / (last grant - first grant) (mpt::calibration::achieved_rate_per_sec, as
// `mpt calibrate` measures it), and rel_error is achieved_rate_per_sec / rate - 1; both null with
// fewer than two grants. start() makes one unit available at once, so a perfect run takes
// rate * seconds units, +1: mean_rate_per_sec, stop()'s total / runtime (the seed's summary),
// counts that unit (+10 % for 10/s over 1 s) and is never the error.
//
// With --probe (auto or on) the kernel counts the same emissions through the eBPF counter
// (bpf/emissions.hpp, attached to every process that maps the library; needs root or CAP_BPF +
// CAP_PERFMON): kernel_total, kernel_achieved_rate_per_sec and kernel_rel_error are then the
// kernel's figures, by the same definition from the kernel's own timestamps (the earliest first
// and the latest last emission over the processes). Each uprobe hit costs the worker about 1.5 us,
// which the CPU figure includes; the default is off.
//
// The JSON also carries the distribution of the intervals between consecutive grants
// (interval_histogram: log2 buckets of nanoseconds) and the rate over time (rate_series: grants
// in each 100 ms from start()), for bench reports (`mpt report`).
//
// Human text by default, one JSON object with --json (schema 2). Exit 0 ok, 1 runtime error, 2 bad
// usage.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mpt/calibration.hpp"
#include "mpt/throttle.hpp"
#include "trial.hpp"
#include "witness.hpp"

namespace {

constexpr std::int64_t kPerNs = 1'000'000'000;  // the window of the rate: one second
// Arguments echoed in errors are bytes: JSON output makes them valid UTF-8 instead of throwing.
constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
constexpr int kMaxWorkers = 256;
constexpr double kMaxSeconds = 3600;
constexpr std::size_t kMaxRecordBytes = std::size_t{4} << 30;  // timestamps kept, all workers
constexpr int kSchema = 2;  // 2: fence-post-free achieved rates, null below two grants
constexpr std::int64_t kSeriesBinNs = 100'000'000;  // rate_series: grants per 100 ms

// ---------------------------------------------------------------------------------------------
// Options.

struct ScenarioOptions {
  std::int64_t rate_per_sec = 0;  // required
  int workers = 4;
  double seconds = 5;
  mpt::Hardcap hardcap = mpt::Hardcap::kLimit;
  std::optional<double> correction;
  std::optional<double> spin_lead_us;
  std::optional<bool> auto_calibrate;  // default: the library's rule
  std::string probe = "off";           // auto, on, off: the kernel's count too
  bool json = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* kHelp =
    "usage: mpt_scenario --rate N [options]\n"
    "\n"
    "Runs W worker processes against one throttle of N per second for S seconds, records every\n"
    "acquisition's CLOCK_MONOTONIC time and reports how exactly the rate was held.\n"
    "\n"
    "options:\n"
    "  --rate N            units per second (max_n N, per 1 s); required\n"
    "  --workers W         worker processes (default 4)\n"
    "  --seconds S         run time in seconds (default 5)\n"
    "  --hardcap H         limit, one or none (default limit)\n"
    "  --correction C      the throttle's correction, -1 < C < 1 (default: the library's)\n"
    "  --spin-lead-us U    spin this many microseconds before each slot, 0 to 10000\n"
    "  --calibration on|off  use the host's calibration file (default: the library's rule,\n"
    "                      on from 49/s; an explicit --correction always wins)\n"
    "  --probe auto|on|off count the emissions in the kernel too (eBPF; needs root);\n"
    "                      auto: when privileged, on: fail without it (default off)\n"
    "  --json              print one JSON object instead of text\n"
    "  -h, --help          print this help\n";

std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw UsageError(std::string(flag) + " needs an integer, got '" + std::string(text) + "'");
  }
  return v;
}

double parse_double(std::string_view flag, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) {
    throw UsageError(std::string(flag) + " needs a number, got '" + s + "'");
  }
  return v;
}

// Parses argv; returns nullopt when --help was printed. Throws UsageError naming the flag.
std::optional<ScenarioOptions> parse_args(int argc, char** argv) {
  ScenarioOptions o;
  bool have_rate = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string_view {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(std::string(arg) + " needs a value");
      return argv[++i];
    };
    auto no_value = [&] {
      if (inline_value) throw UsageError(std::string(arg) + " takes no value");
    };

    if (arg == "-h" || arg == "--help") {
      no_value();
      std::fputs(kHelp, stdout);
      return std::nullopt;
    } else if (arg == "--rate") {
      o.rate_per_sec = parse_int(arg, value());
      if (o.rate_per_sec < 1 || o.rate_per_sec > 1'000'000'000) {
        throw UsageError("--rate must be between 1 and 1000000000 per second");
      }
      have_rate = true;
    } else if (arg == "--workers") {
      const std::int64_t w = parse_int(arg, value());
      if (w < 1 || w > kMaxWorkers) {
        throw UsageError("--workers must be between 1 and " + std::to_string(kMaxWorkers));
      }
      o.workers = static_cast<int>(w);
    } else if (arg == "--seconds") {
      o.seconds = parse_double(arg, value());
      if (o.seconds <= 0 || o.seconds > kMaxSeconds) {
        throw UsageError("--seconds must be greater than 0 and at most 3600");
      }
    } else if (arg == "--hardcap") {
      const std::string_view h = value();
      if (h == "limit") {
        o.hardcap = mpt::Hardcap::kLimit;
      } else if (h == "one") {
        o.hardcap = mpt::Hardcap::kOne;
      } else if (h == "none") {
        o.hardcap = mpt::Hardcap::kNone;
      } else {
        throw UsageError("--hardcap must be limit, one or none, got '" + std::string(h) + "'");
      }
    } else if (arg == "--correction") {
      o.correction = parse_double(arg, value());
      if (*o.correction <= -1 || *o.correction >= 1) {
        throw UsageError("--correction must be greater than -1 and less than 1");
      }
    } else if (arg == "--spin-lead-us") {
      o.spin_lead_us = parse_double(arg, value());
      if (*o.spin_lead_us < 0 || *o.spin_lead_us > 10'000) {
        throw UsageError("--spin-lead-us must be between 0 and 10000");
      }
    } else if (arg == "--calibration") {
      const std::string_view v = value();
      if (v != "on" && v != "off") {
        throw UsageError("--calibration must be on or off, got '" + std::string(v) + "'");
      }
      o.auto_calibrate = v == "on";
    } else if (arg == "--probe") {
      const std::string_view v = value();
      if (v != "auto" && v != "on" && v != "off") {
        throw UsageError("--probe must be auto, on or off, got '" + std::string(v) + "'");
      }
      o.probe = std::string(v);
    } else if (arg == "--json") {
      no_value();
      o.json = true;
    } else {
      throw UsageError("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (!have_rate) throw UsageError("--rate is required");
  return o;
}

// The kernel's count of one throttle's emissions, when the eBPF counter could be had.
using mpt::trial::KernelCount;
using mpt::trial::KernelWitness;

struct ScenarioResult : mpt::trial::TrialResult {
  KernelCount kernel;
};

ScenarioResult run_scenario(const ScenarioOptions& o) {
  const KernelWitness witness(o.probe);
  mpt::trial::TrialOptions t;
  t.rate_per_sec = o.rate_per_sec;
  t.workers = o.workers;
  t.seconds = o.seconds;
  t.throttle.hardcap = o.hardcap;
  t.throttle.correction = o.correction;
  t.throttle.auto_calibrate = o.auto_calibrate;
  if (o.spin_lead_us) {
    t.throttle.spin_lead = std::chrono::nanoseconds(std::llround(*o.spin_lead_us * 1000));
  }
  ScenarioResult r{mpt::trial::run_trial(t), {}};
  r.kernel = witness.count(r.throttle_id);
  return r;
}

// Log2 buckets of the intervals between consecutive grants: bucket k holds the intervals g with
// 2^k <= g < 2^(k+1) ns (bucket 0 also holds 0), from the first non-empty bucket to the last.
nlohmann::ordered_json interval_histogram(const std::vector<std::int64_t>& sorted_times) {
  std::uint64_t counts[64] = {};
  for (std::size_t i = 1; i < sorted_times.size(); ++i) {
    const auto gap = static_cast<std::uint64_t>(
        std::max<std::int64_t>(sorted_times[i] - sorted_times[i - 1], 1));
    ++counts[63 - __builtin_clzll(gap)];
  }
  int lo = 0;
  int hi = 63;
  while (lo < 64 && counts[lo] == 0)
    ++lo;
  while (hi >= lo && counts[hi] == 0)
    --hi;
  nlohmann::ordered_json buckets = nlohmann::ordered_json::array();
  for (int k = lo; k <= hi && k < 62; ++k) {
    buckets.push_back({{"lo_ns", std::int64_t{1} << k},
                       {"hi_ns", std::int64_t{1} << (k + 1)},
                       {"count", counts[k]}});
  }
  return buckets;
}

// Grants in each whole kSeriesBinNs from start() within the runtime (a last, partial bin is left
// out: its count would read as a drop in the rate).
std::vector<std::uint64_t> rate_series(const ScenarioResult& r) {
  const auto bins = static_cast<std::size_t>(std::max<double>(
      1, std::floor(r.runtime_s * 1e9 / static_cast<double>(kSeriesBinNs) + 1e-6)));
  std::vector<std::uint64_t> counts(bins, 0);
  for (const std::int64_t t : r.times) {
    const std::int64_t k = (t - r.start_ns) / kSeriesBinNs;
    if (k >= 0 && static_cast<std::size_t>(k) < bins) ++counts[static_cast<std::size_t>(k)];
  }
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Reports.

bool totals_match(const ScenarioResult& r) {
  return r.totals_match();
}

nlohmann::ordered_json or_null(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

// A rate (or a relative error in %) for the text table: "n/a" when there is none.
std::string opt_text(const std::optional<double>& v, const char* format, double scale = 1) {
  if (!v) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, *v * scale);
  return buf;
}

nlohmann::ordered_json to_json(const ScenarioOptions& o, const ScenarioResult& r) {
  nlohmann::ordered_json j;
  j["schema"] = kSchema;
  j["rate_per_sec"] = o.rate_per_sec;
  j["per_s"] = 1.0;
  j["workers"] = o.workers;
  j["seconds"] = o.seconds;
  j["hardcap"] = mpt::to_string(o.hardcap);
  j["correction"] = r.correction;
  j["correction_source"] = r.correction_source;
  j["spin_lead_ns"] = r.spin_lead_ns;
  j["slot_interval_ns"] = r.interval_ns;
  j["target_total"] = r.target_total;
  j["achieved_total"] = r.achieved_total;
  j["monitor_total"] = r.monitor_total;
  j["monitor_total_after_reap"] = r.monitor_total_after_reap;
  j["recorded_total"] = r.recorded_total;
  j["dropped"] = r.dropped;
  j["totals_match"] = totals_match(r);
  j["runtime_s"] = r.runtime_s;
  j["mean_rate_per_sec"] = r.mean_rate_per_sec;
  j["first_grant_ns"] = r.achieved_total > 0 ? nlohmann::ordered_json(r.first_ns) : nullptr;
  j["last_grant_ns"] = r.achieved_total > 0 ? nlohmann::ordered_json(r.last_ns) : nullptr;
  j["achieved_rate_per_sec"] = or_null(r.achieved_rate_per_sec);
  j["rel_error"] = or_null(r.rel_error);
  j["max_in_window"] = r.max_in_window;
  j["window_s"] = static_cast<double>(kPerNs) / 1e9;
  j["interval_p50_ns"] = r.interval_p50_ns;
  j["interval_p99_ns"] = r.interval_p99_ns;
  j["interval_max_ns"] = r.interval_max_ns;
  j["cpu_s"] = r.cpu_s;
  j["cpu_s_per_1000"] = r.cpu_s_per_1000;
  j["probe"] = r.kernel.counted ? "ebpf" : "none";
  j["probe_note"] = r.kernel.counted ? "" : r.kernel.why_not;
  const std::optional<double> kernel_rate = r.kernel.achieved_rate_per_sec();
  j["kernel_total"] = r.kernel.counted ? nlohmann::ordered_json(r.kernel.total) : nullptr;
  j["kernel_achieved_rate_per_sec"] = or_null(kernel_rate);
  j["kernel_rel_error"] =
      or_null(mpt::calibration::rel_error(kernel_rate, static_cast<double>(o.rate_per_sec)));
  j["interval_histogram"] = interval_histogram(r.times);
  j["rate_series"] = {{"bin_s", static_cast<double>(kSeriesBinNs) / 1e9},
                      {"counts", rate_series(r)}};
  return j;
}

void print_text(const ScenarioOptions& o, const ScenarioResult& r) {
  std::printf("rate %lld/s, %d workers, %g s, hardcap %s, correction %g (%s), spin lead %.1f us\n",
              static_cast<long long>(o.rate_per_sec), o.workers, o.seconds,
              mpt::to_string(o.hardcap), r.correction, r.correction_source.c_str(),
              static_cast<double>(r.spin_lead_ns) / 1e3);
  std::printf("%-22s %14s\n", "QUANTITY", "VALUE");
  std::printf("%-22s %14.0f\n", "target", r.target_total);
  std::printf("%-22s %14llu\n", "achieved", static_cast<unsigned long long>(r.achieved_total));
  std::printf("%-22s %14llu\n", "monitor total", static_cast<unsigned long long>(r.monitor_total));
  std::printf("%-22s %14s\n", "achieved rate(/s)",
              opt_text(r.achieved_rate_per_sec, "%.3f").c_str());
  std::printf("%-22s %14s\n", "rel error(%)", opt_text(r.rel_error, "%+.4f", 100).c_str());
  std::printf("%-22s %14.3f\n", "total/runtime(/s)", r.mean_rate_per_sec);
  std::printf("%-22s %14llu\n", "max in 1 s window",
              static_cast<unsigned long long>(r.max_in_window));
  std::printf("%-22s %14.1f\n", "interval p50(us)", static_cast<double>(r.interval_p50_ns) / 1e3);
  std::printf("%-22s %14.1f\n", "interval p99(us)", static_cast<double>(r.interval_p99_ns) / 1e3);
  std::printf("%-22s %14.1f\n", "interval max(us)", static_cast<double>(r.interval_max_ns) / 1e3);
  std::printf("%-22s %14.3f\n", "cpu per 1000(ms)", r.cpu_s_per_1000 * 1e3);
  if (r.kernel.counted) {
    std::printf("%-22s %14llu\n", "kernel total", static_cast<unsigned long long>(r.kernel.total));
    std::printf("%-22s %14s\n", "kernel rate(/s)",
                opt_text(r.kernel.achieved_rate_per_sec(), "%.3f").c_str());
  } else if (o.probe != "off") {
    std::printf("kernel count: none (%s)\n", r.kernel.why_not.c_str());
  }
  if (!totals_match(r)) {
    std::fprintf(
        stderr,
        "mpt_scenario: warning: counts differ: %llu recorded in the run, %llu counted by "
        "stop(); %llu recorded in all, %llu counted after the workers left; %llu dropped\n",
        static_cast<unsigned long long>(r.achieved_total),
        static_cast<unsigned long long>(r.monitor_total),
        static_cast<unsigned long long>(r.recorded_total),
        static_cast<unsigned long long>(r.monitor_total_after_reap),
        static_cast<unsigned long long>(r.dropped));
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i)
    json = json || std::string_view(argv[i]) == "--json";

  std::optional<ScenarioOptions> options;
  try {
    options = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mpt_scenario: %s (see --help)\n", e.what());
    if (json)
      std::printf("%s\n",
                  nlohmann::json{{"error", e.what()}}.dump(-1, ' ', false, kReplace).c_str());
    return 2;
  }
  if (!options) return 0;

  // The library's warnings (an uncalibrated throttle where that falls short, say): on stderr at
  // once, and in the JSON's "warnings".
  std::vector<std::string> warnings;
  mpt::set_log_hook([&warnings](std::string_view m) {
    std::fprintf(stderr, "mpt_scenario: warning: %.*s\n", static_cast<int>(m.size()), m.data());
    warnings.emplace_back(m);
  });
  try {
    const ScenarioResult r = run_scenario(*options);
    if (options->json) {
      auto doc = to_json(*options, r);
      doc["warnings"] = warnings;
      std::printf("%s\n", doc.dump(2, ' ', false, kReplace).c_str());
    } else {
      print_text(*options, r);
    }
  } catch (const std::exception& e) {
    if (json) {
      std::printf("%s\n",
                  nlohmann::json{{"error", e.what()}}.dump(-1, ' ', false, kReplace).c_str());
    } else {
      std::fprintf(stderr, "mpt_scenario: %s\n", e.what());
    }
    return 1;
  }
  return 0;
}
