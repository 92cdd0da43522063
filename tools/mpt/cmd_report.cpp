// tools/mpt/cmd_report.cpp — `mpt report REPORT.json [--html OUT.html] [--compare OTHER.json]`:
// reads a bench report (scripts/bench), prints its summary table, and writes the HTML page.
//
// Exit 0 ok; 1 when a report cannot be read or is invalid (the message names the file and the
// field) or the page cannot be written; 2 on bad usage.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "commands.hpp"
#include "common.hpp"
#include "report_model.hpp"

namespace mpt::cli {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > report::kMaxReportBytes) {
      throw std::runtime_error(path + ": larger than 64 MiB; not a bench report");
    }
  }
  if (in.bad()) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  return text;
}

report::Report load(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return report::parse_report(text);
  } catch (const report::ReportError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

// Writes `text` to `path` through a temporary file and a rename: never a half-written page.
void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(e));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
}

nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

CLI::App* setup_report(CLI::App& app, ReportOptions& opts) {
  CLI::App* sub = app.add_subcommand(
      "report", "Summarise a bench report (scripts/bench) and render it as one HTML page");
  sub->add_option("REPORT", opts.report, "report.json written by scripts/bench")->required();
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
  if (!opts.html.empty()) write_file(opts.html, report::render_html(r, compare));

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
    std::cout << report::render_text(r, compare);
    if (!opts.html.empty()) std::cout << "\nwrote " << opts.html << "\n";
    std::cout << std::flush;
  }
  return kExitOk;
}

}  // namespace mpt::cli
