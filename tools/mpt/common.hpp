// tools/mpt/common.hpp — what the `mpt` subcommands share: option validators, this host's identity,
// JSON conversions, signal handling and the error/exit-code policy.
//
// Exit codes: 0 success, 1 runtime error (segment not found, permission, incompatible segment,
// any other operating-system failure), 2 usage error (bad flag or value; the message names it).
// With --json every error is printed as {"error": "..."} on stdout; without it, as text on stderr.
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mpt/calibration.hpp"
#include "mpt/monitor.hpp"
#include "mpt/segment.hpp"

namespace mpt::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kSchemaVersion = 1;
// `mpt run --json`: 2 since it reports the configuration in force, the achieved rate ((count - 1) /
// (last - first), free of the unit given at start) and the probe's rates by that definition.
inline constexpr int kRunSchemaVersion = 2;

// A usage error found after parsing (a combination of flags, say): exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Validators for CLI11 options. Each accepts only the whole string as a number (no trailing
// garbage, no NaN or infinity) within [min, max]; the error names the flag through CLI11.
CLI::Validator integer_in(std::int64_t min, std::int64_t max);
CLI::Validator number_in(double min, double max, bool min_exclusive = false,
                         bool max_exclusive = false);
CLI::Validator segment_name();
// Whether `name` is a valid segment name (Segment::validate_name): a file in the segment directory
// whose name is not is listed as invalid and never removed by `rm --stale`.
bool is_segment_name(std::string_view name);

// A comma-separated list option ("10,100,1000"), given once or repeated: each element is checked
// by `each` (the message names the flag through CLI11), and an empty element ("10,", ",", "1,,2")
// is an error. The option stores the strings as given; split_list() gives the elements.
CLI::Option* add_list_option(CLI::App* app, const std::string& flag, std::vector<std::string>& out,
                             const CLI::Validator& each, const std::string& help);
std::vector<std::string> split_list(const std::vector<std::string>& given);

// The Hardcap whose to_string() is `name` ("limit", "one", "none"); UsageError naming `flag`
// otherwise.
Hardcap hardcap_named(const std::string& name, const std::string& flag = "--hardcap");

// "0x" and 16 hex digits: 64-bit ids do not survive JSON numbers in most readers.
std::string hex_id(std::uint64_t id);

// kill(pid, 0) succeeds or fails with EPERM.
bool pid_alive(std::int32_t pid);
double age_seconds(std::int64_t created_realtime_ns);

// Installs handlers (without SA_RESTART) that record the signal for SIGINT, SIGTERM, SIGHUP,
// SIGQUIT and SIGPIPE: each ends a long command (run, stat --watch, probe) the same way, with its
// cleanup (the named segment removed, workers reaped). A SIGPIPE handler also makes writes to a
// closed pipe fail with EPIPE, which main() reports. (main() ignores SIGPIPE for every command.)
void install_stop_handlers();
// The signal received since install_stop_handlers(), or 0.
int stop_signal();
// "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGPIPE", else "signal".
const char* signal_name(int sig);

// The library's warnings (its log hook) while a command runs: each is printed at once on stderr
// as "mpt: warning: ...", and kept for the JSON document's "warnings" array. Restores the previous
// hook when it goes. Make one per command, before the throttle.
class WarningLog {
 public:
  WarningLog();
  ~WarningLog();
  WarningLog(const WarningLog&) = delete;
  WarningLog& operator=(const WarningLog&) = delete;
  std::vector<std::string> messages() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Prints a JSON document on stdout: indented when `pretty`, else on one line (JSON Lines). Every
// string is made valid UTF-8 on the way (an invalid byte becomes U+FFFD): file names and
// arguments are bytes, and JSON output must never fail for them.
void print_json(const nlohmann::json& j, bool pretty = true);
// The same document as text, never throwing (a document that cannot be dumped gives "{}").
std::string dump_json(const nlohmann::json& j, bool pretty = true) noexcept;

// `s` made safe to print for a person on a terminal: control bytes (C0, DEL, and the C1 controls
// U+0080..U+009F that terminals obey too) and bytes that are not valid UTF-8 are written as \xNN.
// With `keep_newlines`, '\n' and '\t' stay (for multi-line text). Every string from outside
// (file names, file contents, arguments echoed in errors) goes through it before text output.
std::string printable(std::string_view s, bool keep_newlines = false);

}  // namespace mpt::cli

// JSON for the library's types; in namespace mpt so that nlohmann_json finds them by ADL.
namespace mpt {
// The keys of the calibration file's "host" object: hostname, kernel, cpu_model, cores,
// clocksource.
void to_json(nlohmann::json& j, const HostIdentity& h);
void to_json(nlohmann::json& j, const Rate& r);
void to_json(nlohmann::json& j, const Summary& s);
void to_json(nlohmann::json& j, const Snapshot& s);
void to_json(nlohmann::json& j, const SegmentInfo& s);
}  // namespace mpt
