// tools/mpt/report_assemble.hpp — the writer of bench reports: collects what one `mpt bench` run
// left in its raw folder into report.json (schema 2, the document parse_report() reads).
//
// The raw folder (every file optional but host.json):
//     bm_<suite>.json                 Google Benchmark JSON (--benchmark_out_format=json)
//     scenario-<hardcap>-<rate>.json  mpt_scenario --json (schema 2)
//     peer-<hardcap>-<rate>.json      bench/peers/mp_throttle_peer.py --json (the same schema)
//     pipeline.json                   bench/pipeline_compare.py --json
//     fleet-leased.json               mpt_redis_fleet --json (schema 1): the fleet with leases
//     fleet-per-grant.json            the same with --max-lease 1 (read only beside the first)
//     host.json                       {"host": {...}}: this host as a calibration file names it
//     calibration.json                `mpt calibrate --show --json`'s document, or {"error": ...}
// The report: host, tool version, the calibration in force, the suites (medians; each benchmark
// with the floor it is measured against and its target), the scenarios, the peers, and the parts
// the run left out, and the Redis fleet simulation. docs/benchmarks.md ("Reports") documents the
// shape.
//
// A pure function of the folder's files and its inputs: no global state.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report_model.hpp"

namespace mpt::report {

// The fleet simulation's files in the raw folder (`mpt bench` writes them).
inline constexpr const char* kFleetLeasedFile = "fleet-leased.json";
inline constexpr const char* kFleetPerGrantFile = "fleet-per-grant.json";

struct AssembleInputs {
  std::filesystem::path raw;      // the raw folder
  std::string tool_version;       // mpt_version()
  bool quick = false;             // short runs
  std::string created_utc;        // "YYYY-MM-DDTHH:MM:SSZ"; empty: now
  std::vector<LeftOut> left_out;  // what the run did not measure, and why
};

// assemble_report()
// The report as JSON text (indented, ending in a newline). Throws ReportError naming the file when
// an input cannot be read or is not what its program writes (a scenario of another schema, an
// error document, a missing field). A suite's file that cannot be read is no error: the suite is
// reported with that error.
std::string assemble_report(const AssembleInputs& in);

// Now, UTC, as report.json and the calibration file write it: 2026-11-29T23:40:00Z.
std::string utc_now();

}  // namespace mpt::report
