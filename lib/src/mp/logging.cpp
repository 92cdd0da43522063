// Per-process logging (mpt/log.hpp): the level, the sink, and the line writer.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include "mpt/log.hpp"
#include "mpt/process.hpp"

namespace mpt {

namespace {

// Lines are written whole by one write(2) of at most PIPE_BUF bytes (atomic on a pipe).
constexpr std::size_t kMaxLine = PIPE_BUF;
// A process name longer than this is cut in the prefix, so that a line always has room for text.
constexpr std::size_t kMaxNameInPrefix = 256;

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarning)};
std::atomic<int> g_fd{2};
std::atomic<bool> g_show_pid{false};
std::shared_ptr<const LogSink> g_sink;  // null: the lines; guarded by sink_mutex()

void lock_for_fork() noexcept;
void unlock_after_fork() noexcept;

// The mutex guarding g_sink. It is held across fork() (pthread_atfork), so that a child forked
// while another thread swaps the sink never inherits it locked.
std::mutex& sink_mutex() {
  static std::mutex m;
  static const bool registered = [] {
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
    return true;
  }();
  (void)registered;
  return m;
}

void lock_for_fork() noexcept {
  sink_mutex().lock();
}

void unlock_after_fork() noexcept {
  sink_mutex().unlock();
}

void write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // a log never fails its caller
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// How much of `text` fits in `room` bytes without cutting a UTF-8 character (a cut is only moved
// back over continuation bytes; text that is not UTF-8 is cut at `room`).
std::size_t fitting(std::string_view text, std::size_t room) noexcept {
  if (text.size() <= room) return text.size();
  std::size_t take = room;
  for (int k = 0; k < 3 && take > 0 && (static_cast<unsigned char>(text[take]) & 0xC0) == 0x80; ++k)
    --take;
  return take > 0 ? take : room;
}

// Writes message as lines "<prefix><text>\n" of at most kMaxLine bytes each, one write(2) per
// line: one line per line of the message, long lines split.
void write_lines(int fd, std::string_view prefix, std::string_view message) noexcept {
  char buf[kMaxLine];
  std::memcpy(buf, prefix.data(), prefix.size());
  const std::size_t room = kMaxLine - prefix.size() - 1;
  if (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  for (;;) {
    const std::size_t nl = message.find('\n');
    std::string_view line = message.substr(0, nl);
    do {
      const std::size_t take = fitting(line, room);
      std::memcpy(buf + prefix.size(), line.data(), take);
      buf[prefix.size() + take] = '\n';
      write_all(fd, buf, prefix.size() + take + 1);
      line.remove_prefix(take);
    } while (!line.empty());
    if (nl == std::string_view::npos) return;
    message.remove_prefix(nl + 1);
  }
}

// "[LEVEL/name] " or "[LEVEL/name:pid] ", the name cut to kMaxNameInPrefix bytes.
std::string prefix_of(LogLevel level, std::string_view process, pid_t pid, bool show_pid) {
  std::string p = "[" + log_level_name(level) + "/";
  p.append(process.substr(0, fitting(process, kMaxNameInPrefix)));
  if (show_pid) p += ":" + std::to_string(pid);
  p += "] ";
  return p;
}

}  // namespace

std::string log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kOff:
      return "OFF";
  }
  return "Level " + std::to_string(static_cast<int>(level));
}

void set_log_level(LogLevel level) noexcept {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel log_level() noexcept {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

void log_to_stderr(std::optional<LogLevel> level, StderrLogOptions options) {
  g_fd.store(options.fd, std::memory_order_relaxed);
  g_show_pid.store(options.show_pid, std::memory_order_relaxed);
  set_log_sink({});
  if (level) set_log_level(*level);
}

LogSink set_log_sink(LogSink sink) {
  auto next = sink ? std::make_shared<const LogSink>(std::move(sink)) : nullptr;
  std::shared_ptr<const LogSink> old;
  {
    std::lock_guard lock(sink_mutex());
    old = std::exchange(g_sink, std::move(next));
  }
  return old ? *old : LogSink{};
}

void log(LogLevel level, std::string_view message) noexcept {
  if (!log_enabled(level)) return;
  try {
    std::shared_ptr<const LogSink> sink;
    {
      std::lock_guard lock(sink_mutex());
      sink = g_sink;
    }
    const std::string& process = current_process_name();
    const pid_t pid = getpid();
    if (sink) {
      (*sink)(level, process, pid, message);
    } else {
      const bool show_pid = g_show_pid.load(std::memory_order_relaxed);
      write_lines(g_fd.load(std::memory_order_relaxed), prefix_of(level, process, pid, show_pid),
                  message);
    }
  } catch (...) {
  }
}

std::string format_log_record(LogLevel level, std::string_view process, pid_t pid,
                              std::string_view message, bool show_pid) {
  std::string line = prefix_of(level, process, pid, show_pid);
  line.append(message);
  return line;
}

}  // namespace mpt
