// mpt/calibration.hpp — what `mpt calibrate` measured on this host, and how throttles use it.
//
// A thread that sleeps until a slot wakes late (on a VM, tens of microseconds at the median and
// more at p99). `mpt calibrate` measures that lateness, the spin lead that hides it, and per rate
// band and hardcap the rate a throttle achieves, from which the correction follows. It stores one
// JSON file (schema below, documented in docs/calibration.md) at default_calibration_path().
//
// A Throttle made with auto_calibrate (default: on for rates of at least 49 per second, the seed's
// rule) and no explicit correction loads that file once per process and takes the correction and
// spin lead for its rate and hardcap: interpolated between bands in log-rate, clamped outside
// them. A missing file means no correction. A file from another host or of another schema, or one
// that is unreadable, corrupt or out of range, is ignored with one warning through the log hook
// (stderr by default), never a crash. The snapshot's correction_source says what is in force.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpt/monitor.hpp"

namespace mpt {

// The host a calibration belongs to. A file is used only where all five fields match.
struct HostIdentity {
  std::string hostname;
  std::string kernel;       // uname -r
  std::string cpu_model;    // /proc/cpuinfo "model name"
  std::string clocksource;  // /sys/devices/system/clocksource/clocksource0/current_clocksource
  int cores = 0;            // online CPUs

  static HostIdentity current();
  bool operator==(const HostIdentity&) const = default;
};

// Lateness of a wake-up against its deadline, in microseconds.
struct LatenessStats {
  std::int64_t samples = 0;
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

// One candidate spin lead and what it gave.
struct SpinLeadTrial {
  std::int64_t spin_lead_ns = 0;
  LatenessStats lateness;      // of the whole wait (futex sleep, then spin)
  double cpu_us_per_wait = 0;  // CPU time a wait cost
};

// One accuracy run of the calibration: W processes on one throttle for S seconds.
struct BandRun {
  double achieved_rate_per_sec = 0;  // (count - 1) / (last - first), by the ground truth
  double rel_error = 0;              // achieved / target - 1
  std::uint64_t count = 0;           // emissions counted by the ground truth
  std::uint64_t max_in_window = 0;   // most grants in any window of `per` (the monitor's stamps)
  double correction = 0;             // in force during the run
  std::int64_t spin_lead_ns = 0;     // in force during the run
  // The workers' CPU time (user + system) over the grants they recorded between start() and
  // stop() in the trial (not `count`, which is the kernel's count when probing), in microseconds;
  // nullopt when unknown: a file written before it was measured has no such key.
  std::optional<double> cpu_us_per_grant;
};

struct CalibrationBand {
  Hardcap hardcap = Hardcap::kLimit;
  double rate_per_sec = 0;
  double correction = 0;  // what a throttle of this rate and hardcap uses
  std::int64_t spin_lead_ns = 0;
  BandRun uncorrected;  // correction 0, calibrated spin lead
  BandRun verified;     // the band's correction and spin lead
  std::string note;     // why the correction is what it is, in words
};

struct Calibration {
  static constexpr int kSchema = 1;

  HostIdentity host;
  std::string created_utc;   // ISO 8601, e.g. "2026-11-22T06:40:00Z"
  std::string tool_version;  // mpt_version()
  std::string ground_truth;  // "ebpf" (the kernel's count) or "monitor"
  int workers = 0;
  double seconds = 0;
  bool quick = false;  // made by `mpt calibrate --quick` (shorter trials; absent in older files)
  LatenessStats futex_lateness;      // FUTEX_WAIT_BITSET to an absolute CLOCK_MONOTONIC deadline
  LatenessStats nanosleep_lateness;  // clock_nanosleep(TIMER_ABSTIME)
  std::int64_t spin_lead_ns = 0;     // the chosen lead: p99 of a wait's lateness under 10 us
  std::vector<SpinLeadTrial> spin_lead_trials;
  std::vector<CalibrationBand> bands;

  struct Choice {
    double correction = 0;
    std::int64_t spin_lead_ns = 0;
  };
  // The correction and spin lead for a throttle of this rate and hardcap: interpolated between the
  // hardcap's bands in log-rate, clamped outside them (hardcap none uses limit's bands); the file's
  // spin lead and no correction when there are no bands for it.
  Choice choose(double rate_per_sec, Hardcap hardcap) const;
  // Whether the hardcap's bands (limit's for none) span this rate: a rate outside them gets the
  // nearest band's correction, which was never measured there.
  bool covers(double rate_per_sec, Hardcap hardcap) const;

  // The JSON file's text (schema kSchema), and back. from_json() checks every field and throws
  // InvalidArgument naming the first bad one (wrong type, missing, NaN, out of range, other
  // schema). It does not compare the host: see load().
  std::string to_json() const;
  static Calibration from_json(std::string_view text);

  // Calibration::store()
  // Writes the file atomically: a new file under a random name in the same directory (created
  // with O_EXCL|O_NOFOLLOW: no name another user can plant), fsync, rename over `path`, fsync of
  // the directory; mode 0644. `path` must be a regular file or absent: a symlink, a device, a FIFO
  // or a directory there is refused (SystemError) and left alone. On any failure the temporary
  // file is removed, the previous file is left as it was, and SystemError is thrown.
  // `before_rename`, when given, runs after the data is synced and before the rename (to check the
  // file, or in tests to inject a failure: if it throws, nothing is replaced and its exception
  // propagates). Creates missing parent directories.
  void store(
      const std::filesystem::path& path,
      const std::function<void(const std::filesystem::path& temp)>& before_rename = {}) const;

  // A calibration file is a few KiB; a larger one than this is refused unread.
  static constexpr std::size_t kMaxFileBytes = std::size_t{1} << 20;

  // Calibration::from_file()
  // Reads the file (a regular file or a pipe, at most kMaxFileBytes) and checks it as from_json()
  // does, but not its host. Throws NotFound when it does not exist, SystemError when it cannot be
  // read, is not a regular file or is too large, InvalidArgument for a bad field; each names it.
  static Calibration from_file(const std::filesystem::path& path);

  // Calibration::load()
  // Reads and checks the file, and that it belongs to this host. nullopt with *why set (in words,
  // naming the file) when it is missing, unreadable, not a regular file, larger than
  // kMaxFileBytes, corrupt, of another schema or another host.
  static std::optional<Calibration> load(const std::filesystem::path& path,
                                         std::string* why = nullptr);
};

// Where calibrations live: $MPT_CALIBRATION if set; else /var/lib/mpthrottle/calibration.json for
// root; else $XDG_STATE_HOME/mpthrottle/calibration.json ($HOME/.local/state when unset).
std::filesystem::path default_calibration_path();

// The log hook: where the library's warnings go (one line each, no newline). Default: stderr,
// prefixed "mpthrottle: warning: ". An empty function silences them. Returns the previous hook.
using LogHook = std::function<void(std::string_view message)>;
LogHook set_log_hook(LogHook hook);

// Forgets the calibration auto_calibrate loaded, so the next throttle reads the file again (after
// `mpt calibrate` wrote a new one, say), and the warnings already given, so they may come again.
// Throttles already made keep what they have.
void reload_calibration();

// Measurements `mpt calibrate` makes, for programs that want them.
namespace calibration {

// Sleeps `samples` times until an absolute deadline `sleep` ahead, each a futex wait (as a throttle
// waiter does) ending `spin_lead` before the deadline and spinning the rest; returns how late each
// wait returned. *cpu_us_per_wait, when given, gets the thread's CPU time per wait.
LatenessStats measure_futex_lateness(int samples, std::chrono::nanoseconds sleep,
                                     std::chrono::nanoseconds spin_lead = {},
                                     double* cpu_us_per_wait = nullptr);
// The same with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) and no spin.
LatenessStats measure_nanosleep_lateness(int samples, std::chrono::nanoseconds sleep);

// Whether a throttle of this rate and hardcap is known to fall short of its rate without a
// calibration on a host like those measured (a VM whose timed sleeps wake 55-80 us late): hardcap
// one from kUncalibratedShortOne per second (measured uncalibrated with 4 workers: -0.5 % at
// 2,000/s, -1.6 % at 5,000/s, -3.8 % at 10,000/s, -39 % at 100,000/s). limit and none: never,
// their burst allowance absorbs the lateness (within 0.005 % up to 200,000/s, 0.4 % at
// 500,000/s, where the CPU is the bound). A throttle made with auto_calibrate there, which no
// calibration file covers, warns once through the log hook and names the fix (`mpt calibrate`).
inline constexpr double kUncalibratedShortOne = 2'000;
bool falls_short_uncalibrated(double rate_per_sec, Hardcap hardcap);

// One uncorrected trial of a band at one spin lead, as choose_spin_lead() weighs it.
struct LeadTrial {
  std::int64_t spin_lead_ns = 0;
  double abs_error = 0;     // |achieved / target - 1|; NaN weighs as the least accurate
  std::uint64_t count = 0;  // emissions counted: the error's resolution is 2 / count
  std::optional<double> cpu_us_per_grant;  // unknown weighs as the most expensive
};

// Accuracy a spin lead must buy over a cheaper one to be worth its CPU: a lead spins, so its CPU
// per grant grows with it, while the correction (target / achieved - 1) removes most of what a
// cheaper trial misses. 0.05 %.
inline constexpr double kLeadWorth = 0.0005;

// calibration::choose_spin_lead()
// The index in `trials` (not empty) of the lead a band keeps: the cheapest (least
// cpu_us_per_grant) of the trials whose |error| is within kLeadWorth plus that trial's resolution
// (2 / count) of the most accurate trial's |error|. Ties go to the smaller lead, then to the
// earlier trial. A trial with count 0 measured no error and is not eligible, unless every trial
// has count 0: then the most accurate is kept (the cheapest of equals). It weighs only what was
// measured: a larger lead that measured cheaper wins. `mpt calibrate` does not run every lead,
// though: it assumes a larger lead costs at least as much CPU per grant (it spins longer), so
// once a trial's |error| is within the resolution of any count the band's trials can reach, it
// tries no larger lead (this rule would keep that trial, or a cheaper one, over any of them).
// Pure; throws InvalidArgument when `trials` is empty.
std::size_t choose_spin_lead(const std::vector<LeadTrial>& trials);

// Nearest-rank percentile (q in (0, 1]) of values sorted ascending; 0 when empty.
std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q);

// calibration::achieved_rate_per_sec()
// The rate `count` emissions achieved, the first at first_ns and the last at last_ns
// (CLOCK_MONOTONIC): (count - 1) / (last - first) per second. Every achieved rate and rate error
// mpthrottle reports (mpt calibrate, mpt run, mpt_scenario, the bench report) is this one figure.
// It is free of the fence post: count / runtime also counts the unit start() gives at once, which
// over one second at 10/s reads as +10 %. nullopt (no rate: null in JSON, "n/a" in text) when
// count < 2 or last_ns <= first_ns: one emission, or none, has no interval to measure.
// Never blocks; pure.
std::optional<double> achieved_rate_per_sec(std::uint64_t count, std::int64_t first_ns,
                                            std::int64_t last_ns) noexcept;

// calibration::rel_error(): achieved / target - 1; nullopt when there is no achieved rate or the
// target is not positive.
std::optional<double> rel_error(std::optional<double> achieved_rate_per_sec,
                                double target_rate_per_sec) noexcept;

}  // namespace calibration

}  // namespace mpt
