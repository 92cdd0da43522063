// The PyMOTW multiprocessing topics (examples/mp/pymotw.cpp): each run, its exit status and the
// lines it must print checked.
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

namespace {

struct TopicRun {
  int status = -1;
  std::vector<std::string> lines;  // stdout and stderr, together
  bool has(const std::string& line) const {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  }
  int count_matching(const std::string& pattern) const {
    const std::regex re(pattern);
    return static_cast<int>(std::count_if(
        lines.begin(), lines.end(), [&](const std::string& l) { return std::regex_match(l, re); }));
  }
};

TopicRun run_topic(const std::string& topic) {
  TopicRun r;
  const std::string cmd = std::string(MPT_PYMOTW) + " " + topic + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  const int status = pclose(f);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::size_t a = 0, b;
  while ((b = text.find('\n', a)) != std::string::npos) {
    r.lines.push_back(text.substr(a, b - a));
    a = b + 1;
  }
  return r;
}

std::string all(const TopicRun& r) {
  std::string s;
  for (const auto& l : r.lines)
    s += l + "\n";
  return s;
}

TEST(PymotwTest, Subclass) {
  const TopicRun r = run_topic("subclass");
  ASSERT_EQ(r.status, 0) << all(r);
  for (int i = 1; i <= 5; ++i)
    EXPECT_TRUE(r.has("In Worker-" + std::to_string(i))) << all(r);
  EXPECT_EQ(r.lines.size(), 5u) << all(r);
}

TEST(PymotwTest, Logging) {
  const TopicRun r = run_topic("logging");
  ASSERT_EQ(r.status, 0) << all(r);
  // DEBUG: the library's INFO records and the worker's DEBUG one; then INFO only; then the hook.
  EXPECT_TRUE(r.has("[INFO/Process-1] child process calling run()")) << all(r);
  EXPECT_TRUE(r.has("[DEBUG/Process-1] done with the work")) << all(r);
  EXPECT_TRUE(r.has("[INFO/Process-1] process exiting with exitcode 0")) << all(r);
  EXPECT_TRUE(r.has("[INFO/Process-2] child process calling run()")) << all(r);
  EXPECT_FALSE(r.has("[DEBUG/Process-2] done with the work")) << all(r);
  EXPECT_EQ(r.count_matching(R"(my logger: INFO from Process-3 \(pid \d+\): .*)"), 2) << all(r);
  EXPECT_EQ(r.count_matching(R"(my logger: INFO from MainProcess \(pid \d+\): main: done)"), 1)
      << all(r);
  EXPECT_EQ(r.count_matching("Doing some work"), 3) << all(r);
}

TEST(PymotwTest, Comprehension) {
  const TopicRun r = run_topic("comprehension");
  ASSERT_EQ(r.status, 0) << all(r);
  EXPECT_TRUE(r.has("Input   : 0 1 2 3 4 5 6 7 8 9")) << all(r);
  EXPECT_TRUE(r.has("Built-in: 0 2 4 6 8 10 12 14 16 18")) << all(r);
  EXPECT_TRUE(r.has("Pool    : 0 2 4 6 8 10 12 14 16 18")) << all(r);
  EXPECT_TRUE(r.has("Endless : 0 2 4 6 8 10 12 14 16 18")) << all(r);
  EXPECT_EQ(r.count_matching(R"(Pool-worker-\d +Starting)"), 2) << all(r);
  EXPECT_EQ(r.count_matching(R"(pulled \d+ items of the endless source for 10 results)"), 1)
      << all(r);
}

TEST(PymotwTest, Manager) {
  const TopicRun r = run_topic("manager");
  ASSERT_EQ(r.status, 0) << all(r);
  EXPECT_TRUE(r.has("Results: {0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, 9: 18}"))
      << all(r);
  EXPECT_TRUE(r.has("After event, consumer got: This is the value")) << all(r);
  EXPECT_EQ(r.count_matching("Before event, consumer got: .*"), 1) << all(r);
}

// The earlier topics: each exits 0 and prints its telling line.
TEST(PymotwTest, EarlierTopics) {
  const std::vector<std::pair<std::string, std::string>> topics = {
      {"simple", "Worker: 4"},
      {"names", R"(my_service +Exiting)"},
      {"daemon", R"(daemon pid \d+ still alive: yes; exiting without joining it)"},
      {"join", "after join\\(\\): exitcode 0"},
      {"exitcodes", R"(killed +exitcode = +-9 +\(killed by signal 9 \(SIGKILL\)\))"},
      {"event", R"(block +wait_for_event: e.is_set\(\) -> true)"},
      {"lock", "main: lock taken, previous owner died: yes"},
      {"condition", R"(stage_2\[2\] +stage_2 running)"},
      {"semaphore", R"(Process-\d+ +working \(at most 2 at once\))"},
      {"map", "Output : 0 2 4 6 8 10 12 14 16 18"},
      {"mapreduce", "the     : 3"},
  };
  for (const auto& [topic, line] : topics) {
    const TopicRun r = run_topic(topic);
    EXPECT_EQ(r.status, 0) << topic << "\n" << all(r);
    EXPECT_GE(r.count_matching(line), 1) << topic << "\n" << all(r);
  }
}

}  // namespace
