// tools/mpt/report_charts.cpp — the charts of `mpt report`'s page; see report_charts.hpp.
#include "report_charts.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "report_format.hpp"
#include "svg_chart.hpp"

namespace mpt::report {

namespace {

const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
const char* kPeerColor = "#2ca02c";
const char* kOtherColor = "#7f7f7f";

std::string color_for(const std::string& hardcap) {
  return kColors[hardcap_rank(hardcap) == 0 ? 0 : hardcap_rank(hardcap) == 1 ? 1 : 4];
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

double bucket_total(const Scenario& s) {
  double n = 0;
  for (const HistogramBucket& b : s.interval_histogram)
    n += static_cast<double>(b.count);
  return n;
}

// One panel of the interval histograms: its size and margins in pixels, and the axes every panel
// shares: x in log2 of nanoseconds (the buckets' lower bounds, kmin to kmax + 2), y in percent
// of the scenario's intervals.
struct HistogramPanel {
  static constexpr double w = 330, h = 210, l = 46, rgt = 22, top = 30, bot = 40;
  int kmin = 64, kmax = -1;  // kmax < 0: no scenario has a bucket
  Scale x{0, 0, l, w - rgt, false};
  Scale y{0, 100, h - bot, top, false};
  bool covers(double k) const { return k >= kmin && k <= kmax + 2; }
};

// The common x axis: the log2 buckets of every scenario and its peer.
HistogramPanel histogram_panel(const Report& r) {
  HistogramPanel p;
  auto span = [&](const Scenario& s) {
    for (const HistogramBucket& b : s.interval_histogram) {
      const int k = static_cast<int>(std::lround(std::log2(static_cast<double>(b.lo_ns))));
      p.kmin = std::min(p.kmin, k);
      p.kmax = std::max(p.kmax, k);
    }
  };
  for (const Scenario& s : r.scenarios)
    span(s);
  for (const Scenario& s : peer_scenarios(r))
    span(s);
  p.x = {static_cast<double>(p.kmin), static_cast<double>(p.kmax + 2), p.l, p.w - p.rgt, false};
  return p;
}

// The percent grid, and a grid line on each decade of nanoseconds.
void histogram_grid(std::string& g, const HistogramPanel& a) {
  const double w = a.w, h = a.h, l = a.l, rgt = a.rgt, top = a.top, bot = a.bot;
  for (double t : {0.0, 50.0, 100.0}) {
    g += f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", l, a.y(t),
           w - rgt, a.y(t));
    g += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g %%</text>\n", l - 4,
           a.y(t) + 4, t);
  }
  // Decade grid lines (1 µs at log2(1000) ≈ 9.97, and so on); labels on every decade when there
  // is room, else on 1 ns, 1 µs, 1 ms and 1 s only.
  const bool every_decade = a.x(std::log2(10.0)) - a.x(0) >= 40;
  int decade = 0;
  for (double ns = 1; ns <= 1e10; ns *= 10, ++decade) {
    const double k = std::log2(ns);
    if (!a.covers(k)) continue;
    g += f("<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", a.x(k),
           h - bot, a.x(k), top);
    if (!every_decade && decade % 3 != 0) continue;
    g += f("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", a.x(k),
           h - bot + 14) +
         html_escape(short_ns(ns)) + "</text>\n";
  }
}

// One scenario's buckets as bars of their share: filled for mpt, outlined for the peer.
void histogram_bars(std::string& g, const HistogramPanel& a, const Scenario& sc, bool outline) {
  const double total = bucket_total(sc);
  if (total <= 0) return;
  for (const HistogramBucket& b : sc.interval_histogram) {
    const double k = std::log2(static_cast<double>(b.lo_ns));
    const double share = static_cast<double>(b.count) / total * 100;
    if (b.count == 0) continue;
    const std::string tip =
        std::string(outline ? "peer: " : "mpt: ") + short_ns(static_cast<double>(b.lo_ns)) + " – " +
        short_ns(static_cast<double>(b.hi_ns)) + ": " + group(static_cast<double>(b.count), 0) +
        " intervals (" + f("%.1f", share) + " %)";
    g += f("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s><title>", a.x(k) + 1,
           a.y(share), std::max(1.0, a.x(k + 1) - a.x(k) - 2), a.y(0) - a.y(share),
           outline ? "fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\""
                   : "fill=\"#1f77b4\" fill-opacity=\"0.8\"") +
         html_escape(tip) + "</title></rect>\n";
  }
}

// One scenario's panel: its histogram, the peer's at the same scenario, the target interval.
std::string histogram_svg(const HistogramPanel& a, const Scenario& s, const Scenario* p) {
  const double w = a.w, h = a.h, l = a.l, rgt = a.rgt, top = a.top, bot = a.bot;
  const std::string title =
      s.hardcap + " · " + group(static_cast<double>(s.rate_per_sec), 0) + "/s";
  std::string g = svg_open(w, h, "interval histogram, " + title);
  g += "<text class=\"title\" x=\"" + f("%.0f", l) + "\" y=\"18\">" + html_escape(title) +
       "</text>\n";
  histogram_grid(g, a);
  histogram_bars(g, a, s, false);
  if (p) histogram_bars(g, a, *p, true);
  const double target_k = std::log2(1e9 / static_cast<double>(s.rate_per_sec));
  if (a.covers(target_k)) {
    g +=
        f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
          "stroke-dasharray=\"4 3\"><title>target interval %s</title></line>\n",
          a.x(target_k), h - bot, a.x(target_k), top, short_ns(1e9 / s.rate_per_sec).c_str());
  }
  g += f("<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", l, top,
         w - rgt - l, h - bot - top);
  g +=
      f("<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">interval between "
        "grants (log2 buckets)</text>\n",
        (l + w - rgt) / 2, h - 8);
  g += "</svg>\n";
  return g;
}

}  // namespace

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

std::string chart_histograms(const Report& r) {
  const HistogramPanel panel = histogram_panel(r);
  if (panel.kmax < 0) return "<p>No intervals recorded.</p>\n";
  std::string out = "<div class=\"grid\">\n";
  for (std::size_t i : scenario_order(r.scenarios)) {
    const Scenario& s = r.scenarios[i];
    out += histogram_svg(panel, s, find_scenario(peer_scenarios(r), s.hardcap, s.rate_per_sec));
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

std::string chart_fleet(const Report& r) {
  if (!r.fleet) return "<p>No fleet simulation in this report.</p>\n";
  const Fleet& fl = *r.fleet;
  std::vector<Series> series;
  const auto add = [&](const FleetSeries& fs, const std::string& how, bool hollow) {
    Series achieved{"achieved, " + how, kColors[0], 'o', hollow, hollow, {}};
    Series calls{"calls, " + how, kColors[1], 's', hollow, hollow, {}};
    for (const FleetRun& run : fs.runs) {
      const std::string hosts = std::to_string(run.hosts) + " hosts, " + how + ": ";
      achieved.points.push_back({static_cast<double>(run.hosts), run.achieved_per_sec,
                                 hosts + "achieved " + rate_text(run.achieved_per_sec) + "/s (" +
                                     f("%.5f", run.achieved_over_target) + " of the target)"});
      calls.points.push_back({static_cast<double>(run.hosts), run.calls_per_sec,
                              hosts + group(run.calls_per_sec, 0) + " script calls/s, " +
                                  f("%.4f", run.calls_per_grant) + " per grant"});
    }
    series.push_back(std::move(achieved));
    series.push_back(std::move(calls));
  };
  add(fl.leased, "leases", false);
  if (fl.per_grant) add(*fl.per_grant, "1 call/grant", true);
  const double target = static_cast<double>(fl.rate_per_sec);
  double xlo = 1e300, xhi = 0, ylo = target, yhi = target;
  for (const Series& ser : series)
    for (const Point& p : ser.points) {
      xlo = std::min(xlo, p.x);
      xhi = std::max(xhi, p.x);
      if (p.y > 0) ylo = std::min(ylo, p.y);
      yhi = std::max(yhi, p.y);
    }
  const auto [a, b] = decades(ylo, yhi);
  XYChart c;
  c.title = "Fleet through one Redis at " + group(target, 0) + "/s: rate and script calls";
  c.x_title = "hosts (log2 axis)";
  c.y_title = "per second (log axis)";
  c.width = 640;
  c.height = 380;
  c.x = {xlo / 1.3, xhi * 1.3, kLeft, c.width - kLegend, true};
  // Up to a little above the highest point, not the next decade: the target is not at the bottom.
  const double top = std::min(b, yhi * 1.6);
  c.y = {a, top, c.height - kBottom, kTop, true};
  for (const FleetRun& run : fl.leased.runs)
    c.x_ticks.push_back(static_cast<double>(run.hosts));
  for (double t : decade_ticks(a, b))
    if (t <= top) c.y_ticks.push_back(t);
  c.x_label = [](double v) { return f("%g", v); };
  c.y_label = short_rate;
  c.overlay =
      f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" "
        "stroke-dasharray=\"4 3\"><title>target %s/s</title></line>\n",
        c.x(c.x.d0), c.y(target), c.x(c.x.d1), c.y(target), group(target, 0).c_str());
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

}  // namespace mpt::report
