// tools/mpt/cmd_export.cpp — `mpt export --textfile DIR [--every S] [NAME...]`: the throttles'
// metrics (metrics.hpp) written to DIR/mpthrottle.prom for node_exporter's textfile collector, once
// or every S seconds until SIGINT/SIGTERM. The file is replaced atomically (a temporary file in DIR
// whose name does not end in .prom, fsync, rename), so the collector never reads half of one.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "commands.hpp"
#include "common.hpp"
#include "metrics.hpp"
#include "safe_file.hpp"

namespace mpt::cli {

namespace {

constexpr const char* kTextfileName = "mpthrottle.prom";

// DIR must be a directory we can write into: exit 1 with the reason before anything else.
void check_directory(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    throw std::runtime_error("--textfile " + dir + ": " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("--textfile " + dir + ": not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int e = errno;
    throw std::runtime_error("--textfile " + dir + ": cannot write into it: " + std::strerror(e));
  }
}

}  // namespace

CLI::App* setup_export(CLI::App& app, ExportOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "export", "Write the throttles' metrics for node_exporter's textfile collector");
  cmd->add_option("--textfile", opts.dir,
                  "directory node_exporter reads (--collector.textfile.directory): writes "
                  "DIR/mpthrottle.prom atomically")
      ->required();
  cmd->add_option("--every", opts.every_s,
                  "rewrite every S seconds until SIGINT/SIGTERM (default: once)")
      ->check(number_in(0.01, 3600));
  cmd->add_option("NAME", opts.names, "throttles to export (default: every throttle)")
      ->check(segment_name());
  return cmd;
}

int run_export(const ExportOptions& opts) {
  check_directory(opts.dir);
  const std::filesystem::path target = std::filesystem::path(opts.dir) / kTextfileName;
  detail::check_replaceable(target);
  if (opts.every_s > 0) install_stop_handlers();
  Ticker ticker(opts.every_s);
  bool first = true;
  do {
    // A NAME that is missing at the start is an error; one that goes away later is left out
    // (with a note on stderr) until it is back, so the collector keeps the others.
    const auto readings = read_throttles(opts.names, first);
    detail::write_file_atomically(target, render_metrics(readings, MetricsFormat::kPrometheus));
    first = false;
  } while (opts.every_s > 0 && ticker.wait());
  return kExitOk;
}

}  // namespace mpt::cli
