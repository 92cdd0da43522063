// tools/mpt/report_format.cpp — the renderers' number formats and scenario ordering; see
// report_format.hpp.
#include "report_format.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace mpt::report {

// --- Formatting ----------------------------------------------------------------------------------

std::string f(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  if (n < 0) return {};
  return std::string(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

std::string group(double v, int decimals) {
  std::string s = f("%.*f", decimals, std::fabs(v));
  const auto dot = s.find('.');
  const std::string digits = s.substr(0, dot);
  const std::string tail = dot == std::string::npos ? "" : s.substr(dot);
  // A comma before every third digit from the right. Appended rather than inserted: GCC 12 warns
  // (-Wrestrict, a false positive) on string::insert here once the function is out of line.
  std::string head;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) head += ',';
    head += digits[i];
  }
  const bool negative = v < 0 && s.find_first_not_of("0.,") != std::string::npos;
  return (negative ? "-" : "") + head + tail;
}

std::string rate_text(double v) {
  return group(v, std::fabs(v) >= 100 ? 1 : 2);
}

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

std::string exact(double v) {
  return f("%.17g", v);
}

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

std::string pad(const std::string& s, std::size_t width, bool left) {
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

const FleetRun* find_fleet_run(const std::optional<FleetSeries>& series, std::int64_t hosts) {
  if (!series) return nullptr;
  for (const FleetRun& run : series->runs)
    if (run.hosts == hosts) return &run;
  return nullptr;
}

const std::vector<Scenario>& peer_scenarios(const Report& r) {
  static const std::vector<Scenario> kNone;
  return r.peer_throttle ? r.peer_throttle->scenarios : kNone;
}

const Scenario* series_scenario(const Report& r) {
  if (const Scenario* s = find_scenario(r.scenarios, "limit", 1000)) return s;
  const Scenario* best = nullptr;
  for (const Scenario& s : r.scenarios)
    if (!s.rate_series.empty() && (!best || s.rate_per_sec < best->rate_per_sec)) best = &s;
  return best;
}

std::pair<double, double> compared_values(const Benchmark& a, const Benchmark& b) {
  if (a.compare_by == "ops_per_sec" && a.ops_per_sec && b.ops_per_sec)
    return {*a.ops_per_sec, *b.ops_per_sec};
  return {a.real_time_ns, b.real_time_ns};
}

// --- Absent values -------------------------------------------------------------------------------

std::string opt_text(const std::optional<double>& v, std::string (*fmt)(double)) {
  return v ? fmt(*v) : "-";
}

std::string na_text(const std::optional<double>& v, std::string (*fmt)(double)) {
  return v ? fmt(*v) : "n/a";
}

std::optional<double> ratio_of(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b || !(*b > 0)) return std::nullopt;
  return *a / *b;
}

}  // namespace mpt::report
