// tools/mpt/report_charts.hpp — the charts of `mpt report`'s page, each as HTML holding inline
// SVG (or a sentence saying there is nothing to draw). Pure functions of the parsed reports.
#pragma once

#include <string>

#include "report_model.hpp"

namespace mpt::report {

// Achieved rate against target on log axes, then the same runs as relative error: mpt, the peer
// and, with `compare`, the other report (grey).
std::string chart_achieved(const Report& r, const Report* compare);
// One panel per scenario: the share of intervals between grants in each log2 bucket, mpt's and
// the peer's, with the target interval.
std::string chart_histograms(const Report& r);
// Grants per bin as a rate over the run of one scenario (series_scenario()), and the peer's.
std::string chart_rate_over_time(const Report& r);
// The Redis fleet simulation: achieved rate and script calls per second at the server against the
// hosts (log2 axis), with leases and with one call per grant; a sentence without a fleet section.
std::string chart_fleet(const Report& r);
// Each benchmark with a floor as a bar of its ratio to it, on a log axis, with its target.
std::string chart_floors(const Report& r);

}  // namespace mpt::report
