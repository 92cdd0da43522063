// tools/mpt/report_text.cpp — `mpt report`'s terminal summary; see report_model.hpp. A pure
// function of the parsed reports: no I/O, no clock, no global state.
#include <algorithm>

#include "report_format.hpp"
#include "report_model.hpp"

namespace mpt::report {

namespace {

void text_scenarios(std::string& out, const Report& r) {
  const PeerRatios ratios = peer_ratios(r);
  out += "ACCURACY (" + std::to_string(r.scenarios.size()) +
         " scenarios; achieved by the monitor, and by the kernel where it counted)\n";
  out += pad("HARDCAP", 7, true) + pad("RATE(/s)", 10) + pad("ACHIEVED(/s)", 14) +
         pad("KERNEL(/s)", 14) + pad("ERR", 10) + pad("MAX/WIN", 9) + pad("P50(us)", 9) +
         pad("P99(us)", 9) + pad("CPU/1k(ms)", 11) + pad("PEER(/s)", 12) + pad("PEER ERR", 10) +
         pad("|ERR|/PEER", 11) + pad("CPU/PEER", 9) + "\n";
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& s = r.scenarios[i];
    const ScenarioVsPeer& v = ratios.scenarios[i];
    out += pad(s.hardcap, 7, true) + pad(group(static_cast<double>(s.rate_per_sec), 0), 10) +
           pad(na_text(s.achieved_rate_per_sec, rate_text), 14) +
           pad(s.kernel_total ? na_text(s.kernel_achieved_rate_per_sec, rate_text) : "-", 14) +
           pad(na_text(s.rel_error, pct_text), 10) +
           pad(group(static_cast<double>(s.max_in_window), 0), 9) +
           pad(us_text(static_cast<double>(s.interval_p50_ns)), 9) +
           pad(us_text(static_cast<double>(s.interval_p99_ns)), 9) +
           pad(f("%.2f", s.cpu_s_per_1000 * 1e3), 11) +
           pad(v.peer ? na_text(v.peer->achieved_rate_per_sec, rate_text) : "-", 12) +
           pad(v.peer ? na_text(v.peer->rel_error, pct_text) : "-", 10) +
           pad(opt_text(v.abs_error_ratio, ratio_text), 11) +
           pad(opt_text(v.cpu_ratio, ratio_text), 9) + "\n";
  }
  if (r.peer_throttle) {
    out += "\npeer " + r.peer_throttle->impl + ": |error| / peer's, median " +
           opt_text(ratios.median_abs_error_ratio, ratio_text) + "; CPU per emission / peer's, " +
           "median " + opt_text(ratios.median_cpu_ratio, ratio_text) + "; highest rate reached " +
           rate_text(ratios.highest_rate) + "/s vs " +
           opt_text(ratios.peer_highest_rate, rate_text) + "/s (" +
           opt_text(ratios.highest_rate_ratio, ratio_text) + ")\n";
  }
  if (r.peer_pipeline) {
    const PipelinePeer& p = *r.peer_pipeline;
    out += "pipeline, " + std::to_string(p.workers) + " workers: process_parallel " +
           group(p.mpt_items_per_sec, 0) + " items/s; Pool.imap chunksize 1 " +
           group(p.imap_chunk1_items_per_sec, 0) + " (" +
           ratio_text(p.mpt_items_per_sec / p.imap_chunk1_items_per_sec) + "), chunksize 1000 " +
           group(p.imap_chunk1000_items_per_sec, 0) + " (" +
           ratio_text(p.mpt_items_per_sec / p.imap_chunk1000_items_per_sec) + ")\n";
  }
}

void text_suites(std::string& out, const Report& r) {
  out += "\n" + pad("BENCHMARK", 52, true) + pad("TIME(ns)", 16) + pad("OPS(/s)", 12) +
         pad("× FLOOR", 9) + pad("TARGET", 8) + "\n";
  for (const Suite& s : r.suites) {
    if (s.error) out += s.name + ": error: " + *s.error + "\n";
    for (const Benchmark& b : s.benchmarks) {
      const auto ratio = floor_ratio(s, b);
      const auto ok = meets_target(s, b);
      std::string target = "-";
      if (b.target_ratio)
        target = b.target_cmp + f("%g", *b.target_ratio) + (*ok ? " ok" : " MISS");
      out += pad(s.name + "/" + b.name, 52, true) + pad(group(b.real_time_ns, 1), 16) +
             pad(b.ops_per_sec ? f("%.4g", *b.ops_per_sec) : "-", 12) +
             pad(ratio ? f("%.2f", *ratio) : "-", 9) + "  " + target + "\n";
    }
  }
}

void text_fleet(std::string& out, const Fleet& fl) {
  out += "\nREDIS FLEET (hosts: processes, each with its own connection, at " +
         group(static_cast<double>(fl.rate_per_sec), 0) + "/s in all through one Redis; " +
         f("%g", fl.seconds) + " s a run; calls: script calls the server answered)\n";
  const std::string lease = "LEASES (max " + std::to_string(fl.leased.max_lease) + ")";
  out += pad("", 6) + "  " + pad(lease, 46, true) +
         (fl.per_grant
              ? "  ONE CALL PER GRANT (max_lease " + std::to_string(fl.per_grant->max_lease) + ")"
              : "") +
         "\n";
  const std::string cols =
      pad("ACHIEVED(/s)", 14) + pad("/TARGET", 9) + pad("CALLS(/s)", 11) + pad("CALLS/GRANT", 12);
  out += pad("HOSTS", 6) + "  " + cols + (fl.per_grant ? "  " + cols : "") + "\n";
  const auto cells = [](const FleetRun& run) {
    return pad(rate_text(run.achieved_per_sec), 14) + pad(f("%.5f", run.achieved_over_target), 9) +
           pad(group(run.calls_per_sec, 0), 11) + pad(f("%.4f", run.calls_per_grant), 12);
  };
  for (const FleetRun& run : fl.leased.runs) {
    out += pad(std::to_string(run.hosts), 6) + "  " + cells(run);
    if (fl.per_grant) {
      const FleetRun* before = find_fleet_run(fl.per_grant, run.hosts);
      out += "  " +
             (before ? cells(*before) : pad("-", 14) + pad("-", 9) + pad("-", 11) + pad("-", 12));
    }
    out += "\n";
  }
}

void text_compare(std::string& out, const Report& r, const Report& o) {
  out += "\nCOMPARED WITH " + o.host.hostname + " (" + o.created_utc + "): this / other\n";
  out += pad("HARDCAP", 7, true) + pad("RATE(/s)", 10) + pad("ACHIEVED", 14) + pad("OTHER", 14) +
         pad("RATIO", 9) + pad("ERR", 10) + pad("OTHER ERR", 10) + pad("CPU/1k", 8) +
         pad("OTHER", 8) + pad("RATIO", 9) + "\n";
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& s = r.scenarios[i];
    const Scenario* t = find_scenario(o.scenarios, s.hardcap, s.rate_per_sec);
    if (!t) continue;
    out +=
        pad(s.hardcap, 7, true) + pad(group(static_cast<double>(s.rate_per_sec), 0), 10) +
        pad(na_text(s.achieved_rate_per_sec, rate_text), 14) +
        pad(na_text(t->achieved_rate_per_sec, rate_text), 14) +
        pad(opt_text(ratio_of(s.achieved_rate_per_sec, t->achieved_rate_per_sec), ratio_text), 9) +
        pad(na_text(s.rel_error, pct_text), 10) + pad(na_text(t->rel_error, pct_text), 10) +
        pad(f("%.2f", s.cpu_s_per_1000 * 1e3), 8) + pad(f("%.2f", t->cpu_s_per_1000 * 1e3), 8) +
        pad(t->cpu_s_per_1000 > 0 ? ratio_text(s.cpu_s_per_1000 / t->cpu_s_per_1000) : "-", 9) +
        "\n";
  }
  out += pad("BENCHMARK", 52, true) + pad("THIS", 16) + pad("OTHER", 16) + pad("RATIO", 9) +
         "  (ns per op; ops/s for the two-process runs)\n";
  for (const Suite& s : r.suites) {
    const auto so = std::find_if(o.suites.begin(), o.suites.end(),
                                 [&](const Suite& x) { return x.name == s.name; });
    if (so == o.suites.end()) continue;
    for (const Benchmark& b : s.benchmarks) {
      const auto bo = std::find_if(so->benchmarks.begin(), so->benchmarks.end(),
                                   [&](const Benchmark& x) { return x.name == b.name; });
      if (bo == so->benchmarks.end()) continue;
      const auto [va, vb] = compared_values(b, *bo);
      out += pad(s.name + "/" + b.name, 52, true) + pad(group(va, 1), 16) + pad(group(vb, 1), 16) +
             pad(vb > 0 ? ratio_text(va / vb) : "-", 9) + "\n";
    }
  }
}

// A string from the report on one line: a line break in it is shown as \n (the caller shows the
// other control bytes as \xNN), so no field of a report.json can add lines of its own.
std::string one_line(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string render_text(const Report& r, const Report* compare) {
  std::string out = "mpthrottle bench report: " + one_line(r.host.hostname) + " (" +
                    one_line(r.host.cpu_model) + ", " + std::to_string(r.host.cores) +
                    " cores, clocksource " + one_line(r.host.clocksource) + "), " +
                    one_line(r.host.kernel) + "\n";
  out += "made " + one_line(r.created_utc) + " by mpthrottle " + one_line(r.tool_version) +
         (r.quick ? " (--quick: short runs)" : "") + "; calibration " +
         (r.calibration.in_force ? "in force" : "not in force") + ": " +
         one_line(r.calibration.note) + "\n";
  for (const LeftOut& l : r.left_out)
    out += "left out: " + one_line(l.part) + " (" + one_line(l.why) + ")\n";
  out += "\n";
  text_scenarios(out, r);
  if (r.fleet) text_fleet(out, *r.fleet);
  text_suites(out, r);
  if (compare) text_compare(out, r, *compare);
  return out;
}

}  // namespace mpt::report
