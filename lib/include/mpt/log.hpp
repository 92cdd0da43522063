// mpt/log.hpp — per-process logging (Python's multiprocessing.log_to_stderr() and get_logger()).
//
//   mpt::log_to_stderr(mpt::LogLevel::kDebug);   // records at DEBUG and above go to stderr
//   mpt::Process p([] { mpt::log_info("doing some work"); });
//   p.start();                                   // [INFO/Process-1] child process calling run()
//   p.join();                                    // [INFO/Process-1] doing some work
//                                                // [INFO/Process-1] process exiting with exitcode
//                                                0
//
// Every record carries the level, the name of the process that made it (current_process_name():
// "MainProcess", or the Process's name) and its pid. Records below the level are dropped where
// they are made (the default level is WARNING, as Python's; the library's own Process records are
// INFO, so they stay silent until the level is lowered).
//
// Lines: the default sink writes each record as "[LEVEL/name] message\n" ("[LEVEL/name:pid]" with
// show_pid) to stderr, or to the fd given, with one write(2) per line. A write of up to PIPE_BUF
// (4096) bytes to a pipe or FIFO is atomic, so lines from several processes sharing a pipe never
// interleave mid-line; a longer line could, so the sink never writes one: a message longer than
// that (after the prefix) goes out as several lines of at most 4096 bytes, each with the prefix,
// split at a UTF-8 character boundary; a message holding newlines goes out one line per line,
// each with the prefix. (Those lines of one message may then have other processes' lines
// between them, each of those whole.) Regular files opened with O_APPEND get the same one-write
// lines. Write errors are ignored (a log never fails its caller).
//
// The hook: set_log_sink(fn) hands every record that passes the level to fn(level, process, pid,
// message) instead, in the process that made it (children forked afterwards inherit it, as they
// inherit the level); the message is whole (no splitting). A sink that throws loses the record.
//
// The library's warnings (set_log_hook, mpt/calibration.hpp) are a separate channel with its own
// hook, kept as it was; to log them here too:
//   mpt::set_log_hook([](std::string_view m) { mpt::log(mpt::LogLevel::kWarning, m); });
//
// Safe for concurrent use by threads. Children forked while another thread changes the sink see
// the old or the new one, whole (the change is guarded against fork).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mpt {

// Python's logging levels, with their numbers; kOff drops everything.
enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40, kOff = 100 };

// "DEBUG", "INFO", "WARNING", "ERROR", "OFF"; "Level N" for another number (as Python).
std::string log_level_name(LogLevel level);

// The level: records below it are dropped. Default kWarning.
void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;
inline bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= static_cast<int>(log_level()) && level != LogLevel::kOff;
}

struct StderrLogOptions {
  bool show_pid = false;  // "[INFO/Process-1:4242] ..." rather than Python's "[INFO/Process-1] ..."
  int fd = 2;             // where the lines go (stderr); the fd stays the caller's
};

// log_to_stderr(level, options): Python's multiprocessing.log_to_stderr(level): records go to
// stderr (options.fd) as lines, replacing any sink set before; sets the level when one is given.
void log_to_stderr(std::optional<LogLevel> level = std::nullopt, StderrLogOptions options = {});

// The hook: set_log_sink(fn) sends every record to fn instead of the lines; an empty function
// goes back to the lines. Returns the previous sink (empty when it was the lines).
using LogSink = std::function<void(LogLevel level, std::string_view process, pid_t pid,
                                   std::string_view message)>;
LogSink set_log_sink(LogSink sink);

// Makes a record from the calling process, if `level` passes. Never throws.
void log(LogLevel level, std::string_view message) noexcept;
inline void log_debug(std::string_view message) noexcept {
  log(LogLevel::kDebug, message);
}
inline void log_info(std::string_view message) noexcept {
  log(LogLevel::kInfo, message);
}
inline void log_warning(std::string_view message) noexcept {
  log(LogLevel::kWarning, message);
}
inline void log_error(std::string_view message) noexcept {
  log(LogLevel::kError, message);
}

// The line the default sink writes for a record, without the newline and unsplit:
// "[INFO/Process-1] message", or "[INFO/Process-1:4242] message" with show_pid.
std::string format_log_record(LogLevel level, std::string_view process, pid_t pid,
                              std::string_view message, bool show_pid = false);

}  // namespace mpt
