// tools/mpt/metrics.cpp — the series of `mpt stat --openmetrics` and `mpt export` (kSeries), how
// they are read from the throttles, and their two renderings (see metrics.hpp).
#include "metrics.hpp"

#include <time.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <string_view>

#include "common.hpp"
#include "mpt/segment.hpp"
#include "mpt/throttle.hpp"

namespace mpt::cli {

namespace {

struct Label {
  std::string name;
  std::string value;
};

// One sample of a family for one throttle: the labels after `name`, and the value as written.
struct Sample {
  std::vector<Label> labels;
  std::string value;
};

enum class Type { kCounter, kGauge };

// A family: its name (a counter's samples add "_total"), type, unit ("" for none; it must end the
// name), help, and the samples one throttle gives.
struct Series {
  const char* name;
  Type type;
  const char* unit;
  const char* help;
  std::vector<Sample> (*samples)(const ThrottleReading& r);
};

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest that reads back the same
  return std::string(buf, res.ptr);
}

std::string number(std::int64_t v) {
  return std::to_string(v);
}
std::string number(std::uint64_t v) {
  return std::to_string(v);
}

std::vector<Sample> one(std::string value) {
  return {Sample{{}, std::move(value)}};
}

// 1 for the state the throttle is in, 0 for the others: a gauge per state, which the OpenMetrics
// spec and promtool's 0.0.4 parser both accept (a stateset is OpenMetrics only).
std::vector<Sample> state_samples(const ThrottleReading& r) {
  std::vector<Sample> out;
  for (ThrottleState s :
       {ThrottleState::kCreated, ThrottleState::kRunning, ThrottleState::kStopped})
    out.push_back({{{"state", to_string(s)}}, r.snapshot.state == s ? "1" : "0"});
  return out;
}

// The correction with its source as labels: source="none", "explicit" or "calibration", and file=
// the calibration file ("" otherwise). Snapshot::correction_source is "calibration <path>" then.
std::vector<Sample> correction_samples(const ThrottleReading& r) {
  const std::string& src = r.snapshot.correction_source;
  const auto space = src.find(' ');
  std::string source = src.substr(0, space);
  std::string file = space == std::string::npos ? "" : src.substr(space + 1);
  return {
      {{{"source", std::move(source)}, {"file", std::move(file)}}, number(r.snapshot.correction)}};
}

std::vector<Sample> info_samples(const ThrottleReading& r) {
  const Snapshot& s = r.snapshot;
  return {{{{"id", hex_id(s.id)},
            {"hardcap", to_string(s.hardcap)},
            {"creator_pid", std::to_string(s.creator_pid)}},
           "1"}};
}

double configured_rate(const Snapshot& s) {
  return s.per_s > 0 ? static_cast<double>(s.max_n) / s.per_s : 0.0;
}

// Every series, in the order written; docs/cli.md ("Metrics") describes them for operators.
const Series kSeries[] = {
    {"mpthrottle_emissions", Type::kCounter, "",
     "Emissions the throttle's monitor counted, over every start/stop cycle.",
     [](const ThrottleReading& r) { return one(number(r.snapshot.total)); }},
    {"mpthrottle_runtime_seconds", Type::kCounter, "seconds",
     "Time the throttle has been running, over every start/stop cycle.",
     [](const ThrottleReading& r) { return one(number(r.snapshot.runtime_s)); }},
    {"mpthrottle_state", Type::kGauge, "",
     "1 for the state the throttle is in (label state: created, running, stopped), 0 for the "
     "others.",
     state_samples},
    {"mpthrottle_configured_rate", Type::kGauge, "",
     "Configured rate in units per second: max_units / period.",
     [](const ThrottleReading& r) { return one(number(configured_rate(r.snapshot))); }},
    {"mpthrottle_max_units", Type::kGauge, "", "Units granted per period (max_n).",
     [](const ThrottleReading& r) { return one(number(r.snapshot.max_n)); }},
    {"mpthrottle_period_seconds", Type::kGauge, "seconds", "The period max_units are granted in.",
     [](const ThrottleReading& r) { return one(number(r.snapshot.per_s)); }},
    {"mpthrottle_latest_rate", Type::kGauge, "",
     "Emissions per second over the latest complete second (0 when none).",
     [](const ThrottleReading& r) { return one(number(r.snapshot.latest.rate_per_sec)); }},
    {"mpthrottle_available_units", Type::kGauge, "",
     "Units that could be taken now without waiting.",
     [](const ThrottleReading& r) { return one(number(r.snapshot.available)); }},
    {"mpthrottle_interval_seconds", Type::kGauge, "seconds",
     "Effective interval between units, correction applied.",
     [](const ThrottleReading& r) { return one(number(r.snapshot.interval_ns * 1e-9)); }},
    {"mpthrottle_correction", Type::kGauge, "",
     "Correction of the interval, period / max_units * (1 - correction); label source: none, "
     "explicit or calibration (label file: the calibration file).",
     correction_samples},
    {"mpthrottle_shortest_interval_seconds", Type::kGauge, "seconds",
     "Shortest interval seen between consecutive emissions (0 before two).",
     [](const ThrottleReading& r) { return one(number(r.snapshot.lo_hi.interval_s)); }},
    {"mpthrottle_longest_interval_seconds", Type::kGauge, "seconds",
     "Longest interval seen between consecutive emissions (0 before two).",
     [](const ThrottleReading& r) { return one(number(r.snapshot.hi_lo.interval_s)); }},
    {"mpthrottle_creator_alive", Type::kGauge, "",
     "1 while the process that created the throttle is alive (kill(pid, 0)), else 0.",
     [](const ThrottleReading& r) { return one(r.creator_alive ? "1" : "0"); }},
    {"mpthrottle_creation_time_seconds", Type::kGauge, "seconds",
     "Unix time the throttle was created.",
     [](const ThrottleReading& r) {
       return one(number(static_cast<double>(r.snapshot.created_realtime_ns) * 1e-9));
     }},
    {"mpthrottle_throttle_info", Type::kGauge, "",
     "Always 1; labels id (as in mpt ls and mpt probe), hardcap and creator_pid.", info_samples},
};

// A string in the exposition is UTF-8: bytes that are not become U+FFFD, as in mpt's JSON (a
// calibration file's path is bytes, and so is whatever names a segment).
std::string valid_utf8(const std::string& s) {
  return nlohmann::json::parse(dump_json(nlohmann::json(s), false)).get<std::string>();
}

// Backslash, newline and (in label values, and in OpenMetrics help) double quote escaped.
std::string escaped(const std::string& s, bool quote) {
  std::string out;
  for (char c : valid_utf8(s)) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

void append_metadata(std::string& out, const Series& f, MetricsFormat format) {
  const bool om = format == MetricsFormat::kOpenMetrics;
  const char* type = f.type == Type::kCounter ? "counter" : "gauge";
  // 0.0.4 knows no suffixes: a counter's family is named as its samples are.
  const std::string family =
      std::string(f.name) + (!om && f.type == Type::kCounter ? "_total" : "");
  out += "# HELP " + family + " " + escaped(f.help, om) + "\n";
  out += "# TYPE " + family + " " + type + "\n";
  if (om && *f.unit != '\0') out += "# UNIT " + family + " " + f.unit + "\n";
}

void append_sample(std::string& out, const Series& f, const std::string& name, const Sample& s) {
  out += f.name;
  if (f.type == Type::kCounter) out += "_total";
  out += "{name=\"" + escaped(name, true) + "\"";
  for (const Label& l : s.labels)
    out += "," + l.name + "=\"" + escaped(l.value, true) + "\"";
  out += "} " + s.value + "\n";
}

// Throttle::open() and snapshot(): the reading, or the exception.
ThrottleReading read_one(const std::string& name) {
  ThrottleReading r;
  r.snapshot = Throttle::open(name).snapshot();
  r.snapshot.name = name;
  r.creator_alive = pid_alive(r.snapshot.creator_pid);
  return r;
}

void note_skipped(const std::string& name, const std::string& why) {
  std::fprintf(stderr, "mpt: warning: segment %s left out: %s\n", printable(name).c_str(),
               printable(why).c_str());
}

}  // namespace

std::vector<ThrottleReading> read_throttles(const std::vector<std::string>& names, bool strict) {
  std::vector<std::string> todo;
  if (names.empty()) {
    for (const SegmentInfo& info : Segment::list()) {
      if (!info.valid) {
        note_skipped(info.name, info.problem);  // perhaps a throttle: say so, never guess
      } else if (info.kind == SegmentKind::kThrottle) {
        todo.push_back(info.name);
      }
    }
  } else {
    std::set<std::string> seen;
    for (const std::string& n : names)
      if (seen.insert(n).second) todo.push_back(n);
  }
  std::vector<ThrottleReading> out;
  for (const std::string& name : todo) {
    try {
      out.push_back(read_one(name));
    } catch (const std::exception& e) {
      if (strict && !names.empty()) throw;
      note_skipped(name, e.what());  // removed since listed, or another owner's, or corrupt
    }
  }
  return out;
}

std::string render_metrics(const std::vector<ThrottleReading>& throttles, MetricsFormat format) {
  std::string out;
  for (const Series& f : kSeries) {
    std::string samples;
    for (const ThrottleReading& r : throttles)
      for (const Sample& s : f.samples(r))
        append_sample(samples, f, r.snapshot.name, s);
    if (samples.empty()) continue;
    append_metadata(out, f, format);
    out += samples;
  }
  if (format == MetricsFormat::kOpenMetrics) out += "# EOF\n";
  return out;
}

Ticker::Ticker(double every_s)
    : every_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(every_s))),
      next_(std::chrono::steady_clock::now()) {}

bool Ticker::wait() {
  next_ += every_;
  // After a stall longer than the period (SIGSTOP, a slow write), the ticks missed are skipped,
  // not caught up back to back: the next tick is the first one still ahead.
  if (const auto now = std::chrono::steady_clock::now(); next_ <= now) {
    next_ += ((now - next_) / every_ + 1) * every_;
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next_.time_since_epoch());
  const timespec ts{static_cast<time_t>(ns.count() / 1'000'000'000),
                    static_cast<long>(ns.count() % 1'000'000'000)};
  // The stop handlers have no SA_RESTART: a signal ends the sleep with EINTR.
  while (stop_signal() == 0 &&
         ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
  return stop_signal() == 0;
}

}  // namespace mpt::cli
