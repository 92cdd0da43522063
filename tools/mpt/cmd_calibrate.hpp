// tools/mpt/cmd_calibrate.hpp — what the files of `mpt calibrate` share: cmd_calibrate.cpp
// measures and writes (full, --quick, --if-needed), cmd_calibrate_show.cpp prints (--show, --host,
// the result), cmd_calibrate_check.cpp re-measures the stored bands (--check).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "mpt/calibration.hpp"
#include "trial.hpp"

namespace mpt::cli::calib {

// The progress bar: one line on stderr, redrawn in place; nothing when not enabled (stderr not a
// terminal, or --json).
class Progress {
 public:
  Progress(bool enabled, int steps, double seconds)
      : on_(enabled), steps_(steps), total_s_(seconds) {}
  ~Progress() { done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
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

// A stop signal (install_stop_handlers) ends the measuring at the next tick: std::runtime_error
// "interrupted by SIG...; the previous file is unchanged".
void throw_if_interrupted();

// "limit 1000/s": a band in words.
std::string band_label(Hardcap h, double rate_per_sec);

// --rates as given, ascending, each once (empty when not given).
std::vector<std::int64_t> given_rates(const CalibrateOptions& o);
// --hardcaps as given, in order, each once (empty when not given).
std::vector<Hardcap> given_hardcaps(const CalibrateOptions& o);

// The workers' CPU time over the grants they recorded between start() and stop() in the trial
// (r.achieved_total), in microseconds; nullopt without grants.
std::optional<double> cpu_us_per_grant(const trial::TrialResult& r);

// cmd_calibrate_show.cpp
void print_host_words(const HostIdentity& h);  // "  host        NAME, kernel ..."
// A CPU per grant in words, "18.2 us", or "-" when unknown (a file written before it was measured).
std::string cpu_per_grant_words(const std::optional<double>& us);
int show(const CalibrateOptions& o, const std::string& path);
int show_host(const CalibrateOptions& o);
// What a calibration measured (and whether it was written), in words or as JSON. `because`, when
// not empty, is why --if-needed measured.
void print_result(const CalibrateOptions& o, const Calibration& c, const std::string& path,
                  bool written, const std::string& because);
// --if-needed found `c` in force at `path`: says so, measures nothing.
int print_in_force(const CalibrateOptions& o, const Calibration& c, const std::string& path);

// cmd_calibrate_check.cpp: --check. 0 while the file holds on this host, 1 when it does not.
int check(const CalibrateOptions& o, const std::string& path);

}  // namespace mpt::cli::calib
