// tools/mpt/cmd_shell.cpp — `mpt create`, `mpt acquire`, `mpt start` and `mpt stop`: a named
// throttle shared by shell scripts and programs in any language.
//
// `mpt create` makes the throttle persistent (CreateOptions::persist, recorded in the segment's
// header): it outlives the command, `mpt rm --stale` keeps it, and only `mpt rm NAME` removes it.
// Each `mpt acquire` attaches, waits for its units with await_grant() and exits: 0 when they are
// granted. The grant is counted by the library itself (auto_emit, on in every throttle `mpt create`
// makes) in the same atomic step that grants it, so the totals are right and never counted twice.
//
// Exit codes of `mpt acquire`: 0 granted; 1 not granted (the throttle is not running or stopped
// while it waited, the timeout cannot be met, NAME is missing or not a throttle); 2 bad usage. A
// stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) while it waits gives up the wait, takes nothing,
// and ends `mpt acquire` by that signal (status 128 + N: 130, 143), so that the shell running the
// loop sees Ctrl-C and stops too (bash goes on with a loop whose command merely exits 130). A
// signal that comes after the grant changes nothing: exit 0. One it was started with ignored (a
// script's background job) stays ignored.
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

namespace mpt::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The most --timeout takes, in seconds (a year; only so that the deadline cannot overflow).
constexpr double kMaxTimeoutS = 365.0 * 86400;

// --mode: 3 or 4 octal digits with owner read and write, nothing special, not writable by others
// (every `mpt` command, as Throttle::open() by default, refuses a world-writable segment).
CLI::Validator mode_octal() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const bool digits = (s.size() == 3 || s.size() == 4) &&
                            s.find_first_not_of("01234567") == std::string::npos;
        if (!digits) return "expected an octal mode such as 0600 or 0640, got '" + s + "'";
        const unsigned long m = std::strtoul(s.c_str(), nullptr, 8);
        if (m > 0777) return "mode " + s + " has special bits (setuid, setgid, sticky)";
        if ((m & 0600) != 0600) return "mode " + s + " must give the owner read and write (0600)";
        if (m & 0002) return "mode " + s + " is writable by every user, which every opener refuses";
        return {};
      },
      "OCTAL");
}

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
  return buf;
}

// Why a throttle that is not running gives no units, and what to do about it.
std::string not_running(const std::string& name, ThrottleState state) {
  const std::string fix = "; start it with `mpt start " + name + "`";
  if (state == ThrottleState::kCreated) {
    return "throttle '" + name + "' has not been started (made with --stopped)" + fix;
  }
  return "throttle '" + name + "' is stopped" + fix;
}

// A refusal of `mpt acquire`: exit 1 with the message (main() prints it as every error).
[[noreturn]] void refuse(const std::string& message) {
  throw std::runtime_error(message);
}

// Ends this process by `sig` after saying why: the shell then knows that a signal ended the
// command (a loop under `bash` stops on Ctrl-C only if its command died of SIGINT).
[[noreturn]] void die_of(int sig, const std::string& message, bool json) {
  if (json) {
    print_json({{"error", message}});
  } else {
    std::fprintf(stderr, "mpt: %s\n", message.c_str());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  ::sigaction(sig, &sa, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  std::_Exit(128 + sig);  // not reached for the stop signals, whose default is to terminate
}

// Throttle::open(), with the way to make the throttle when it does not exist.
Throttle open_named(const std::string& name) {
  try {
    return Throttle::open(name);
  } catch (const NotFound& e) {
    throw std::runtime_error(std::string(e.what()) + "; `mpt create " + name +
                             " --rate N` makes it");
  }
}

// "1 unit", "5 units".
std::string units(std::int64_t n) {
  return std::to_string(n) + (n == 1 ? " unit" : " units");
}

void print_rate_line(const Snapshot& s) {
  std::printf("%lld per %g s (%g/s), hardcap %s", static_cast<long long>(s.max_n), s.per_s,
              s.per_s > 0 ? static_cast<double>(s.max_n) / s.per_s : 0.0, to_string(s.hardcap));
}

}  // namespace

// --- mpt create ---------------------------------------------------------------------------------

CLI::App* setup_create(CLI::App& app, CreateCmdOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "create", "Make a named throttle that outlives this command (until `mpt rm NAME`)");
  cmd->add_option("NAME", opts.name, "throttle name (/dev/shm/mpt.NAME)")
      ->required()
      ->check(segment_name());
  cmd->add_option("--rate", opts.rate, "units per --per seconds (max_n)")
      ->required()
      ->check(integer_in(1, 1'000'000'000));
  cmd->add_option("--per", opts.per_s, "seconds the rate refers to (default 1)")
      ->check(number_in(0, 86400, true));
  cmd->add_option("--hardcap", opts.hardcap, "limit (default), one or none")
      ->check(CLI::IsMember({"limit", "one", "none"}));
  cmd->add_flag("--stopped", opts.stopped, "make it without starting it (`mpt start NAME` later)");
  cmd->add_option("--mode", opts.mode, "file mode of the segment, octal (default 0600)")
      ->check(mode_octal());
  cmd->add_flag("--json", opts.json, "print one JSON document");
  return cmd;
}

int run_create(const CreateCmdOptions& opts) {
  const WarningLog warnings;  // e.g. uncalibrated where that falls short
  ThrottleOptions to;
  to.hardcap = hardcap_named(opts.hardcap);
  to.segment.mode = static_cast<mode_t>(std::strtoul(opts.mode.c_str(), nullptr, 8));
  to.segment.persist = true;
  std::optional<Throttle> made;
  try {
    made.emplace(
        Throttle::create(opts.name, opts.rate, std::chrono::duration<double>(opts.per_s), to));
  } catch (const AlreadyExists& e) {
    throw std::runtime_error(std::string(e.what()) + "; remove it first with `mpt rm " + opts.name +
                             "`, or use it as it is");
  }
  Throttle& t = *made;
  if (!opts.stopped) {
    try {
      t.start();
    } catch (...) {  // a throttle that says it was made but is not what was asked: none at all
      Throttle::remove(opts.name);
      throw;
    }
  }
  const Snapshot s = t.snapshot();
  if (opts.json) {
    nlohmann::json j = s;
    j["schema"] = kSchemaVersion;
    j["command"] = "create";
    j["mode"] = mode_text(to.segment.mode);
    j["persistent"] = true;
    j["warnings"] = warnings.messages();
    print_json(j);
    return kExitOk;
  }
  std::printf("created throttle %s (id %s): ", opts.name.c_str(), hex_id(s.id).c_str());
  print_rate_line(s);
  std::printf(", %s, mode %s\n", to_string(s.state), mode_text(to.segment.mode).c_str());
  std::printf("it stays until `mpt rm %s`; `mpt acquire %s` takes a unit\n", opts.name.c_str(),
              opts.name.c_str());
  return kExitOk;
}

// --- mpt acquire --------------------------------------------------------------------------------

CLI::App* setup_acquire(CLI::App& app, AcquireOptions& opts) {
  CLI::App* cmd = app.add_subcommand(
      "acquire", "Wait until a named throttle grants N units (exit 0), or say why it cannot (1)");
  cmd->add_option("NAME", opts.name, "throttle name (as `mpt create` made it)")
      ->required()
      ->check(segment_name());
  cmd->add_option("-n", opts.n, "units to take at once (default 1; at most the throttle's rate)")
      ->check(integer_in(1, 1'000'000'000));
  cmd->add_option("--timeout", opts.timeout_s,
                  "give up, taking nothing, unless granted within S seconds; fails at once when "
                  "the throttle's next free slot is later (0: only what is available now; "
                  "default: wait as long as it takes)")
      ->check(number_in(0, kMaxTimeoutS));
  cmd->add_flag("--json", opts.json,
                "print the grant as one line of JSON (an error as {\"error\": ...})");
  return cmd;
}

namespace {

// install_stop_handlers(), but a stop signal this process was started with ignored stays ignored:
// a script's background job (`loop &`) has SIGINT and SIGQUIT ignored, so that Ctrl-C meant for
// the foreground does not end it. (SIGPIPE, which main() ignores, is not looked at.)
void install_stop_handlers_keeping_ignored() {
  constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  bool ignored[std::size(kSignals)] = {};
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction old {};
    ignored[i] = ::sigaction(kSignals[i], nullptr, &old) == 0 && old.sa_handler == SIG_IGN;
  }
  install_stop_handlers();
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    if (ignored[i]) ::signal(kSignals[i], SIG_IGN);
  }
}

// A stop signal has come: the wait gives up (Interrupt::check; see install_stop_handlers()).
bool stop_signalled(void*) {
  return stop_signal() != 0;
}

// Waits for the units; nullopt if they were not granted (then: why is for the caller to find).
std::optional<Clock::time_point> wait_for_units(Throttle& t, const AcquireOptions& opts) {
  if (opts.timeout_s == 0) {  // what is there now, as await_fuel() with a zero timeout
    if (!t.has_fuel(opts.n)) return std::nullopt;
    return Clock::now();
  }
  Clock::time_point deadline = Clock::time_point::max();
  if (!std::isnan(opts.timeout_s)) {
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(opts.timeout_s));
  }
  const Interrupt interrupt{stop_signalled, nullptr, std::chrono::milliseconds(100)};
  return t.await_grant(deadline, opts.n, interrupt);
}

// Why `opts.n` units were not granted: the message of exit 1.
std::string why_not_granted(const Throttle& t, const AcquireOptions& opts) {
  const ThrottleState state = t.state();
  const std::string what = "throttle '" + opts.name + "' cannot grant " + units(opts.n);
  if (state != ThrottleState::kRunning) {
    return "throttle '" + opts.name + "' was stopped while `mpt acquire` waited; no unit was " +
           "granted (`mpt start " + opts.name + "` starts it again)";
  }
  if (std::isnan(opts.timeout_s)) {  // running again: stopped and started while it waited
    return "throttle '" + opts.name + "' was stopped and started again while `mpt acquire` " +
           "waited; no unit was granted";
  }
  if (opts.timeout_s == 0) return what + " now (--timeout 0); nothing was taken";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", opts.timeout_s);
  return what + " within --timeout " + buf + " s (its next free slot is later); nothing was taken";
}

void print_grant_json(const AcquireOptions& opts, Clock::time_point asked,
                      Clock::time_point granted) {
  const auto ns = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  // On one line: a loop appending to a file makes JSON Lines.
  print_json({{"schema", kSchemaVersion},
              {"command", "acquire"},
              {"name", opts.name},
              {"units", opts.n},
              {"granted_ns", ns(granted)},
              {"waited_s", std::chrono::duration<double>(granted - asked).count()}},
             false);
}

}  // namespace

int run_acquire(const AcquireOptions& opts) {
  install_stop_handlers_keeping_ignored();
  Throttle t = open_named(opts.name);
  const Snapshot s = t.snapshot();
  if (opts.n > s.max_n) {
    char per[32];
    std::snprintf(per, sizeof per, "%g", s.per_s);
    throw UsageError("-n " + std::to_string(opts.n) + " is more than throttle '" + opts.name +
                     "' grants per " + per + " s (" + std::to_string(s.max_n) + ")");
  }
  if (s.state != ThrottleState::kRunning) refuse(not_running(opts.name, s.state));
  const Clock::time_point asked = Clock::now();
  std::optional<Clock::time_point> granted;
  if (stop_signal() == 0) granted = wait_for_units(t, opts);
  if (granted) {
    if (opts.json) print_grant_json(opts, asked, *granted);
    return kExitOk;
  }
  if (const int sig = stop_signal(); sig != 0) {
    die_of(sig,
           "acquire " + opts.name + ": interrupted by " + signal_name(sig) +
               " while waiting; no unit was granted",
           opts.json);
  }
  refuse(why_not_granted(t, opts));
}

// --- mpt start, mpt stop ------------------------------------------------------------------------

namespace {

CLI::App* setup_start_stop(CLI::App& app, StartStopOptions& opts, const char* verb,
                           const char* help) {
  CLI::App* cmd = app.add_subcommand(verb, help);
  cmd->add_option("NAME", opts.name, "throttle name")->required()->check(segment_name());
  cmd->add_flag("--json", opts.json, "print one JSON document");
  return cmd;
}

}  // namespace

CLI::App* setup_start(CLI::App& app, StartStopOptions& opts) {
  return setup_start_stop(app, opts, "start",
                          "Start a named throttle (one unit available at once); waiters wake");
}

CLI::App* setup_stop(CLI::App& app, StartStopOptions& opts) {
  return setup_start_stop(
      app, opts, "stop",
      "Stop a named throttle (waiters get no unit) and print its summary: total, runtime, rates");
}

int run_start(const StartStopOptions& opts) {
  Throttle t = open_named(opts.name);
  const ThrottleState was = t.state();
  t.start();
  if (opts.json) {
    print_json({{"schema", kSchemaVersion},
                {"command", "start"},
                {"name", opts.name},
                {"id", hex_id(t.id())},
                {"was", to_string(was)},
                {"state", to_string(t.state())}});
  } else if (was == ThrottleState::kRunning) {
    std::printf("throttle %s was already running\n", opts.name.c_str());
  } else {
    std::printf("started throttle %s (id %s)\n", opts.name.c_str(), hex_id(t.id()).c_str());
  }
  return kExitOk;
}

int run_stop(const StartStopOptions& opts) {
  Throttle t = open_named(opts.name);
  const ThrottleState was = t.state();
  const Summary s = t.stop();
  if (opts.json) {
    print_json({{"schema", kSchemaVersion},
                {"command", "stop"},
                {"name", opts.name},
                {"id", hex_id(t.id())},
                {"was", to_string(was)},
                {"summary", s}});
    return kExitOk;
  }
  std::printf("%s throttle %s (id %s)\n",
              was == ThrottleState::kStopped ? "already stopped:" : "stopped", opts.name.c_str(),
              hex_id(t.id()).c_str());
  std::printf("Runtime: %.6f s\n", s.runtime.count());
  std::printf("Total: %llu\n", static_cast<unsigned long long>(s.total));
  std::printf("Mean interval: %.6f s\n", s.mean_interval_s);
  std::printf("Mean rate: %.4f per second (total / runtime)\n", s.mean_rate_per_sec);
  return kExitOk;
}

}  // namespace mpt::cli
