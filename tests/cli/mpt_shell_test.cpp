// `mpt create`, `mpt acquire`, `mpt start`, `mpt stop` (tools/mpt/cmd_shell.cpp): shell scripts
// sharing a named throttle. Real `bash` loops run the built `mpt`; each test has a private segment
// directory ($MPT_SHM_DIR) under /dev/shm, removed at the end whatever happened, so the throttles
// it made go with it and `ls` / `rm --stale` see only those.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "mpt/throttle.hpp"
#include "test_util.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using mpt::test::contains;
using mpt::test::MptProcess;
using mpt::test::parse;
using mpt::test::ProgramResult;
using mpt::test::run_mpt;
using mpt::test::run_program;
using mpt::test::slurp_file;

// As `mpt` prints ids: "0x" and 16 hex digits.
std::string hex_id(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(id));
  return buf;
}

class MptShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/dev/shm/" + mpt::test::unique_name("shell-dir");
    fs::create_directories(dir_);
    setenv("MPT_SHM_DIR", dir_.c_str(), 1);
    name_ = mpt::test::unique_name("sh");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);  // every throttle the test made, and the loops' files
    unsetenv("MPT_SHM_DIR");
  }
  bool exists(const std::string& name) const { return fs::exists(dir_ + "/mpt." + name); }
  // `mpt stop NAME --json`'s summary.total.
  std::uint64_t stop_total(const std::string& name) {
    const ProgramResult r = run_mpt({"stop", name, "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return parse(r.out)["summary"]["total"].get<std::uint64_t>();
  }
  // Creates NAME, running, at `rate` per `per` seconds.
  void create(const std::string& rate, const std::string& per = "1",
              const std::string& hardcap = "limit") {
    const ProgramResult r =
        run_mpt({"create", name_, "--rate", rate, "--per", per, "--hardcap", hardcap});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::string dir_;
  std::string name_;
};

// JSON Lines: one document per non-empty line.
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(parse(line));
  return out;
}

// Three bash loops take K units each from one throttle with hardcap one (25 per second): each loop
// gets all of its units, the throttle's total is the number of grants, and no second holds more
// than 25 of them: any 26 consecutive grant times (the library's, printed by `acquire --json`)
// span at least one second. Only this lower bound is checked; how long it took is not.
TEST_F(MptShellTest, ThreeShellLoopsShareOneThrottle) {
  constexpr int kLoops = 3;
  constexpr int kEach = 20;
  constexpr std::int64_t kRate = 25;
  create(std::to_string(kRate), "1", "one");
  const std::string loop =
      "for i in $(seq \"$3\"); do \"$1\" acquire \"$2\" --json >> \"$4\" || exit 1; done";
  std::vector<std::unique_ptr<mpt::test::Program>> loops;
  std::vector<std::string> files;
  for (int i = 0; i < kLoops; ++i) {
    files.push_back(dir_ + "/grants-" + std::to_string(i));
    loops.push_back(std::make_unique<mpt::test::Program>(std::vector<std::string>{
        "bash", "-c", loop, "bash", MPT_BINARY, name_, std::to_string(kEach), files.back()}));
  }
  std::vector<std::int64_t> grants;
  for (int i = 0; i < kLoops; ++i) {
    const ProgramResult r = loops[i]->wait(120s);
    EXPECT_EQ(r.code, 0) << "loop " << i << ": " << r.err;
    const std::vector<json> lines = json_lines(slurp_file(files[i]));
    EXPECT_EQ(lines.size(), static_cast<std::size_t>(kEach)) << "loop " << i;
    for (const json& j : lines) {
      EXPECT_EQ(j["units"], 1);
      EXPECT_EQ(j["name"], name_);
      grants.push_back(j["granted_ns"].get<std::int64_t>());
    }
  }
  ASSERT_EQ(grants.size(), static_cast<std::size_t>(kLoops * kEach));
  EXPECT_EQ(stop_total(name_), grants.size()) << "every grant counted once, nothing else";
  std::sort(grants.begin(), grants.end());
  for (std::size_t i = 0; i + kRate < grants.size(); ++i) {
    EXPECT_GE(grants[i + kRate] - grants[i], 1'000'000'000)
        << kRate + 1 << " grants from #" << i << " within less than 1 s";
  }
}

// The docs' crawl loop, as written there (with echo for curl): every line gets through, once.
TEST_F(MptShellTest, TheCrawlLoopOfTheDocs) {
  create("1000");
  const std::string script =
      "printf 'a\\nb\\nc\\nd\\n' | while read -r url; do \"$1\" acquire \"$2\" && echo \"$url\"; "
      "done";
  const ProgramResult r = run_program({"bash", "-c", script, "bash", MPT_BINARY, name_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\nc\nd\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(stop_total(name_), 4u);
}

// The throttle outlives `mpt create` (whose pid is gone); a second create fails and names the fix;
// the throttle it found is left as it was.
TEST_F(MptShellTest, CreatedThrottleSurvivesItsCommandAndCreateTwiceFails) {
  const ProgramResult made = run_mpt({"create", name_, "--rate", "7", "--per", "2", "--json"});
  ASSERT_EQ(made.code, 0) << made.err;
  const json j = parse(made.out);
  EXPECT_EQ(j["name"], name_);
  EXPECT_EQ(j["max_n"], 7);
  EXPECT_EQ(j["per_s"], 2.0);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["persistent"], true);
  EXPECT_EQ(j["mode"], "0600");
  ASSERT_TRUE(exists(name_));
  auto t = mpt::Throttle::open(name_);
  EXPECT_EQ(hex_id(t.id()), j["id"].get<std::string>());
  EXPECT_TRUE(t.running());
  EXPECT_NE(kill(j["creator_pid"].get<pid_t>(), 0), 0) << "its creator is gone";

  const ProgramResult again = run_mpt({"create", name_, "--rate", "1"});
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(contains(again.err, "already exists")) << again.err;
  EXPECT_TRUE(contains(again.err, "mpt rm " + name_)) << again.err;
  const ProgramResult again_json = run_mpt({"create", name_, "--rate", "1", "--json"});
  EXPECT_EQ(again_json.code, 1);
  EXPECT_TRUE(contains(parse(again_json.out)["error"].get<std::string>(), "already exists"));
  EXPECT_EQ(mpt::Throttle::open(name_).snapshot().max_n, 7) << "the first one is untouched";
}

// Not started (--stopped), or stopped: exit 1 at once with the message; nothing is counted.
TEST_F(MptShellTest, AcquireOnAThrottleThatIsNotRunningExits1) {
  ASSERT_EQ(run_mpt({"create", name_, "--rate", "10", "--stopped"}).code, 0);
  ProgramResult r = run_mpt({"acquire", name_});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "has not been started")) << r.err;
  EXPECT_TRUE(contains(r.err, "mpt start " + name_)) << r.err;
  ASSERT_EQ(run_mpt({"start", name_}).code, 0);
  ASSERT_EQ(run_mpt({"acquire", name_}).code, 0);
  EXPECT_EQ(stop_total(name_), 1u);
  r = run_mpt({"acquire", name_});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "is stopped")) << r.err;
  r = run_mpt({"acquire", name_, "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(parse(r.out)["error"].get<std::string>(), "is stopped")) << r.out;
  EXPECT_EQ(stop_total(name_), 1u);
}

// A waiter (one unit per hour, already taken) gets no unit when the throttle is stopped: exit 1.
TEST_F(MptShellTest, StopWhileAcquireWaitsExits1) {
  create("1", "3600");
  ASSERT_EQ(run_mpt({"acquire", name_}).code, 0);
  MptProcess waiter({"acquire", name_});
  ASSERT_TRUE(mpt::test::wait_until_futex_asleep(waiter.pid())) << "the waiter never slept";
  EXPECT_EQ(stop_total(name_), 1u);
  const ProgramResult r = waiter.wait(60s);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "was stopped while")) << r.err;
  EXPECT_EQ(mpt::Throttle::open(name_).total(), 1u);
}

// A timeout the next free slot is beyond fails at once: with one unit a day already taken, a
// --timeout of 3000 s would outlast the 60 s the test waits if `acquire` waited it out.
TEST_F(MptShellTest, TimeoutThatCannotBeMetExits1AtOnce) {
  create("1", "86400");
  ASSERT_EQ(run_mpt({"acquire", name_}).code, 0);
  ProgramResult r = run_mpt({"acquire", name_, "--timeout", "3000"}, 60s);
  EXPECT_EQ(r.code, 1) << "killed at the test's limit (-1) means it waited: " << r.err;
  EXPECT_TRUE(contains(r.err, "within --timeout 3000 s")) << r.err;
  r = run_mpt({"acquire", name_, "--timeout", "0"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "now (--timeout 0)")) << r.err;
  EXPECT_EQ(stop_total(name_), 1u) << "the refused acquires took nothing";
}

// SIGINT or SIGTERM while waiting: no unit, and `acquire` ends by that signal (130, 143).
TEST_F(MptShellTest, SignalWhileWaitingGrantsNothing) {
  create("1", "3600");
  ASSERT_EQ(run_mpt({"acquire", name_}).code, 0);
  for (const int sig : {SIGINT, SIGTERM}) {
    MptProcess waiter({"acquire", name_});
    ASSERT_TRUE(mpt::test::wait_until_futex_asleep(waiter.pid())) << "the waiter never slept";
    waiter.signal(sig);
    const ProgramResult r = waiter.wait(60s);
    EXPECT_EQ(r.code, 128 + sig) << r.err;
    EXPECT_TRUE(contains(r.err, "no unit was granted")) << r.err;
  }
  EXPECT_EQ(stop_total(name_), 1u);
}

// A script's background job (`loop &`) starts with SIGINT ignored: acquire keeps it so, and the
// Ctrl-C meant for the foreground does not end it (a SIGINT it caught would make it exit by it,
// before it could see the stop that follows).
TEST_F(MptShellTest, AnIgnoredSigintStaysIgnored) {
  create("1", "3600");
  ASSERT_EQ(run_mpt({"acquire", name_}).code, 0);
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ASSERT_EQ(sigaction(SIGINT, &ign, &old), 0);
  MptProcess waiter({"acquire", name_});  // inherits SIGINT ignored
  sigaction(SIGINT, &old, nullptr);
  ASSERT_TRUE(mpt::test::wait_until_futex_asleep(waiter.pid())) << "the waiter never slept";
  waiter.signal(SIGINT);
  EXPECT_EQ(stop_total(name_), 1u);
  const ProgramResult r = waiter.wait(60s);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "was stopped while")) << r.err;
}

// Bad usage: exit 2, the message names the flag or argument; with --json as {"error": ...}.
TEST_F(MptShellTest, BadUsageExits2) {
  create("5");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"acquire", name_, "-n", "0"}, "-n"},
      {{"acquire", name_, "-n", "-3"}, "-n"},
      {{"acquire", name_, "-n", "two"}, "-n"},
      {{"acquire", name_, "-n", "6"}, "-n 6"},  // above max_n (5)
      {{"acquire", name_, "--timeout", "-1"}, "--timeout"},
      {{"acquire", name_, "--timeout", "nan"}, "--timeout"},
      {{"acquire"}, "NAME"},
      {{"acquire", "a/b"}, "a/b"},
      {{"create", name_ + "x", "--rate", "0"}, "--rate"},
      {{"create", name_ + "x", "--rate", "ten"}, "--rate"},
      {{"create", name_ + "x"}, "--rate"},
      {{"create", name_ + "x", "--rate", "5", "--per", "0"}, "--per"},
      {{"create", name_ + "x", "--rate", "5", "--hardcap", "two"}, "--hardcap"},
      {{"create", name_ + "x", "--rate", "5", "--mode", "0666"}, "--mode"},
      {{"create", name_ + "x", "--rate", "5", "--mode", "0400"}, "--mode"},
      {{"create", name_ + "x", "--rate", "5", "--mode", "rw"}, "--mode"},
      {{"start"}, "NAME"},
      {{"stop", name_, "--now"}, "--now"},
  };
  for (const auto& [args, flag] : cases) {
    ProgramResult r = run_mpt(args);
    EXPECT_EQ(r.code, 2) << flag << ": " << r.err;
    EXPECT_TRUE(contains(r.err, flag)) << r.err;
    std::vector<std::string> with_json = args;
    with_json.push_back("--json");
    r = run_mpt(with_json);
    EXPECT_EQ(r.code, 2) << flag << " --json: " << r.err;
    EXPECT_TRUE(contains(parse(r.out).value("error", ""), flag)) << r.out;
  }
  EXPECT_FALSE(exists(name_ + "x")) << "no bad create made anything";
  EXPECT_EQ(stop_total(name_), 0u) << "no bad acquire took anything";
}

// start / stop: what each says, totals that survive a restart, and acquire in between.
TEST_F(MptShellTest, StartStopRoundTrip) {
  ASSERT_EQ(run_mpt({"create", name_, "--rate", "100", "--stopped"}).code, 0);
  ProgramResult r = run_mpt({"start", name_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse(r.out);
  EXPECT_EQ(j["was"], "created");
  EXPECT_EQ(j["state"], "running");
  ASSERT_EQ(run_mpt({"acquire", name_, "-n", "1"}).code, 0);
  r = run_mpt({"stop", name_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  j = parse(r.out);
  EXPECT_EQ(j["was"], "running");
  EXPECT_EQ(j["summary"]["total"], 1);
  EXPECT_GT(j["summary"]["runtime_s"].get<double>(), 0.0);
  r = run_mpt({"stop", name_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "already stopped")) << r.out;
  EXPECT_TRUE(contains(r.out, "Total: 1\n")) << r.out;
  r = run_mpt({"start", name_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "started throttle " + name_)) << r.out;
  r = run_mpt({"start", name_});
  EXPECT_TRUE(contains(r.out, "already running")) << r.out;
  ASSERT_EQ(run_mpt({"acquire", name_, "--json"}).code, 0);
  EXPECT_EQ(stop_total(name_), 2u) << "totals survive a restart";
  for (const char* verb : {"start", "stop", "acquire"}) {
    r = run_mpt({verb, name_ + "-missing"});
    EXPECT_EQ(r.code, 1) << verb;
    EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
    EXPECT_TRUE(contains(r.err, "mpt create " + name_ + "-missing")) << r.err;
  }
}

// `rm --stale` keeps a created throttle (its creator is gone, but it was made to outlive it); `ls`
// says so; `rm NAME` removes it, after which acquire says it does not exist.
TEST_F(MptShellTest, RmStaleKeepsACreatedThrottleAndRmNameRemovesIt) {
  create("10");
  ProgramResult r = run_mpt({"rm", "--stale", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = parse(r.out);
  EXPECT_EQ(j["removed"], json::array());
  ASSERT_EQ(j["kept"].size(), 1u) << r.out;
  EXPECT_EQ(j["kept"][0]["name"], name_);
  EXPECT_TRUE(contains(j["kept"][0]["reason"].get<std::string>(), "persistent")) << r.out;
  EXPECT_TRUE(exists(name_));

  r = run_mpt({"ls", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  j = parse(r.out);
  ASSERT_EQ(j["segments"].size(), 1u) << r.out;
  EXPECT_EQ(j["segments"][0]["persistent"], true);
  EXPECT_EQ(j["segments"][0]["creator_alive"], false);
  r = run_mpt({"ls"});
  EXPECT_TRUE(contains(r.out, "PERSIST")) << r.out;

  r = run_mpt({"rm", name_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(exists(name_));
  r = run_mpt({"acquire", name_});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
}

}  // namespace
