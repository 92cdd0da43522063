// tools/mpt/report_assemble.cpp — report.json from a raw folder; see report_assemble.hpp.
#include "report_assemble.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

namespace mpt::report {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kScenarioSchema = 2;  // what mpt_scenario and the peer must write

// What a benchmark is measured against: the benchmark of the same suite whose cost it is built on,
// compared by time (lower is better) or by ops_per_sec (higher), and the ratio it should meet.
// (bench/ratios.py prints the same targets from a Google Benchmark file of its own.)
struct FloorRule {
  std::optional<std::string> floor;
  std::string compare_by = "time";
  std::optional<double> target_ratio;
  std::string target_cmp;  // "<=" or ">=" with a target
};

const std::map<std::pair<std::string, std::string>, FloorRule>& floor_rules() {
  static const std::map<std::pair<std::string, std::string>, FloorRule> rules = {
      {{"bm_throttle", "BM_Throttle_HasFuel"}, {"BM_Floor_ClockPlusCas", "time", 1.5, "<="}},
      {{"bm_throttle", "BM_Throttle_HasFuelAutoEmit"}, {"BM_Floor_ClockPlusCas", "time", {}, ""}},
      {{"bm_throttle", "BM_Throttle_AwaitFuelAvailable"},
       {"BM_Floor_ClockPlusCas", "time", {}, ""}},
      {{"bm_throttle", "BM_Throttle_Emit"}, {"BM_Floor_ClockPlusCas", "time", 2.5, "<="}},
      {{"bm_throttle", "BM_Contention_TwoProcessesThrottle"},
       {"BM_Contention_TwoProcessesBareCas", "ops_per_sec", 0.5, ">="}},
      // A floor itself, but measured by its rate too: --compare puts two hosts' ops/s side by side.
      {{"bm_throttle", "BM_Contention_TwoProcessesBareCas"}, {{}, "ops_per_sec", {}, ""}},
      {{"bm_throttle", "BM_Contention_TwoProcessesClockPlusCas"},
       {"BM_Contention_TwoProcessesBareCas", "ops_per_sec", {}, ""}},
      {{"bm_probe", "BM_Emit_ProbeAttached"}, {"BM_Emit_ProbeDetached", "time", {}, ""}},
      {{"bm_probe", "BM_Emit_ProbeDetached"}, {"BM_Emit_NoProbes", "time", {}, ""}},
      {{"bm_queue", "BM_Queue_TwoProcesses/capacity_msgs:64"},
       {"BM_Queue_PutGetSameProcess", "time", {}, ""}},
      {{"bm_queue", "BM_Queue_TwoProcesses/capacity_msgs:1024"},
       {"BM_Queue_PutGetSameProcess", "time", {}, ""}},
  };
  return rules;
}

// bm_probe_none (the same code built with no probe sites) is reported inside bm_probe, so that the
// probe's price can be measured against it.
std::string suite_of(const std::string& file_suite) {
  return file_suite == "bm_probe_none" ? "bm_probe" : file_suite;
}

constexpr const char* kRateCounters[] = {"ops_per_sec", "msgs_per_sec", "items_per_second"};

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ReportError(path.filename().string() + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw ReportError(path.filename().string() + ": not JSON: " + e.what());
  }
}

// The files of the folder whose names are PREFIX*SUFFIX, sorted by name.
std::vector<fs::path> files_like(const fs::path& raw, const std::string& prefix,
                                 const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(raw)) {
    const std::string n = e.path().filename().string();
    if (n.size() >= prefix.size() + suffix.size() && n.rfind(prefix, 0) == 0 &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// BM_X/capacity_msgs:64/real_time -> BM_X/capacity_msgs:64; /iterations:N and the like dropped.
std::string benchmark_name(const json& e) {
  const std::string name = e.value("run_name", e.at("name").get<std::string>());
  std::string out;
  std::size_t start = 0;
  for (;;) {
    const auto slash = name.find('/', start);
    const std::string part = name.substr(start, slash == std::string::npos ? slash : slash - start);
    const bool dropped = part == "real_time" || part == "manual_time" || part == "process_time" ||
                         part.rfind("iterations:", 0) == 0 || part.rfind("repeats:", 0) == 0 ||
                         part.rfind("min_time:", 0) == 0;
    if (!dropped) out += (out.empty() ? "" : "/") + part;
    if (slash == std::string::npos) return out;
    start = slash + 1;
  }
}

double unit_ns(const json& e) {
  const std::string u = e.value("time_unit", "ns");
  if (u == "us") return 1e3;
  if (u == "ms") return 1e6;
  if (u == "s") return 1e9;
  return 1.0;
}

// One benchmark from its runs (or its median aggregate).
json summarise(const std::string& name, const std::vector<const json*>& entries) {
  const double scale = unit_ns(*entries.front());
  std::vector<double> real, cpu;
  for (const json* x : entries) {
    real.push_back(x->at("real_time").get<double>() * scale);
    cpu.push_back(x->at("cpu_time").get<double>() * scale);
  }
  json b = {{"name", name},
            {"real_time_ns", median(real)},
            {"cpu_time_ns", median(cpu)},
            {"ops_per_sec", nullptr}};
  for (const char* key : kRateCounters) {
    std::vector<double> values;
    for (const json* x : entries) {
      if (x->contains(key)) values.push_back(x->at(key).get<double>());
    }
    if (!values.empty()) {
      b["ops_per_sec"] = median(values);
      break;
    }
  }
  return b;
}

// The medians of one Google Benchmark file, in the file's order; *errors gets the failed ones.
std::vector<json> read_suite(const fs::path& path, std::vector<std::string>* errors) {
  const json data = read_json(path);
  if (!data.is_object()) throw ReportError("not an object");
  const json list = data.value("benchmarks", json::array());  // outlives the pointers below
  std::vector<std::string> order;
  std::map<std::string, std::vector<const json*>> medians, runs;
  for (const json& e : list) {
    const std::string name = benchmark_name(e);
    if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
    if (e.value("error_occurred", false)) {
      errors->push_back(name + ": " + e.value("error_message", "error"));
    } else if (e.value("run_type", "") == "aggregate") {
      if (e.value("aggregate_name", "") == "median") medians[name] = {&e};
    } else {
      runs[name].push_back(&e);
    }
  }
  std::vector<json> out;
  for (const std::string& name : order) {
    const auto m = medians.find(name);
    const auto r = runs.find(name);
    if (m != medians.end()) {
      out.push_back(summarise(name, m->second));
    } else if (r != runs.end()) {
      out.push_back(summarise(name, r->second));
    }
  }
  return out;
}

// Each benchmark's floor, the value it is compared by and its target: none when the floor did not
// run, or the rate to compare is missing.
void attach_floors(json& suite) {
  std::map<std::string, const json*> names;
  for (const json& b : suite["benchmarks"])
    names[b["name"].get<std::string>()] = &b;
  const std::string sname = suite["name"].get<std::string>();
  for (json& b : suite["benchmarks"]) {
    const auto it = floor_rules().find({sname, b["name"].get<std::string>()});
    FloorRule r = it == floor_rules().end() ? FloorRule{} : it->second;
    if (r.compare_by == "ops_per_sec" && b["ops_per_sec"].is_null()) r = FloorRule{};
    if (r.floor) {
      const auto f = names.find(*r.floor);
      if (f == names.end() ||
          (r.compare_by == "ops_per_sec" && f->second->at("ops_per_sec").is_null())) {
        r.floor.reset();
        r.target_ratio.reset();
        r.target_cmp.clear();
      }
    }
    b["floor"] = r.floor ? json(*r.floor) : json(nullptr);
    b["compare_by"] = r.compare_by;
    b["target_ratio"] = r.target_ratio ? json(*r.target_ratio) : json(nullptr);
    b["target_cmp"] = r.target_cmp.empty() ? json(nullptr) : json(r.target_cmp);
  }
}

json read_suites(const fs::path& raw) {
  std::vector<json> suites;  // in the order of their first file
  for (const fs::path& path : files_like(raw, "bm_", ".json")) {
    const std::string file = path.filename().string();
    const std::string name = suite_of(file.substr(0, file.size() - 5));
    auto s = std::find_if(suites.begin(), suites.end(),
                          [&](const json& x) { return x["name"] == name; });
    if (s == suites.end()) {
      suites.push_back({{"name", name}, {"error", nullptr}, {"benchmarks", json::array()}});
      s = suites.end() - 1;
    }
    std::vector<std::string> errors;
    try {
      for (json& b : read_suite(path, &errors))
        (*s)["benchmarks"].push_back(std::move(b));
    } catch (const std::exception& e) {  // ReportError, or a json type_error / out_of_range
      errors = {"cannot read " + file + ": " + e.what()};
    }
    for (const std::string& e : errors) {
      const json& prev = (*s)["error"];
      (*s)["error"] = prev.is_null() ? e : prev.get<std::string>() + "; " + e;
    }
  }
  for (json& s : suites)
    attach_floors(s);
  return suites;
}

constexpr const char* kScenarioFields[] = {"hardcap",
                                           "rate_per_sec",
                                           "workers",
                                           "seconds",
                                           "target_total",
                                           "achieved_total",
                                           "achieved_rate_per_sec",
                                           "rel_error",
                                           "kernel_total",
                                           "kernel_achieved_rate_per_sec",
                                           "kernel_rel_error",
                                           "max_in_window",
                                           "interval_p50_ns",
                                           "interval_p99_ns",
                                           "interval_max_ns",
                                           "cpu_s_per_1000",
                                           "interval_histogram",
                                           "rate_series"};

// Every PREFIX-*.json of the folder, sorted by hardcap (limit, one, none) then rate.
json read_scenarios(const fs::path& raw, const std::string& prefix) {
  std::vector<json> out;
  for (const fs::path& path : files_like(raw, prefix + "-", ".json")) {
    const std::string file = path.filename().string();
    const json d = read_json(path);
    if (!d.is_object()) throw ReportError(file + ": not an object");
    if (d.contains("error")) throw ReportError(file + ": " + d["error"].dump());
    if (d.value("schema", json()) != json(kScenarioSchema)) {
      throw ReportError(file + ": schema " + d.value("schema", json()).dump() + ", expected " +
                        std::to_string(kScenarioSchema) + " (made by another version)");
    }
    json s = json::object();
    for (const char* key : kScenarioFields) {
      if (!d.contains(key)) throw ReportError(file + ": no field " + key);
      s[key] = d[key];
    }
    out.push_back(std::move(s));
  }
  const auto rank = [](const json& s) {
    const json& h = s["hardcap"];
    return h == "limit" ? 0 : h == "one" ? 1 : h == "none" ? 2 : 3;
  };
  std::stable_sort(out.begin(), out.end(), [&](const json& a, const json& b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return a["rate_per_sec"].get<double>() < b["rate_per_sec"].get<double>();
  });
  return out;
}

// The host as the library identifies it (HostIdentity::current(), which host.json holds): never
// computed here, so that the report names its host exactly as a calibration file does.
json host_info(const fs::path& path) {
  const std::string file = path.filename().string();
  const json d = read_json(path);
  if (d.is_object() && d.contains("error")) throw ReportError(file + ": " + d["error"].dump());
  if (!d.is_object() || !d.contains("host") || !d["host"].is_object())
    throw ReportError(file + ": no host object");
  const json& host = d["host"];
  json out = json::object();
  for (const char* key : {"hostname", "kernel", "cpu_model", "clocksource"}) {
    if (!host.contains(key) || !host[key].is_string())
      throw ReportError(file + ": host." + key + ": expected str");
    out[key] = host[key];
  }
  if (!host.contains("cores") || !host["cores"].is_number_integer())
    throw ReportError(file + ": host.cores: expected int");
  out["cores"] = host["cores"];
  return out;
}

std::string calibration_note(const json& d) {
  const json c = d.value("calibration", json::object());
  if (!d.value("in_force", false))
    return "ignored: " + d.value("ignored_because", std::string("not for this host"));
  const auto text = [&](const char* key) {
    return c.contains(key) && c[key].is_string() ? c[key].get<std::string>() : std::string("?");
  };
  const std::size_t bands = c.contains("bands") && c["bands"].is_array() ? c["bands"].size() : 0;
  return "made " + text("created_utc") + ", " + std::to_string(bands) + " bands, ground truth " +
         text("ground_truth");
}

json calibration_info(const fs::path& path) {
  json d;
  try {
    d = read_json(path);
    if (!d.is_object()) throw ReportError("not an object");
  } catch (const ReportError&) {
    return {{"path", ""}, {"in_force", false}, {"note", "not known (mpt calibrate --show failed)"}};
  }
  if (d.contains("error")) {
    std::smatch m;
    const std::string error = d["error"].is_string() ? d["error"].get<std::string>() : "";
    const bool named = std::regex_search(error, m, std::regex(R"(calibration file (\S+))"));
    // The path: as the document names it, else as the message does (`mpt calibrate --show`).
    const std::string path = d.value("path", named ? m[1].str() : std::string());
    return {{"path", path},
            {"in_force", false},
            {"note", "no calibration file: throttles run without a correction or spin lead"}};
  }
  return {{"path", d.value("path", std::string())},
          {"in_force", d.value("in_force", false)},
          {"note", calibration_note(d)}};
}

json pipeline_info(const fs::path& path) {
  if (!fs::exists(path)) return nullptr;
  const json d = read_json(path);
  return {{"workers", d.at("workers")},
          {"items", d.at("items")},
          {"mpt_items_per_sec", d.at("mpt_items_per_sec_1m")},
          {"imap_chunk1_items_per_sec", d.at("imap_chunk1_items_per_sec")},
          {"imap_chunk1000_items_per_sec", d.at("imap_chunk1000_items_per_sec")}};
}

constexpr int kFleetSchema = 1;  // what mpt_redis_fleet must write
constexpr const char* kFleetRunFields[] = {
    "hosts",     "achieved_per_sec", "achieved_over_target", "total",
    "runtime_s", "script_calls",     "calls_per_sec",        "calls_per_grant"};

// One mpt_redis_fleet --json file: {max_lease, runs}; *rate and *seconds get (or must equal) those
// of its runs.
json fleet_series(const fs::path& path, json* rate, json* seconds) {
  const std::string file = path.filename().string();
  const json d = read_json(path);
  if (!d.is_object()) throw ReportError(file + ": not an object");
  if (d.contains("error")) throw ReportError(file + ": " + d["error"].dump());
  if (d.value("bench", json()) != "redis_fleet" || d.value("schema", json()) != kFleetSchema) {
    throw ReportError(file + ": not mpt_redis_fleet's schema " + std::to_string(kFleetSchema) +
                      " (bench " + d.value("bench", json()).dump() + ", schema " +
                      d.value("schema", json()).dump() + ")");
  }
  if (!d.contains("runs") || !d["runs"].is_array() || d["runs"].empty())
    throw ReportError(file + ": no runs");
  if (seconds->is_null()) *seconds = d.at("seconds");
  if (d.at("seconds") != *seconds) throw ReportError(file + ": seconds differ from the other file");
  json runs = json::array();
  for (const json& r : d["runs"]) {
    if (rate->is_null()) *rate = r.at("rate_per_sec");
    if (r.at("rate_per_sec") != *rate) throw ReportError(file + ": runs of different rates");
    json run = json::object();
    for (const char* key : kFleetRunFields) {
      if (!r.contains(key)) throw ReportError(file + ": a run has no field " + key);
      run[key] = r[key];
    }
    runs.push_back(std::move(run));
  }
  return {{"max_lease", d.at("max_lease")}, {"runs", std::move(runs)}};
}

// The fleet section: null without the leased run's file.
json fleet_info(const fs::path& raw) {
  if (!fs::exists(raw / kFleetLeasedFile)) return nullptr;
  json rate, seconds;
  json leased = fleet_series(raw / kFleetLeasedFile, &rate, &seconds);
  json per_grant = fs::exists(raw / kFleetPerGrantFile)
                       ? fleet_series(raw / kFleetPerGrantFile, &rate, &seconds)
                       : json(nullptr);
  return {{"rate_per_sec", rate},
          {"seconds", seconds},
          {"leased", std::move(leased)},
          {"per_grant", std::move(per_grant)}};
}

json peers(const fs::path& raw) {
  json scenarios = read_scenarios(raw, "peer");
  json throttle = nullptr;
  if (!scenarios.empty()) {
    throttle = {
        {"impl",
         "Python, the mp_throttle design: a filler process putting fuel into a "
         "multiprocessing.Queue every per/max_n seconds, workers taking from it "
         "(bench/peers/mp_throttle_peer.py)"},
        {"note",
         "Same scenarios, uncalibrated (correction 0); its CPU time counts every process of the "
         "design (filler, workers, monitor)."},
        {"scenarios", std::move(scenarios)}};
  }
  return {{"throttle", std::move(throttle)}, {"pipeline", pipeline_info(raw / "pipeline.json")}};
}

}  // namespace

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string assemble_report(const AssembleInputs& in) {
  json report;
  try {
    report = {{"schema", kReportSchema},
              {"kind", kReportKind},
              {"created_utc", in.created_utc.empty() ? utc_now() : in.created_utc},
              {"tool_version", in.tool_version},
              {"quick", in.quick},
              {"host", host_info(in.raw / "host.json")},
              {"calibration", calibration_info(in.raw / "calibration.json")},
              {"suites", read_suites(in.raw)},
              {"scenarios", read_scenarios(in.raw, "scenario")},
              {"peers", peers(in.raw)},
              {"fleet", fleet_info(in.raw)},
              {"left_out", json::array()}};
  } catch (const json::exception& e) {  // a field missing or of another type
    throw ReportError(in.raw.string() + ": " + e.what());
  } catch (const fs::filesystem_error& e) {
    throw ReportError(e.what());
  }
  for (const LeftOut& l : in.left_out)
    report["left_out"].push_back({{"part", l.part}, {"why", l.why}});
  return report.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace mpt::report
