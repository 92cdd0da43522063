// tools/mpt/cmd_calibrate.cpp — `mpt calibrate`: measure this host, store the correction.
//
// Steps, each shown on the progress bar when stderr is a terminal (quiet with --json):
//   1. the lateness of futex timed waits and of clock_nanosleep (p50, p99, max);
//   2. the spin lead: the least lead, from a ladder around the futex p99, whose waits are late by
//      under 10 us at p99 (the least CPU that meets it);
//   3. per hardcap and rate: trials with no correction (W processes, S seconds) at spin leads of
//      none, a quarter of the host's and the host's, each measuring its error and the workers' CPU
//      per grant; the band keeps the cheapest of those within calibration::kLeadWorth (plus the
//      count's resolution) of the most accurate (larger leads are assumed to cost at least as
//      much CPU, as they spin longer, and are not run once a trial is as accurate as any count
//      could tell: best_uncorrected()); the correction that follows (target / achieved - 1)
//      removes what is left; and a verification trial with both.
// --quick (for boot) does the same with fewer samples, shorter trials and no quarter lead: kQuick.
// --if-needed measures only when no file is in force for this host (Calibration::load()).
// --show and --host print (cmd_calibrate_show.cpp); --check re-measures (cmd_calibrate_check.cpp).
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

#include "cmd_calibrate.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "mpt/mpt.h"
#include "report_assemble.hpp"
#include "safe_file.hpp"
#include "trial.hpp"
#include "witness.hpp"

namespace mpt::cli {

namespace calib {

void throw_if_interrupted() {
  if (stop_signal() != 0) {
    throw std::runtime_error(std::string("interrupted by ") + signal_name(stop_signal()) +
                             "; the previous file is unchanged");
  }
}

std::string band_label(Hardcap h, double rate_per_sec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %g/s", to_string(h), rate_per_sec);
  return buf;
}

std::vector<std::int64_t> given_rates(const CalibrateOptions& o) {
  std::vector<std::int64_t> rates;
  for (const auto& r : split_list(o.rates))
    rates.push_back(std::stoll(r));  // checked by integer_in() while parsing
  std::sort(rates.begin(), rates.end());
  rates.erase(std::unique(rates.begin(), rates.end()), rates.end());
  return rates;
}

std::vector<Hardcap> given_hardcaps(const CalibrateOptions& o) {
  std::vector<Hardcap> hardcaps;
  for (const auto& h : split_list(o.hardcaps)) {
    const Hardcap hc = hardcap_named(h, "--hardcaps");
    if (std::find(hardcaps.begin(), hardcaps.end(), hc) == hardcaps.end()) hardcaps.push_back(hc);
  }
  return hardcaps;
}

std::optional<double> cpu_us_per_grant(const trial::TrialResult& r) {
  if (r.achieved_total == 0) return std::nullopt;
  return r.cpu_s * 1e6 / static_cast<double>(r.achieved_total);
}

}  // namespace calib

namespace {

using namespace calib;

constexpr double kTargetP99Us = 10.0;  // the spin lead must bring a wait's p99 under this
constexpr auto kLatenessSleep = std::chrono::microseconds(1000);

// What a run measures. The full run's trials of 2 s count even 10/s to 20 emissions; --quick, for
// boot, takes a third of the lateness samples, trials of 0.5 s, and no quarter lead (step 3 tries
// none and the host's): under 20 s for the default bands on a 2-vCPU VM (docs/calibration.md).
struct Plan {
  int lateness_samples;  // per lateness measurement, and per step of the lead ladder
  double seconds;        // per trial, unless --seconds
  bool quarter_lead;     // step 3 also tries a quarter of the host's spin lead
};
constexpr Plan kFull{300, 2.0, true};
constexpr Plan kQuick{100, 0.5, false};
constexpr int kDefaultWorkers = 4;
const Plan& plan_of(const CalibrateOptions& o) {
  return o.quick ? kQuick : kFull;
}

// The ground truth: the kernel's count (eBPF) when it can be had, else the monitor's stamps.
using GroundTruth = trial::KernelWitness;

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
  out.band.cpu_us_per_grant = cpu_us_per_grant(r);
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
// share the cores, and every lead spins: its CPU per grant grows with it. So the band tries none,
// a quarter of the host's lead and all of it, and keeps the cheapest trial among those nearly as
// accurate as the most accurate one (calibration::choose_spin_lead(): within kLeadWorth plus the
// trial's resolution, 2 / count); the correction then removes what is left. The early stop
// assumes that a larger lead costs at least as much CPU per grant (it spins longer): once a
// trial that counted grants has its |error| within the resolution of any count a trial can reach
// (at most 1.5 x rate x seconds + 2), a larger lead could at best tie it on accuracy, so
// choose_spin_lead() would keep that trial (or a cheaper one) over it, and no larger lead is run.
// Among the leads run, choose_spin_lead() weighs what was measured: a larger lead that measured
// cheaper is kept. *tried gets each lead tried, its error and its CPU per grant, in words.
Run best_uncorrected(const CalibrateOptions& o, const GroundTruth& truth, Progress& progress,
                     Hardcap h, std::int64_t rate, std::int64_t host_lead_ns, std::string* tried) {
  std::vector<std::int64_t> leads = {0, host_lead_ns / 4 / 1000 * 1000, host_lead_ns};
  if (!plan_of(o).quarter_lead) leads.erase(leads.begin() + 1);
  leads.erase(std::unique(leads.begin(), leads.end()), leads.end());
  const double unbeatable = 2.0 / (1.5 * static_cast<double>(rate) * o.seconds + 2);
  const std::string label = band_label(h, static_cast<double>(rate));
  std::vector<Run> runs;
  std::vector<calibration::LeadTrial> trials;
  std::string words;
  for (std::size_t i = 0; i < leads.size(); ++i) {
    const bool exact = std::any_of(trials.begin(), trials.end(), [&](const auto& t) {
      return t.count > 0 && t.abs_error <= unbeatable;
    });
    if (exact) {
      progress.drop(static_cast<int>(leads.size() - i), (o.seconds + 0.1) * (leads.size() - i));
      break;
    }
    const std::int64_t lead = leads[i];
    progress.step(label + " spin lead " + std::to_string(lead / 1000) + " us", o.seconds + 0.1);
    runs.push_back(measure(o, truth, progress, h, rate, 0.0, lead));
    const BandRun& b = runs.back().band;
    trials.push_back({lead, std::abs(b.rel_error), b.count, b.cpu_us_per_grant});
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%lld us: %+.3f %% at ", i > 0 ? ", " : "",
                  static_cast<long long>(lead / 1000), b.rel_error * 100);
    words += buf + cpu_per_grant_words(b.cpu_us_per_grant) + " CPU/grant";
  }
  *tried = words;
  return runs[calibration::choose_spin_lead(trials)];
}

SpinLeadTrial try_lead(int samples, std::int64_t lead_ns) {
  SpinLeadTrial t;
  t.spin_lead_ns = lead_ns;
  t.lateness = calibration::measure_futex_lateness(
      samples, kLatenessSleep, std::chrono::nanoseconds(lead_ns), &t.cpu_us_per_wait);
  return t;
}

// The rates to calibrate, ascending, each once. A rate is (count - 1) / (last - first), so every
// trial must count two emissions at least: UsageError when the lowest rate would not.
std::vector<std::int64_t> band_rates(const CalibrateOptions& o) {
  std::vector<std::int64_t> rates = given_rates(o);
  if (rates.empty()) rates = {10, 100, 1000, 10000, 100000};
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
  std::vector<Hardcap> hardcaps = given_hardcaps(o);
  if (hardcaps.empty()) hardcaps = {Hardcap::kLimit, Hardcap::kOne};
  return hardcaps;
}

// What the progress bar expects the lateness measurements (step 1) and the ladder (step 2) to take.
double lateness_s(const Plan& p) {
  return 2 * p.lateness_samples * 1e-3 * 1.1;
}
double ladder_s(const Plan& p) {
  return 6 * p.lateness_samples * 1e-3 * 1.1;
}

// Steps 1 and 2: the file's header, the lateness of timed waits, and the spin lead from a ladder
// starting at half the futex p99; the first lead that meets the target wins.
Calibration measure_host(const CalibrateOptions& o, const GroundTruth& truth, Progress& progress) {
  Calibration c;
  c.host = HostIdentity::current();
  c.created_utc = report::utc_now();
  c.tool_version = mpt_version();
  c.ground_truth = truth.counting() ? "ebpf" : "monitor";
  c.workers = o.workers;
  c.seconds = o.seconds;
  c.quick = o.quick;

  const int samples = plan_of(o).lateness_samples;
  progress.step("futex lateness", lateness_s(plan_of(o)) / 2);
  c.futex_lateness = calibration::measure_futex_lateness(samples, kLatenessSleep);
  progress.step("nanosleep lateness", lateness_s(plan_of(o)) / 2);
  c.nanosleep_lateness = calibration::measure_nanosleep_lateness(samples, kLatenessSleep);
  throw_if_interrupted();

  progress.step("spin lead", ladder_s(plan_of(o)));
  const double p99_ns = c.futex_lateness.p99_us * 1e3;
  std::optional<std::int64_t> chosen;
  for (double f : {0.5, 0.75, 1.0, 1.5, 2.0, 3.0}) {
    const auto lead =
        std::clamp<std::int64_t>(std::llround(p99_ns * f / 1000.0) * 1000, 0, 10'000'000);
    if (!c.spin_lead_trials.empty() && lead <= c.spin_lead_trials.back().spin_lead_ns) continue;
    c.spin_lead_trials.push_back(try_lead(samples, lead));
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
  const std::string label = band_label(h, static_cast<double>(rate));
  std::string tried;
  const Run u = best_uncorrected(o, truth, progress, h, rate, host_lead_ns, &tried);
  b.spin_lead_ns = u.band.spin_lead_ns;
  b.uncorrected = u.band;
  set_correction(b, u.band, tried);
  progress.step(label + " verify", o.seconds + 0.1);
  b.verified = measure(o, truth, progress, h, rate, b.correction, b.spin_lead_ns).band;
  return b;
}

}  // namespace

CLI::App* setup_calibrate(CLI::App& app, CalibrateOptions& o) {
  CLI::App* c = app.add_subcommand(
      "calibrate",
      "Measure this host (wake-up lateness, spin lead, achieved rate per band) and store the "
      "correction throttles use with auto_calibrate");
  add_list_option(c, "--rates", o.rates, integer_in(1, 10'000'000),
                  "rate bands, per second (default 10,100,1000,10000,100000; with --check: "
                  "only the file's bands of these rates)");
  add_list_option(c, "--hardcaps", o.hardcaps, CLI::IsMember({"limit", "one", "none"}),
                  "hardcaps to calibrate: limit, one, none (default limit,one; with --check: "
                  "only the file's bands of these hardcaps)");
  c->add_option("--workers", o.workers,
                "worker processes per trial (default 4; with --check, the file's)")
      ->check(integer_in(1, 256));
  c->add_option("--seconds", o.seconds,
                "seconds per trial (default 2; 0.5 with --quick; with --check 1, and as long as 20 "
                "grants take at low rates)")
      ->check(number_in(0.1, 600));
  c->add_option("--output", o.output,
                "file to write (default: $MPT_CALIBRATION, else /var/lib/mpthrottle/"
                "calibration.json as root, else $XDG_STATE_HOME/mpthrottle/calibration.json)");
  CLI::Option* show =
      c->add_flag("--show", o.show, "print the stored file in words (or JSON) and exit");
  CLI::Option* host =
      c->add_flag("--host", o.host,
                  "print this host's identity (what a calibration file must match) and exit")
          ->excludes(show);
  CLI::Option* dry = c->add_flag("--dry-run", o.dry_run, "measure, print, write nothing");
  CLI::Option* probe =
      c->add_option("--probe", o.probe,
                    "ground truth: auto (the eBPF counter when privileged, else the monitor), on, "
                    "off (default auto)")
          ->check(CLI::IsMember({"auto", "on", "off"}));
  CLI::Option* quick =
      c->add_flag("--quick", o.quick,
                  "a shorter calibration, fit for boot (13-14 s for the default bands on a "
                  "2-vCPU VM): fewer samples, trials of 0.5 s; the file says it was quick")
          ->excludes(show, host);
  CLI::Option* if_needed =
      c->add_flag("--if-needed", o.if_needed,
                  "measure only when no calibration file is in force for this host (missing, "
                  "unreadable, or made on another host, kernel, CPU...); else say which is, exit 0")
          ->excludes(show, host);
  c->add_flag(
       "--check", o.check,
       "re-measure the stored bands, each as a throttle with auto_calibrate runs it: exit "
       "0 while every band is within 1 % and the host is the same, 1 with the reasons (12 s for "
       "the default bands: 1 s each, 2 s at 10/s)")
      ->excludes(show, host, dry, probe, quick, if_needed);
  c->add_flag("--json", o.json, "print JSON instead of text (no progress bar)");
  return c;
}

namespace {

// Measures the bands (o with its defaults filled in), writes the file unless --dry-run, and
// prints what it measured. `because`: why --if-needed measured.
int measure_and_store(const CalibrateOptions& o, const std::vector<std::int64_t>& rates,
                      const std::vector<Hardcap>& hardcaps, const std::string& path,
                      const std::string& because) {
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

  // Per band: the uncorrected trials (a lead each) and the verification.
  const int per_band = (plan_of(o).quarter_lead ? 3 : 2) + 1;
  const int trials = static_cast<int>(rates.size() * hardcaps.size()) * per_band;
  Progress progress(isatty(STDERR_FILENO) && !o.json, trials + 3,
                    lateness_s(plan_of(o)) + ladder_s(plan_of(o)) + trials * (o.seconds + 0.1));

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
  print_result(o, c, path, written, because);
  return kExitOk;
}

}  // namespace

int run_calibrate(const CalibrateOptions& given) {
  const std::string path =
      given.output.empty() ? default_calibration_path().string() : given.output;
  if (given.host) return show_host(given);
  if (given.show) return show(given, path);
  if (given.check) return check(given, path);

  CalibrateOptions o = given;
  if (std::isnan(o.seconds)) o.seconds = plan_of(o).seconds;
  if (o.workers == 0) o.workers = kDefaultWorkers;
  const std::vector<std::int64_t> rates = band_rates(o);  // usage errors before anything else
  const std::vector<Hardcap> hardcaps = band_hardcaps(o);
  std::string because;
  if (o.if_needed) {
    if (const std::optional<Calibration> c = Calibration::load(path, &because))
      return print_in_force(o, *c, path);
    if (!o.json) std::printf("measuring: %s\n", printable(because).c_str());
  }
  return measure_and_store(o, rates, hardcaps, path, because);
}

}  // namespace mpt::cli
