// tools/mpt/cmd_calibrate.cpp — `mpt calibrate`: measure this host, store the correction.
//
// Steps, each shown on the progress bar when stderr is a terminal (quiet with --json):
//   1. the lateness of futex timed waits and of clock_nanosleep (p50, p99, max);
//   2. the spin lead: the least lead, from a ladder around the futex p99, whose waits are late by
//      under 10 us at p99 (the least CPU that meets it);
//   3. per hardcap and rate: trials with no correction (W processes, S seconds) at spin leads of
//      none, a quarter of the host's and the host's, keeping the most accurate (the larger leads
//      are not run once no trial could beat the best: best_uncorrected()); the correction that
//      follows (target / achieved - 1); and a verification trial with both.
// Ground truth is the eBPF counter (the kernel's count, --probe auto as root) or the monitor's
// grant timestamps; the file says which. The file is written atomically (temp + fsync + rename);
// a failed or interrupted run leaves the previous file as it was.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "mpt/mpt.h"
#include "safe_file.hpp"
#include "trial.hpp"
#include "witness.hpp"

namespace mpt::cli {

namespace {

constexpr double kTargetP99Us = 10.0;  // the spin lead must bring a wait's p99 under this
constexpr int kLatenessSamples = 300;  // per lateness measurement
constexpr auto kLatenessSleep = std::chrono::microseconds(1000);

Hardcap parse_hardcap(const std::string& h) {
  if (h == "limit") return Hardcap::kLimit;
  if (h == "one") return Hardcap::kOne;
  if (h == "none") return Hardcap::kNone;
  throw UsageError("--hardcaps: each must be limit, one or none, got '" + h + "'");
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The progress bar: one line on stderr, redrawn in place; nothing when not a terminal.
class Progress {
 public:
  Progress(bool enabled, int steps, double seconds)
      : on_(enabled), steps_(steps), total_s_(seconds) {}
  ~Progress() { done(); }
  void step(const std::string& what, double step_s) {
    if (step_ > 0) spent_s_ += last_s_;
    ++step_;
    what_ = what;
    last_s_ = step_s;
    draw(0);
  }
  void draw(double elapsed_in_step) {
    if (!on_) return;
    const double left = std::max(0.0, total_s_ - spent_s_ - std::min(elapsed_in_step, last_s_));
    const int width = 24;
    const int filled = static_cast<int>(width * (total_s_ - left) / std::max(total_s_, 1e-9));
    std::string bar(static_cast<std::size_t>(std::clamp(filled, 0, width)), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[K[%s] %d/%d %s, about %.0f s left", bar.c_str(), step_, steps_,
                 what_.c_str(), std::ceil(left));
    std::fflush(stderr);
  }
  void done() {
    if (on_ && step_ > 0) std::fprintf(stderr, "\r\033[K");
    on_ = false;
  }
  // Steps planned that will not run, and their seconds.
  void drop(int steps, double seconds) {
    steps_ -= steps;
    total_s_ -= seconds;
  }

 private:
  bool on_;
  int steps_;
  double total_s_;
  int step_ = 0;
  double spent_s_ = 0;
  double last_s_ = 0;
  std::string what_;
};

// The ground truth: the kernel's count (eBPF) when it can be had, else the monitor's stamps.
using GroundTruth = trial::KernelWitness;

// A stop signal (install_stop_handlers) ends the calibration at the next tick, writing nothing.
void throw_if_interrupted() {
  if (stop_signal() != 0) {
    throw std::runtime_error(std::string("interrupted by ") + signal_name(stop_signal()) +
                             "; the previous file is unchanged");
  }
}

struct Run {
  BandRun band;
  std::uint64_t monitor_count = 0;
};

Run measure(const CalibrateOptions& o, const GroundTruth& truth, Progress& progress, Hardcap h,
            std::int64_t rate, double correction, std::int64_t lead_ns) {
  trial::TrialOptions t;
  t.rate_per_sec = rate;
  t.workers = o.workers;
  t.seconds = o.seconds;
  t.throttle.hardcap = h;
  t.throttle.correction = correction;
  t.throttle.auto_calibrate = false;
  t.throttle.spin_lead = std::chrono::nanoseconds(lead_ns);
  t.tick = [&](double elapsed) {
    progress.draw(elapsed);
    throw_if_interrupted();
  };
  const trial::TrialResult r = trial::run_trial(t);
  throw_if_interrupted();
  Run out;
  out.monitor_count = r.achieved_total;
  out.band.max_in_window = r.max_in_window;
  out.band.correction = correction;
  out.band.spin_lead_ns = lead_ns;
  std::optional<double> achieved = r.achieved_rate_per_sec;
  out.band.count = r.achieved_total;
  if (truth.counting()) {
    const trial::KernelCount k = truth.count(r.throttle_id);
    out.band.count = k.total;
    achieved = k.achieved_rate_per_sec();
  }
  // run_calibrate() asks for at least two emissions per trial; fewer means the workers never ran.
  if (!achieved) {
    throw std::runtime_error(std::string(to_string(h)) + " " + std::to_string(rate) +
                             "/s: " + std::to_string(out.band.count) +
                             " emissions counted, no rate to measure; the previous file is "
                             "unchanged");
  }
  out.band.achieved_rate_per_sec = *achieved;
  out.band.rel_error = *calibration::rel_error(achieved, static_cast<double>(rate));
  return out;
}

// A band's uncorrected trial. The host's spin lead suits a lone waiter, but W spinning waiters
// share the cores, so the band tries none, a quarter of it and all of it, and keeps the most
// accurate: a lead replaces the best so far only when its |error| plus the count's resolution
// (2 / count) is below the best's (on a tie, the smaller lead: less CPU). Once the best's |error|
// is within the resolution of any count the trial can reach (at most 1.5 x rate x seconds + 2),
// no later lead can replace it, so those are not run: the same choice, sooner. *tried gets each
// lead tried and its error, in words.
Run best_uncorrected(const CalibrateOptions& o, const GroundTruth& truth, Progress& progress,
                     Hardcap h, std::int64_t rate, std::int64_t host_lead_ns, std::string* tried) {
  std::vector<std::int64_t> leads = {0, host_lead_ns / 4 / 1000 * 1000, host_lead_ns};
  leads.erase(std::unique(leads.begin(), leads.end()), leads.end());
  const double unbeatable = 2.0 / (1.5 * static_cast<double>(rate) * o.seconds + 2);
  const std::string label = std::string(to_string(h)) + " " + std::to_string(rate) + "/s";
  std::optional<Run> best;
  std::ostringstream words;
  for (std::size_t i = 0; i < leads.size(); ++i) {
    if (best && std::abs(best->band.rel_error) <= unbeatable) {
      progress.drop(static_cast<int>(leads.size() - i), (o.seconds + 0.1) * (leads.size() - i));
      break;
    }
    const std::int64_t lead = leads[i];
    progress.step(label + " spin lead " + std::to_string(lead / 1000) + " us", o.seconds + 0.1);
    Run run = measure(o, truth, progress, h, rate, 0.0, lead);
    words << (i > 0 ? ", " : "") << lead / 1000 << " us: " << std::showpos
          << run.band.rel_error * 100 << std::noshowpos << " %";
    const double res = run.band.count > 0 ? 2.0 / static_cast<double>(run.band.count) : 1.0;
    if (!best || std::abs(run.band.rel_error) + res < std::abs(best->band.rel_error)) best = run;
  }
  *tried = words.str();
  return *best;
}

SpinLeadTrial try_lead(std::int64_t lead_ns) {
  SpinLeadTrial t;
  t.spin_lead_ns = lead_ns;
  t.lateness = calibration::measure_futex_lateness(
      kLatenessSamples, kLatenessSleep, std::chrono::nanoseconds(lead_ns), &t.cpu_us_per_wait);
  return t;
}

std::string lateness_words(const LatenessStats& l) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "p50 %.1f us, p99 %.1f us, max %.1f us (%lld samples)", l.p50_us,
                l.p99_us, l.max_us, static_cast<long long>(l.samples));
  return buf;
}

// A host's identity on one line, after "  host        ".
void print_host_words(const HostIdentity& h) {
  std::printf("  host        %s, kernel %s, %s, %d cores, clocksource %s\n",
              printable(h.hostname).c_str(), printable(h.kernel).c_str(),
              printable(h.cpu_model).c_str(), h.cores, printable(h.clocksource).c_str());
}

// Every string of the file goes through printable(): --show prints what any file says.
void print_words(const Calibration& c, const std::string& path) {
  std::printf("calibration %s\n", printable(path).c_str());
  print_host_words(c.host);
  std::printf("  made        %s by mpthrottle %s; ground truth: %s; %d workers, %g s per trial\n",
              printable(c.created_utc).c_str(), printable(c.tool_version).c_str(),
              c.ground_truth == "ebpf" ? "the kernel's count (eBPF)" : "the monitor's timestamps",
              c.workers, c.seconds);
  std::printf("  futex wait  late by %s\n", lateness_words(c.futex_lateness).c_str());
  std::printf("  nanosleep   late by %s\n", lateness_words(c.nanosleep_lateness).c_str());
  std::printf("  spin lead   %.1f us\n", static_cast<double>(c.spin_lead_ns) / 1e3);
  for (const auto& t : c.spin_lead_trials) {
    std::printf("    lead %7.1f us: late by p99 %7.1f us, %6.1f us CPU per wait\n",
                static_cast<double>(t.spin_lead_ns) / 1e3, t.lateness.p99_us, t.cpu_us_per_wait);
  }
  std::printf("  %-6s %10s %12s %12s %12s %10s\n", "HARDCAP", "RATE/s", "UNCORRECTED", "CORRECTION",
              "VERIFIED", "MAX/WINDOW");
  for (const auto& b : c.bands) {
    std::printf("  %-6s %10g %+11.3f%% %12.6f %+11.3f%% %10llu\n", to_string(b.hardcap),
                b.rate_per_sec, b.uncorrected.rel_error * 100, b.correction,
                b.verified.rel_error * 100,
                static_cast<unsigned long long>(b.verified.max_in_window));
  }
}

int show(const CalibrateOptions& o, const std::string& path) {
  std::string why;
  std::optional<Calibration> c = Calibration::load(path, &why);
  std::string note;
  if (!c) {
    // Show a file from another host too, saying so; anything else is an error (a missing,
    // unreadable, oversized or corrupt file, or one that is not a regular file).
    try {
      c = Calibration::from_file(path);
    } catch (const InvalidArgument& e) {  // a bad field: exit 1, not a usage error
      throw std::runtime_error("calibration file " + path + ": " + e.what());
    }
    note = why;
  }
  if (o.json) {
    nlohmann::json j;
    j["path"] = path;
    j["in_force"] = note.empty();
    if (!note.empty()) j["ignored_because"] = note;
    j["calibration"] = nlohmann::json::parse(c->to_json());
    print_json(j);
  } else {
    print_words(*c, path);
    if (!note.empty()) std::printf("  NOT IN FORCE: %s\n", printable(note).c_str());
  }
  return kExitOk;
}

// --host: this host's identity, the one a calibration file must match (scripts/bench takes the
// report's host from it).
int show_host(const CalibrateOptions& o) {
  const HostIdentity h = HostIdentity::current();
  if (o.json) {
    print_json({{"host", h}});
  } else {
    std::printf("this host, as a calibration file must match it:\n");
    print_host_words(h);
  }
  return kExitOk;
}

// The rates to calibrate, ascending, each once. A rate is (count - 1) / (last - first), so every
// trial must count two emissions at least: UsageError when the lowest rate would not.
std::vector<std::int64_t> band_rates(const CalibrateOptions& o) {
  std::vector<std::int64_t> rates;
  for (const auto& r : split_list(o.rates))
    rates.push_back(std::stoll(r));  // checked by integer_in() while parsing
  if (rates.empty()) rates = {10, 100, 1000, 10000, 100000};
  std::sort(rates.begin(), rates.end());
  rates.erase(std::unique(rates.begin(), rates.end()), rates.end());
  if (static_cast<double>(rates.front()) * o.seconds < 2) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "--rates %lld with --seconds %g counts fewer than two emissions a trial: no rate "
                  "to measure (raise --seconds)",
                  static_cast<long long>(rates.front()), o.seconds);
    throw UsageError(buf);
  }
  return rates;
}

// The hardcaps to calibrate, in the order given, each once (default limit, one).
std::vector<Hardcap> band_hardcaps(const CalibrateOptions& o) {
  std::vector<Hardcap> hardcaps;
  const std::vector<std::string> given = split_list(o.hardcaps);
  for (const auto& h : given.empty() ? std::vector<std::string>{"limit", "one"} : given) {
    const Hardcap hc = parse_hardcap(h);
    if (std::find(hardcaps.begin(), hardcaps.end(), hc) == hardcaps.end()) hardcaps.push_back(hc);
  }
  return hardcaps;
}

// What the progress bar expects the lateness measurements (step 1) and the ladder (step 2) to take.
constexpr double kLatenessS = 2 * kLatenessSamples * 1e-3 * 1.1;
constexpr double kLadderS = 6 * kLatenessSamples * 1e-3 * 1.1;

// Steps 1 and 2: the file's header, the lateness of timed waits, and the spin lead from a ladder
// starting at half the futex p99; the first lead that meets the target wins.
Calibration measure_host(const CalibrateOptions& o, const GroundTruth& truth, Progress& progress) {
  Calibration c;
  c.host = HostIdentity::current();
  c.created_utc = utc_now();
  c.tool_version = mpt_version();
  c.ground_truth = truth.counting() ? "ebpf" : "monitor";
  c.workers = o.workers;
  c.seconds = o.seconds;

  progress.step("futex lateness", kLatenessS / 2);
  c.futex_lateness = calibration::measure_futex_lateness(kLatenessSamples, kLatenessSleep);
  progress.step("nanosleep lateness", kLatenessS / 2);
  c.nanosleep_lateness = calibration::measure_nanosleep_lateness(kLatenessSamples, kLatenessSleep);
  throw_if_interrupted();

  progress.step("spin lead", kLadderS);
  const double p99_ns = c.futex_lateness.p99_us * 1e3;
  std::optional<std::int64_t> chosen;
  for (double f : {0.5, 0.75, 1.0, 1.5, 2.0, 3.0}) {
    const auto lead =
        std::clamp<std::int64_t>(std::llround(p99_ns * f / 1000.0) * 1000, 0, 10'000'000);
    if (!c.spin_lead_trials.empty() && lead <= c.spin_lead_trials.back().spin_lead_ns) continue;
    c.spin_lead_trials.push_back(try_lead(lead));
    if (c.spin_lead_trials.back().lateness.p99_us < kTargetP99Us) {
      chosen = lead;
      break;
    }
  }
  // None met it (a very noisy host): the largest tried is the best there is.
  c.spin_lead_ns = chosen.value_or(c.spin_lead_trials.back().spin_lead_ns);
  return c;
}

// A band's correction from its best uncorrected run `u` (target / achieved - 1, none within the
// count's resolution), and the note that says why, in words.
void set_correction(CalibrationBand& b, const BandRun& u, const std::string& tried) {
  const double a = u.achieved_rate_per_sec;
  // One emission's worth of the count is noise, not drift: no correction below it.
  const double noise = u.count > 0 ? 2.0 / static_cast<double>(u.count) : 1.0;
  std::ostringstream note;
  note << "spin lead " << b.spin_lead_ns / 1000 << " us (tried " << tried << "); ";
  if (a <= 0) {
    b.correction = 0;
    note << "nothing counted: no correction";
  } else if (std::abs(u.rel_error) <= noise) {
    b.correction = 0;
    note << "error within the count's resolution (" << noise * 100 << " %): no correction";
  } else {
    b.correction = std::clamp(b.rate_per_sec / a - 1.0, -0.5, 0.5);
    b.correction = std::round(b.correction * 1e6) / 1e6;
    note << "correction = target / achieved - 1";
    if (b.hardcap == Hardcap::kOne) {
      note << "; it only moves the slots: the gate keeps at most max_n grants in any window";
    }
  }
  b.note = note.str();
}

// Step 3 for one hardcap and rate: the uncorrected trials, the correction that follows, and a
// verification trial with both.
CalibrationBand calibrate_band(const CalibrateOptions& o, const GroundTruth& truth,
                               Progress& progress, Hardcap h, std::int64_t rate,
                               std::int64_t host_lead_ns) {
  CalibrationBand b;
  b.hardcap = h;
  b.rate_per_sec = static_cast<double>(rate);
  b.spin_lead_ns = host_lead_ns;
  const std::string label = std::string(to_string(h)) + " " + std::to_string(rate) + "/s";
  std::string tried;
  const Run u = best_uncorrected(o, truth, progress, h, rate, host_lead_ns, &tried);
  b.spin_lead_ns = u.band.spin_lead_ns;
  b.uncorrected = u.band;
  set_correction(b, u.band, tried);
  progress.step(label + " verify", o.seconds + 0.1);
  b.verified = measure(o, truth, progress, h, rate, b.correction, b.spin_lead_ns).band;
  return b;
}

// What a calibration measured (and whether it was written), in words or as JSON.
void print_result(const CalibrateOptions& o, const Calibration& c, const std::string& path,
                  bool written) {
  if (o.json) {
    nlohmann::json j;
    j["path"] = path;
    j["written"] = written;
    j["calibration"] = nlohmann::json::parse(c.to_json());
    print_json(j);
  } else {
    print_words(c, path);
    std::printf(written ? "  written to %s\n" : "  --dry-run: nothing written to %s\n",
                printable(path).c_str());
  }
}

}  // namespace

CLI::App* setup_calibrate(CLI::App& app, CalibrateOptions& o) {
  CLI::App* c = app.add_subcommand(
      "calibrate",
      "Measure this host (wake-up lateness, spin lead, achieved rate per band) and store the "
      "correction throttles use with auto_calibrate");
  add_list_option(c, "--rates", o.rates, integer_in(1, 10'000'000),
                  "rate bands, per second (default 10,100,1000,10000,100000)");
  add_list_option(c, "--hardcaps", o.hardcaps, CLI::IsMember({"limit", "one", "none"}),
                  "hardcaps to calibrate: limit, one, none (default limit,one)");
  c->add_option("--workers", o.workers, "worker processes per trial (default 4)")
      ->check(integer_in(1, 256));
  c->add_option("--seconds", o.seconds, "seconds per trial (default 2)")
      ->check(number_in(0.1, 600));
  c->add_option("--output", o.output,
                "file to write (default: $MPT_CALIBRATION, else /var/lib/mpthrottle/"
                "calibration.json as root, else $XDG_STATE_HOME/mpthrottle/calibration.json)");
  CLI::Option* show =
      c->add_flag("--show", o.show, "print the stored file in words (or JSON) and exit");
  c->add_flag("--host", o.host,
              "print this host's identity (what a calibration file must match) and exit")
      ->excludes(show);
  c->add_flag("--dry-run", o.dry_run, "measure, print, write nothing");
  c->add_option("--probe", o.probe,
                "ground truth: auto (the eBPF counter when privileged, else the monitor), on, "
                "off (default auto)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  c->add_flag("--json", o.json, "print JSON instead of text (no progress bar)");
  return c;
}

int run_calibrate(const CalibrateOptions& o) {
  const std::string path = o.output.empty() ? default_calibration_path().string() : o.output;
  if (o.host) return show_host(o);
  if (o.show) return show(o, path);

  const std::vector<std::int64_t> rates = band_rates(o);
  const std::vector<Hardcap> hardcaps = band_hardcaps(o);

  // A target that will be refused is refused now, not after minutes of measuring.
  if (!o.dry_run) detail::check_replaceable(path);

  GroundTruth truth(o.probe);
  if (!truth.counting() && !o.json && o.probe == "auto") {
    std::fprintf(stderr,
                 "mpt: the kernel's count is not available (%s); counting with the monitor\n",
                 truth.why_not().c_str());
  }

  // Interrupting leaves the previous file: stop at the next tick, write nothing.
  install_stop_handlers();

  const int trials = static_cast<int>(rates.size() * hardcaps.size()) * 4;
  Progress progress(isatty(STDERR_FILENO) && !o.json, trials + 3,
                    kLatenessS + kLadderS + trials * (o.seconds + 0.1));

  Calibration c = measure_host(o, truth, progress);
  for (Hardcap h : hardcaps) {
    for (std::int64_t rate : rates)
      c.bands.push_back(calibrate_band(o, truth, progress, h, rate, c.spin_lead_ns));
  }
  progress.done();

  bool written = false;
  if (!o.dry_run) {
    c.store(path);
    written = true;
    reload_calibration();
  }
  print_result(o, c, path, written);
  return kExitOk;
}

}  // namespace mpt::cli
