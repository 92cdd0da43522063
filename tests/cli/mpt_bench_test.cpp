// `mpt bench`: a quick run of the real benchmark programs (every suite but bm_probe, the ten
// scenarios, the Redis fleet when redis-server is installed; no Python peers) into a temporary
// folder, its report read back by `mpt report`; the parts left out named in the report; bad usage
// exits 2; a programs folder without the programs, or --peers on without python3, exits 1 naming
// what is missing. And the report's writer (report_assemble.hpp) against what
// bench/assemble_report.py, which it replaced, wrote from the same raw folder
// (tests/report/fixtures/raw, raw-report.json).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../test_util.hpp"
#include "report_assemble.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using mpt::test::ProgramResult;
using mpt::test::run_mpt;
using mpt::test::slurp_file;

class BenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mpt-bench-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A programs folder of links to the real programs and scripts, without those in `without`.
  fs::path programs_without(const std::vector<std::string>& without) {
    const fs::path p = dir_ / "programs";
    fs::create_directories(p);
    for (const auto& e : fs::directory_iterator(MPT_BENCH_PROGRAMS)) {
      const std::string name = e.path().filename().string();
      if (std::find(without.begin(), without.end(), name) != without.end()) continue;
      if (name == "peers" || name.ends_with(".py") || name.rfind("bm_", 0) == 0 ||
          name.rfind("mpt_", 0) == 0)
        fs::create_symlink(e.path(), p / name);
    }
    return p;
  }

  fs::path dir_;
};

TEST_F(BenchTest, QuickRunWritesAReportThatMptReportReads) {
  const fs::path programs = programs_without({"bm_probe"});
  const fs::path out = dir_ / "out";
  const ProgramResult r = run_mpt({"bench", "--quick", "--peers", "off", "--seconds", "0.2",
                                   "--programs", programs.string(), "--out", out.string()},
                                  std::chrono::seconds(110));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // One line a step: host, 4 suites, 10 scenarios, the fleet twice (with redis-server), the report.
  const bool fleet = mpt::test::run_program({"sh", "-c", "command -v redis-server"}).code == 0 &&
                     fs::exists(programs / "mpt_redis_fleet");
  const std::string steps = fleet ? "18" : "16";
  EXPECT_NE(r.out.find("[ 1/" + steps + " "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[" + steps + "/" + steps + " "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bm_probe was not built; left out"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mpt bench: done in"), std::string::npos) << r.out;

  const json report = json::parse(slurp_file(out / "report.json"));
  ASSERT_EQ(report["scenarios"].size(), 10u);
  for (const json& s : report["scenarios"]) {
    EXPECT_GE(s["achieved_total"].get<std::uint64_t>(), 2u) << s.dump();
    EXPECT_EQ(s["workers"], 4);
    EXPECT_EQ(s["seconds"], 0.2);
  }
  std::vector<std::string> suites;
  for (const json& s : report["suites"]) {
    suites.push_back(s["name"]);
    EXPECT_TRUE(s["error"].is_null()) << s.dump();
    EXPECT_FALSE(s["benchmarks"].empty()) << s.dump();
  }
  // bm_probe_none ran, and is reported inside bm_probe.
  EXPECT_EQ(suites, (std::vector<std::string>{"bm_probe", "bm_queue", "bm_throttle"}));
  EXPECT_TRUE(report["peers"]["throttle"].is_null());
  EXPECT_TRUE(report["peers"]["pipeline"].is_null());
  std::vector<std::string> left_out;
  for (const json& l : report["left_out"])
    left_out.push_back(l["part"]);
  EXPECT_NE(std::find(left_out.begin(), left_out.end(), "bm_probe"), left_out.end());
  EXPECT_NE(std::find(left_out.begin(), left_out.end(), "Python peers"), left_out.end());
  // The fleet ran at every host count, with leases and with one call per grant (--seconds 0.2),
  // or, without redis-server, is named as left out.
  EXPECT_EQ(std::find(left_out.begin(), left_out.end(), "Redis fleet") == left_out.end(), fleet)
      << report["left_out"].dump();
  if (fleet) {
    const json& f = report["fleet"];
    ASSERT_TRUE(f.is_object()) << f.dump();
    EXPECT_EQ(f["seconds"], 0.2);
    EXPECT_EQ(f["rate_per_sec"], 100000);
    EXPECT_EQ(f["per_grant"]["max_lease"], 1);
    for (const json* series : {&f["leased"], &f["per_grant"]}) {
      std::vector<int> hosts;
      for (const json& run : (*series)["runs"]) {
        hosts.push_back(run["hosts"]);
        EXPECT_GT(run["total"].get<std::uint64_t>(), 0u) << run.dump();
        EXPECT_GT(run["script_calls"].get<std::uint64_t>(), 0u) << run.dump();
      }
      EXPECT_EQ(hosts, (std::vector<int>{1, 2, 4, 8, 16, 32}));
    }
    // One script call per grant without leases (a call that is refused or reports counts too).
    for (const json& run : f["per_grant"]["runs"])
      EXPECT_GE(run["calls_per_grant"].get<double>(), 1.0) << run.dump();
  } else {
    EXPECT_TRUE(report["fleet"].is_null());
  }
  EXPECT_TRUE(report["quick"].get<bool>());
  EXPECT_TRUE(fs::exists(out / "raw" / "host.json"));
  EXPECT_GT(fs::file_size(out / "report.html"), 1000u);

  // What `mpt report` reads back, as text and as its page.
  const ProgramResult shown = run_mpt({"report", (out / "report.json").string(), "--json"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out)["scenarios"], 10);
  const ProgramResult text = run_mpt({"report", (out / "report.json").string()});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("left out: Python peers (--peers off)"), std::string::npos) << text.out;
  EXPECT_NE(slurp_file(out / "report.html").find("left out"), std::string::npos);
  EXPECT_EQ(text.out.find("REDIS FLEET") != std::string::npos, fleet) << text.out;
}

TEST_F(BenchTest, BadUsageExitsTwoNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--peers", "maybe"}, "--peers"},   {{"--seconds", "0"}, "--seconds"},
      {{"--seconds", "abc"}, "--seconds"}, {{"--out", ""}, "--out"},
      {{"--programs"}, "--programs"},      {{"--frobnicate"}, "--frobnicate"},
  };
  for (const auto& [args, flag] : cases) {
    std::vector<std::string> argv = {"bench"};
    if (flag != "--out") argv.insert(argv.end(), {"--out", (dir_ / "out").string()});
    argv.insert(argv.end(), args.begin(), args.end());
    const ProgramResult r = run_mpt(argv);
    EXPECT_EQ(r.code, 2) << flag << ": " << r.err;
    EXPECT_NE(r.err.find(flag), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  const ProgramResult help = run_mpt({"bench", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--peers"), std::string::npos) << help.out;
}

TEST_F(BenchTest, AProgramsFolderWithoutTheProgramsExitsOneNamingIt) {
  const fs::path empty = dir_ / "empty";
  fs::create_directories(empty);
  const ProgramResult r =
      run_mpt({"bench", "--programs", empty.string(), "--out", (dir_ / "out").string()});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(empty.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mpt_scenario"), std::string::npos) << r.err;

  const ProgramResult j =
      run_mpt({"bench", "--json", "--programs", empty.string(), "--out", (dir_ / "out").string()});
  EXPECT_EQ(j.code, 1);
  EXPECT_NE(json::parse(j.out).at("error").get<std::string>().find(empty.string()),
            std::string::npos)
      << j.out;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  // $MPT_BENCH_PROGRAMS, when set, is the only place looked in too.
  const ProgramResult e =
      mpt::test::run_program({"env", "MPT_BENCH_PROGRAMS=" + empty.string(), MPT_BINARY, "bench",
                              "--out", (dir_ / "out").string()});
  EXPECT_EQ(e.code, 1) << e.err;
  EXPECT_NE(e.err.find(empty.string() + " ($MPT_BENCH_PROGRAMS)"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// A step that fails ends the run: exit 1, the step named with the file its stderr went to.
TEST_F(BenchTest, AFailedStepIsNamedWithItsStderr) {
  const fs::path programs = dir_ / "failing";
  fs::create_directories(programs);
  {
    std::ofstream script(programs / "mpt_scenario");
    script << "#!/bin/sh\necho 'scenario exploded' >&2\nexit 3\n";
  }
  fs::permissions(programs / "mpt_scenario", fs::perms::owner_all);
  const fs::path out = dir_ / "out";
  const ProgramResult r =
      run_mpt({"bench", "--peers", "off", "--programs", programs.string(), "--out", out.string()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  const fs::path err = out / "raw" / "scenario-limit-10.stderr";
  EXPECT_NE(r.err.find("mpt_scenario --rate 10 --hardcap limit failed (exit 3; see " +
                       err.string() + ")"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(slurp_file(err), "scenario exploded\n");
  // The suites were not there: each said so before the scenario ran.
  EXPECT_NE(r.out.find("bm_throttle was not built; left out"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out / "report.json"));
}

TEST_F(BenchTest, PeersOnWithoutPython3ExitsOne) {
  const fs::path no_python = dir_ / "bin";
  fs::create_directories(no_python);
  const ProgramResult r = mpt::test::run_program(
      {"env", "PATH=" + no_python.string(), MPT_BINARY, "bench", "--peers", "on", "--programs",
       MPT_BENCH_PROGRAMS, "--out", (dir_ / "out").string()});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("--peers on: no python3"), std::string::npos) << r.err;
}

TEST_F(BenchTest, MissingPythonScriptsAreNamed) {
  const fs::path programs = programs_without({"pipeline_compare.py"});
  const ProgramResult r = run_mpt({"bench", "--peers", "on", "--programs", programs.string(),
                                   "--out", (dir_ / "out").string()});
  if (mpt::test::run_program({"sh", "-c", "command -v python3"}).code != 0) {
    EXPECT_EQ(r.code, 1);  // no python3: that is the error
    return;
  }
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find((programs / "pipeline_compare.py").string()), std::string::npos) << r.err;
}

// The C++ writer gives what bench/assemble_report.py gave from the same raw folder (made by the
// real programs), plus the list of parts left out.
TEST(ReportAssembleTest, MatchesWhatThePythonAssemblerWrote) {
  const fs::path fixtures = MPT_REPORT_FIXTURES;
  json expected = json::parse(slurp_file(fixtures / "raw-report.json"));
  const std::string text = mpt::report::assemble_report(
      {fixtures / "raw", "0.1.0", true, expected["created_utc"], {{"bm_probe", "not built"}}});
  const json got = json::parse(text);
  expected["left_out"] = json::array({{{"part", "bm_probe"}, {"why", "not built"}}});
  expected["fleet"] = nullptr;  // no fleet files in that folder
  EXPECT_EQ(got, expected) << json::diff(expected, got).dump(1);
  // And `mpt report`'s reader takes it.
  const mpt::report::Report r = mpt::report::parse_report(text);
  EXPECT_EQ(r.left_out.size(), 1u);
  EXPECT_EQ(r.scenarios.size(), 2u);
}

// The fleet's files (mpt_redis_fleet --json, with leases and with --max-lease 1) become the
// report's fleet section: what the committed fixture report holds, made from the same files.
TEST(ReportAssembleTest, ReadsTheRawFleetFiles) {
  char tmpl[] = "/tmp/mpt-assemble-fleet.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path raw = tmpl;
  const fs::path fixtures = MPT_REPORT_FIXTURES;
  fs::copy(fixtures / "raw", raw);
  const auto fleet = [&] {
    return json::parse(mpt::report::assemble_report({raw, "0.1.0", false, "", {}}))["fleet"];
  };
  // The one-call-per-grant file alone is not a fleet: the leased run is the table's rows.
  fs::copy(fixtures / "fleet" / mpt::report::kFleetPerGrantFile, raw);
  EXPECT_TRUE(fleet().is_null());
  fs::copy(fixtures / "fleet" / mpt::report::kFleetLeasedFile, raw);
  const json got = fleet();
  const json expected = json::parse(slurp_file(fixtures / "small.json"))["fleet"];
  EXPECT_EQ(got, expected) << json::diff(expected, got).dump(1);
  // Without the second file: the leased runs only.
  fs::remove(raw / mpt::report::kFleetPerGrantFile);
  EXPECT_TRUE(fleet()["per_grant"].is_null());
  EXPECT_EQ(fleet()["leased"], expected["leased"]);

  // A file that is not the program's, or an error document, is named.
  const auto expect_error = [&](const std::string& text, const std::string& message) {
    std::ofstream(raw / mpt::report::kFleetLeasedFile) << text;
    try {
      fleet();
      ADD_FAILURE() << text << " was taken";
    } catch (const mpt::report::ReportError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"schema": 2, "bench": "redis_fleet", "runs": []})",
               "fleet-leased.json: not mpt_redis_fleet's schema 1");
  expect_error(R"({"error": "redis-server did not start"})",
               "fleet-leased.json: \"redis-server did not start\"");
  expect_error(R"({"schema": 1, "bench": "redis_fleet", "seconds": 1, "max_lease": 256,
                  "runs": [{"hosts": 1, "rate_per_sec": 100}]})",
               "fleet-leased.json: a run has no field achieved_per_sec");
  expect_error("{", "fleet-leased.json: not JSON");
  fs::remove_all(raw);
}

TEST(ReportAssembleTest, ABadScenarioFileIsNamed) {
  char tmpl[] = "/tmp/mpt-assemble-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path raw = tmpl;
  fs::copy(fs::path(MPT_REPORT_FIXTURES) / "raw", raw);
  const auto assemble = [&] { return mpt::report::assemble_report({raw, "0.1.0", false, "", {}}); };
  EXPECT_NO_THROW(assemble());
  std::ofstream(raw / "scenario-limit-5.json") << R"({"schema": 1})";
  try {
    assemble();
    ADD_FAILURE() << "a scenario of schema 1 was taken";
  } catch (const mpt::report::ReportError& e) {
    EXPECT_NE(std::string(e.what()).find("scenario-limit-5.json: schema 1"), std::string::npos)
        << e.what();
  }
  std::ofstream(raw / "scenario-limit-5.json") << R"({"error": "no such throttle"})";
  EXPECT_THROW(assemble(), mpt::report::ReportError);
  fs::remove(raw / "scenario-limit-5.json");
  fs::remove(raw / "host.json");
  EXPECT_THROW(assemble(), mpt::report::ReportError);
  fs::remove_all(raw);
}

}  // namespace
