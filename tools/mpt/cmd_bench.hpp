// tools/mpt/cmd_bench.hpp — what the files of `mpt bench` share: the plan of one run and its jobs.
// cmd_bench.cpp parses the options, finds the programs and makes the plan; cmd_bench_run.cpp runs
// the programs (one job per function); report_assemble.cpp writes the report from what they left.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"
#include "report_model.hpp"

namespace mpt::cli::bench {

namespace fs = std::filesystem;

// The accuracy scenarios: every hardcap at every rate, 4 worker processes.
inline constexpr const char* kHardcaps[] = {"limit", "one"};
inline constexpr int kRates[] = {10, 100, 1000, 10000, 100000};
inline constexpr int kWorkers = 4;
// The Google Benchmark suites, in the order they run.
inline constexpr const char* kSuites[] = {"bm_throttle", "bm_probe", "bm_probe_none", "bm_queue"};

// The Redis fleet simulation (mpt_redis_fleet): these host counts at one total rate, with leases
// and with one script call per grant (--max-lease 1); 2 s a run, 1 with --quick, --seconds if less.
inline constexpr int kFleetHosts[] = {1, 2, 4, 8, 16, 32};
inline constexpr int kFleetRate = 100'000;
inline constexpr double kFleetSeconds = 2;
inline constexpr double kFleetQuickSeconds = 1;

// One run of `mpt bench`, decided before anything runs.
struct Plan {
  BenchOptions opts;
  double seconds = 5;          // per scenario
  fs::path programs;           // the benchmark programs and their Python scripts
  fs::path out;                // report.json, report.html
  fs::path raw;                // out/raw: every input of the report
  std::string python;          // python3's path; empty: the Python parts are left out
  std::string python_build;    // --build DIR for python_bench.py (a build tree), or empty
  bool python_module = false;  // the Python module mpthrottle can be imported
  bool pipeline = false;       // the pipeline comparison runs (python3 and mpt_pipeline_bench)
  bool fleet = false;          // the fleet simulation runs (mpt_redis_fleet and redis-server)
  double fleet_seconds = kFleetSeconds;  // per run of the fleet
  std::vector<report::LeftOut> left_out;
  int steps = 0;
};

// The progress: "[ i/n   Ts] what", one line a step, on stdout (stderr with --json).
class Progress {
 public:
  Progress(int steps, bool to_stderr);
  void step(const std::string& what);
  // A line under the current step ("            what"): a part left out, a program's output.
  void note(const std::string& what) const;
  int seconds() const;

 private:
  std::FILE* out_;
  int steps_;
  int step_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A program run to its end: argv[0] a path (or, for python3, what Plan::python found); its stdout
// and stderr go to the files given ("" : /dev/null). Returns the exit status (128 + the signal
// when one ended it). Throws std::runtime_error when it cannot be started.
int run_program(const std::vector<std::string>& argv, const fs::path& stdout_path,
                const fs::path& stderr_path);

// The jobs, in the order run_bench() runs them. Each throws std::runtime_error naming the step
// that failed and where its stderr went (exit 1).
void job_host(const Plan& p, Progress& progress);
void job_suites(Plan& p, Progress& progress);
void job_scenarios(const Plan& p, Progress& progress);
void job_pipeline(const Plan& p, Progress& progress);
void job_python_bench(const Plan& p, Progress& progress);
void job_fleet(const Plan& p, Progress& progress);

}  // namespace mpt::cli::bench
