// tools/mpt/cmd_calibrate_check.cpp — `mpt calibrate --check`: does the stored calibration still
// hold on this host?
//
// It holds when it is this host's (the keys Calibration::load() compares) and every band it stores
// (or those --rates and --hardcaps pick), re-measured as a throttle with auto_calibrate runs it —
// Calibration::choose(): the band's correction and spin lead, with the file's worker count —
// achieves its rate within 1 %. The achieved rate is (count - 1) / (last - first) of the grant
// timestamps the monitor keeps, as calibrate counts without the kernel: those are exact to the
// microsecond whatever the count, so a short trial suffices; each lasts 1 s (--seconds), or as
// long as 20 grants take at low rates (2 s at 10/s), so that one late grant is not the whole
// figure. On another host nothing is measured: the file is not in force there.
// Exit 0 when it holds, 1 when it does not (with every reason), 2 for bad usage. The result alone
// on stdout; stderr stays empty unless a trial itself fails.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "cmd_calibrate.hpp"
#include "common.hpp"
#include "mpt/error.hpp"
#include "trial.hpp"

namespace mpt::cli::calib {

namespace {

constexpr double kTolerance = 0.01;      // a band holds within 1 % of its rate
constexpr double kCheckSeconds = 1.0;    // per band, unless --seconds
constexpr double kMinGrants = 20;        // ... and at least as long as this many grants take
constexpr double kMaxBandSeconds = 600;  // --seconds' own bound
constexpr int kMaxWorkers = 256;         // --workers' own bound, whatever a file says

struct BandCheck {
  CalibrationBand band;
  Calibration::Choice used;  // what a throttle with auto_calibrate takes for this band
  double seconds = 0;
  std::uint64_t count = 0;
  std::optional<double> achieved;
  std::optional<double> error;
  std::optional<double> cpu_us_per_grant;  // the workers' CPU per grant they recorded
  std::string not_measured;                // why there is no trial, when there is none
  bool within() const { return error && std::abs(*error) <= kTolerance; }
};

struct Verdict {
  std::optional<Calibration> file;
  nlohmann::json host_file;  // the file's host keys (null without a file)
  nlohmann::json host_here;
  std::vector<std::string> changed;  // the host keys that differ
  int workers = 0;
  std::vector<BandCheck> bands;
  std::vector<std::string> reasons;
};

std::string percent(double e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.3f %%", e * 100);
  return buf;
}

// The file, or why there is none to check (a reason in the verdict).
std::optional<Calibration> read_file(const std::string& path, Verdict& v) {
  try {
    return Calibration::from_file(path);
  } catch (const NotFound&) {
    v.reasons.push_back("no calibration file at " + path);
  } catch (const std::exception& e) {  // unreadable, not a regular file, corrupt, other schema
    v.reasons.push_back(std::string("calibration file ") + path + " is not usable: " + e.what());
  }
  return std::nullopt;
}

// The host keys that differ, named as the file names them (to_json(HostIdentity)).
void compare_hosts(const Calibration& c, Verdict& v) {
  v.host_file = c.host;
  for (const auto& [key, value] : v.host_file.items()) {
    if (v.host_here[key] == value) continue;
    v.changed.push_back(key);
    v.reasons.push_back("host " + key + " changed: the file's " + value.dump() + ", this host's " +
                        v.host_here[key].dump());
  }
  if (v.changed.empty() && !(c.host == HostIdentity::current())) {
    v.changed.push_back("host");
    v.reasons.push_back("the file was made on another host");
  }
}

// The bands to check: every band of the file, or those of the --rates and --hardcaps given. A rate
// or hardcap given that no band has is a usage error naming it.
std::vector<CalibrationBand> pick_bands(const CalibrateOptions& o, const Calibration& c) {
  const std::vector<std::int64_t> rates = given_rates(o);
  const std::vector<Hardcap> hardcaps = given_hardcaps(o);
  auto rate_in = [&](double r) {
    return rates.empty() || std::find(rates.begin(), rates.end(), r) != rates.end();
  };
  auto hardcap_in = [&](Hardcap h) {
    return hardcaps.empty() || std::find(hardcaps.begin(), hardcaps.end(), h) != hardcaps.end();
  };
  std::vector<CalibrationBand> picked;
  std::string have;
  for (const auto& b : c.bands) {
    have += (have.empty() ? "" : ", ") + band_label(b.hardcap, b.rate_per_sec);
    if (rate_in(b.rate_per_sec) && hardcap_in(b.hardcap)) picked.push_back(b);
  }
  const auto no_such = [&](const std::string& what) {
    return UsageError(what + ": the calibration file has no such band (it has " +
                      (have.empty() ? std::string("none") : have) + ")");
  };
  // Each rate and each hardcap given must be in a band picked: a cron check of a band the file
  // lacks must not read "holds".
  for (const std::int64_t r : rates) {
    const bool found = std::any_of(picked.begin(), picked.end(), [&](const CalibrationBand& b) {
      return b.rate_per_sec == static_cast<double>(r);
    });
    if (!found) throw no_such("--rates " + std::to_string(r));
  }
  for (const Hardcap h : hardcaps) {
    const bool found = std::any_of(picked.begin(), picked.end(),
                                   [&](const CalibrationBand& b) { return b.hardcap == h; });
    if (!found) throw no_such(std::string("--hardcaps ") + to_string(h));
  }
  return picked;
}

BandCheck check_band(const Calibration& c, const CalibrationBand& b, int workers, double seconds,
                     Progress& progress) {
  BandCheck r;
  r.band = b;
  r.used = c.choose(b.rate_per_sec, b.hardcap);
  if (b.rate_per_sec < 1 || b.rate_per_sec != std::floor(b.rate_per_sec)) {
    r.not_measured = "a trial needs a whole number of grants per second";
    return r;
  }
  r.seconds = std::min(std::max(seconds, kMinGrants / b.rate_per_sec), kMaxBandSeconds);
  trial::TrialOptions t;
  t.rate_per_sec = static_cast<std::int64_t>(b.rate_per_sec);
  t.workers = workers;
  t.seconds = r.seconds;
  t.throttle.hardcap = b.hardcap;
  t.throttle.correction = r.used.correction;
  t.throttle.spin_lead = std::chrono::nanoseconds(r.used.spin_lead_ns);
  t.throttle.auto_calibrate = false;
  t.tick = [&](double elapsed) {
    progress.draw(elapsed);
    throw_if_interrupted();
  };
  progress.step(band_label(b.hardcap, b.rate_per_sec), r.seconds + 0.1);
  const trial::TrialResult res = trial::run_trial(t);
  throw_if_interrupted();
  r.count = res.achieved_total;
  r.achieved = res.achieved_rate_per_sec;
  r.error = calibration::rel_error(r.achieved, b.rate_per_sec);
  r.cpu_us_per_grant = cpu_us_per_grant(res);
  return r;
}

// Trials for the picked bands (when the file is this host's), and a reason for each band off.
void measure_bands(const CalibrateOptions& o, const std::vector<CalibrationBand>& picked,
                   Verdict& v) {
  if (picked.empty()) {
    v.reasons.push_back("the file stores no bands");
    return;
  }
  const double seconds = std::isnan(o.seconds) ? kCheckSeconds : o.seconds;
  double total_s = 0;
  for (const auto& b : picked)
    total_s += std::max(seconds, kMinGrants / b.rate_per_sec) + 0.1;
  install_stop_handlers();
  Progress progress(isatty(STDERR_FILENO) && !o.json, static_cast<int>(picked.size()), total_s);
  for (const auto& b : picked) {
    v.bands.push_back(check_band(*v.file, b, v.workers, seconds, progress));
    const BandCheck& r = v.bands.back();
    const std::string label = band_label(b.hardcap, b.rate_per_sec);
    if (!r.not_measured.empty()) {
      v.reasons.push_back(label + ": not measured: " + r.not_measured);
    } else if (!r.achieved) {
      v.reasons.push_back(label + ": " + std::to_string(r.count) + " grants, no rate measured");
    } else if (!r.within()) {
      char buf[160];
      std::snprintf(buf, sizeof buf, ": achieved %.6g/s, %s (beyond %g %%)", *r.achieved,
                    percent(*r.error).c_str(), kTolerance * 100);
      v.reasons.push_back(label + buf);
    }
  }
}

nlohmann::json band_json(const BandCheck& r) {
  nlohmann::json j = {{"hardcap", to_string(r.band.hardcap)},
                      {"rate_per_sec", r.band.rate_per_sec},
                      {"correction", r.used.correction},
                      {"spin_lead_ns", r.used.spin_lead_ns},
                      {"seconds", r.seconds},
                      {"count", r.count},
                      {"achieved_rate_per_sec", nullptr},
                      {"rel_error", nullptr},
                      {"within", r.within()}};
  if (r.achieved) j["achieved_rate_per_sec"] = *r.achieved;
  if (r.error) j["rel_error"] = *r.error;
  // Unknown: no key, as in the file (whose reader refuses null there).
  if (r.cpu_us_per_grant) j["cpu_us_per_grant"] = *r.cpu_us_per_grant;
  if (!r.not_measured.empty()) j["not_measured"] = r.not_measured;
  return j;
}

void print_verdict_json(const std::string& path, const Verdict& v) {
  nlohmann::json j;
  j["path"] = path;
  j["holds"] = v.reasons.empty();
  j["reasons"] = v.reasons;
  j["tolerance"] = kTolerance;
  j["host"] = {{"match", v.file && v.changed.empty()},
               {"changed", v.changed},
               {"file", v.host_file},
               {"this_host", v.host_here}};
  j["file"] = nullptr;
  if (v.file) {
    j["file"] = {{"created_utc", v.file->created_utc},
                 {"tool_version", v.file->tool_version},
                 {"quick", v.file->quick}};
  }
  j["measured"] = !v.bands.empty();
  j["workers"] = v.file ? nlohmann::json(v.workers) : nlohmann::json(nullptr);
  j["bands"] = nlohmann::json::array();
  for (const auto& r : v.bands)
    j["bands"].push_back(band_json(r));
  print_json(j);
}

void print_verdict_words(const std::string& path, const Verdict& v) {
  if (!v.bands.empty()) {
    std::printf("calibration %s (made %s%s), %d workers:\n", printable(path).c_str(),
                printable(v.file->created_utc).c_str(), v.file->quick ? " by --quick" : "",
                v.workers);
    std::printf("  %-7s %10s %14s %10s %12s %12s %12s  %s\n", "HARDCAP", "RATE/s", "ACHIEVED/s",
                "ERROR", "CORRECTION", "SPIN LEAD", "CPU/GRANT", "RESULT");
  }
  for (const auto& r : v.bands) {
    char achieved[32] = "n/a", error[32] = "n/a";
    if (r.achieved) std::snprintf(achieved, sizeof achieved, "%.4f", *r.achieved);
    if (r.error) std::snprintf(error, sizeof error, "%s", percent(*r.error).c_str());
    std::printf("  %-7s %10g %14s %10s %12.6f %9.1f us %12s  %s\n", to_string(r.band.hardcap),
                r.band.rate_per_sec, achieved, error, r.used.correction,
                static_cast<double>(r.used.spin_lead_ns) / 1e3,
                cpu_per_grant_words(r.cpu_us_per_grant).c_str(),
                r.within() ? "ok"
                : r.error  ? "OFF"
                           : "not measured");
  }
  if (v.reasons.empty()) {
    std::printf("holds: every band within %g %% on the host that made it\n", kTolerance * 100);
    return;
  }
  std::printf("does not hold:\n");
  for (const auto& why : v.reasons)
    std::printf("  %s\n", printable(why).c_str());
}

}  // namespace

int check(const CalibrateOptions& o, const std::string& path) {
  Verdict v;
  v.host_here = HostIdentity::current();
  v.file = read_file(path, v);
  if (v.file) {
    const std::vector<CalibrationBand> picked = pick_bands(o, *v.file);  // usage errors first
    v.workers = o.workers > 0 ? o.workers : std::min(v.file->workers, kMaxWorkers);
    compare_hosts(*v.file, v);
    if (v.changed.empty()) measure_bands(o, picked, v);
  }
  if (o.json) {
    print_verdict_json(path, v);
  } else {
    print_verdict_words(path, v);
  }
  return v.reasons.empty() ? kExitOk : kExitRuntime;
}

}  // namespace mpt::cli::calib
