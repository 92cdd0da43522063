// tools/mpt/report_format.hpp — what `mpt report`'s renderers (report_text.cpp, report_html.cpp,
// report_charts.cpp, svg_chart.cpp) share: number formats, the order scenarios are shown in and
// how two reports' runs are paired. Pure functions, no state; internal to the renderers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "report_model.hpp"

namespace mpt::report {

// --- Formatting ----------------------------------------------------------------------------------

// printf into a string (at most 511 bytes: every use is one number or one short element).
__attribute__((format(printf, 1, 2))) std::string f(const char* format, ...);
// 1234567.891 with 2 decimals -> "1,234,567.89".
std::string group(double v, int decimals);
// A rate, grouped: one decimal from 100 up, two below.
std::string rate_text(double v);
// A relative error as a percentage with a sign.
std::string pct_text(double rel);
// Nanoseconds as microseconds, grouped.
std::string us_text(double ns);
// A ratio with its × sign: 123×, 12.3×, 1.23×, 0.012×.
std::string ratio_text(double x);
// Exact, round-trip: what data-value holds.
std::string exact(double v);
// Axis labels for rates and durations: 10, 1k, 100k, 1M; 1 ns, 10 µs, 1 ms, 1 s.
std::string short_rate(double v);
std::string short_ns(double ns);
// `s` padded with spaces to `width` characters (UTF-8), on the left unless `left`.
std::string pad(const std::string& s, std::size_t width, bool left = false);

// An optional value formatted, or "-" when absent.
std::string opt_text(const std::optional<double>& v, std::string (*fmt)(double));
// An achieved rate or error that may not exist (fewer than two grants): "n/a".
std::string na_text(const std::optional<double>& v, std::string (*fmt)(double));
// a / b when both exist and b > 0.
std::optional<double> ratio_of(const std::optional<double>& a, const std::optional<double>& b);

// --- Ordering ------------------------------------------------------------------------------------

// limit 0, one 1, none 2: the order hardcaps are shown in.
int hardcap_rank(const std::string& h);
// Indices of `v` by hardcap, then rate.
std::vector<std::size_t> scenario_order(const std::vector<Scenario>& v);
// The scenario of this hardcap and rate, or null.
const Scenario* find_scenario(const std::vector<Scenario>& v, const std::string& hardcap,
                              std::int64_t rate);
// The fleet run of `hosts` hosts in a series (null: none, or no series).
const FleetRun* find_fleet_run(const std::optional<FleetSeries>& series, std::int64_t hosts);
// The throttle peer's scenarios (none without a peer).
const std::vector<Scenario>& peer_scenarios(const Report& r);
// The run whose rate over time is drawn: limit at 1,000/s when there is one.
const Scenario* series_scenario(const Report& r);
// What two reports' runs of one benchmark are compared on: ops/s for those measured by their rate
// (the two-process runs, whose time is that of the whole 1 s iteration), else ns per op.
std::pair<double, double> compared_values(const Benchmark& a, const Benchmark& b);

}  // namespace mpt::report
