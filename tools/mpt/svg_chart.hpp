// tools/mpt/svg_chart.hpp — the small SVG chart kit of `mpt report`'s page: scales, ticks,
// markers and an x-y chart with grid, axis titles and a legend. Every string it draws is escaped;
// tooltips are SVG <title> elements, so the charts need no script. Pure functions, no state.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace mpt::report {

// Maps a domain [d0, d1] to pixels [r0, r1], linearly or in log10.
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

// Ticks for a linear axis covering [lo, hi]: steps of 1, 2 or 5 × 10^k.
std::vector<double> linear_ticks(double lo, double hi);
// Decades covering [lo, hi] (both > 0), and a tick on each.
std::pair<double, double> decades(double lo, double hi);
std::vector<double> decade_ticks(double a, double b);

// A marker centred on (x, y): 's' square, '^' triangle, 'd' diamond, else a circle; hollow ones
// are white with a coloured outline.
std::string marker(char shape, double x, double y, const std::string& color, bool hollow);

struct Point {
  double x, y;
  std::string tip;  // the tooltip (empty: none drawn for lines)
};

struct Series {
  std::string label;
  std::string color;
  char shape = 'o';  // a marker() shape, or '-' for a line without markers
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

// An XYChart's margins in pixels: the plot is [kLeft, width - kLegend] × [kTop, height - kBottom].
inline constexpr double kLeft = 72, kTop = 34, kBottom = 52, kLegend = 150;

// An <svg> element's opening tag, `label` its accessible name.
std::string svg_open(double w, double h, const std::string& label);
// The chart and its series as one <svg> element.
std::string draw_xy(const XYChart& c, const std::vector<Series>& series);

}  // namespace mpt::report
