// tools/mpt/report_render.cpp — `mpt report`'s terminal summary and HTML page; see
// report_model.hpp. Pure functions of the parsed reports: no I/O, no clock, no global state.
//
// The page is one file: CSS in a <style> element, charts as inline SVG (tooltips are SVG <title>
// elements, so nothing needs JavaScript), no external resource. Every number shown in a table cell
// carries the exact value from the report in data-value and its JSON pointer in data-field, so a
// test can check the page against the JSON.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <set>

#include "report_model.hpp"

namespace mpt::report {

namespace {

// --- Formatting --------------------------------------------------------------------------------

__attribute__((format(printf, 1, 2))) std::string f(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  if (n < 0) return {};
  return std::string(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

// 1234567.891 with 2 decimals -> "1,234,567.89".
std::string group(double v, int decimals) {
  std::string s = f("%.*f", decimals, std::fabs(v));
  const auto dot = s.find('.');
  std::string head = s.substr(0, dot);
  const std::string tail = dot == std::string::npos ? "" : s.substr(dot);
  for (int i = static_cast<int>(head.size()) - 3; i > 0; i -= 3)
    head.insert(static_cast<std::size_t>(i), ",");
  const bool negative = v < 0 && s.find_first_not_of("0.,") != std::string::npos;
  return (negative ? "-" : "") + head + tail;
}

// A rate: whole numbers above 100, two decimals below.
std::string rate_text(double v) {
  return group(v, std::fabs(v) >= 100 ? 1 : 2);
}

// A relative error as a percentage with a sign.
std::string pct_text(double rel) {
  const double p = rel * 100;
  if (p == 0) return "0 %";
  return f(std::fabs(p) >= 1 ? "%+.2f %%" : "%+.3f %%", p);
}

std::string us_text(double ns) {
  const double us = ns / 1e3;
  return group(us, us >= 100 ? 0 : 1);
}

std::string ratio_text(double x) {
  if (x >= 100) return group(x, 0) + "×";
  if (x >= 10) return f("%.1f×", x);
  return f(x >= 0.1 || x == 0 ? "%.2f×" : "%.2g×", x);
}

// Exact, round-trip: what data-value holds.
std::string exact(double v) {
  return f("%.17g", v);
}

// Axis labels for rates and durations: 10, 1k, 100k, 1M; 1 ns, 10 µs, 1 ms, 1 s.
std::string short_rate(double v) {
  if (v >= 1e6) return f("%gM", v / 1e6);
  if (v >= 1e3) return f("%gk", v / 1e3);
  return f("%g", v);
}
std::string short_ns(double ns) {
  if (ns >= 1e9) return f("%g s", ns / 1e9);
  if (ns >= 1e6) return f("%g ms", ns / 1e6);
  if (ns >= 1e3) return f("%g µs", ns / 1e3);
  return f("%g ns", ns);
}

std::string pad(const std::string& s, std::size_t width, bool left = false) {
  // Width in characters: count UTF-8 lead bytes only.
  std::size_t chars = 0;
  for (unsigned char c : s)
    chars += (c & 0xC0) != 0x80;
  if (chars >= width) return s;
  const std::string fill(width - chars, ' ');
  return left ? s + fill : fill + s;
}

// --- Ordering ------------------------------------------------------------------------------------

int hardcap_rank(const std::string& h) {
  return h == "limit" ? 0 : h == "one" ? 1 : 2;
}

std::vector<std::size_t> scenario_order(const std::vector<Scenario>& v) {
  std::vector<std::size_t> idx(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    if (hardcap_rank(v[a].hardcap) != hardcap_rank(v[b].hardcap))
      return hardcap_rank(v[a].hardcap) < hardcap_rank(v[b].hardcap);
    return v[a].rate_per_sec < v[b].rate_per_sec;
  });
  return idx;
}

const Scenario* find_scenario(const std::vector<Scenario>& v, const std::string& hardcap,
                              std::int64_t rate) {
  for (const Scenario& s : v)
    if (s.hardcap == hardcap && s.rate_per_sec == rate) return &s;
  return nullptr;
}

const std::vector<Scenario>& peer_scenarios(const Report& r) {
  static const std::vector<Scenario> kNone;
  return r.peer_throttle ? r.peer_throttle->scenarios : kNone;
}

// The run whose rate over time is drawn: limit at 1,000/s when there is one.
const Scenario* series_scenario(const Report& r) {
  if (const Scenario* s = find_scenario(r.scenarios, "limit", 1000)) return s;
  const Scenario* best = nullptr;
  for (const Scenario& s : r.scenarios)
    if (!s.rate_series.empty() && (!best || s.rate_per_sec < best->rate_per_sec)) best = &s;
  return best;
}

// What two reports' runs of one benchmark are compared on: ops/s for those measured by their rate
// (the two-process runs, whose time is that of the whole 1 s iteration), else ns per op.
std::pair<double, double> compared_values(const Benchmark& a, const Benchmark& b) {
  if (a.compare_by == "ops_per_sec" && a.ops_per_sec && b.ops_per_sec)
    return {*a.ops_per_sec, *b.ops_per_sec};
  return {a.real_time_ns, b.real_time_ns};
}

// =================================================================================================
// Text.

std::string opt_text(const std::optional<double>& v, std::string (*fmt)(double)) {
  return v ? fmt(*v) : "-";
}

// An achieved rate or error that may not exist (fewer than two grants): "n/a".
std::string na_text(const std::optional<double>& v, std::string (*fmt)(double)) {
  return v ? fmt(*v) : "n/a";
}

// a / b when both exist and b > 0.
std::optional<double> ratio_of(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b || !(*b > 0)) return std::nullopt;
  return *a / *b;
}

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

// =================================================================================================
// HTML.

struct Scale {
  double d0, d1;  // domain
  double r0, r1;  // range, pixels
  bool log = false;
  double operator()(double v) const {
    double a = d0, b = d1;
    if (log) {
      v = std::log10(std::max(v, d0));
      a = std::log10(d0);
      b = std::log10(d1);
    }
    if (b == a) return (r0 + r1) / 2;
    return r0 + (v - a) / (b - a) * (r1 - r0);
  }
};

// Ticks for a linear axis from 0 to about `max`: steps of 1, 2 or 5 × 10^k.
std::vector<double> linear_ticks(double lo, double hi) {
  std::vector<double> t;
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5   ? mag
                      : raw / mag < 3.5 ? 2 * mag
                      : raw / mag < 7.5 ? 5 * mag
                                        : 10 * mag;
  // From the last tick at or below lo to the first at or above hi, so that both are covered.
  const double first = std::floor(lo / step + 1e-9) * step;
  for (int i = 0; i < 64; ++i) {
    const double v = first + step * i;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
    if (v >= hi - step * 1e-9) break;
  }
  return t;
}

const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
const char* kPeerColor = "#2ca02c";
const char* kOtherColor = "#7f7f7f";

std::string color_for(const std::string& hardcap) {
  return kColors[hardcap_rank(hardcap) == 0 ? 0 : hardcap_rank(hardcap) == 1 ? 1 : 4];
}

std::string marker(char shape, double x, double y, const std::string& color, bool hollow) {
  const std::string paint =
      hollow ? f("fill=\"white\" stroke=\"%s\" stroke-width=\"1.5\"", color.c_str())
             : f("fill=\"%s\"", color.c_str());
  switch (shape) {
    case 's':
      return f("<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" %s/>", x - 4, y - 4,
               paint.c_str());
    case '^':
      return f("<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s/>", x, y - 5, x + 5, y + 4, x - 5,
               y + 4, paint.c_str());
    case 'd':
      return f("<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s/>", x, y - 5, x + 5, y, x,
               y + 5, x - 5, y, paint.c_str());
    default:
      return f("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" %s/>", x, y, paint.c_str());
  }
}

struct Point {
  double x, y;
  std::string tip;
};

struct Series {
  std::string label;
  std::string color;
  char shape = 'o';
  bool hollow = false;
  bool dashed = false;
  std::vector<Point> points;
};

// An x-y chart with a frame, grid, ticks, axis titles and a legend at the right.
struct XYChart {
  std::string id;
  std::string title;
  std::string x_title, y_title;
  Scale x, y;
  std::vector<double> x_ticks, y_ticks;
  std::string (*x_label)(double) = nullptr;
  std::string (*y_label)(double) = nullptr;
  double width = 0, height = 0;
  std::string overlay;  // extra SVG drawn after the grid (reference lines)
};

constexpr double kLeft = 72, kTop = 34, kBottom = 52, kLegend = 150;

std::string svg_open(double w, double h, const std::string& label) {
  return f("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
           "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
           w, h, w, h) +
         html_escape(label) + "\">\n";
}

std::string draw_xy(const XYChart& c, const std::vector<Series>& series) {
  std::string s = svg_open(c.width, c.height, c.title);
  const double x0 = kLeft, x1 = c.width - kLegend, y0 = c.height - kBottom, y1 = kTop;
  s += "<text class=\"title\" x=\"" + f("%.0f", x0) + "\" y=\"20\">" + html_escape(c.title) +
       "</text>\n";
  for (double t : c.x_ticks) {
    const double px = c.x(t);
    s +=
        f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", px, y0, px, y1);
    s += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", px, y0 + 16) +
         html_escape(c.x_label(t)) + "</text>\n";
  }
  for (double t : c.y_ticks) {
    const double py = c.y(t);
    s +=
        f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, py, x1, py);
    s += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", x0 - 6, py + 4) +
         html_escape(c.y_label(t)) + "</text>\n";
  }
  s += f("<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", x0, y1,
         x1 - x0, y0 - y1);
  s += f("<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (x0 + x1) / 2,
         c.height - 12) +
       html_escape(c.x_title) + "</text>\n";
  s += f("<text class=\"axis\" transform=\"translate(16 %.1f) rotate(-90)\" "
         "text-anchor=\"middle\">",
         (y0 + y1) / 2) +
       html_escape(c.y_title) + "</text>\n";
  s += c.overlay;
  double ly = kTop + 8;
  for (const Series& ser : series) {
    if (ser.points.size() >= 2) {
      std::string d;
      for (const Point& p : ser.points)
        d += f("%s%.1f %.1f", d.empty() ? "M" : "L", c.x(p.x), c.y(p.y));
      s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + ser.color + "\" stroke-width=\"1.5\"" +
           (ser.dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>\n";
    }
    if (ser.shape != '-') {
      for (const Point& p : ser.points) {
        s += "<g>" + marker(ser.shape, c.x(p.x), c.y(p.y), ser.color, ser.hollow) + "<title>" +
             html_escape(p.tip) + "</title></g>\n";
      }
    }
    // Legend entry.
    const double lx = x1 + 16;
    s +=
        f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
          "stroke-width=\"1.5\"%s/>",
          lx, ly, lx + 22, ly, ser.color.c_str(), ser.dashed ? " stroke-dasharray=\"5 3\"" : "");
    if (ser.shape != '-') s += marker(ser.shape, lx + 11, ly, ser.color, ser.hollow);
    s += f("<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">", lx + 28, ly + 4) +
         html_escape(ser.label) + "</text>\n";
    ly += 20;
  }
  s += "</svg>\n";
  return s;
}

// Decades covering [lo, hi] (both > 0).
std::pair<double, double> decades(double lo, double hi) {
  lo = std::max(lo, 1e-3);
  hi = std::max(hi, lo);
  double a = std::pow(10, std::floor(std::log10(lo)));
  double b = std::pow(10, std::ceil(std::log10(hi)));
  if (b <= a) b = a * 10;
  return {a, b};
}

std::vector<double> decade_ticks(double a, double b) {
  std::vector<double> t;
  for (double v = a; v <= b * 1.0001; v *= 10)
    t.push_back(v);
  return t;
}

std::string pct_label(double v) {
  return f("%g %%", v);
}

// Series of achieved rate (or error) against target, one per hardcap of one report.
void add_rate_series(std::vector<Series>& out, const std::vector<Scenario>& scenarios,
                     const std::string& who, bool hollow, const char* color_override, char shape,
                     bool error_axis) {
  std::map<int, Series> by_cap;
  for (std::size_t i : scenario_order(scenarios)) {
    const Scenario& s = scenarios[i];
    if (!s.achieved_rate_per_sec || !s.rel_error) continue;  // fewer than two grants: no point
    Series& ser = by_cap[hardcap_rank(s.hardcap)];
    ser.label = who + " " + s.hardcap;
    ser.color = color_override ? color_override : color_for(s.hardcap);
    ser.shape = shape == 0 ? (s.hardcap == "limit" ? 'o' : s.hardcap == "one" ? 's' : 'd') : shape;
    ser.hollow = hollow;
    ser.dashed = hollow;
    const double y = error_axis ? *s.rel_error * 100 : *s.achieved_rate_per_sec;
    ser.points.push_back({static_cast<double>(s.rate_per_sec), y,
                          who + " " + s.hardcap + ", target " +
                              group(static_cast<double>(s.rate_per_sec), 0) + "/s: achieved " +
                              rate_text(*s.achieved_rate_per_sec) + "/s (" +
                              pct_text(*s.rel_error) + ")"});
  }
  for (auto& [rank, ser] : by_cap)
    out.push_back(std::move(ser));
}

std::string chart_achieved(const Report& r, const Report* compare) {
  std::vector<Series> series;
  add_rate_series(series, r.scenarios, "mpt", false, nullptr, 0, false);
  if (r.peer_throttle)
    add_rate_series(series, r.peer_throttle->scenarios, "peer", true, kPeerColor, 0, false);
  if (compare) add_rate_series(series, compare->scenarios, "other", true, kOtherColor, 0, false);
  double lo = 1e300, hi = 0;
  for (const Series& s : series)
    for (const Point& p : s.points) {
      lo = std::min({lo, p.x, p.y > 0 ? p.y : lo});
      hi = std::max({hi, p.x, p.y});
    }
  if (hi <= 0) return "<p>No scenarios.</p>\n";
  const auto [a, b] = decades(lo, hi);
  XYChart c;
  c.id = "chart-achieved";
  c.title = "Achieved vs target rate (log axes)";
  c.x_title = "target rate (per second)";
  c.y_title = "achieved rate (per second)";
  c.width = 590;
  c.height = 420;
  c.x = {a, b, kLeft, c.width - kLegend, true};
  c.y = {a, b, c.height - kBottom, kTop, true};
  c.x_ticks = c.y_ticks = decade_ticks(a, b);
  c.x_label = c.y_label = short_rate;
  c.overlay =
      f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
        "stroke-dasharray=\"2 3\"><title>achieved = target</title></line>\n",
        c.x(a), c.y(a), c.x(b), c.y(b));
  Series ideal{"achieved = target", "#999", '-', false, true, {}};
  series.push_back(ideal);
  std::string s = draw_xy(c, series);

  // The same runs as relative error, where the differences show.
  std::vector<Series> err;
  add_rate_series(err, r.scenarios, "mpt", false, nullptr, 0, true);
  if (r.peer_throttle)
    add_rate_series(err, r.peer_throttle->scenarios, "peer", true, kPeerColor, 0, true);
  if (compare) add_rate_series(err, compare->scenarios, "other", true, kOtherColor, 0, true);
  double elo = 0, ehi = 0;
  for (const Series& ser : err)
    for (const Point& p : ser.points) {
      elo = std::min(elo, p.y);
      ehi = std::max(ehi, p.y);
    }
  if (ehi - elo < 0.1) ehi = elo + 0.1;
  const std::vector<double> yt = linear_ticks(elo, ehi);
  XYChart e = c;
  e.title = "Relative error of the achieved rate";
  e.y_title = "achieved / target − 1 (%)";
  e.y = {yt.front(), yt.back(), e.height - kBottom, kTop, false};
  e.y_ticks = yt;
  e.y_label = pct_label;
  e.overlay =
      f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
        "stroke-dasharray=\"2 3\"/>\n",
        kLeft, e.y(0), e.width - kLegend, e.y(0));
  s += draw_xy(e, err);
  return s;
}

double bucket_total(const Scenario& s) {
  double n = 0;
  for (const HistogramBucket& b : s.interval_histogram)
    n += static_cast<double>(b.count);
  return n;
}

std::string chart_histograms(const Report& r) {
  // One common x axis (log2 buckets) for every scenario and its peer.
  int kmin = 64, kmax = -1;
  auto span = [&](const Scenario& s) {
    for (const HistogramBucket& b : s.interval_histogram) {
      const int k = static_cast<int>(std::lround(std::log2(static_cast<double>(b.lo_ns))));
      kmin = std::min(kmin, k);
      kmax = std::max(kmax, k);
    }
  };
  for (const Scenario& s : r.scenarios)
    span(s);
  for (const Scenario& s : peer_scenarios(r))
    span(s);
  if (kmax < 0) return "<p>No intervals recorded.</p>\n";
  std::string out = "<div class=\"grid\">\n";
  const double w = 330, h = 210, l = 46, rgt = 22, top = 30, bot = 40;
  const Scale x{static_cast<double>(kmin), static_cast<double>(kmax + 2), l, w - rgt, false};
  const Scale y{0, 100, h - bot, top, false};
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& s = r.scenarios[i];
    const Scenario* p = find_scenario(peer_scenarios(r), s.hardcap, s.rate_per_sec);
    const std::string title =
        s.hardcap + " · " + group(static_cast<double>(s.rate_per_sec), 0) + "/s";
    std::string g = svg_open(w, h, "interval histogram, " + title);
    g += "<text class=\"title\" x=\"" + f("%.0f", l) + "\" y=\"18\">" + html_escape(title) +
         "</text>\n";
    for (double t : {0.0, 50.0, 100.0}) {
      g += f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", l, y(t),
             w - rgt, y(t));
      g += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g %%</text>\n", l - 4,
             y(t) + 4, t);
    }
    // Decade grid lines (1 µs at log2(1000) ≈ 9.97, and so on); labels on every decade when there
    // is room, else on 1 ns, 1 µs, 1 ms and 1 s only.
    const bool every_decade = x(std::log2(10.0)) - x(0) >= 40;
    int decade = 0;
    for (double ns = 1; ns <= 1e10; ns *= 10, ++decade) {
      const double k = std::log2(ns);
      if (k < kmin || k > kmax + 2) continue;
      g += f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x(k),
             h - bot, x(k), top);
      if (!every_decade && decade % 3 != 0) continue;
      g += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x(k),
             h - bot + 14) +
           html_escape(short_ns(ns)) + "</text>\n";
    }
    auto bars = [&](const Scenario& sc, bool outline) {
      const double total = bucket_total(sc);
      if (total <= 0) return;
      for (const HistogramBucket& b : sc.interval_histogram) {
        const double k = std::log2(static_cast<double>(b.lo_ns));
        const double share = static_cast<double>(b.count) / total * 100;
        if (b.count == 0) continue;
        const std::string tip =
            std::string(outline ? "peer: " : "mpt: ") + short_ns(static_cast<double>(b.lo_ns)) +
            " – " + short_ns(static_cast<double>(b.hi_ns)) + ": " +
            group(static_cast<double>(b.count), 0) + " intervals (" + f("%.1f", share) + " %)";
        g += f("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s><title>", x(k) + 1,
               y(share), std::max(1.0, x(k + 1) - x(k) - 2), y(0) - y(share),
               outline ? "fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\""
                       : "fill=\"#1f77b4\" fill-opacity=\"0.8\"") +
             html_escape(tip) + "</title></rect>\n";
      }
    };
    bars(s, false);
    if (p) bars(*p, true);
    const double target_k = std::log2(1e9 / static_cast<double>(s.rate_per_sec));
    if (target_k >= kmin && target_k <= kmax + 2) {
      g +=
          f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
            "stroke-dasharray=\"4 3\"><title>target interval %s</title></line>\n",
            x(target_k), h - bot, x(target_k), top, short_ns(1e9 / s.rate_per_sec).c_str());
    }
    g += f("<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", l, top,
           w - rgt - l, h - bot - top);
    g +=
        f("<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">interval between "
          "grants (log2 buckets)</text>\n",
          (l + w - rgt) / 2, h - 8);
    g += "</svg>\n";
    out += g;
  }
  out +=
      "</div>\n<p class=\"note\">Filled bars: mpt; green outlines: the peer at the same "
      "scenario; red dashes: the target interval (1 / rate). Share of all intervals in each "
      "bucket [2<sup>k</sup>, 2<sup>k+1</sup>) ns.</p>\n";
  return out;
}

std::string chart_rate_over_time(const Report& r) {
  const Scenario* s = series_scenario(r);
  if (!s || s->rate_series.empty()) return "<p>No rate series in this report.</p>\n";
  const Scenario* p = find_scenario(peer_scenarios(r), s->hardcap, s->rate_per_sec);
  std::vector<Series> series;
  auto add = [&](const Scenario& sc, const std::string& who, const std::string& color,
                 bool dashed) {
    Series ser{who, color, '-', false, dashed, {}};
    // At most kMaxSteps steps drawn: longer runs are shown in wider bins (the mean of each group).
    constexpr std::size_t kMaxSteps = 1500;
    const std::size_t n = sc.rate_series.size();
    const std::size_t group_bins = (n + kMaxSteps - 1) / kMaxSteps;
    const double bin_s = sc.rate_series_bin_s * static_cast<double>(group_bins);
    for (std::size_t i = 0; i < n; i += group_bins) {
      double count = 0;
      for (std::size_t k = i; k < std::min(n, i + group_bins); ++k)
        count += static_cast<double>(sc.rate_series[k]);
      const double t0 = static_cast<double>(i) * sc.rate_series_bin_s;
      const double width = static_cast<double>(std::min(n, i + group_bins) - i);
      const double rate = count / (width * sc.rate_series_bin_s);
      ser.points.push_back({t0, rate, ""});
      ser.points.push_back(
          {std::min(t0 + bin_s, static_cast<double>(n) * sc.rate_series_bin_s), rate, ""});
    }
    series.push_back(std::move(ser));
  };
  add(*s, "mpt " + s->hardcap, color_for(s->hardcap), false);
  if (p && !p->rate_series.empty()) add(*p, "peer " + p->hardcap, kPeerColor, true);
  double tmax = 0, ymax = static_cast<double>(s->rate_per_sec);
  for (const Series& ser : series)
    for (const Point& pt : ser.points) {
      tmax = std::max(tmax, pt.x);
      ymax = std::max(ymax, pt.y);
    }
  XYChart c;
  c.title = "Rate over time: " + s->hardcap + ", " +
            group(static_cast<double>(s->rate_per_sec), 0) + "/s, " + std::to_string(s->workers) +
            " workers (grants per " + f("%g", s->rate_series_bin_s * 1e3) + " ms, as a rate)";
  c.x_title = "seconds since start()";
  c.y_title = "rate (per second)";
  c.width = 900;
  c.height = 320;
  const std::vector<double> xt = linear_ticks(0, tmax);
  const std::vector<double> yt = linear_ticks(0, ymax * 1.15);
  c.x = {0, std::max(tmax, xt.back()), kLeft, c.width - kLegend, false};
  c.y = {0, yt.back(), c.height - kBottom, kTop, false};
  c.x_ticks = xt;
  c.y_ticks = yt;
  c.x_label = [](double v) { return f("%g", v); };
  c.y_label = short_rate;
  const double target = static_cast<double>(s->rate_per_sec);
  c.overlay =
      f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
        "stroke-dasharray=\"4 3\"/>\n",
        c.x(0), c.y(target), c.x(c.x.d1), c.y(target));
  series.push_back({"target", "#d62728", '-', false, true, {}});
  return draw_xy(c, series);
}

std::string chart_floors(const Report& r) {
  struct Row {
    std::string label;
    double ratio;
    const Benchmark* b;
    std::optional<bool> ok;
  };
  std::vector<Row> rows;
  double lo = 1, hi = 1;
  for (const Suite& s : r.suites)
    for (const Benchmark& b : s.benchmarks)
      if (const auto ratio = floor_ratio(s, b); ratio && *ratio > 0) {
        rows.push_back({s.name + " / " + b.name, *ratio, &b, meets_target(s, b)});
        lo = std::min({lo, *ratio, b.target_ratio.value_or(1)});
        hi = std::max({hi, *ratio, b.target_ratio.value_or(1)});
      }
  if (rows.empty()) return "<p>No benchmark with a floor in this report.</p>\n";
  // Log axis: ratios of 0.2 and 30 are both readable; each bar runs from the floor (1×) to its
  // ratio, to the left when below the floor.
  const auto [a, b] = decades(lo, hi);
  const double label_w = 360, w = 900, row_h = 28, top = 34, bot = 46;
  const double h = top + row_h * static_cast<double>(rows.size()) + bot;
  const Scale x{a, b, label_w, w - 60, true};
  std::string s = svg_open(w, h, "benchmarks against their floors");
  s += "<text class=\"title\" x=\"10\" y=\"20\">Benchmarks against their floors (ratio, log axis; "
       "time: lower is better, ops/s: higher is better)</text>\n";
  for (double t = a; t <= b * 1.0001; t *= 10) {
    for (int m = 1; m < 10 && t * m <= b * 1.0001; ++m) {
      s += f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>", x(t * m),
             top, x(t * m), h - bot, m == 1 ? "" : " stroke-opacity=\"0.4\"");
    }
    s += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g×</text>\n", x(t),
           h - bot + 16, t);
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const double y = top + row_h * static_cast<double>(i);
    const char* fill = !row.ok ? "#9ecae1" : *row.ok ? "#74c476" : "#fb6a4a";
    s += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", label_w - 8,
           y + row_h / 2 + 4) +
         html_escape(row.label) + "</text>\n";
    const double x0 = std::min(x(1), x(row.ratio)), x1 = std::max(x(1), x(row.ratio));
    s += f("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x0,
           y + 5, std::max(1.5, x1 - x0), row_h - 10, fill) +
         html_escape(row.label + ": " + f("%.3f", row.ratio) + " × its floor (" + *row.b->floor +
                     ", by " + row.b->compare_by + ")") +
         "</title></rect>\n";
    double text_x = x1;
    if (row.b->target_ratio) {
      const double tx = x(*row.b->target_ratio);
      text_x = std::max(text_x, tx);
      s +=
          f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" "
            "stroke-width=\"2.5\"><title>target %s %g</title></line>\n",
            tx, y + 2, tx, y + row_h - 2, html_escape(row.b->target_cmp).c_str(),
            *row.b->target_ratio);
    }
    std::string value = f("%.2f×", row.ratio);
    if (row.b->target_ratio) {
      value += " (target " + row.b->target_cmp + f(" %g", *row.b->target_ratio) + ")";
    }
    s += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\">", text_x + 5, y + row_h / 2 + 4) +
         html_escape(value) + "</text>\n";
  }
  s +=
      f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
        "stroke-dasharray=\"4 3\"/>",
        x(1), top, x(1), h - bot);
  s +=
      f("<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">× the floor (dashes: "
        "1×; black tick: the target; green: met, red: missed, blue: no target)</text>\n",
        (label_w + w - 60) / 2, h - 10);
  s += "</svg>\n";
  return s;
}

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

std::string render_text(const Report& r, const Report* compare) {
  std::string out = "mpthrottle bench report: " + r.host.hostname + " (" + r.host.cpu_model + ", " +
                    std::to_string(r.host.cores) + " cores, clocksource " + r.host.clocksource +
                    "), " + r.host.kernel + "\n";
  out += "made " + r.created_utc + " by mpthrottle " + r.tool_version +
         (r.quick ? " (--quick: short runs)" : "") + "; calibration " +
         (r.calibration.in_force ? "in force" : "not in force") + ": " + r.calibration.note +
         "\n\n";
  text_scenarios(out, r);
  text_suites(out, r);
  if (compare) text_compare(out, r, *compare);
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
