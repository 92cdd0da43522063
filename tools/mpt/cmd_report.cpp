// tools/mpt/cmd_report.cpp — `mpt report REPORT.json [--html OUT.html] [--compare OTHER.json]`:
// reads a bench report (scripts/bench), prints its summary table, and writes the HTML page.
//
// Exit 0 ok; 1 when a report cannot be read or is invalid (the message names the file and the
// field) or the page cannot be written; 2 on bad usage.
#include <iostream>
#include <optional>
#include <stdexcept>

#include "commands.hpp"
#include "common.hpp"
#include "report_model.hpp"
#include "safe_file.hpp"

namespace mpt::cli {

namespace {

report::Report load(const std::string& path) {
  const std::string text = detail::read_file_capped(path, report::kMaxReportBytes, "report");
  try {
    return report::parse_report(text);
  } catch (const report::ReportError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

CLI::App* setup_report(CLI::App& app, ReportOptions& opts) {
  CLI::App* sub = app.add_subcommand(
      "report", "Summarise a bench report (mpt bench) and render it as one HTML page");
  sub->add_option("REPORT", opts.report, "report.json written by mpt bench")->required();
  sub->add_option("--html", opts.html, "write the page here (self-contained: inline SVG)");
  sub->add_option("--compare", opts.compare,
                  "another report (another host, or before a change): side by side, with ratios");
  sub->add_flag("--json", opts.json, "print the peer ratios as one JSON document");
  return sub;
}

int run_report(const ReportOptions& opts) {
  const report::Report r = load(opts.report);
  std::optional<report::Report> other;
  if (!opts.compare.empty()) other = load(opts.compare);
  const report::Report* compare = other ? &*other : nullptr;
  // Never half-written, never through a symlink, never over a device (see safe_file.hpp).
  if (!opts.html.empty()) detail::write_file_atomically(opts.html, report::render_html(r, compare));

  if (opts.json) {
    const report::PeerRatios p = report::peer_ratios(r);
    nlohmann::json j;
    j["schema"] = kSchemaVersion;
    j["report"] = opts.report;
    j["html"] = opts.html.empty() ? nlohmann::json(nullptr) : nlohmann::json(opts.html);
    j["compare"] = opts.compare.empty() ? nlohmann::json(nullptr) : nlohmann::json(opts.compare);
    j["scenarios"] = r.scenarios.size();
    j["median_abs_error_ratio"] = opt(p.median_abs_error_ratio);
    j["median_cpu_ratio"] = opt(p.median_cpu_ratio);
    j["highest_rate_per_sec"] = p.highest_rate;
    j["peer_highest_rate_per_sec"] = opt(p.peer_highest_rate);
    j["highest_rate_ratio"] = opt(p.highest_rate_ratio);
    print_json(j);
  } else {
    std::cout << printable(report::render_text(r, compare), /*keep_newlines=*/true);
    if (!opts.html.empty()) std::cout << "\nwrote " << printable(opts.html) << "\n";
    std::cout << std::flush;
  }
  return kExitOk;
}

}  // namespace mpt::cli
