// `mpt calibrate --quick`, `--if-needed` and `--check` (issue 17), driving the built binary. Each
// test writes its calibration files in a directory of its own (never the machine's default file)
// and its throttles' segments in another ($MPT_SHM_DIR); both are removed after it.
//
// Nothing here asserts a duration or how close a measured rate comes to its target on this host
// (a loaded machine moves hardcap one by several per cent): a check that must hold runs hardcap
// limit, whose burst allowance gives back every grant a stall delayed (count - 1 over last - first
// stays exact), and a check that must fail runs a correction edited by +20 %.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "test_util.hpp"

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using mpt::test::contains;
using mpt::test::parse;
using mpt::test::ProgramResult;
using mpt::test::run_mpt;
using mpt::test::slurp_file;

// Whether a line of `text` starts, after spaces, with `first` and ends with `last`.
bool has_row_ending(const std::string& text, const std::string& first, const std::string& last) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find_first_not_of(' ');
    if (start == std::string::npos || line.compare(start, first.size(), first) != 0) continue;
    if (line.size() >= last.size() &&
        line.compare(line.size() - last.size(), last.size(), last) == 0)
      return true;
  }
  return false;
}

class MptCalibrateQuickCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / mpt::test::unique_name("calibrate17");
    shm_ = "/dev/shm/" + mpt::test::unique_name("calibrate17-shm");
    fs::create_directories(dir_);
    fs::create_directories(shm_);
    setenv("MPT_SHM_DIR", shm_.c_str(), 1);
    file_ = dir_ + "/calibration.json";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::remove_all(shm_, ec);
    unsetenv("MPT_SHM_DIR");
  }
  // A small calibration of hardcap limit, one worker: a few seconds.
  void write_limit_file(const std::string& rates) {
    const ProgramResult r = run_mpt({"calibrate", "--quick", "--rates", rates, "--hardcaps",
                                     "limit", "--workers", "1", "--output", file_, "--json"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    ASSERT_TRUE(fs::exists(file_));
  }
  json file_json() const { return parse(slurp_file(file_)); }
  void write_json(const json& j) const { std::ofstream(file_) << j.dump(2) << "\n"; }
  std::vector<std::string> check(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"calibrate", "--check", "--output", file_};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string dir_, shm_, file_;
};

// --quick: every default band, the quick mark in the file and in --show; a full run says false.
TEST_F(MptCalibrateQuickCheckTest, QuickWritesEveryBandAndSaysItWasQuick) {
  const ProgramResult r = run_mpt({"calibrate", "--quick", "--output", file_, "--json"}, 120s);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json c = file_json();
  EXPECT_EQ(parse(r.out)["calibration"], c);
  EXPECT_EQ(c["quick"], true);
  EXPECT_EQ(c["seconds"], 0.5);
  EXPECT_GT(c["lateness"]["futex"]["samples"].get<int>(), 0);
  std::vector<std::string> bands;
  for (const auto& b : c["bands"]) {
    bands.push_back(b["hardcap"].get<std::string>() + " " + b["rate_per_sec"].dump());
    EXPECT_GE(b["uncorrected"]["count"].get<double>(), 2) << b.dump();
    EXPECT_EQ(b["verified"]["correction"], b["correction"]) << b.dump();
    EXPECT_EQ(b["verified"]["spin_lead_ns"], b["spin_lead_ns"]) << b.dump();
  }
  const std::vector<std::string> expected = {
      "limit 10.0", "limit 100.0", "limit 1000.0", "limit 10000.0", "limit 100000.0",
      "one 10.0",   "one 100.0",   "one 1000.0",   "one 10000.0",   "one 100000.0"};
  EXPECT_EQ(bands, expected);

  // A throttle uses it as any other file: in force on this host.
  std::string why;
  const auto loaded = mpt::Calibration::load(file_, &why);
  ASSERT_TRUE(loaded) << why;
  EXPECT_TRUE(loaded->quick);

  const ProgramResult shown = run_mpt({"calibrate", "--show", "--output", file_});
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_TRUE(contains(shown.out, "(--quick)")) << shown.out;

  const ProgramResult full =
      run_mpt({"calibrate", "--rates", "1000", "--hardcaps", "limit", "--seconds", "0.3",
               "--workers", "1", "--output", file_, "--dry-run", "--json"});
  ASSERT_EQ(full.code, 0) << full.out << full.err;
  EXPECT_EQ(parse(full.out)["calibration"]["quick"], false);
}

// A file written before the quick mark existed reads as a full run; a wrong type is refused.
TEST_F(MptCalibrateQuickCheckTest, QuickMarkIsOptionalInTheFile) {
  mpt::Calibration c;
  c.host = mpt::HostIdentity::current();
  c.created_utc = "2026-01-01T00:00:00Z";
  c.tool_version = "0.1.0";
  c.ground_truth = "monitor";
  c.workers = 1;
  c.seconds = 1;
  c.quick = true;
  json j = parse(c.to_json());
  EXPECT_EQ(j["quick"], true);
  EXPECT_TRUE(mpt::Calibration::from_json(j.dump()).quick);
  j.erase("quick");
  EXPECT_FALSE(mpt::Calibration::from_json(j.dump()).quick);
  j["quick"] = "yes";
  EXPECT_THROW(mpt::Calibration::from_json(j.dump()), mpt::InvalidArgument);
}

// --if-needed: nothing measured while a file is in force; measured when its kernel is another's,
// or when there is no file.
TEST_F(MptCalibrateQuickCheckTest, IfNeededMeasuresOnlyWhenNoFileIsInForce) {
  write_limit_file("1000");
  const std::string before = slurp_file(file_);
  const ProgramResult skip = run_mpt({"calibrate", "--quick", "--if-needed", "--output", file_});
  EXPECT_EQ(skip.code, 0) << skip.out << skip.err;
  EXPECT_TRUE(contains(skip.out, "calibration " + file_ + " is in force")) << skip.out;
  EXPECT_TRUE(contains(skip.out, "nothing measured")) << skip.out;
  EXPECT_EQ(skip.err, "");
  EXPECT_EQ(slurp_file(file_), before);
  const ProgramResult skip_json =
      run_mpt({"calibrate", "--quick", "--if-needed", "--output", file_, "--json"});
  EXPECT_EQ(skip_json.code, 0) << skip_json.out;
  const json sj = parse(skip_json.out);
  EXPECT_EQ(sj["in_force"], true);
  EXPECT_EQ(sj["measured"], false);
  EXPECT_EQ(sj["quick"], true);
  EXPECT_EQ(slurp_file(file_), before);

  json edited = file_json();
  edited["host"]["kernel"] = "0.0.0-another-kernel";
  write_json(edited);
  const ProgramResult measured =
      run_mpt({"calibrate", "--quick", "--if-needed", "--rates", "1000", "--hardcaps", "limit",
               "--workers", "1", "--output", file_, "--json"});
  ASSERT_EQ(measured.code, 0) << measured.out << measured.err;
  const json mj = parse(measured.out);
  EXPECT_EQ(mj["measured"], true);
  EXPECT_EQ(mj["written"], true);
  EXPECT_TRUE(contains(mj["measured_because"].get<std::string>(), "0.0.0-another-kernel"))
      << mj["measured_because"];
  EXPECT_EQ(file_json()["host"]["kernel"], mpt::HostIdentity::current().kernel);

  // No file: measured (here without writing).
  fs::remove(file_);
  const ProgramResult none =
      run_mpt({"calibrate", "--quick", "--if-needed", "--rates", "1000", "--hardcaps", "limit",
               "--workers", "1", "--output", file_, "--dry-run"});
  EXPECT_EQ(none.code, 0) << none.out << none.err;
  EXPECT_TRUE(contains(none.out, "measuring: ")) << none.out;
  EXPECT_TRUE(contains(none.out, "nothing written")) << none.out;
  EXPECT_FALSE(fs::exists(file_));
}

// --check holds on bands just measured (hardcap limit: see the top of this file), also restricted
// by --rates; a correction edited by +20 % fails, naming its band and its error.
TEST_F(MptCalibrateQuickCheckTest, CheckHoldsOnAFreshFileAndFailsOnAnEditedCorrection) {
  write_limit_file("100,1000");
  const ProgramResult ok = run_mpt(check({"--seconds", "2"}));
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.err, "");  // nothing on stderr when it holds (cron mails what it prints)
  EXPECT_TRUE(contains(ok.out, "holds: every band within 1 %")) << ok.out;
  const ProgramResult ok_json = run_mpt(check({"--seconds", "2", "--json"}));
  EXPECT_EQ(ok_json.code, 0) << ok_json.out;
  const json oj = parse(ok_json.out);
  EXPECT_EQ(oj["path"], file_);
  EXPECT_EQ(oj["holds"], true);
  EXPECT_EQ(oj["reasons"], json::array());
  EXPECT_EQ(oj["host"]["match"], true);
  EXPECT_EQ(oj["file"]["quick"], true);
  EXPECT_EQ(oj["workers"], 1);
  ASSERT_EQ(oj["bands"].size(), 2u);
  for (const auto& b : oj["bands"]) {
    EXPECT_EQ(b["hardcap"], "limit");
    EXPECT_EQ(b["within"], true) << b.dump();
    EXPECT_NEAR(b["rel_error"].get<double>(),
                b["achieved_rate_per_sec"].get<double>() / b["rate_per_sec"].get<double>() - 1,
                1e-9);
    EXPECT_GE(b["count"].get<double>(), 20) << b.dump();
  }

  json edited = file_json();
  for (auto& b : edited["bands"])
    if (b["rate_per_sec"] == 1000) b["correction"] = 0.2;
  write_json(edited);
  const ProgramResult off = run_mpt(check({}));
  EXPECT_EQ(off.code, 1) << off.out << off.err;
  EXPECT_TRUE(contains(off.out, "does not hold:")) << off.out;
  EXPECT_TRUE(contains(off.out, "limit 1000/s: achieved ")) << off.out;
  const ProgramResult off_json = run_mpt(check({"--json"}));
  EXPECT_EQ(off_json.code, 1) << off_json.out;
  const json fj = parse(off_json.out);
  EXPECT_EQ(fj["holds"], false);
  bool named = false;
  for (const auto& why : fj["reasons"])
    named = named || contains(why.get<std::string>(), "limit 1000/s");
  EXPECT_TRUE(named) << fj["reasons"];
  for (const auto& b : fj["bands"]) {
    if (b["rate_per_sec"] != 1000) continue;
    EXPECT_EQ(b["correction"], 0.2);
    EXPECT_EQ(b["within"], false);
    EXPECT_GT(b["rel_error"].get<double>(), 0.1) << b.dump();
  }

  // Only the 100/s band: that one still holds.
  const ProgramResult some = run_mpt(check({"--rates", "100", "--seconds", "2", "--json"}));
  EXPECT_EQ(some.code, 0) << some.out;
  const json pj = parse(some.out);
  ASSERT_EQ(pj["bands"].size(), 1u);
  EXPECT_EQ(pj["bands"][0]["rate_per_sec"], 100);
}

// Another kernel in the file: exit 1 naming the key, nothing measured. No file: exit 1 saying so.
TEST_F(MptCalibrateQuickCheckTest, CheckFailsOnAnotherHostOrNoFile) {
  write_limit_file("1000");
  json edited = file_json();
  edited["host"]["kernel"] = "0.0.0-another-kernel";
  write_json(edited);
  const ProgramResult r = run_mpt(check({}));
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "host kernel changed: the file's \"0.0.0-another-kernel\"")) << r.out;
  const ProgramResult rj = run_mpt(check({"--json"}));
  EXPECT_EQ(rj.code, 1);
  const json j = parse(rj.out);
  EXPECT_EQ(j["holds"], false);
  EXPECT_EQ(j["host"]["match"], false);
  EXPECT_EQ(j["host"]["changed"], json::array({"kernel"}));
  EXPECT_EQ(j["host"]["this_host"]["kernel"], mpt::HostIdentity::current().kernel);
  EXPECT_EQ(j["measured"], false);
  EXPECT_EQ(j["bands"], json::array());

  fs::remove(file_);
  const ProgramResult none = run_mpt(check({}));
  EXPECT_EQ(none.code, 1);
  EXPECT_TRUE(contains(none.out, "no calibration file at " + file_)) << none.out;
  const ProgramResult none_json = run_mpt(check({"--json"}));
  EXPECT_EQ(none_json.code, 1);
  const json nj = parse(none_json.out);
  EXPECT_EQ(nj["holds"], false);
  EXPECT_EQ(nj["reasons"], json::array({"no calibration file at " + file_}));
  EXPECT_EQ(nj["file"], nullptr);

  { std::ofstream(file_) << "{ not json"; }
  const ProgramResult corrupt = run_mpt(check({}));
  EXPECT_EQ(corrupt.code, 1);
  EXPECT_TRUE(contains(corrupt.out, "is not usable")) << corrupt.out;
}

TEST_F(MptCalibrateQuickCheckTest, BadUsageExits2NamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--check", "--quick"}, "--quick"},
      {{"--check", "--dry-run"}, "--dry-run"},
      {{"--check", "--if-needed"}, "--if-needed"},
      {{"--check", "--show"}, "--show"},
      {{"--check", "--probe", "on"}, "--probe"},
      {{"--quick", "--host"}, "--host"},
      {{"--if-needed", "--show"}, "--show"},
      {{"--check", "--seconds", "0"}, "--seconds"},
      {{"--quick", "--rates", "1"}, "--rates 1 with --seconds 0.5"},
  };
  for (const auto& [extra, flag] : cases) {
    std::vector<std::string> args = {"calibrate", "--output", file_};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProgramResult r = run_mpt(args);
    EXPECT_EQ(r.code, 2) << flag << " " << r.out << r.err;
    EXPECT_TRUE(contains(r.err, flag)) << flag << ": " << r.err;
    args.push_back("--json");
    const ProgramResult j = run_mpt(args);
    EXPECT_EQ(j.code, 2) << flag;
    EXPECT_TRUE(parse(j.out).contains("error")) << j.out;
  }
  EXPECT_FALSE(fs::exists(file_));

  // A band the file does not have.
  write_limit_file("1000");
  const ProgramResult r = run_mpt(check({"--rates", "500"}));
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "--rates")) << r.err;
  EXPECT_TRUE(contains(r.err, "limit 1000/s")) << r.err;
  // One band it has and one it does not: still a usage error, naming the missing one (a cron
  // check of a band the file lacks must not read "holds").
  const ProgramResult mixed = run_mpt(check({"--rates", "1000,500"}));
  EXPECT_EQ(mixed.code, 2) << mixed.out << mixed.err;
  EXPECT_TRUE(contains(mixed.err, "--rates 500")) << mixed.err;
  const ProgramResult hardcap = run_mpt(check({"--rates", "1000", "--hardcaps", "limit,one"}));
  EXPECT_EQ(hardcap.code, 2) << hardcap.out << hardcap.err;
  EXPECT_TRUE(contains(hardcap.err, "--hardcaps one")) << hardcap.err;
}

// Issue 19: every trial's CPU per grant. A tiny real calibration writes it in each run, its band's
// note gives each lead tried with its error and CPU (the kept run among them), --show prints the
// column ("-" for a file written before it was measured), and --check measures it too.
TEST_F(MptCalibrateQuickCheckTest, EveryRunRecordsItsCpuPerGrantAndShowPrintsIt) {
  const ProgramResult r = run_mpt({"calibrate", "--rates", "1000", "--hardcaps", "one", "--seconds",
                                   "0.2", "--workers", "1", "--output", file_, "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json c = file_json();
  ASSERT_EQ(c["bands"].size(), 1u);
  const json& b = c["bands"][0];
  for (const char* run : {"uncorrected", "verified"}) {
    ASSERT_TRUE(b[run].contains("cpu_us_per_grant")) << b.dump();
    EXPECT_GT(b[run]["cpu_us_per_grant"].get<double>(), 0) << b.dump();
  }
  // The kept run is one of the leads tried, in the note's words.
  const json& u = b["uncorrected"];
  char kept[128];
  std::snprintf(kept, sizeof kept, "%lld us: %+.3f %% at %.1f us CPU/grant",
                static_cast<long long>(u["spin_lead_ns"].get<std::int64_t>() / 1000),
                u["rel_error"].get<double>() * 100, u["cpu_us_per_grant"].get<double>());
  EXPECT_TRUE(contains(b["note"].get<std::string>(), kept)) << kept << "\n" << b["note"];

  const ProgramResult shown = run_mpt({"calibrate", "--show", "--output", file_});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_TRUE(contains(shown.out, "MAX/WINDOW    CPU/GRANT")) << shown.out;
  char cell[32];
  std::snprintf(cell, sizeof cell, " %.1f us\n", b["verified"]["cpu_us_per_grant"].get<double>());
  EXPECT_TRUE(contains(shown.out, cell)) << cell << "\n" << shown.out;
  const ProgramResult shown_json = run_mpt({"calibrate", "--show", "--output", file_, "--json"});
  ASSERT_EQ(shown_json.code, 0) << shown_json.err;
  EXPECT_EQ(parse(shown_json.out)["calibration"], c);

  // --check: the CPU per grant of each band's re-measurement, in words and in JSON.
  const ProgramResult checked = run_mpt(check({"--seconds", "0.2", "--json"}));
  ASSERT_NE(checked.code, 2) << checked.out << checked.err;
  const json cj = parse(checked.out);
  ASSERT_EQ(cj["bands"].size(), 1u) << cj.dump();
  EXPECT_GT(cj["bands"][0]["cpu_us_per_grant"].get<double>(), 0) << cj.dump();
  const ProgramResult checked_words = run_mpt(check({"--seconds", "0.2"}));
  EXPECT_TRUE(contains(checked_words.out, "SPIN LEAD    CPU/GRANT  RESULT")) << checked_words.out;
  // A band --check cannot measure (a fractional rate): no CPU per grant, so no key, as in the file
  // (whose reader refuses null there); the words print "-".
  json fractional = c;
  fractional["bands"][0]["rate_per_sec"] = 1000.5;
  write_json(fractional);
  const ProgramResult unmeasured = run_mpt(check({"--json"}));
  EXPECT_EQ(unmeasured.code, 1) << unmeasured.out << unmeasured.err;
  const json uj = parse(unmeasured.out);
  ASSERT_EQ(uj["bands"].size(), 1u) << uj.dump();
  EXPECT_TRUE(uj["bands"][0].contains("not_measured")) << uj.dump();
  EXPECT_EQ(uj["bands"][0]["rel_error"], nullptr) << uj.dump();
  EXPECT_FALSE(uj["bands"][0].contains("cpu_us_per_grant")) << uj.dump();
  const ProgramResult unmeasured_words = run_mpt(check({}));
  EXPECT_TRUE(has_row_ending(unmeasured_words.out, "one", " -  not measured"))
      << unmeasured_words.out;

  // A file written before: no such key. It is in force, and --show prints "-" in the column.
  for (const char* run : {"uncorrected", "verified"})
    c["bands"][0][run].erase("cpu_us_per_grant");
  write_json(c);
  const ProgramResult old = run_mpt({"calibrate", "--show", "--output", file_});
  ASSERT_EQ(old.code, 0) << old.err;
  EXPECT_FALSE(contains(old.out, "NOT IN FORCE")) << old.out;
  EXPECT_TRUE(contains(old.out, "CPU/GRANT")) << old.out;
  EXPECT_TRUE(has_row_ending(old.out, "one", " -")) << old.out;
  const ProgramResult old_json = run_mpt({"calibrate", "--show", "--output", file_, "--json"});
  ASSERT_EQ(old_json.code, 0) << old_json.err;
  const json oj = parse(old_json.out);
  EXPECT_EQ(oj["in_force"], true);
  EXPECT_FALSE(oj["calibration"]["bands"][0]["verified"].contains("cpu_us_per_grant")) << oj;
}

}  // namespace
