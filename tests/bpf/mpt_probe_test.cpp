// `mpt probe` and `mpt run --probe` end to end: the real command, the real kernel.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "emissions.hpp"

namespace {

struct Out {
  int code;
  std::string out;
};

// Runs a shell command line; stdout is captured, stderr joins it when asked.
Out sh(const std::string& cmd) {
  Out r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class MptProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = mpt::probe::missing_privileges();
    if (!missing.empty()) GTEST_SKIP() << "skipped: " << missing;
  }
};

TEST_F(MptProbeTest, RunWithProbeReportsZeroDifference) {
  const Out r =
      sh(std::string(MPT_BINARY) + " run --rate 1000 --workers 4 --seconds 2 --probe --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("probe")) << r.out;
  EXPECT_EQ(j["probe"]["difference"].get<long long>(), 0);
  EXPECT_EQ(j["probe"]["kernel_count"].get<unsigned long long>(),
            j["summary"]["total"].get<unsigned long long>());
  EXPECT_EQ(j["probe"]["processes"].get<int>(), 4);
  EXPECT_NEAR(j["probe"]["kernel_rate_per_sec"].get<double>() / 1000.0, 1.0, 0.005);
}

TEST_F(MptProbeTest, ProbeSeesAnotherRunAndPrintsJsonLinesAndTotals) {
  const std::string bin = MPT_BINARY;
  std::thread load([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sh(bin + " run --rate 200 --workers 2 --seconds 1.5 >/dev/null 2>&1");
  });
  const Out r = sh(bin + " probe --seconds 2.5 --interval 0.5 --json");
  load.join();
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  int intervals = 0;
  nlohmann::json totals;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["schema"], 1);
    if (j["type"] == "interval") ++intervals;
    if (j["type"] == "totals") totals = j;
  }
  EXPECT_GE(intervals, 3);
  ASSERT_FALSE(totals.is_null()) << r.out;
  unsigned long long count = 0;
  for (const auto& row : totals["rows"]) {
    count += row["count"].get<unsigned long long>();
    EXPECT_FALSE(row["interval_histogram"].empty());
  }
  EXPECT_GE(count, 295u) << "200/s for 1.5 s, counted from outside";
  EXPECT_LE(count, 302u);
}

TEST_F(MptProbeTest, WithoutPrivilegesItExitsOneNamingTheCapabilities) {
  if (system("command -v setpriv >/dev/null 2>&1") != 0) GTEST_SKIP() << "skipped: no setpriv";
  const Out r = sh("setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " +
                   std::string(MPT_BINARY) + " probe --seconds 1 2>&1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("CAP_BPF"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CAP_PERFMON"), std::string::npos) << r.out;
}

TEST_F(MptProbeTest, UsageErrorsExitTwo) {
  EXPECT_EQ(sh(std::string(MPT_BINARY) + " probe --pid abc 2>/dev/null").code, 2);
  EXPECT_EQ(sh(std::string(MPT_BINARY) + " probe --interval nan 2>/dev/null").code, 2);
  EXPECT_EQ(sh(std::string(MPT_BINARY) + " probe --lib /x --binary /y 2>/dev/null").code, 2);
}

}  // namespace
