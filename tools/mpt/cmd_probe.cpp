// tools/mpt/cmd_probe.cpp — `mpt probe`: the kernel's count of every process's emissions.
//
// Loads bpf/emissions.bpf.c, attaches it to mpthrottle:emit and mpthrottle:fuel in the shared
// library (every process that maps it), in one process (--pid), or in a statically linked binary
// (--binary), and prints per process and throttle the count, the rate and the shortest/longest
// interval every --interval seconds; at the end the totals and the histograms. Privileges are
// checked before anything is loaded.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>
#include <tuple>

#include "commands.hpp"
#include "common.hpp"
#include "emissions.hpp"
#include "mpt/calibration.hpp"
#include "mpt/segment.hpp"

namespace mpt::cli {

namespace {

using Key = std::tuple<std::uint64_t, std::uint32_t>;  // throttle id, tgid

struct Row {
  std::uint64_t throttle_id = 0;
  std::uint32_t tgid = 0;
  mpt_stats emit{};
  mpt_stats fuel{};
};

std::map<Key, Row> collect(const probe::EmissionCounter& counter) {
  std::map<Key, Row> rows;
  for (const auto& e : counter.read()) {
    Row& r = rows[{e.throttle_id, e.tgid}];
    r.throttle_id = e.throttle_id;
    r.tgid = e.tgid;
    (e.kind == MPT_KIND_EMIT ? r.emit : r.fuel) = e.stats;
  }
  return rows;
}

// Names of the named throttles this user can see, by id.
std::map<std::uint64_t, std::string> names_by_id() {
  std::map<std::uint64_t, std::string> out;
  try {
    for (const auto& info : Segment::list()) {
      if (info.valid) out[info.id] = info.name;
    }
  } catch (const std::exception&) {
  }
  return out;
}

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

// Rate from kernel timestamps: (count - 1) intervals between the first and the last emission
// (calibration::achieved_rate_per_sec); 0 below two emissions.
double kernel_rate(const mpt_stats& s) {
  return calibration::achieved_rate_per_sec(s.count, static_cast<std::int64_t>(s.first_ns),
                                            static_cast<std::int64_t>(s.last_ns))
      .value_or(0);
}

nlohmann::json histogram_json(const mpt_stats& s) {
  nlohmann::json h = nlohmann::json::array();
  for (int i = 0; i < MPT_HIST_SLOTS; ++i) {
    if (s.hist[i] == 0) continue;
    h.push_back(
        {{"lo_ns", i == 0 ? 0ULL : (1ULL << i)}, {"hi_ns", 1ULL << (i + 1)}, {"count", s.hist[i]}});
  }
  return h;
}

nlohmann::json row_json(const Row& r, const std::map<std::uint64_t, std::string>& names,
                        std::uint64_t count, double rate, bool totals) {
  nlohmann::json j = {{"pid", r.tgid},
                      {"throttle_id", hex_id(r.throttle_id)},
                      {"name", names.count(r.throttle_id) ? nlohmann::json(names.at(r.throttle_id))
                                                          : nlohmann::json(nullptr)},
                      {"count", count},
                      {"rate_per_sec", rate},
                      {"min_interval_ns", r.emit.count > 1 ? nlohmann::json(r.emit.min_value_ns)
                                                           : nlohmann::json(nullptr)},
                      {"max_interval_ns", r.emit.count > 1 ? nlohmann::json(r.emit.max_value_ns)
                                                           : nlohmann::json(nullptr)}};
  if (totals) {
    j["first_ns"] = r.emit.first_ns;
    j["last_ns"] = r.emit.last_ns;
    j["fuel_count"] = r.fuel.count;
    j["fuel_wait_mean_ns"] = r.fuel.count ? r.fuel.sum_value_ns / r.fuel.count : 0;
    j["interval_histogram"] = histogram_json(r.emit);
    j["fuel_wait_histogram"] = histogram_json(r.fuel);
  }
  return j;
}

void print_histogram(const char* title, const mpt_stats& s) {
  std::uint64_t peak = 0;
  for (auto c : s.hist)
    peak = std::max<std::uint64_t>(peak, c);
  if (peak == 0) return;
  std::printf("    %-22s %10s\n", title, "COUNT");
  for (int i = 0; i < MPT_HIST_SLOTS; ++i) {
    if (s.hist[i] == 0) continue;
    const int bar = static_cast<int>(30 * s.hist[i] / peak);
    std::printf("    %9.1f -> %-9.1f %10llu |%-30s|\n", i == 0 ? 0.0 : us(1ULL << i),
                us(1ULL << (i + 1)), static_cast<unsigned long long>(s.hist[i]),
                std::string(static_cast<std::size_t>(bar), '*').c_str());
  }
}

}  // namespace

CLI::App* setup_probe(CLI::App& app, ProbeOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "probe",
      "Count emissions in the kernel (eBPF on the USDT probes mpthrottle:emit and "
      "mpthrottle:fuel), "
      "independently of the library's own monitor. Needs CAP_BPF and CAP_PERFMON (or root).");
  cmd->add_option("--pid", o.pid, "only this process (default: every process using the library)")
      ->check(integer_in(1, 4194304));
  auto* lib = cmd->add_option(
      "--lib", o.lib, "the shared library to probe (default: the libmpthrottle this mpt uses)");
  auto* bin = cmd->add_option("--binary", o.binary, "a statically linked program to probe instead");
  lib->excludes(bin);
  cmd->add_option("--seconds", o.seconds_s, "stop after this many seconds (default: until Ctrl-C)")
      ->check(number_in(0, 1e7, true));
  cmd->add_option("--interval", o.interval_s, "seconds between reports (default 1)")
      ->check(number_in(0.01, 3600));
  cmd->add_flag("--json", o.json, "JSON Lines on stdout: one object per interval, then the totals");
  return cmd;
}

int run_probe(const ProbeOptions& o) {
  const std::string missing = probe::missing_privileges();
  if (!missing.empty()) throw std::runtime_error(missing);
  probe::Target target;
  target.pid = o.pid > 0 ? static_cast<pid_t>(o.pid) : -1;
  target.path = !o.binary.empty() ? o.binary
                : !o.lib.empty()  ? o.lib
                                  : probe::default_library_path();
  if (access(target.path.c_str(), R_OK) != 0) {
    throw std::runtime_error("cannot read " + target.path + " to attach the probes");
  }
  install_stop_handlers();
  probe::EmissionCounter counter(target);
  if (!o.json) {
    std::fprintf(
        stderr, "mpt probe: attached to %s%s; Ctrl-C to stop\n", target.path.c_str(),
        target.pid > 0 ? (" pid " + std::to_string(target.pid)).c_str() : " (every process)");
  }

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto end = o.seconds_s > 0 ? t0 + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(o.seconds_s))
                                   : Clock::time_point::max();
  const auto step =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.interval_s));
  std::map<Key, std::uint64_t> previous;
  auto next = t0 + step;
  while (stop_signal() == 0 && Clock::now() < end) {
    const auto wake = std::min(next, end);
    while (stop_signal() == 0 && Clock::now() < wake) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(wake - Clock::now(), std::chrono::milliseconds(50)));
    }
    if (stop_signal() != 0 || Clock::now() >= end) break;
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const double span = std::chrono::duration<double>(step).count();
    const auto rows = collect(counter);
    const auto names = names_by_id();
    nlohmann::json out = {{"schema", kSchemaVersion}, {"type", "interval"}, {"elapsed_s", elapsed}};
    out["rows"] = nlohmann::json::array();
    if (!o.json) {
      std::printf("%8.1fs %8s %-18s %-16s %8s %10s %10s %10s\n", elapsed, "PID", "THROTTLE", "NAME",
                  "COUNT", "RATE(/s)", "MIN(us)", "MAX(us)");
    }
    for (const auto& [key, r] : rows) {
      const std::uint64_t delta = r.emit.count - previous[key];
      previous[key] = r.emit.count;
      if (delta == 0) continue;
      const double rate = static_cast<double>(delta) / span;
      if (o.json) {
        out["rows"].push_back(row_json(r, names, delta, rate, false));
      } else {
        std::printf(
            "%9s %8u %-18s %-16s %8llu %10.1f %10.1f %10.1f\n", "", r.tgid,
            hex_id(r.throttle_id).c_str(),
            names.count(r.throttle_id) ? names.at(r.throttle_id).substr(0, 16).c_str() : "-",
            static_cast<unsigned long long>(delta), rate,
            r.emit.count > 1 ? us(r.emit.min_value_ns) : 0.0, us(r.emit.max_value_ns));
      }
    }
    if (o.json) print_json(out, false);
    std::fflush(stdout);
    next += step;
  }

  // Totals, then the counter detaches (RAII) on the way out.
  const auto rows = collect(counter);
  const auto names = names_by_id();
  if (o.json) {
    nlohmann::json out = {
        {"schema", kSchemaVersion}, {"type", "totals"}, {"dropped", counter.dropped()}};
    out["rows"] = nlohmann::json::array();
    for (const auto& [key, r] : rows)
      out["rows"].push_back(row_json(r, names, r.emit.count, kernel_rate(r.emit), true));
    print_json(out, false);
  } else {
    std::printf("\nTOTALS %8s %-18s %-16s %10s %12s %10s\n", "PID", "THROTTLE", "NAME", "COUNT",
                "RATE(/s)", "FUEL");
    for (const auto& [key, r] : rows) {
      std::printf("       %8u %-18s %-16s %10llu %12.2f %10llu\n", r.tgid,
                  hex_id(r.throttle_id).c_str(),
                  names.count(r.throttle_id) ? names.at(r.throttle_id).substr(0, 16).c_str() : "-",
                  static_cast<unsigned long long>(r.emit.count), kernel_rate(r.emit),
                  static_cast<unsigned long long>(r.fuel.count));
      print_histogram("INTERVAL(us)", r.emit);
      print_histogram("FUEL WAIT(us)", r.fuel);
    }
    if (counter.dropped())
      std::printf("dropped (map full): %llu\n", static_cast<unsigned long long>(counter.dropped()));
  }
  return kExitOk;
}

}  // namespace mpt::cli
