// tools/mpt/report_html.cpp — `mpt report`'s HTML page; see report_model.hpp. A pure function of
// the parsed reports: no I/O, no clock, no global state.
//
// The page is one file: CSS in a <style> element, charts as inline SVG (tooltips are SVG <title>
// elements, so nothing needs JavaScript), no external resource. Every number shown in a table cell
// carries the exact value from the report in data-value and its JSON pointer in data-field, so a
// test can check the page against the JSON.
#include <algorithm>

#include "report_charts.hpp"
#include "report_format.hpp"
#include "report_model.hpp"

namespace mpt::report {

namespace {

// A numeric table cell that names its source: data-field is the JSON pointer of the value in the
// report, data-value the exact value.
std::string td(const std::string& pointer, double value, const std::string& text) {
  return "<td class=\"num\" data-field=\"" + html_escape(pointer) + "\" data-value=\"" +
         exact(value) + "\">" + html_escape(text) + "</td>";
}
std::string td(const std::string& text, const char* cls = "num") {
  return std::string("<td class=\"") + cls + "\">" + html_escape(text) + "</td>";
}
// A value that may be null in the report (an achieved rate from fewer than two grants): the cell
// still names its field, and says "n/a".
std::string td_opt(const std::string& pointer, const std::optional<double>& value,
                   std::string (*fmt)(double)) {
  if (value) return td(pointer, *value, fmt(*value));
  return "<td class=\"num\" data-field=\"" + html_escape(pointer) +
         "\" data-value=\"null\">n/a</td>";
}

// JSON pointers to a scenario's fields.
std::string scenario_ptr(const Report& r, const Scenario& s, bool peer) {
  const auto& v = peer ? r.peer_throttle->scenarios : r.scenarios;
  const std::size_t i = static_cast<std::size_t>(&s - v.data());
  return (peer ? "/peers/throttle/scenarios/" : "/scenarios/") + std::to_string(i);
}

std::string table_scenarios(const Report& r) {
  const PeerRatios ratios = peer_ratios(r);
  std::string t =
      "<table id=\"summary-table\">\n<thead><tr><th>hardcap</th><th>target (/s)</th>"
      "<th>achieved (/s), monitor</th><th>achieved (/s), kernel</th>"
      "<th>error</th><th>kernel error</th><th>most in 1 s</th><th>interval p50 "
      "(µs)</th><th>p99 (µs)</th><th>max (µs)</th><th>CPU ms per 1,000</th>"
      "<th>peer achieved (/s)</th><th>peer error</th><th>peer most in 1 s</th>"
      "<th>peer CPU ms per 1,000</th>"
      "<th>|error| ÷ peer's</th><th>CPU ÷ peer's</th></tr></thead>\n<tbody>\n";
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& s = r.scenarios[i];
    const ScenarioVsPeer& v = ratios.scenarios[i];
    const std::string p = scenario_ptr(r, s, false);
    t +=
        "<tr>" + td(s.hardcap, "") +
        td(p + "/rate_per_sec", static_cast<double>(s.rate_per_sec),
           group(static_cast<double>(s.rate_per_sec), 0)) +
        td_opt(p + "/achieved_rate_per_sec", s.achieved_rate_per_sec, rate_text) +
        (s.kernel_total ? td_opt(p + "/kernel_achieved_rate_per_sec",
                                 s.kernel_achieved_rate_per_sec, rate_text)
                        : td("—")) +
        td_opt(p + "/rel_error", s.rel_error, pct_text) +
        (s.kernel_total ? td_opt(p + "/kernel_rel_error", s.kernel_rel_error, pct_text) : td("—")) +
        td(p + "/max_in_window", static_cast<double>(s.max_in_window),
           group(static_cast<double>(s.max_in_window), 0)) +
        td(p + "/interval_p50_ns", static_cast<double>(s.interval_p50_ns),
           us_text(static_cast<double>(s.interval_p50_ns))) +
        td(p + "/interval_p99_ns", static_cast<double>(s.interval_p99_ns),
           us_text(static_cast<double>(s.interval_p99_ns))) +
        td(p + "/interval_max_ns", static_cast<double>(s.interval_max_ns),
           us_text(static_cast<double>(s.interval_max_ns))) +
        td(p + "/cpu_s_per_1000", s.cpu_s_per_1000, f("%.2f", s.cpu_s_per_1000 * 1e3));
    if (v.peer) {
      const std::string pp = scenario_ptr(r, *v.peer, true);
      t += td_opt(pp + "/achieved_rate_per_sec", v.peer->achieved_rate_per_sec, rate_text) +
           td_opt(pp + "/rel_error", v.peer->rel_error, pct_text) +
           td(pp + "/max_in_window", static_cast<double>(v.peer->max_in_window),
              group(static_cast<double>(v.peer->max_in_window), 0)) +
           td(pp + "/cpu_s_per_1000", v.peer->cpu_s_per_1000,
              f("%.2f", v.peer->cpu_s_per_1000 * 1e3));
    } else {
      t += td("—") + td("—") + td("—") + td("—");
    }
    t += td(v.abs_error_ratio ? ratio_text(*v.abs_error_ratio) : "—") +
         td(v.cpu_ratio ? ratio_text(*v.cpu_ratio) : "—") + "</tr>\n";
  }
  t += "</tbody></table>\n";
  return t;
}

std::string section_peers(const Report& r) {
  std::string s;
  const PeerRatios ratios = peer_ratios(r);
  if (r.peer_throttle) {
    s += "<p><b>Throttle peer:</b> " + html_escape(r.peer_throttle->impl) + ". " +
         html_escape(r.peer_throttle->note) + "</p>\n";
    s += "<table id=\"peer-ratios\"><thead><tr><th>ratio (mpt ÷ peer)</th><th>value</th>"
         "<th>meaning</th></tr></thead><tbody>\n";
    s += "<tr><td>|error| ÷ peer's |error|, median over scenarios</td>" +
         td(ratios.median_abs_error_ratio ? ratio_text(*ratios.median_abs_error_ratio) : "—") +
         "<td>below 1: mpt holds the rate more exactly</td></tr>\n";
    s += "<tr><td>CPU per emission ÷ peer's, median</td>" +
         td(ratios.median_cpu_ratio ? ratio_text(*ratios.median_cpu_ratio) : "—") +
         "<td>below 1: mpt spends less CPU per grant</td></tr>\n";
    s += "<tr><td>highest rate reached: mpt " + html_escape(rate_text(ratios.highest_rate)) +
         "/s, peer " +
         html_escape(ratios.peer_highest_rate ? rate_text(*ratios.peer_highest_rate) : "—") +
         "/s</td>" + td(ratios.highest_rate_ratio ? ratio_text(*ratios.highest_rate_ratio) : "—") +
         "<td>above 1: mpt reaches higher rates</td></tr>\n</tbody></table>\n";
  } else {
    s += "<p>No throttle peer in this report.</p>\n";
  }
  if (r.peer_pipeline) {
    const PipelinePeer& p = *r.peer_pipeline;
    s += "<p><b>Pipeline peer:</b> Python's multiprocessing <code>Pool.imap</code> against "
         "<code>process_parallel</code> on the same tokenizer job, " +
         std::to_string(p.workers) + " workers.</p>\n";
    s += "<table id=\"pipeline\"><thead><tr><th>implementation</th><th>items/s</th>"
         "<th>mpt ÷ this</th></tr></thead><tbody>\n";
    s += "<tr><td>mpt process_parallel</td>" +
         td("/peers/pipeline/mpt_items_per_sec", p.mpt_items_per_sec,
            group(p.mpt_items_per_sec, 0)) +
         td("1.00×") + "</tr>\n";
    s += "<tr><td>Pool.imap, chunksize 1</td>" +
         td("/peers/pipeline/imap_chunk1_items_per_sec", p.imap_chunk1_items_per_sec,
            group(p.imap_chunk1_items_per_sec, 0)) +
         td(ratio_text(p.mpt_items_per_sec / p.imap_chunk1_items_per_sec)) + "</tr>\n";
    s += "<tr><td>Pool.imap, chunksize 1000</td>" +
         td("/peers/pipeline/imap_chunk1000_items_per_sec", p.imap_chunk1000_items_per_sec,
            group(p.imap_chunk1000_items_per_sec, 0)) +
         td(ratio_text(p.mpt_items_per_sec / p.imap_chunk1000_items_per_sec)) +
         "</tr>\n</tbody></table>\n";
  }
  return s;
}

// The fleet's runs, one row per host count: with leases, and with one call per grant beside them.
std::string section_fleet(const Fleet& fl) {
  std::string t =
      "<p class=\"note\">Each host is a process of this machine with its own connection, looping "
      "on <code>await_fuel()</code>; the fleet shares one throttle of " +
      html_escape(group(static_cast<double>(fl.rate_per_sec), 0)) +
      "/s through one redis-server "
      "on loopback, " +
      html_escape(f("%g", fl.seconds)) +
      " s a run (<code>mpt_redis_fleet</code>). Achieved = the server's total ÷ its runtime; calls "
      "= the EVALSHA calls the server answered (INFO commandstats). One call per grant is "
      "<code>--max-lease 1</code>, what the library did before leases.</p>\n";
  const std::string head =
      "<th>achieved (/s)</th><th>÷ target</th><th>calls/s at the server</th>"
      "<th>calls per grant</th>";
  t += "<table id=\"fleet-table\"><thead><tr><th rowspan=\"2\">hosts</th><th colspan=\"4\">"
       "leases (max " +
       std::to_string(fl.leased.max_lease) + ")</th>" +
       (fl.per_grant ? "<th colspan=\"4\">one call per grant</th>" : "") + "</tr>\n<tr>" + head +
       (fl.per_grant ? head : "") + "</tr></thead>\n<tbody>\n";
  const auto cells = [](const std::string& p, const FleetRun& run) {
    return td(p + "/achieved_per_sec", run.achieved_per_sec, rate_text(run.achieved_per_sec)) +
           td(p + "/achieved_over_target", run.achieved_over_target,
              f("%.5f", run.achieved_over_target)) +
           td(p + "/calls_per_sec", run.calls_per_sec, group(run.calls_per_sec, 0)) +
           td(p + "/calls_per_grant", run.calls_per_grant, f("%.4f", run.calls_per_grant));
  };
  for (std::size_t i = 0; i < fl.leased.runs.size(); ++i) {
    const FleetRun& run = fl.leased.runs[i];
    t += "<tr>" +
         td("/fleet/leased/runs/" + std::to_string(i) + "/hosts", static_cast<double>(run.hosts),
            std::to_string(run.hosts)) +
         cells("/fleet/leased/runs/" + std::to_string(i), run);
    if (fl.per_grant) {
      const FleetRun* b = find_fleet_run(fl.per_grant, run.hosts);
      const auto bi = b ? static_cast<std::size_t>(b - fl.per_grant->runs.data()) : 0;
      t += b ? cells("/fleet/per_grant/runs/" + std::to_string(bi), *b)
             : td("—") + td("—") + td("—") + td("—");
    }
    t += "</tr>\n";
  }
  return t + "</tbody></table>\n";
}

std::string table_suites(const Report& r) {
  std::string t =
      "<table id=\"suites-table\"><thead><tr><th>suite</th><th>benchmark</th>"
      "<th>real time (ns)</th><th>CPU time (ns)</th><th>ops/s</th><th>floor</th>"
      "<th>× floor</th><th>target</th></tr></thead><tbody>\n";
  for (std::size_t si = 0; si < r.suites.size(); ++si) {
    const Suite& s = r.suites[si];
    if (s.error) {
      t += "<tr><td>" + html_escape(s.name) +
           "</td><td colspan=\"7\" class=\"bad\">error: " + html_escape(*s.error) + "</td></tr>\n";
    }
    for (std::size_t bi = 0; bi < s.benchmarks.size(); ++bi) {
      const Benchmark& b = s.benchmarks[bi];
      const std::string p = "/suites/" + std::to_string(si) + "/benchmarks/" + std::to_string(bi);
      const auto ratio = floor_ratio(s, b);
      const auto ok = meets_target(s, b);
      t += "<tr><td>" + html_escape(s.name) + "</td><td>" + html_escape(b.name) + "</td>" +
           td(p + "/real_time_ns", b.real_time_ns, group(b.real_time_ns, 1)) +
           td(p + "/cpu_time_ns", b.cpu_time_ns, group(b.cpu_time_ns, 1)) +
           (b.ops_per_sec ? td(p + "/ops_per_sec", *b.ops_per_sec, group(*b.ops_per_sec, 0))
                          : td("—")) +
           td(b.floor ? *b.floor : "—", "") + td(ratio ? f("%.2f", *ratio) : "—") +
           (b.target_ratio ? "<td class=\"" + std::string(*ok ? "good" : "bad") + "\">" +
                                 html_escape(b.target_cmp) + f(" %g ", *b.target_ratio) +
                                 (*ok ? "met" : "missed") + "</td>"
                           : td("—", "")) +
           "</tr>\n";
    }
  }
  t += "</tbody></table>\n";
  return t;
}

std::string section_compare(const Report& r, const Report& o) {
  std::string s = "<p>This report (" + html_escape(r.host.hostname) + ", " +
                  html_escape(r.created_utc) + ") against the other (" +
                  html_escape(o.host.hostname) + ", " + html_escape(o.created_utc) +
                  "). Ratios are this ÷ other. The other's runs are the grey series in the rate "
                  "charts above.</p>\n";
  s += "<table id=\"compare-scenarios\"><thead><tr><th>hardcap</th><th>target (/s)</th>"
       "<th>achieved (/s)</th><th>other</th><th>ratio</th><th>error</th><th>other</th>"
       "<th>CPU ms per 1,000</th><th>other</th><th>ratio</th><th>p99 (µs)</th><th>other</th>"
       "</tr></thead><tbody>\n";
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& a = r.scenarios[i];
    const Scenario* b = find_scenario(o.scenarios, a.hardcap, a.rate_per_sec);
    if (!b) continue;
    s += "<tr>" + td(a.hardcap, "") + td(group(static_cast<double>(a.rate_per_sec), 0)) +
         td(na_text(a.achieved_rate_per_sec, rate_text)) +
         td(na_text(b->achieved_rate_per_sec, rate_text)) +
         td(ratio_of(a.achieved_rate_per_sec, b->achieved_rate_per_sec)
                ? ratio_text(*ratio_of(a.achieved_rate_per_sec, b->achieved_rate_per_sec))
                : "—") +
         td(na_text(a.rel_error, pct_text)) + td(na_text(b->rel_error, pct_text)) +
         td(f("%.2f", a.cpu_s_per_1000 * 1e3)) + td(f("%.2f", b->cpu_s_per_1000 * 1e3)) +
         td(b->cpu_s_per_1000 > 0 ? ratio_text(a.cpu_s_per_1000 / b->cpu_s_per_1000) : "—") +
         td(us_text(static_cast<double>(a.interval_p99_ns))) +
         td(us_text(static_cast<double>(b->interval_p99_ns))) + "</tr>\n";
  }
  s += "</tbody></table>\n<table id=\"compare-suites\"><thead><tr><th>suite</th><th>benchmark"
       "</th><th>this</th><th>other</th><th>ratio</th><th>unit</th></tr></thead><tbody>\n";
  for (const Suite& sa : r.suites) {
    const auto sb = std::find_if(o.suites.begin(), o.suites.end(),
                                 [&](const Suite& x) { return x.name == sa.name; });
    if (sb == o.suites.end()) continue;
    for (const Benchmark& a : sa.benchmarks) {
      const auto b = std::find_if(sb->benchmarks.begin(), sb->benchmarks.end(),
                                  [&](const Benchmark& x) { return x.name == a.name; });
      if (b == sb->benchmarks.end()) continue;
      const auto [va, vb] = compared_values(a, *b);
      s += "<tr><td>" + html_escape(sa.name) + "</td><td>" + html_escape(a.name) + "</td>" +
           td(group(va, 1)) + td(group(vb, 1)) + td(vb > 0 ? ratio_text(va / vb) : "—") +
           td(a.compare_by == "ops_per_sec" && a.ops_per_sec && b->ops_per_sec ? "ops/s" : "ns/op",
              "") +
           "</tr>\n";
    }
  }
  s += "</tbody></table>\n";
  return s;
}

constexpr const char* kStyle = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px;
       color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.good { color: #1a7f37; } td.bad { color: #cf222e; }
tbody tr:nth-child(even) { background: #fafafa; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
svg { background: #fff; border: 1px solid #eee; margin: 4px 8px 4px 0; }
svg .title { font-size: 13px; font-weight: 600; }
svg .tick, svg .legend { font-size: 11px; fill: #333; }
svg .axis { font-size: 12px; fill: #222; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .frame { fill: none; stroke: #888; }
.note { color: #555; font-size: 12px; }
.wide { overflow-x: auto; }
#summary-table { font-size: 12px; } #summary-table th, #summary-table td { padding: 3px 5px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { color: #555; } dd { margin: 0; }
)";

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in HTML text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += "&#xFFFD;";
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string render_html(const Report& r, const Report* compare) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>mpthrottle bench report — " +
      html_escape(r.host.hostname) + " — " + html_escape(r.created_utc) + "</title>\n<style>" +
      kStyle + "</style>\n</head>\n<body>\n";
  h += "<h1>mpthrottle bench report</h1>\n<p class=\"note\">" + html_escape(r.host.hostname) +
       ", " + html_escape(r.created_utc) + ", mpthrottle " + html_escape(r.tool_version) +
       (r.quick ? " — <b>quick run</b> (short runs: figures are indicative)" : "") + "</p>\n";

  h += "<section id=\"host\">\n<h2>Host</h2>\n<dl>\n";
  h += "<dt>hostname</dt><dd>" + html_escape(r.host.hostname) + "</dd>\n";
  h += "<dt>kernel</dt><dd>" + html_escape(r.host.kernel) + "</dd>\n";
  h += "<dt>CPU</dt><dd>" + html_escape(r.host.cpu_model) + ", " + std::to_string(r.host.cores) +
       " cores</dd>\n";
  h += "<dt>clocksource</dt><dd>" + html_escape(r.host.clocksource) + "</dd>\n";
  h += "<dt>calibration</dt><dd>" +
       std::string(r.calibration.in_force ? "in force" : "not in force") + " — " +
       html_escape(r.calibration.note) + " (<code>" + html_escape(r.calibration.path) +
       "</code>)</dd>\n";
  for (const LeftOut& l : r.left_out) {
    h += "<dt>left out</dt><dd>" + html_escape(l.part) + " — " + html_escape(l.why) + "</dd>\n";
  }
  h += "</dl>\n</section>\n";

  h += "<section id=\"summary\">\n<h2>Accuracy: achieved vs target</h2>\n";
  if (!r.scenarios.empty()) {
    const Scenario& s0 = r.scenarios.front();
    h += "<p class=\"note\">" + std::to_string(s0.workers) + " worker processes, " +
         f("%g", s0.seconds) +
         " s per scenario. Achieved = (grants − 1) ÷ (last grant − first grant), the grants "
         "between start() and stop() recorded by the workers and, where the eBPF probe ran, "
         "counted by the kernel with its own timestamps; free of the unit start() gives at once "
         "(n/a with fewer than two grants). Error = achieved / target − 1. CPU = the workers' "
         "user + system time (the peer's: all its processes, filler included).</p>\n";
  }
  h += "<div class=\"wide\">\n" + table_scenarios(r) + "</div>\n";
  h += "</section>\n";

  h += "<section id=\"chart-achieved\">\n<h2>Achieved vs target, per hardcap</h2>\n<div "
       "class=\"grid\">\n" +
       chart_achieved(r, compare) + "</div>\n</section>\n";
  h += "<section id=\"chart-histograms\">\n<h2>Intervals between grants, per scenario</h2>\n" +
       chart_histograms(r) + "</section>\n";
  h += "<section id=\"chart-rate-over-time\">\n<h2>Rate over time, one run</h2>\n" +
       chart_rate_over_time(r) + "</section>\n";
  h += "<section id=\"peers\">\n<h2>Peers</h2>\n" + section_peers(r) + "</section>\n";
  if (r.fleet) {
    h += "<section id=\"fleet\">\n<h2>Redis fleet: hosts sharing one throttle through one "
         "Redis</h2>\n" +
         section_fleet(*r.fleet) + chart_fleet(r) + "</section>\n";
  }
  h += "<section id=\"chart-floors\">\n<h2>Benchmark suites against their floors</h2>\n" +
       chart_floors(r) + "</section>\n";
  h += "<section id=\"suites\">\n<h2>Benchmark suites (medians)</h2>\n" + table_suites(r) +
       "</section>\n";
  if (compare) {
    h += "<section id=\"compare\">\n<h2>Compared with another report</h2>\n" +
         section_compare(r, *compare) + "</section>\n";
  }
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace mpt::report
