// tools/mpt/cmd_bench_run.cpp — the jobs of `mpt bench`: this host and its calibration (from the
// library), the Google Benchmark suites, the accuracy scenarios and their Python peer, the pipeline
// comparison, the Python module's harness and the Redis fleet (each a program of the programs
// directory, its output kept in the raw folder). See cmd_bench.hpp.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "child_process.hpp"
#include "cmd_bench.hpp"
#include "common.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "report_assemble.hpp"
#include "safe_file.hpp"

namespace mpt::cli::bench {

Progress::Progress(int steps, bool to_stderr) : out_(to_stderr ? stderr : stdout), steps_(steps) {}

void Progress::step(const std::string& what) {
  ++step_;
  std::fprintf(out_, "[%2d/%d %4ds] %s\n", step_, steps_, seconds(), printable(what).c_str());
  std::fflush(out_);
}

void Progress::note(const std::string& what) const {
  std::fprintf(out_, "            %s\n", printable(what).c_str());
  std::fflush(out_);
}

int Progress::seconds() const {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_)
          .count());
}

namespace {

// In the child: `path` (or /dev/null) opened for writing as `fd`; false when it cannot be.
bool redirect(int fd, const fs::path& path) {
  const int f = ::open(path.empty() ? "/dev/null" : path.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f < 0) return false;
  const bool ok = ::dup2(f, fd) >= 0;
  ::close(f);
  return ok;
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  detail::write_file_atomically(path, dump_json(j) + "\n");
}

}  // namespace

int run_program(const std::vector<std::string>& argv, const fs::path& stdout_path,
                const fs::path& stderr_path) {
  std::vector<char*> args;  // built before the fork: the child only calls what is safe there
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = detail::fork_dying_with_parent();  // Ctrl-C or a kill of mpt ends it too
  if (pid < 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(errno));
  if (pid == 0) {
    if (!redirect(STDIN_FILENO, "/dev/null") || !redirect(STDOUT_FILENO, stdout_path) ||
        !redirect(STDERR_FILENO, stderr_path)) {
      _exit(127);
    }
    ::execv(args[0], args.data());
    const char* why = std::strerror(errno);
    const ssize_t n [[maybe_unused]] = ::write(STDERR_FILENO, why, std::strlen(why));
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid: " + std::string(std::strerror(errno)));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {

// Runs a step's program; a failure is the step's, named with where its stderr went.
void run_step(const std::vector<std::string>& argv, const fs::path& stdout_path,
              const fs::path& stderr_path, const std::string& what) {
  const int code = run_program(argv, stdout_path, stderr_path);
  if (code != 0) {
    throw std::runtime_error(what + " failed (exit " + std::to_string(code) + "; see " +
                             stderr_path.string() + ")");
  }
}

// `mpt calibrate --show --json`'s document for the calibration file in force, from the library:
// the file and whether it is in force (why not), or {"error", "path"} when there is none to read.
nlohmann::json calibration_document() {
  const fs::path path = default_calibration_path();
  std::string why;
  std::optional<Calibration> c = Calibration::load(path, &why);
  nlohmann::json j = {{"path", path.string()}, {"in_force", c.has_value()}};
  if (!c) {
    try {
      c = Calibration::from_file(path);
    } catch (const std::exception& e) {  // NotFound, SystemError, InvalidArgument: each names it
      return {{"error", e.what()}, {"path", path.string()}};
    }
    j["ignored_because"] = why;
  }
  j["calibration"] = nlohmann::json::parse(c->to_json());
  return j;
}

}  // namespace

void job_host(const Plan& p, Progress& progress) {
  progress.step("this host and the calibration in force (the library's HostIdentity, " +
                default_calibration_path().string() + ")");
  write_json(p.raw / "host.json", {{"host", HostIdentity::current()}});
  write_json(p.raw / "calibration.json", calibration_document());
}

void job_suites(Plan& p, Progress& progress) {
  std::vector<std::string> args;
  if (p.opts.quick) {
    args = {"--benchmark_min_time=0.05"};
  } else {
    args = {"--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"};
  }
  for (const char* suite : kSuites) {
    progress.step(std::string("benchmark suite ") + suite);
    const fs::path program = p.programs / suite;
    if (::access(program.c_str(), X_OK) != 0) {
      progress.note(program.string() + " was not built; left out");
      p.left_out.push_back({suite, "not built (no " + program.string() + ")"});
      continue;
    }
    std::vector<std::string> argv = {program.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--benchmark_format=json");
    argv.push_back("--benchmark_out_format=json");
    argv.push_back("--benchmark_out=" + (p.raw / (std::string(suite) + ".json")).string());
    run_step(argv, "", p.raw / (std::string(suite) + ".stderr"), suite);
  }
}

void job_scenarios(const Plan& p, Progress& progress) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", p.seconds);
  const std::string workers = std::to_string(kWorkers);
  for (const char* h : kHardcaps) {
    for (int r : kRates) {
      const std::string rate = std::to_string(r);
      const std::string tail =
          std::string(h) + ", " + rate + "/s, " + workers + " workers, " + secs + " s";
      const std::string stem = std::string(h) + "-" + rate;
      progress.step("scenario: mpt, hardcap " + tail);
      run_step({(p.programs / "mpt_scenario").string(), "--rate", rate, "--workers", workers,
                "--seconds", secs, "--hardcap", h, "--probe", "auto", "--json"},
               p.raw / ("scenario-" + stem + ".json"), p.raw / ("scenario-" + stem + ".stderr"),
               "mpt_scenario --rate " + rate + " --hardcap " + h);
      if (p.python.empty()) continue;
      progress.step("scenario: Python peer (mp_throttle design), hardcap " + tail);
      run_step({p.python, (p.programs / "peers" / "mp_throttle_peer.py").string(), "--rate", rate,
                "--workers", workers, "--seconds", secs, "--hardcap", h, "--json"},
               p.raw / ("peer-" + stem + ".json"), p.raw / ("peer-" + stem + ".stderr"),
               "the peer at " + rate + "/s, hardcap " + h + ",");
    }
  }
}

void job_pipeline(const Plan& p, Progress& progress) {
  progress.step("pipeline: process_parallel against Pool.imap");
  std::vector<std::string> argv = {p.python, (p.programs / "pipeline_compare.py").string(),
                                   "--bench", (p.programs / "mpt_pipeline_bench").string()};
  if (p.opts.quick) {
    argv.insert(argv.end(), {"--reps", "1", "--items", "200000", "--imap1-items", "20000"});
  } else {
    argv.insert(argv.end(), {"--reps", "3"});
  }
  argv.push_back("--json");
  run_step(argv, p.raw / "pipeline.json", p.raw / "pipeline.stderr", "pipeline_compare.py");
}

void job_python_bench(const Plan& p, Progress& progress) {
  progress.step("Python: the mpthrottle module against the mp_throttle design (python_bench.py)");
  if (!p.python_module) {
    progress.note("the Python module mpthrottle cannot be imported by " + p.python + "; left out");
    return;
  }
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", p.seconds);
  std::vector<std::string> argv = {p.python, (p.programs / "python_bench.py").string(), "--seconds",
                                   secs};
  if (!p.python_build.empty()) argv.insert(argv.end(), {"--build", p.python_build});
  if (p.opts.quick) argv.push_back("--quick");
  argv.insert(argv.end(), {"--out", (p.raw / "python_bench.json").string()});
  run_step(argv, p.raw / "python_bench.txt", p.raw / "python_bench.stderr", "python_bench.py");
  std::ifstream text(p.raw / "python_bench.txt");
  for (std::string line; std::getline(text, line);)
    progress.note(line);
}

void job_fleet(const Plan& p, Progress& progress) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", p.fleet_seconds);
  std::string hosts;
  for (int h : kFleetHosts)
    hosts += (hosts.empty() ? "" : ",") + std::to_string(h);
  const std::string rate = std::to_string(kFleetRate);
  const std::string what = "Redis fleet: " + hosts + " hosts at " + rate + "/s in all, " + secs +
                           " s a run (mpt_redis_fleet, a redis-server of its own)";
  const struct {
    const char* file;
    const char* max_lease;  // nullptr: the program's default
    const char* how;
  } runs[] = {{report::kFleetLeasedFile, nullptr, "with leases"},
              {report::kFleetPerGrantFile, "1", "one script call per grant (--max-lease 1)"}};
  for (const auto& run : runs) {
    progress.step(what + ", " + run.how);
    std::vector<std::string> argv = {(p.programs / "mpt_redis_fleet").string(),
                                     "--hosts",
                                     hosts,
                                     "--rate",
                                     rate,
                                     "--seconds",
                                     secs,
                                     "--json"};
    if (run.max_lease) argv.insert(argv.end(), {"--max-lease", run.max_lease});
    const fs::path out = p.raw / run.file;
    run_step(argv, out, fs::path(out).replace_extension(".stderr"),
             std::string("mpt_redis_fleet ") + run.how);
  }
}

}  // namespace mpt::cli::bench
