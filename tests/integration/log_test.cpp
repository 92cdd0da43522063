// Per-process logging (mpt/log.hpp) with real child processes sharing one pipe.
#include "mpt/log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "log.hpp"  // the library's internal warnings (lib/src/sys), for the bridge test
#include "mpt/calibration.hpp"
#include "mpt/process.hpp"
#include "mpt/queue.hpp"

namespace mpt {
namespace {

using namespace std::chrono_literals;

// Restores the process-wide log state after each test.
class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { log_to_stderr(LogLevel::kWarning); }
};

// A pipe whose read end is drained by a thread into `text` until every write end is closed.
struct Pipe {
  int fd[2] = {-1, -1};
  std::string text;
  std::thread reader;
  Pipe() {
    EXPECT_EQ(pipe2(fd, O_CLOEXEC), 0);
    reader = std::thread([this] {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) text.append(buf, static_cast<std::size_t>(n));
    });
  }
  std::vector<std::string> close_and_lines() {
    close(fd[1]);
    reader.join();
    close(fd[0]);
    std::vector<std::string> lines;
    std::size_t a = 0, b;
    while ((b = text.find('\n', a)) != std::string::npos) {
      lines.push_back(text.substr(a, b - a));
      a = b + 1;
    }
    EXPECT_EQ(a, text.size()) << "the output ends mid-line";
    return lines;
  }
};

// The payload of record k of a worker: "k LEN " and LEN copies of one letter, LEN up to about
// 4000 bytes (lines near PIPE_BUF, where a split write would show).
std::string payload(int k) {
  const std::size_t len = static_cast<std::size_t>((k * 997) % 4000);
  return std::to_string(k) + " " + std::to_string(len) + " " +
         std::string(len, static_cast<char>('a' + k % 26));
}

// Four processes write 1500 records each, of up to ~4 KiB, into one pipe at once: every line is
// whole, and carries its writer's name and pid.
TEST_F(LogTest, ManyProcessesShareOnePipeLinesStayWholeAndAttributed) {
  Pipe out;
  log_to_stderr(LogLevel::kInfo, {.show_pid = true, .fd = out.fd[1]});
  constexpr int kRecords = 1500;
  ProcessGroup g(4,
                 [](int) {
                   for (int k = 0; k < kRecords; ++k)
                     log_info(payload(k));
                 },
                 {.name = "w"});
  g.start();
  ASSERT_TRUE(g.join(60s));
  EXPECT_EQ(g.succeeded(), 4);
  std::map<std::string, std::string> prefix_of;  // "w-1" -> "[INFO/w-1:pid] "
  for (int i = 0; i < 4; ++i)
    prefix_of[g[i].name()] = "[INFO/" + g[i].name() + ":" + std::to_string(g[i].pid()) + "] ";
  std::map<std::string, int> next;  // per worker: the next record expected (each writes in order)
  std::map<std::string, int> calling, exiting;
  for (const std::string& line : out.close_and_lines()) {
    ASSERT_LE(line.size() + 1, static_cast<std::size_t>(PIPE_BUF));
    const auto slash = line.find('/'), colon = line.find(':');
    ASSERT_TRUE(slash != std::string::npos && colon != std::string::npos) << line.substr(0, 80);
    const std::string name = line.substr(slash + 1, colon - slash - 1);
    ASSERT_TRUE(prefix_of.count(name)) << line.substr(0, 80);
    ASSERT_EQ(line.rfind(prefix_of[name], 0), 0u) << line.substr(0, 80);
    const std::string text = line.substr(prefix_of[name].size());
    if (text == "child process calling run()") {
      ++calling[name];
    } else if (text == "process exiting with exitcode 0") {
      ++exiting[name];
    } else {
      ASSERT_EQ(text, payload(next[name])) << name << " record " << next[name];
      ++next[name];
    }
  }
  for (const auto& [name, prefix] : prefix_of) {
    EXPECT_EQ(next[name], kRecords) << name;
    EXPECT_EQ(calling[name], 1) << name;
    EXPECT_EQ(exiting[name], 1) << name;
  }
}

// A message longer than a line can carry, or holding newlines, goes out as several whole lines,
// each with the prefix, none over PIPE_BUF, never cutting a UTF-8 character.
TEST_F(LogTest, LongAndMultiLineMessagesBecomeSeveralWholeLines) {
  Pipe out;
  log_to_stderr(LogLevel::kDebug, {.fd = out.fd[1]});
  std::string e_acute;
  for (int i = 0; i < 5000; ++i)
    e_acute += "\xc3\xa9";  // é: 10000 bytes
  log_warning(e_acute);
  log_error("first\nsecond\n\nfourth\n");
  log_debug("");
  const std::vector<std::string> lines = out.close_and_lines();
  const std::string w = "[WARNING/MainProcess] ";
  std::string joined;
  std::size_t i = 0;
  for (; i < lines.size() && lines[i].rfind(w, 0) == 0; ++i) {
    EXPECT_LE(lines[i].size() + 1, static_cast<std::size_t>(PIPE_BUF));
    EXPECT_EQ((lines[i].size() - w.size()) % 2, 0u) << "a character was cut";
    joined += lines[i].substr(w.size());
  }
  EXPECT_EQ(i, 3u);  // 10000 bytes in lines of at most 4096 - prefix - newline
  EXPECT_EQ(joined, e_acute);
  const std::vector<std::string> rest(lines.begin() + static_cast<std::ptrdiff_t>(i), lines.end());
  EXPECT_EQ(rest, (std::vector<std::string>{"[ERROR/MainProcess] first",
                                            "[ERROR/MainProcess] second", "[ERROR/MainProcess] ",
                                            "[ERROR/MainProcess] fourth", "[DEBUG/MainProcess] "}));
  EXPECT_EQ(format_log_record(LogLevel::kInfo, "Process-1", 42, "hi"), "[INFO/Process-1] hi");
  EXPECT_EQ(format_log_record(LogLevel::kInfo, "Process-1", 42, "hi", true),
            "[INFO/Process-1:42] hi");
}

using Record = std::tuple<LogLevel, std::string, pid_t, std::string>;

TEST_F(LogTest, TheLevelFiltersRecords) {
  std::vector<Record> got;
  set_log_sink([&](LogLevel l, std::string_view p, pid_t pid, std::string_view m) {
    got.emplace_back(l, std::string(p), pid, std::string(m));
  });
  EXPECT_EQ(log_level(), LogLevel::kWarning);  // the default, as Python's
  log_debug("d");
  log_info("i");
  log_warning("w");
  log_error("e");
  set_log_level(LogLevel::kDebug);
  EXPECT_TRUE(log_enabled(LogLevel::kDebug));
  log_debug("d2");
  set_log_level(LogLevel::kOff);
  EXPECT_FALSE(log_enabled(LogLevel::kError));
  log_error("e2");
  const pid_t me = getpid();
  EXPECT_EQ(got, (std::vector<Record>{{LogLevel::kWarning, "MainProcess", me, "w"},
                                      {LogLevel::kError, "MainProcess", me, "e"},
                                      {LogLevel::kDebug, "MainProcess", me, "d2"}}));
  EXPECT_EQ(log_level_name(LogLevel::kInfo), "INFO");
  EXPECT_EQ(log_level_name(static_cast<LogLevel>(25)), "Level 25");
}

// The hook receives the records of every process, made in that process: here the sink forwards
// them through a Queue to the parent. It is inherited by children, returned when replaced, and
// one that throws loses only its record.
TEST_F(LogTest, TheSinkReceivesEveryProcesssRecordsWithNameAndPid) {
  auto q = Queue::anonymous({.capacity = 64, .max_message_bytes = 256});
  EXPECT_FALSE(
      set_log_sink([q](LogLevel l, std::string_view p, pid_t pid, std::string_view m) mutable {
        (void)q.put(std::to_string(static_cast<int>(l)) + "|" + std::string(p) + "|" +
                        std::to_string(pid) + "|" + std::string(m),
                    5s);
      }));
  set_log_level(LogLevel::kInfo);
  Process a([] { log_warning("from a"); }, {.name = "a"});
  Process b([] { log_debug("dropped"); }, {.name = "b"});
  a.start();
  ASSERT_TRUE(a.join(10s));
  b.start();
  ASSERT_TRUE(b.join(10s));
  const std::string pa = std::to_string(a.pid()), pb = std::to_string(b.pid());
  std::vector<std::string> got;
  while (auto m = q.get_value<std::string>(0ns))
    got.push_back(*m);
  EXPECT_EQ(got, (std::vector<std::string>{"20|a|" + pa + "|child process calling run()",
                                           "30|a|" + pa + "|from a",
                                           "20|a|" + pa + "|process exiting with exitcode 0",
                                           "20|b|" + pb + "|child process calling run()",
                                           "20|b|" + pb + "|process exiting with exitcode 0"}));
  EXPECT_TRUE(set_log_sink([](LogLevel, std::string_view, pid_t, std::string_view) {
    throw std::runtime_error("sink broke");
  }));
  log_error("lost, quietly");
  Process c([] { return 3; });
  c.start();
  ASSERT_TRUE(c.join(10s));
  EXPECT_EQ(c.exitcode(), 3);
}

// The library's own warnings keep their hook (set_log_hook); one line routes them here.
TEST_F(LogTest, LibraryWarningsCanBeRoutedIntoTheProcessLog) {
  std::vector<Record> got;
  set_log_sink([&](LogLevel l, std::string_view p, pid_t pid, std::string_view m) {
    got.emplace_back(l, std::string(p), pid, std::string(m));
  });
  LogHook old = set_log_hook([](std::string_view m) { log(LogLevel::kWarning, m); });
  detail::warn("a library warning");
  set_log_hook(std::move(old));
  EXPECT_EQ(
      got,
      (std::vector<Record>{{LogLevel::kWarning, "MainProcess", getpid(), "a library warning"}}));
}

}  // namespace
}  // namespace mpt
