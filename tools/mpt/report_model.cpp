// tools/mpt/report_model.cpp — the strict reader of bench reports and the ratios; see
// report_model.hpp. The renderers are report_text.cpp and report_html.cpp (with report_format,
// svg_chart and report_charts).
#include "report_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace mpt::report {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxString = 4096;
constexpr std::size_t kMaxSuites = 64;
constexpr std::size_t kMaxBenchmarks = 4096;
constexpr std::size_t kMaxScenarios = 1024;
constexpr std::size_t kMaxBuckets = 64;
constexpr std::size_t kMaxSeries = 1'000'000;
constexpr std::size_t kMaxLeftOut = 256;
constexpr std::size_t kMaxFleetRuns = 64;

const char* type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number with a fraction";
    default:
      return "something else";
  }
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ReportError(path + ": " + what);
}

[[noreturn]] void wrong_type(const std::string& path, const char* expected, const json& got) {
  fail(path, std::string("expected ") + expected + ", got " + type_name(got));
}

// A JSON object being read: every field is looked up by name and named in errors by its path.
class Obj {
 public:
  Obj(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) wrong_type(path_.empty() ? "report" : path_, "an object", j_);
  }

  std::string path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  const json& at(std::string_view key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) fail(path(key), "missing");
    return *it;
  }
  bool is_null(std::string_view key) const { return at(key).is_null(); }
  bool has(std::string_view key) const { return j_.find(key) != j_.end(); }

  std::string str(std::string_view key) const {
    const json& v = at(key);
    if (!v.is_string()) wrong_type(path(key), "a string", v);
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > kMaxString) fail(path(key), "longer than 4096 bytes");
    return s;
  }
  std::optional<std::string> opt_str(std::string_view key) const {
    if (is_null(key)) return std::nullopt;
    return str(key);
  }
  bool boolean(std::string_view key) const {
    const json& v = at(key);
    if (!v.is_boolean()) wrong_type(path(key), "a boolean", v);
    return v.get<bool>();
  }
  double number(std::string_view key, double min = -std::numeric_limits<double>::max(),
                double max = std::numeric_limits<double>::max()) const {
    const json& v = at(key);
    if (!v.is_number()) wrong_type(path(key), "a number", v);
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(path(key), "not a finite number");
    if (d < min || d > max) {
      fail(path(key), "out of range [" + fmt(min) + ", " + fmt(max) + "]: " + fmt(d));
    }
    return d;
  }
  std::optional<double> opt_number(std::string_view key, double min, double max) const {
    if (is_null(key)) return std::nullopt;
    return number(key, min, max);
  }
  std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max) const {
    const json& v = at(key);
    if (!v.is_number_integer()) wrong_type(path(key), "an integer", v);
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path(key), "out of range");
    }
    const auto i = v.get<std::int64_t>();
    if (i < min || i > max) {
      fail(path(key), "out of range [" + std::to_string(min) + ", " + std::to_string(max) +
                          "]: " + std::to_string(i));
    }
    return i;
  }
  std::uint64_t count(std::string_view key) const {
    return static_cast<std::uint64_t>(integer(key, 0, std::numeric_limits<std::int64_t>::max()));
  }
  std::optional<std::uint64_t> opt_count(std::string_view key) const {
    if (is_null(key)) return std::nullopt;
    return count(key);
  }
  const json& array(std::string_view key, std::size_t max_size) const {
    const json& v = at(key);
    if (!v.is_array()) wrong_type(path(key), "an array", v);
    if (v.size() > max_size) fail(path(key), "more than " + std::to_string(max_size) + " entries");
    return v;
  }

 private:
  static std::string fmt(double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.6g", d);
    return buf;
  }
  const json& j_;
  std::string path_;
};

std::string index_path(const std::string& base, std::size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

constexpr double kMaxRate = 1e12;
constexpr double kMaxSeconds = 1e6;
constexpr std::int64_t kMaxNs = std::int64_t{1} << 62;

Benchmark parse_benchmark(const json& j, const std::string& path) {
  const Obj o(j, path);
  Benchmark b;
  b.name = o.str("name");
  if (b.name.empty()) fail(o.path("name"), "empty");
  b.real_time_ns = o.number("real_time_ns", 0, 1e18);
  b.cpu_time_ns = o.number("cpu_time_ns", 0, 1e18);
  b.ops_per_sec = o.opt_number("ops_per_sec", 0, 1e18);
  b.floor = o.opt_str("floor");
  b.compare_by = o.str("compare_by");
  if (b.compare_by != "time" && b.compare_by != "ops_per_sec") {
    fail(o.path("compare_by"),
         "expected \"time\" or \"ops_per_sec\", got \"" + b.compare_by + "\"");
  }
  if (b.compare_by == "ops_per_sec" && !b.ops_per_sec) {
    fail(o.path("ops_per_sec"), "null, but compare_by is \"ops_per_sec\"");
  }
  b.target_ratio = o.opt_number("target_ratio", 0, 1e9);
  if (b.target_ratio) {
    b.target_cmp = o.str("target_cmp");
    if (b.target_cmp != "<=" && b.target_cmp != ">=") {
      fail(o.path("target_cmp"), "expected \"<=\" or \">=\", got \"" + b.target_cmp + "\"");
    }
    if (!b.floor) fail(o.path("floor"), "null, but the benchmark has a target ratio");
  } else if (!o.is_null("target_cmp")) {
    fail(o.path("target_cmp"), "set without a target_ratio");
  }
  return b;
}

Suite parse_suite(const json& j, const std::string& path) {
  const Obj o(j, path);
  Suite s;
  s.name = o.str("name");
  if (s.name.empty()) fail(o.path("name"), "empty");
  s.error = o.opt_str("error");
  const json& list = o.array("benchmarks", kMaxBenchmarks);
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    s.benchmarks.push_back(parse_benchmark(list[i], index_path(o.path("benchmarks"), i)));
    if (!names.insert(s.benchmarks.back().name).second) {
      fail(index_path(o.path("benchmarks"), i) + ".name",
           "duplicate benchmark \"" + s.benchmarks.back().name + "\"");
    }
  }
  for (std::size_t i = 0; i < s.benchmarks.size(); ++i) {
    const Benchmark& b = s.benchmarks[i];
    if (!b.floor) continue;
    const std::string fpath = index_path(o.path("benchmarks"), i) + ".floor";
    const auto it = std::find_if(s.benchmarks.begin(), s.benchmarks.end(),
                                 [&](const Benchmark& x) { return x.name == *b.floor; });
    if (it == s.benchmarks.end())
      fail(fpath, "names no benchmark of the suite: \"" + *b.floor + "\"");
    if (b.compare_by == "ops_per_sec" && !it->ops_per_sec) {
      fail(fpath, "the floor has no ops_per_sec to compare with");
    }
  }
  return s;
}

// A rate and its error come together: both null (fewer than two grants: no interval to measure)
// or both set, and a rate needs at least two grants.
void check_rate(const Obj& o, std::string_view rate_key, std::string_view error_key,
                std::uint64_t count, const std::optional<double>& rate,
                const std::optional<double>& error) {
  if (rate.has_value() != error.has_value()) {
    fail(o.path(rate_key), std::string(rate_key) + " and " + std::string(error_key) +
                               " must be both null or both set");
  }
  if (rate && count < 2) {
    fail(o.path(rate_key), "set, but fewer than two grants were counted (no interval to measure)");
  }
}

Scenario parse_scenario(const json& j, const std::string& path) {
  const Obj o(j, path);
  Scenario s;
  s.hardcap = o.str("hardcap");
  if (s.hardcap != "limit" && s.hardcap != "one" && s.hardcap != "none") {
    fail(o.path("hardcap"), "expected limit, one or none, got \"" + s.hardcap + "\"");
  }
  s.rate_per_sec = o.integer("rate_per_sec", 1, static_cast<std::int64_t>(kMaxRate));
  s.workers = o.integer("workers", 1, 100'000);
  s.seconds = o.number("seconds", 1e-9, kMaxSeconds);
  s.target_total = o.number("target_total", 0, kMaxRate * kMaxSeconds);
  s.achieved_total = o.count("achieved_total");
  s.achieved_rate_per_sec = o.opt_number("achieved_rate_per_sec", 0, kMaxRate * 1e3);
  s.rel_error = o.opt_number("rel_error", -1, 1e9);
  check_rate(o, "achieved_rate_per_sec", "rel_error", s.achieved_total, s.achieved_rate_per_sec,
             s.rel_error);
  s.kernel_total = o.opt_count("kernel_total");
  s.kernel_achieved_rate_per_sec = o.opt_number("kernel_achieved_rate_per_sec", 0, kMaxRate * 1e3);
  s.kernel_rel_error = o.opt_number("kernel_rel_error", -1, 1e9);
  if (!s.kernel_total && (s.kernel_achieved_rate_per_sec || s.kernel_rel_error)) {
    fail(o.path("kernel_total"),
         "null, but kernel_achieved_rate_per_sec or kernel_rel_error is set");
  }
  check_rate(o, "kernel_achieved_rate_per_sec", "kernel_rel_error", s.kernel_total.value_or(0),
             s.kernel_achieved_rate_per_sec, s.kernel_rel_error);
  s.max_in_window = o.count("max_in_window");
  s.interval_p50_ns = o.integer("interval_p50_ns", 0, kMaxNs);
  s.interval_p99_ns = o.integer("interval_p99_ns", 0, kMaxNs);
  s.interval_max_ns = o.integer("interval_max_ns", 0, kMaxNs);
  s.cpu_s_per_1000 = o.number("cpu_s_per_1000", 0, 1e9);

  const json& hist = o.array("interval_histogram", kMaxBuckets);
  for (std::size_t i = 0; i < hist.size(); ++i) {
    const std::string bpath = index_path(o.path("interval_histogram"), i);
    const Obj b(hist[i], bpath);
    HistogramBucket h;
    h.lo_ns = b.integer("lo_ns", 1, kMaxNs / 2);
    h.hi_ns = b.integer("hi_ns", 2, kMaxNs);
    h.count = b.count("count");
    if ((h.lo_ns & (h.lo_ns - 1)) != 0) fail(b.path("lo_ns"), "not a power of two");
    if (h.hi_ns != 2 * h.lo_ns) fail(b.path("hi_ns"), "not twice lo_ns");
    if (!s.interval_histogram.empty() && h.lo_ns != s.interval_histogram.back().hi_ns) {
      fail(b.path("lo_ns"), "does not follow the previous bucket's hi_ns");
    }
    s.interval_histogram.push_back(h);
  }

  const Obj series(o.at("rate_series"), o.path("rate_series"));
  s.rate_series_bin_s = series.number("bin_s", 1e-6, 3600);
  const json& counts = series.array("counts", kMaxSeries);
  s.rate_series.reserve(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const json& c = counts[i];
    if (!c.is_number_integer() ||
        (c.is_number_integer() && !c.is_number_unsigned() && c.get<std::int64_t>() < 0)) {
      if (c.is_number_integer()) fail(index_path(series.path("counts"), i), "negative");
      wrong_type(index_path(series.path("counts"), i), "an integer", c);
    }
    s.rate_series.push_back(c.get<std::uint64_t>());
  }
  return s;
}

std::vector<Scenario> parse_scenarios(const Obj& o, std::string_view key) {
  const json& list = o.array(key, kMaxScenarios);
  std::vector<Scenario> out;
  std::set<std::pair<std::string, std::int64_t>> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = index_path(o.path(key), i);
    out.push_back(parse_scenario(list[i], path));
    if (!seen.insert({out.back().hardcap, out.back().rate_per_sec}).second) {
      fail(path, "a second scenario of hardcap " + out.back().hardcap + " at " +
                     std::to_string(out.back().rate_per_sec) + "/s");
    }
  }
  return out;
}

// "left_out": optional (reports written by scripts/bench before `mpt bench` have none).
std::vector<LeftOut> parse_left_out(const Obj& o) {
  std::vector<LeftOut> out;
  if (!o.has("left_out")) return out;
  const json& list = o.array("left_out", kMaxLeftOut);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Obj e(list[i], index_path("left_out", i));
    out.push_back({e.str("part"), e.str("why")});
    if (out.back().part.empty()) fail(e.path("part"), "empty");
  }
  return out;
}

FleetSeries parse_fleet_series(const Obj& o, std::string_view key) {
  const Obj f(o.at(key), o.path(key));
  FleetSeries out;
  out.max_lease = f.integer("max_lease", 1, 1'000'000);
  const json& runs = f.array("runs", kMaxFleetRuns);
  if (runs.empty()) fail(f.path("runs"), "empty");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Obj r(runs[i], index_path(f.path("runs"), i));
    FleetRun run;
    run.hosts = r.integer("hosts", 1, 100'000);
    if (!out.runs.empty() && run.hosts <= out.runs.back().hosts)
      fail(r.path("hosts"), "not more than the previous run's hosts");
    run.achieved_per_sec = r.number("achieved_per_sec", 0, kMaxRate * 1e3);
    run.achieved_over_target = r.number("achieved_over_target", 0, 1e9);
    run.total = r.count("total");
    run.runtime_s = r.number("runtime_s", 0, kMaxSeconds);
    run.script_calls = r.count("script_calls");
    run.calls_per_sec = r.number("calls_per_sec", 0, 1e15);
    run.calls_per_grant = r.number("calls_per_grant", 0, 1e15);
    out.runs.push_back(run);
  }
  return out;
}

// "fleet": optional (reports written before the fleet simulation have none), null when not run.
std::optional<Fleet> parse_fleet(const Obj& o) {
  if (!o.has("fleet") || o.is_null("fleet")) return std::nullopt;
  const Obj f(o.at("fleet"), "fleet");
  Fleet out;
  out.rate_per_sec = f.integer("rate_per_sec", 1, static_cast<std::int64_t>(kMaxRate));
  out.seconds = f.number("seconds", 1e-9, kMaxSeconds);
  out.leased = parse_fleet_series(f, "leased");
  if (!f.is_null("per_grant")) out.per_grant = parse_fleet_series(f, "per_grant");
  return out;
}

std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

Report parse_report(std::string_view text) {
  if (text.size() > kMaxReportBytes) throw ReportError("report: larger than 64 MiB");
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 5E4288
    throw ReportError(std::string("report: not JSON: ") + e.what());
  }
  const Obj o(j, "");
  const std::int64_t schema = o.integer("schema", 0, std::numeric_limits<std::int32_t>::max());
  if (schema != kReportSchema) {
    fail("schema", "expected " + std::to_string(kReportSchema) + ", got " + std::to_string(schema) +
                       " (made by another version)");
  }
  if (o.str("kind") != kReportKind) {
    fail("kind", "expected \"" + std::string(kReportKind) + "\", got \"" + o.str("kind") + "\"");
  }
  Report r;
  r.created_utc = o.str("created_utc");
  r.tool_version = o.str("tool_version");
  r.quick = o.boolean("quick");

  const Obj h(o.at("host"), "host");
  r.host.hostname = h.str("hostname");
  r.host.kernel = h.str("kernel");
  r.host.cpu_model = h.str("cpu_model");
  r.host.cores = h.integer("cores", 0, 1'000'000);
  r.host.clocksource = h.str("clocksource");

  const Obj c(o.at("calibration"), "calibration");
  r.calibration.path = c.str("path");
  r.calibration.in_force = c.boolean("in_force");
  r.calibration.note = c.str("note");

  const json& suites = o.array("suites", kMaxSuites);
  std::set<std::string> suite_names;
  for (std::size_t i = 0; i < suites.size(); ++i) {
    r.suites.push_back(parse_suite(suites[i], index_path("suites", i)));
    if (!suite_names.insert(r.suites.back().name).second) {
      fail(index_path("suites", i) + ".name", "duplicate suite \"" + r.suites.back().name + "\"");
    }
  }
  r.scenarios = parse_scenarios(o, "scenarios");

  const Obj peers(o.at("peers"), "peers");
  if (!peers.is_null("throttle")) {
    const Obj t(peers.at("throttle"), "peers.throttle");
    ThrottlePeer p;
    p.impl = t.str("impl");
    p.note = t.str("note");
    p.scenarios = parse_scenarios(t, "scenarios");
    r.peer_throttle = std::move(p);
  }
  if (!peers.is_null("pipeline")) {
    const Obj t(peers.at("pipeline"), "peers.pipeline");
    PipelinePeer p;
    p.workers = t.integer("workers", 1, 100'000);
    p.items = t.integer("items", 1, std::numeric_limits<std::int64_t>::max());
    p.mpt_items_per_sec = t.number("mpt_items_per_sec", 1e-9, 1e15);
    p.imap_chunk1_items_per_sec = t.number("imap_chunk1_items_per_sec", 1e-9, 1e15);
    p.imap_chunk1000_items_per_sec = t.number("imap_chunk1000_items_per_sec", 1e-9, 1e15);
    r.peer_pipeline = p;
  }
  r.left_out = parse_left_out(o);
  r.fleet = parse_fleet(o);
  return r;
}

PeerRatios peer_ratios(const Report& r) {
  PeerRatios out;
  std::vector<double> err;
  std::vector<double> cpu;
  for (const Scenario& s : r.scenarios) {
    out.highest_rate = std::max(out.highest_rate, s.achieved_rate_per_sec.value_or(0));
    ScenarioVsPeer v;
    v.ours = &s;
    if (r.peer_throttle) {
      for (const Scenario& p : r.peer_throttle->scenarios) {
        if (p.hardcap == s.hardcap && p.rate_per_sec == s.rate_per_sec) v.peer = &p;
      }
    }
    if (v.peer) {
      if (s.rel_error && v.peer->rel_error && *v.peer->rel_error != 0) {
        v.abs_error_ratio = std::fabs(*s.rel_error) / std::fabs(*v.peer->rel_error);
        err.push_back(*v.abs_error_ratio);
      }
      if (v.peer->cpu_s_per_1000 > 0) {
        v.cpu_ratio = s.cpu_s_per_1000 / v.peer->cpu_s_per_1000;
        cpu.push_back(*v.cpu_ratio);
      }
    }
    out.scenarios.push_back(v);
  }
  out.median_abs_error_ratio = median(err);
  out.median_cpu_ratio = median(cpu);
  if (r.peer_throttle && !r.peer_throttle->scenarios.empty()) {
    double best = 0;
    for (const Scenario& p : r.peer_throttle->scenarios)
      best = std::max(best, p.achieved_rate_per_sec.value_or(0));
    out.peer_highest_rate = best;
    if (best > 0) out.highest_rate_ratio = out.highest_rate / best;
  }
  return out;
}

std::optional<double> floor_ratio(const Suite& s, const Benchmark& b) {
  if (!b.floor) return std::nullopt;
  const auto it = std::find_if(s.benchmarks.begin(), s.benchmarks.end(),
                               [&](const Benchmark& x) { return x.name == *b.floor; });
  if (it == s.benchmarks.end()) return std::nullopt;
  if (b.compare_by == "ops_per_sec") {
    if (!b.ops_per_sec || !it->ops_per_sec || *it->ops_per_sec <= 0) return std::nullopt;
    return *b.ops_per_sec / *it->ops_per_sec;
  }
  if (it->real_time_ns <= 0) return std::nullopt;
  return b.real_time_ns / it->real_time_ns;
}

std::optional<bool> meets_target(const Suite& s, const Benchmark& b) {
  const auto ratio = floor_ratio(s, b);
  if (!ratio || !b.target_ratio) return std::nullopt;
  return b.target_cmp == "<=" ? *ratio <= *b.target_ratio : *ratio >= *b.target_ratio;
}

}  // namespace mpt::report
