// tools/mpt/cmd_bench.cpp — `mpt bench [--quick] [--out DIR] [--peers auto|on|off] [--seconds S]
// [--programs DIR] [--json]`: the benchmark report of this host from the installed programs.
//
// Runs, one step a line ("[ i/n   Ts] what"): this host and the calibration in force (from the
// library), the Google Benchmark suites (bm_throttle, bm_probe with bm_probe_none, bm_queue), the
// accuracy scenarios (mpt_scenario: hardcaps limit and one at 10 ... 100,000 per second, 4
// workers, counted by the monitor and, as root, by the kernel), and with python3 the Python peer
// of each scenario, the pipeline comparison and the Python module's harness, and with
// redis-server the Redis fleet simulation (mpt_redis_fleet, 1 ... 32 hosts); then writes
// DIR/report.json (report_assemble.hpp) and DIR/report.html (`mpt report`). Every input is kept in
// DIR/raw/. The programs: --programs DIR, else $MPT_BENCH_PROGRAMS, else <mpt's dir>/../lib/
// mpthrottle (where the package puts them), else the install prefix's lib/mpthrottle.
//
// Exit 0 ok; 1 when the programs are missing or a step fails (named, with where its stderr
// went); 2 on bad usage.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "cmd_bench.hpp"
#include "common.hpp"
#include "mpt/mpt.h"
#include "report_assemble.hpp"
#include "safe_file.hpp"

namespace mpt::cli {

namespace {

using bench::fs::path;

// Where the programs are, and every place looked in (for the message when none has them).
path find_programs(const BenchOptions& o, std::vector<std::string>* looked) {
  std::vector<std::pair<path, std::string>> places;
  const char* env = std::getenv("MPT_BENCH_PROGRAMS");
  // A folder given by name must hold the programs: it is the only place looked in.
  if (!o.programs.empty()) {
    places.push_back({o.programs, "--programs"});
  } else if (env && *env) {
    places.push_back({env, "$MPT_BENCH_PROGRAMS"});
  } else {
#ifdef MPT_BENCH_PROGRAMS_REL
    std::error_code ec;
    const path self = bench::fs::read_symlink("/proc/self/exe", ec);
    if (!ec) places.push_back({self.parent_path() / MPT_BENCH_PROGRAMS_REL, "beside mpt"});
    places.push_back({MPT_BENCH_PROGRAMS_DIR, "the install prefix"});
#endif
  }
  for (const auto& [dir, how] : places) {
    looked->push_back(dir.lexically_normal().string() + " (" + how + ")");
    if (bench::fs::is_directory(dir) && ::access((dir / "mpt_scenario").c_str(), X_OK) == 0)
      return dir.lexically_normal();
  }
  return {};
}

// A program on $PATH (python3, redis-server), or empty.
std::string find_on_path(const char* name) {
  const char* env = std::getenv("PATH");
  std::string dirs = env ? env : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const auto colon = dirs.find(':', start);
    const std::string dir = dirs.substr(start, colon == std::string::npos ? colon : colon - start);
    const path candidate = path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return {};
}

// The Python parts: python3 (--peers), their scripts, and whether the module can be imported
// (from the build tree beside the programs, else from Python's own path).
void plan_python(bench::Plan& p) {
  if (p.opts.peers == "off") {
    p.left_out.push_back({"Python peers", "--peers off"});
    return;
  }
  p.python = find_on_path("python3");
  if (p.python.empty()) {
    if (p.opts.peers == "on") throw std::runtime_error("--peers on: no python3 on $PATH");
    p.left_out.push_back({"Python peers", "no python3 on $PATH (--peers auto)"});
    return;
  }
  for (const char* script : {"peers/mp_throttle_peer.py", "peers/pool_imap.py",
                             "pipeline_compare.py", "python_bench.py"}) {
    if (!bench::fs::is_regular_file(p.programs / script)) {
      throw std::runtime_error("no " + (p.programs / script).string() +
                               " (the benchmarks' Python scripts); --peers off runs without them");
    }
  }
  p.pipeline = ::access((p.programs / "mpt_pipeline_bench").c_str(), X_OK) == 0;
  if (!p.pipeline) {
    p.left_out.push_back({"pipeline comparison",
                          "not built (no " + (p.programs / "mpt_pipeline_bench").string() + ")"});
  }
  const path build = p.programs.parent_path();
  if (bench::fs::is_directory(build / "python" / "mpthrottle")) {
    p.python_build = build.string();
    p.python_module = true;
  } else {
    const auto imports = [](const std::string& python) {
      return bench::run_program({python, "-c", "import mpthrottle"}, "", "") == 0;
    };
    p.python_module = imports(p.python);
    // The package puts the module where Debian's python3 looks; a python3 of its own earlier on
    // $PATH (pyenv, a virtualenv) does not see it: then every Python part runs with Debian's.
    const std::string debian = "/usr/bin/python3";
    if (!p.python_module && p.python != debian && ::access(debian.c_str(), X_OK) == 0 &&
        imports(debian)) {
      p.python = debian;
      p.python_module = true;
    }
  }
  if (!p.python_module) {
    p.left_out.push_back(
        {"python_bench.py", "the module mpthrottle cannot be imported by " + p.python});
  }
}

// The fleet simulation: mpt_redis_fleet starts a redis-server of its own.
void plan_fleet(bench::Plan& p) {
  const path fleet = p.programs / "mpt_redis_fleet";
  if (::access(fleet.c_str(), X_OK) != 0) {
    p.left_out.push_back({"Redis fleet", "not built (no " + fleet.string() + ")"});
  } else if (find_on_path("redis-server").empty()) {
    p.left_out.push_back({"Redis fleet", "no redis-server on $PATH"});
  } else {
    p.fleet = true;
  }
  const double base = p.opts.quick ? bench::kFleetQuickSeconds : bench::kFleetSeconds;
  p.fleet_seconds = p.opts.seconds > 0 ? std::min(p.opts.seconds, base) : base;
}

bench::Plan make_plan(const BenchOptions& o) {
  bench::Plan p;
  p.opts = o;
  p.seconds = o.seconds > 0 ? o.seconds : (o.quick ? 1 : 5);
  std::vector<std::string> looked;
  p.programs = find_programs(o, &looked);
  if (p.programs.empty()) {
    std::string msg = "no benchmark programs (mpt_scenario) in ";
    for (std::size_t i = 0; i < looked.size(); ++i)
      msg += (i ? ", " : "") + looked[i];
    if (looked.empty())
      msg += "any place: this mpt was built without the benchmarks; give --programs DIR";
    throw std::runtime_error(msg);
  }
  plan_python(p);
  plan_fleet(p);
  if (::geteuid() != 0) {
    p.left_out.push_back({"the kernel's count (eBPF)", "not root: counted by the monitor alone"});
  }
  p.out = o.out;
  p.raw = p.out / "raw";
  const int suites = static_cast<int>(std::size(bench::kSuites));
  const int scenarios = static_cast<int>(std::size(bench::kHardcaps) * std::size(bench::kRates));
  p.steps = 1 + suites + scenarios + 1;
  if (!p.python.empty()) p.steps += scenarios + 1;  // the peers, python_bench.py
  if (p.pipeline) p.steps += 1;
  if (p.fleet) p.steps += 2;  // with leases, one call per grant
  return p;
}

}  // namespace

CLI::App* setup_bench(CLI::App& app, BenchOptions& o) {
  CLI::App* b = app.add_subcommand(
      "bench",
      "Benchmark this host with the installed programs (suites, accuracy scenarios, Python peers, "
      "the Redis fleet) and write DIR/report.json and DIR/report.html");
  b->add_flag("--quick", o.quick, "short runs (1 s scenarios, one repetition): about a minute");
  b->add_option("--out", o.out,
                "where the report goes (default bench-results); DIR/raw keeps "
                "every input");
  b->add_option("--peers", o.peers,
                "the Python parts (peers, pipeline comparison, python_bench.py): auto (when "
                "python3 is on $PATH), on, off (default auto)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  b->add_option("--seconds", o.seconds,
                "seconds per scenario (default 5, 1 with --quick); the fleet's runs take 2 s (1 "
                "with --quick), or this when less")
      ->check(number_in(0.1, 3600));
  b->add_option("--programs", o.programs,
                "the benchmark programs (default: $MPT_BENCH_PROGRAMS, else ../lib/mpthrottle "
                "beside mpt, else the install prefix's lib/mpthrottle)");
  b->add_flag("--json", o.json, "print one JSON document at the end (the steps go to stderr)");
  return b;
}

int run_bench(const BenchOptions& o) {
  if (o.out.empty()) throw UsageError("--out: an empty directory name");
  const bench::Plan plan = make_plan(o);
  bench::Plan p = plan;
  ::setenv("PYTHONDONTWRITEBYTECODE", "1", 1);  // nothing written beside the installed scripts
  bench::fs::create_directories(p.out);
  bench::fs::remove_all(p.raw);
  bench::fs::create_directories(p.raw);

  bench::Progress progress(p.steps, o.json);
  for (const auto& l : plan.left_out)
    progress.note("left out: " + l.part + " (" + l.why + ")");
  bench::job_host(p, progress);
  bench::job_suites(p, progress);
  bench::job_scenarios(p, progress);
  if (p.pipeline) bench::job_pipeline(p, progress);
  if (!p.python.empty()) bench::job_python_bench(p, progress);
  if (p.fleet) bench::job_fleet(p, progress);

  const path report = p.out / "report.json";
  const path html = p.out / "report.html";
  progress.step("assemble " + report.string() + " and render " + html.string());
  detail::write_file_atomically(
      report, report::assemble_report({p.raw, mpt_version(), o.quick, "", p.left_out}));
  if (!o.json) {
    std::cout << "\n";
    ReportOptions ro;
    ro.report = report.string();
    ro.html = html.string();
    run_report(ro);
    std::cout << "mpt bench: done in " << progress.seconds() << " s: " << printable(ro.report)
              << ", " << printable(ro.html) << std::endl;
    return kExitOk;
  }
  const std::string text = detail::read_file_capped(report, report::kMaxReportBytes, "report");
  detail::write_file_atomically(html, report::render_html(report::parse_report(text), nullptr));
  nlohmann::json j = {{"schema", kSchemaVersion},        {"report", report.string()},
                      {"html", html.string()},           {"raw", p.raw.string()},
                      {"programs", p.programs.string()}, {"quick", o.quick},
                      {"seconds", progress.seconds()},   {"left_out", nlohmann::json::array()}};
  for (const auto& l : p.left_out)
    j["left_out"].push_back({{"part", l.part}, {"why", l.why}});
  print_json(j);
  return kExitOk;
}

}  // namespace mpt::cli
