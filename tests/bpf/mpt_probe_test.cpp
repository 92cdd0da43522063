// `mpt probe` and `mpt run --probe` end to end: the real command, the real kernel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "emissions.hpp"

namespace {

using mpt::test::MptProcess;
using mpt::test::ProgramResult;
using mpt::test::run_mpt;

class MptProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = mpt::probe::missing_privileges();
    if (!missing.empty()) GTEST_SKIP() << "skipped: " << missing;
  }
};

TEST_F(MptProbeTest, RunWithProbeReportsZeroDifference) {
  const ProgramResult r =
      run_mpt({"run", "--rate", "1000", "--workers", "4", "--seconds", "2", "--probe", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("probe")) << r.out;
  EXPECT_EQ(j["probe"]["difference"].get<long long>(), 0);
  EXPECT_EQ(j["probe"]["kernel_count"].get<unsigned long long>(),
            j["summary"]["total"].get<unsigned long long>());
  EXPECT_EQ(j["probe"]["processes"].get<int>(), 4);
  EXPECT_NEAR(j["probe"]["kernel_rate_per_sec"].get<double>() / 1000.0, 1.0, 0.005);
}

// `mpt probe ARGS...` in the background, its stdout read line by line (through a pipe).
class Probe {
 public:
  explicit Probe(std::vector<std::string> args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    args.insert(args.begin(), "probe");
    mpt_.emplace(args, fds[1]);
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Probe() {
    mpt_.reset();  // kills and reaps it if it still runs
    if (out_) fclose(out_);
  }
  // The next line of its output ("" at the end).
  std::string line() {
    char buf[1 << 16];
    return out_ && fgets(buf, sizeof buf, out_) ? std::string(buf) : std::string();
  }
  // SIGINT, then every remaining line and the exit code.
  int interrupt(std::vector<std::string>& rest) {
    mpt_->signal(SIGINT);
    for (std::string l; !(l = line()).empty();)
      rest.push_back(l);
    return mpt_->wait().code;
  }

 private:
  std::optional<MptProcess> mpt_;
  FILE* out_ = nullptr;
};

// The JSON Lines of a probe: intervals counted, the totals document.
struct ProbeOutput {
  int intervals = 0;
  nlohmann::json totals;
};
ProbeOutput parse_lines(const std::vector<std::string>& lines) {
  ProbeOutput p;
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["schema"], 1);
    if (j["type"] == "interval") ++p.intervals;
    if (j["type"] == "totals") p.totals = j;
  }
  return p;
}

// Another `mpt run` on a named throttle, counted from outside; a second run on another throttle
// at the same time is left out by --name. The probe is attached (its first line is out) before
// either run starts.
TEST_F(MptProbeTest, ProbeSeesAnotherRunAndPrintsJsonLinesAndTotals) {
  const std::string name = "probe-test-" + std::to_string(getpid());
  Probe probe({"--name", name, "--interval", "0.2", "--json"});
  std::vector<std::string> lines = {probe.line()};
  ASSERT_FALSE(lines[0].empty()) << "the probe printed nothing";
  std::thread other([&] {
    run_mpt({"run", "--rate", "500", "--workers", "2", "--seconds", "1.5"});
  });
  const ProgramResult run =
      run_mpt({"run", "--rate", "200", "--workers", "2", "--seconds", "1.5", "--name", name});
  other.join();
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(probe.interrupt(lines), 0);
  const ProbeOutput p = parse_lines(lines);
  EXPECT_GE(p.intervals, 3);
  ASSERT_FALSE(p.totals.is_null());
  unsigned long long count = 0;
  for (const auto& row : p.totals["rows"]) {
    count += row["count"].get<unsigned long long>();
    EXPECT_EQ(row["name"], name) << row.dump();
    EXPECT_FALSE(row["interval_histogram"].empty());
  }
  EXPECT_EQ(p.totals["rows"].size(), 2u) << "the run's two workers";
  EXPECT_GE(count, 295u) << "200/s for 1.5 s, counted from outside";
  EXPECT_LE(count, 302u);
}

// --id: the kernel counts one throttle, exactly what its monitor counted; another throttle busy
// at the same time is not in the output.
TEST_F(MptProbeTest, ProbeByIdCountsOnlyThatThrottle) {
  mpt::Throttle mine(1000, std::chrono::seconds(1)), other(1000, std::chrono::seconds(1));
  char id[32];
  std::snprintf(id, sizeof id, "0x%016llx", static_cast<unsigned long long>(mine.id()));
  Probe probe({"--id", id, "--interval", "0.1", "--json"});
  std::vector<std::string> lines = {probe.line()};
  ASSERT_FALSE(lines[0].empty()) << "the probe printed nothing";
  const pid_t a = mpt::test::fork_worker(mine, 150);
  const pid_t b = mpt::test::fork_worker(other, 150);
  mine.start();
  other.start();
  EXPECT_EQ(mpt::test::wait_child(a, std::chrono::seconds(10)), 150);
  EXPECT_EQ(mpt::test::wait_child(b, std::chrono::seconds(10)), 150);
  ASSERT_EQ(probe.interrupt(lines), 0);
  const ProbeOutput p = parse_lines(lines);
  ASSERT_FALSE(p.totals.is_null());
  ASSERT_EQ(p.totals["rows"].size(), 1u) << p.totals.dump();
  EXPECT_EQ(p.totals["rows"][0]["throttle_id"], id);
  EXPECT_EQ(p.totals["rows"][0]["pid"], a);
  EXPECT_EQ(p.totals["rows"][0]["count"], 150u);
  EXPECT_EQ(mine.total(), 150u);
}

TEST_F(MptProbeTest, WithoutPrivilegesItExitsOneNamingTheCapabilities) {
  if (system("command -v setpriv >/dev/null 2>&1") != 0) GTEST_SKIP() << "skipped: no setpriv";
  const ProgramResult p =
      mpt::test::run_program({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "--inh-caps=-all", MPT_BINARY, "probe", "--seconds", "1"});
  const std::string out = p.out + p.err;  // stdout and stderr together
  EXPECT_EQ(p.code, 1) << out;
  EXPECT_NE(out.find("CAP_BPF"), std::string::npos) << out;
  EXPECT_NE(out.find("CAP_PERFMON"), std::string::npos) << out;
}

TEST_F(MptProbeTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run_mpt({"probe", "--pid", "abc"}).code, 2);
  EXPECT_EQ(run_mpt({"probe", "--interval", "nan"}).code, 2);
  EXPECT_EQ(run_mpt({"probe", "--lib", "/x", "--binary", "/y"}).code, 2);
  for (const char* id : {"0x0", "12", "0x", "0x12345678901234567", "0xg1"})
    EXPECT_EQ(run_mpt({"probe", "--id", id}).code, 2) << id;
  EXPECT_EQ(run_mpt({"probe", "--name", "a/b"}).code, 2);
  EXPECT_EQ(run_mpt({"probe", "--id", "0x1", "--name", "a"}).code, 2);
}

}  // namespace
