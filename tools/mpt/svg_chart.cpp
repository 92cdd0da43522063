// tools/mpt/svg_chart.cpp — the SVG chart kit behind `mpt report`'s page; see svg_chart.hpp.
#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>

#include "report_format.hpp"
#include "report_model.hpp"

namespace mpt::report {

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

}  // namespace mpt::report
