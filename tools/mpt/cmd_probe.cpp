// tools/mpt/cmd_probe.cpp — `mpt probe`: the kernel's count of every process's emissions.
//
// Loads bpf/emissions.bpf.c, attaches it to mpthrottle:emit and mpthrottle:fuel in the shared
// library (every process that maps it), in one process (--pid), or in a statically linked binary
// (--binary), and prints per process and throttle the count, the rate and the shortest/longest
// interval every --interval seconds; at the end the totals and the histograms. --id and --name
// keep one throttle (the kernel filters by id; a name is looked up in the segment directory while
// the probe runs). Privileges are checked before anything is loaded.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
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

// Which throttles are shown: every one, the one --id names (the kernel counts only that one), or
// the ones the segment --name has held while the probe ran (looked up at the start and every
// 50 ms, so a named throttle that comes and goes between two looks is missed; --id is exact).
class ThrottleFilter {
 public:
  explicit ThrottleFilter(const ProbeOptions& o) : id_(parse_id(o.id)), name_(o.name) { look_up(); }

  std::uint64_t kernel_id() const { return id_; }
  void look_up() {
    if (name_.empty()) return;
    const SegmentInfo info = Segment::inspect(name_);
    if (info.valid && info.kind == SegmentKind::kThrottle) ids_.insert(info.id);
  }
  bool keep(std::uint64_t throttle_id) const {
    if (id_ != 0) return throttle_id == id_;
    return name_.empty() || ids_.count(throttle_id) != 0;
  }
  // The name of an id this filter looked up (it may be gone from the directory by now).
  const std::string* name_of(std::uint64_t throttle_id) const {
    return ids_.count(throttle_id) ? &name_ : nullptr;
  }
  std::string describe() const {
    if (id_ != 0) return ", throttle " + hex_id(id_);
    return name_.empty() ? "" : ", throttle named " + name_;
  }

  // "0x" and 1 to 16 hex digits, as mpt prints ids; 0 for an empty text.
  static std::uint64_t parse_id(const std::string& text) {
    if (text.empty()) return 0;
    return std::stoull(text.substr(2), nullptr, 16);
  }

 private:
  std::uint64_t id_;
  std::string name_;
  std::set<std::uint64_t> ids_;
};

std::map<Key, Row> collect(const probe::EmissionCounter& counter, const ThrottleFilter& filter) {
  std::map<Key, Row> rows;
  for (const auto& e : counter.read()) {
    if (!filter.keep(e.throttle_id)) continue;
    Row& r = rows[{e.throttle_id, e.tgid}];
    r.throttle_id = e.throttle_id;
    r.tgid = e.tgid;
    (e.kind == MPT_KIND_EMIT ? r.emit : r.fuel) = e.stats;
  }
  return rows;
}

// Names of the named throttles this user can see, by id (and those the filter looked up).
std::map<std::uint64_t, std::string> names_by_id(const std::map<Key, Row>& rows,
                                                 const ThrottleFilter& filter) {
  std::map<std::uint64_t, std::string> out;
  for (const auto& [key, r] : rows)
    if (const std::string* n = filter.name_of(r.throttle_id)) out[r.throttle_id] = *n;
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

// One --interval's report: the emissions of each (throttle, process) since the previous one.
void print_interval(const std::map<Key, Row>& rows,
                    const std::map<std::uint64_t, std::string>& names,
                    std::map<Key, std::uint64_t>& previous, double elapsed, double span,
                    bool json) {
  nlohmann::json out = {{"schema", kSchemaVersion}, {"type", "interval"}, {"elapsed_s", elapsed}};
  out["rows"] = nlohmann::json::array();
  if (!json) {
    std::printf("%8.1fs %8s %-18s %-16s %8s %10s %10s %10s\n", elapsed, "PID", "THROTTLE", "NAME",
                "COUNT", "RATE(/s)", "MIN(us)", "MAX(us)");
  }
  for (const auto& [key, r] : rows) {
    const std::uint64_t delta = r.emit.count - previous[key];
    previous[key] = r.emit.count;
    if (delta == 0) continue;
    const double rate = static_cast<double>(delta) / span;
    if (json) {
      out["rows"].push_back(row_json(r, names, delta, rate, false));
    } else {
      std::printf("%9s %8u %-18s %-16s %8llu %10.1f %10.1f %10.1f\n", "", r.tgid,
                  hex_id(r.throttle_id).c_str(),
                  names.count(r.throttle_id) ? names.at(r.throttle_id).substr(0, 16).c_str() : "-",
                  static_cast<unsigned long long>(delta), rate,
                  r.emit.count > 1 ? us(r.emit.min_value_ns) : 0.0, us(r.emit.max_value_ns));
    }
  }
  if (json) print_json(out, false);
  std::fflush(stdout);
}

// The end: each (throttle, process)'s whole count, its rate from kernel timestamps, histograms.
void print_totals(const std::map<Key, Row>& rows, const std::map<std::uint64_t, std::string>& names,
                  std::uint64_t dropped, bool json) {
  if (json) {
    nlohmann::json out = {{"schema", kSchemaVersion}, {"type", "totals"}, {"dropped", dropped}};
    out["rows"] = nlohmann::json::array();
    for (const auto& [key, r] : rows)
      out["rows"].push_back(row_json(r, names, r.emit.count, kernel_rate(r.emit), true));
    print_json(out, false);
    return;
  }
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
  if (dropped) std::printf("dropped (map full): %llu\n", static_cast<unsigned long long>(dropped));
}

// "0x" and 1 to 16 hex digits: a throttle id as mpt prints it.
CLI::Validator throttle_id() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const bool ok = s.size() > 2 && s.size() <= 18 && s[0] == '0' &&
                        (s[1] == 'x' || s[1] == 'X') &&
                        s.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos;
        if (!ok) return "expected a throttle id, 0x and 1 to 16 hex digits, got '" + s + "'";
        if (ThrottleFilter::parse_id(s) == 0) return "a throttle id is never 0";
        return {};
      },
      "ID");
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
  auto* id = cmd->add_option("--id", o.id,
                             "only the throttle with this id (0x..., as mpt prints it; the kernel "
                             "counts no other)")
                 ->check(throttle_id());
  auto* name = cmd->add_option("--name", o.name,
                               "only the named throttle NAME (looked up in the segment directory "
                               "at the start and every 50 ms while the probe runs)")
                   ->check(segment_name());
  id->excludes(name);
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
  ThrottleFilter filter(o);
  probe::Target target;
  target.pid = o.pid > 0 ? static_cast<pid_t>(o.pid) : -1;
  target.path = !o.binary.empty() ? o.binary
                : !o.lib.empty()  ? o.lib
                                  : probe::default_library_path();
  target.throttle_id = filter.kernel_id();
  if (access(target.path.c_str(), R_OK) != 0) {
    throw std::runtime_error("cannot read " + target.path + " to attach the probes");
  }
  install_stop_handlers();
  probe::EmissionCounter counter(target);
  if (!o.json) {
    std::fprintf(
        stderr, "mpt probe: attached to %s%s%s; Ctrl-C to stop\n", target.path.c_str(),
        target.pid > 0 ? (" pid " + std::to_string(target.pid)).c_str() : " (every process)",
        filter.describe().c_str());
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
      filter.look_up();
    }
    if (stop_signal() != 0 || Clock::now() >= end) break;
    const auto rows = collect(counter, filter);
    print_interval(rows, names_by_id(rows, filter), previous,
                   std::chrono::duration<double>(Clock::now() - t0).count(),
                   std::chrono::duration<double>(step).count(), o.json);
    next += step;
  }
  // Totals, then the counter detaches (RAII) on the way out.
  filter.look_up();
  const auto rows = collect(counter, filter);
  print_totals(rows, names_by_id(rows, filter), counter.dropped(), o.json);
  return kExitOk;
}

}  // namespace mpt::cli
