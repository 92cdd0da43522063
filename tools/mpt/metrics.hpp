// tools/mpt/metrics.hpp — the throttles' metrics for Prometheus: `mpt stat --openmetrics` and `mpt
// export --textfile`. One model (the series list in metrics.cpp, kSeries), two renderers: the
// OpenMetrics 1.0 text format, and the Prometheus text format 0.0.4 that node_exporter's textfile
// collector parses. Both write the same samples; they differ only in the metadata lines (a
// counter's family is `mpthrottle_x` in OpenMetrics, `mpthrottle_x_total` in 0.0.4; UNIT lines and
// `# EOF` are OpenMetrics only). docs/cli.md lists the series.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "mpt/monitor.hpp"

namespace mpt::cli {

// One throttle as the metrics show it: its snapshot, and whether its creator is alive (read here).
struct ThrottleReading {
  Snapshot snapshot;
  bool creator_alive = false;
};

// read_throttles()
// Snapshots of the throttles named (duplicates once), or with no name of every throttle in the
// segment directory ($MPT_SHM_DIR or /dev/shm) — other kinds of segment are left out. A segment
// that cannot be read (an invalid header, another owner, a throttle of another ABI) is left out
// with a note on stderr; so is a named one unless `strict`, where its error propagates (NotFound
// for an unknown name: exit 1).
std::vector<ThrottleReading> read_throttles(const std::vector<std::string>& names, bool strict);

enum class MetricsFormat {
  kOpenMetrics,  // OpenMetrics 1.0 text, ending in "# EOF"
  kPrometheus,   // Prometheus text format 0.0.4 (node_exporter's textfile collector)
};

// The whole exposition: every family in the order of kSeries, each with all throttles' samples
// (a family no throttle has a sample for is left out). Never partial: built from readings taken
// before.
std::string render_metrics(const std::vector<ThrottleReading>& throttles, MetricsFormat format);

// Ticks every `every_s` seconds on CLOCK_MONOTONIC, from now: for `stat --watch` and `export
// --every`. wait() sleeps until the next tick and returns true, or returns false as soon as a stop
// signal has arrived (install_stop_handlers()).
class Ticker {
 public:
  explicit Ticker(double every_s);
  bool wait();

 private:
  std::chrono::steady_clock::duration every_;
  std::chrono::steady_clock::time_point next_;
};

}  // namespace mpt::cli
