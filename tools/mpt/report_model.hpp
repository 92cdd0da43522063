// tools/mpt/report_model.hpp — the bench report (scripts/bench's report.json): its model, a strict
// reader, and the renderers behind `mpt report`.
//
// parse_report() accepts only a complete, well-typed report of schema 2: any missing field, wrong
// type, value out of range or inconsistency (a floor naming no benchmark of its suite, histogram
// buckets out of order) throws ReportError whose message names the field by its JSON path, e.g.
// "scenarios[2].rel_error: expected a number, got string". It never crashes on any input (a fuzz
// target calls it) and bounds every array and string it keeps.
//
// The renderers are pure functions of the parsed reports: render_text() gives the terminal summary
// and render_html() one self-contained page (inline SVG, no script, no external resource) in which
// every string taken from a report is escaped. Ratios against the peers and between two reports
// are computed here, never stored in the report.
//
// Not thread-hostile: no global state.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mpt::report {

// 2: achieved rates are (count - 1) / (last - first), null with fewer than two grants (1 counted
// the unit given at start: total / runtime).
inline constexpr int kReportSchema = 2;
inline constexpr std::string_view kReportKind = "mpthrottle-bench-report";
inline constexpr std::size_t kMaxReportBytes = std::size_t{64} << 20;

// A report that cannot be used; the message names the field.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Host {
  std::string hostname;
  std::string kernel;
  std::string cpu_model;
  std::int64_t cores = 0;
  std::string clocksource;
};

struct CalibrationInfo {
  std::string path;
  bool in_force = false;
  std::string note;  // what is in force, or why not, in words
};

// One Google Benchmark result (the median of the repetitions when there were any).
struct Benchmark {
  std::string name;
  double real_time_ns = 0;  // per iteration
  double cpu_time_ns = 0;
  std::optional<double> ops_per_sec;   // the benchmark's rate counter, when it has one
  std::optional<std::string> floor;    // the benchmark of the same suite it is measured against
  std::string compare_by = "time";     // "time" (lower is better) or "ops_per_sec" (higher)
  std::optional<double> target_ratio;  // the ratio to the floor it should meet
  std::string target_cmp;              // "<=" or ">=" when target_ratio is set
};

struct Suite {
  std::string name;
  std::optional<std::string> error;  // the suite could not run
  std::vector<Benchmark> benchmarks;
};

struct HistogramBucket {
  std::int64_t lo_ns = 0;  // lo_ns <= interval < hi_ns, hi_ns = 2 * lo_ns
  std::int64_t hi_ns = 0;
  std::uint64_t count = 0;
};

// One accuracy scenario (mpt_scenario --json, or the peer's equivalent).
struct Scenario {
  std::string hardcap;  // limit, one, none
  std::int64_t rate_per_sec = 0;
  std::int64_t workers = 0;
  double seconds = 0;
  double target_total = 0;
  std::uint64_t achieved_total = 0;
  // (achieved_total - 1) / (last grant - first grant) of the recorded grants, and achieved / rate
  // - 1: nullopt (null in the report) with fewer than two grants.
  std::optional<double> achieved_rate_per_sec;
  std::optional<double> rel_error;
  std::optional<std::uint64_t> kernel_total;           // by the eBPF counter, when it ran
  std::optional<double> kernel_achieved_rate_per_sec;  // the same from the kernel's timestamps
  std::optional<double> kernel_rel_error;
  std::uint64_t max_in_window = 0;
  std::int64_t interval_p50_ns = 0;
  std::int64_t interval_p99_ns = 0;
  std::int64_t interval_max_ns = 0;
  double cpu_s_per_1000 = 0;
  std::vector<HistogramBucket> interval_histogram;
  double rate_series_bin_s = 0.1;
  std::vector<std::uint64_t> rate_series;  // grants per bin from the start
};

struct ThrottlePeer {
  std::string impl;
  std::string note;
  std::vector<Scenario> scenarios;
};

struct PipelinePeer {
  std::int64_t workers = 0;
  std::int64_t items = 0;
  double mpt_items_per_sec = 0;
  double imap_chunk1_items_per_sec = 0;
  double imap_chunk1000_items_per_sec = 0;
};

// One run of the Redis fleet simulation (bench/redis_fleet.cpp): `hosts` processes, each with its
// own connection, sharing one throttle of the fleet's rate through one redis-server.
struct FleetRun {
  std::int64_t hosts = 0;
  double achieved_per_sec = 0;      // the server's total / its runtime
  double achieved_over_target = 0;  // achieved_per_sec / the fleet's rate
  std::uint64_t total = 0;          // the server's total
  double runtime_s = 0;
  std::uint64_t script_calls = 0;  // EVALSHA calls between start and stop (INFO commandstats)
  double calls_per_sec = 0;
  double calls_per_grant = 0;
};

// The runs at one lease cap, by hosts (increasing, each count once).
struct FleetSeries {
  std::int64_t max_lease = 0;
  std::vector<FleetRun> runs;
};

// The fleet simulation at 1 ... 32 hosts: with leased slots, and with one script call per grant
// (max_lease 1, what the library did before leases) when that ran.
struct Fleet {
  std::int64_t rate_per_sec = 0;
  double seconds = 0;  // per run
  FleetSeries leased;
  std::optional<FleetSeries> per_grant;
};

// A part of the run that was not measured (a suite not built, the peers off, no root for the
// kernel's count), and why, in words. Reports written before `mpt bench` have none.
struct LeftOut {
  std::string part;
  std::string why;
};

struct Report {
  std::string created_utc;
  std::string tool_version;
  bool quick = false;
  Host host;
  CalibrationInfo calibration;
  std::vector<Suite> suites;
  std::vector<Scenario> scenarios;
  std::optional<ThrottlePeer> peer_throttle;
  std::optional<PipelinePeer> peer_pipeline;
  std::vector<LeftOut> left_out;  // "left_out" (optional)
  std::optional<Fleet> fleet;     // "fleet" (optional; null or absent: not run)
};

// Parses and validates one report. Throws ReportError naming the field.
Report parse_report(std::string_view text);

// --- Ratios (computed, never stored) -----------------------------------------------------------

// One scenario against the peer's scenario of the same hardcap and rate.
struct ScenarioVsPeer {
  const Scenario* ours = nullptr;
  const Scenario* peer = nullptr;         // null when the peer did not run it
  std::optional<double> abs_error_ratio;  // |ours.rel_error| / |peer.rel_error|, when both exist
  std::optional<double> cpu_ratio;        // ours.cpu_s_per_1000 / peer.cpu_s_per_1000
};

struct PeerRatios {
  std::vector<ScenarioVsPeer> scenarios;
  std::optional<double> median_abs_error_ratio;
  std::optional<double> median_cpu_ratio;
  double highest_rate = 0;  // the most achieved_rate_per_sec among our scenarios (0: none)
  std::optional<double> peer_highest_rate;
  std::optional<double> highest_rate_ratio;  // highest_rate / peer_highest_rate
};
PeerRatios peer_ratios(const Report& r);

// The value a benchmark is compared on (ns per op, or ops per second) and its ratio to its floor.
std::optional<double> floor_ratio(const Suite& s, const Benchmark& b);
// Whether the ratio meets the benchmark's target (nullopt: no target or no ratio).
std::optional<bool> meets_target(const Suite& s, const Benchmark& b);

// --- Renderers ---------------------------------------------------------------------------------

// The terminal summary: scenarios with the peer's figures and ratios, the benchmarks against their
// floors, and with `compare`, both reports side by side with ratios (this / other).
std::string render_text(const Report& r, const Report* compare);

// One self-contained HTML page. Every string from the reports is escaped.
std::string render_html(const Report& r, const Report* compare);

// &, <, >, " and ' as entities.
std::string html_escape(std::string_view s);

}  // namespace mpt::report
