// tools/mpt/commands.hpp — the subcommands of `mpt`. Each has an options struct, a setup_<verb>()
// that declares its flags into that struct, and a run_<verb>() that does the work and returns the
// exit code (see common.hpp). run_<verb>() may throw: main() maps the exception to the exit code.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace mpt::cli {

struct RunOptions {
  std::int64_t rate = 0;
  double per_s = 1;
  int workers = 0;
  double seconds = 0;
  std::string hardcap = "limit";
  double correction = NAN;  // NaN: not given
  std::string name;         // empty: anonymous throttle
  std::string backend;      // "redis://HOST:PORT/NAME": a throttle in Redis (empty: local)
  std::string on_unavailable = "fail";  // with --backend: fail, fail_open, fail_closed, ...
  double every_s = 1;
  bool probe = false;  // count with the eBPF probe too, and compare
  bool json = false;
};
CLI::App* setup_run(CLI::App& app, RunOptions& opts);
int run_run(const RunOptions& opts);

struct StatOptions {
  std::vector<std::string> names;  // each a name or a redis:// URL; one unless openmetrics
  double watch_s = 0;              // 0: once
  bool json = false;
  bool openmetrics = false;  // the metrics of names (none: every throttle), OpenMetrics text
};
CLI::App* setup_stat(CLI::App& app, StatOptions& opts);
int run_stat(const StatOptions& opts);

struct LsOptions {
  bool json = false;
};
CLI::App* setup_ls(CLI::App& app, LsOptions& opts);
int run_ls(const LsOptions& opts);

struct RmOptions {
  std::vector<std::string> names;
  bool stale = false;
  bool dry_run = false;
  bool json = false;
};
CLI::App* setup_rm(CLI::App& app, RmOptions& opts);
int run_rm(const RmOptions& opts);

struct CalibrateOptions {
  std::vector<std::string> rates;     // as given ("10,100"; split_list()); none: 10,...,100000
  std::vector<std::string> hardcaps;  // as given ("limit,one"; split_list()); none: limit,one
  int workers = 0;                    // 0: not given (4; with --check, the file's)
  double seconds = NAN;               // NaN: not given (2; 0.5 with --quick; 1 with --check)
  std::string output;                 // empty: default_calibration_path()
  bool show = false;
  bool host = false;  // print this host's identity and exit
  bool dry_run = false;
  bool quick = false;      // shorter trials, fit for boot
  bool if_needed = false;  // measure only when no file is in force for this host
  bool check = false;      // re-measure the stored bands: does the file still hold?
  std::string probe = "auto";
  bool json = false;
};
CLI::App* setup_calibrate(CLI::App& app, CalibrateOptions& opts);
int run_calibrate(const CalibrateOptions& opts);

struct ReportOptions {
  std::string report;   // report.json from scripts/bench
  std::string html;     // empty: no page
  std::string compare;  // empty: no second report
  bool json = false;
};
CLI::App* setup_report(CLI::App& app, ReportOptions& opts);
int run_report(const ReportOptions& opts);

// `mpt probe` exists only in builds with the eBPF counter (MPT_BPF, the default).
struct ProbeOptions {
  std::int64_t pid = 0;  // 0: every process
  std::string id;        // "0x...": only this throttle (empty: every throttle)
  std::string name;      // only the throttle(s) this segment name has held while the probe ran
  std::string lib;
  std::string binary;
  double seconds_s = 0;  // 0: until Ctrl-C
  double interval_s = 1;
  bool json = false;
};
CLI::App* setup_probe(CLI::App& app, ProbeOptions& opts);
int run_probe(const ProbeOptions& opts);

// `mpt export --textfile DIR`: the metrics of `mpt stat --openmetrics`, for node_exporter.
struct ExportOptions {
  std::string dir;                 // --textfile
  double every_s = 0;              // 0: once
  std::vector<std::string> names;  // none: every throttle
};
CLI::App* setup_export(CLI::App& app, ExportOptions& opts);
int run_export(const ExportOptions& opts);
// `mpt bench`: the benchmark report from the installed programs (cmd_bench.cpp).
struct BenchOptions {
  bool quick = false;
  std::string out = "bench-results";
  std::string peers = "auto";  // the Python parts: auto (when python3 is there), on, off
  double seconds = 0;          // per scenario; 0: 5, or 1 with --quick
  std::string programs;        // empty: $MPT_BENCH_PROGRAMS, ../lib/mpthrottle beside mpt, ...
  bool json = false;
};
CLI::App* setup_bench(CLI::App& app, BenchOptions& opts);
int run_bench(const BenchOptions& opts);

// `mpt create`, `mpt acquire`, `mpt start`, `mpt stop` (cmd_shell.cpp): a named throttle that
// outlives the command that made it, for shell scripts and programs in other languages.
struct CreateCmdOptions {
  std::string name;
  std::int64_t rate = 0;
  double per_s = 1;
  std::string hardcap = "limit";
  bool stopped = false;       // made, not started
  std::string mode = "0600";  // octal, as given
  bool json = false;
};
CLI::App* setup_create(CLI::App& app, CreateCmdOptions& opts);
int run_create(const CreateCmdOptions& opts);

struct AcquireOptions {
  std::string name;
  std::int64_t n = 1;
  double timeout_s = NAN;  // NaN: no timeout
  bool json = false;
};
CLI::App* setup_acquire(CLI::App& app, AcquireOptions& opts);
int run_acquire(const AcquireOptions& opts);

struct StartStopOptions {
  std::string name;
  bool json = false;
};
CLI::App* setup_start(CLI::App& app, StartStopOptions& opts);
int run_start(const StartStopOptions& opts);
CLI::App* setup_stop(CLI::App& app, StartStopOptions& opts);
int run_stop(const StartStopOptions& opts);

}  // namespace mpt::cli
