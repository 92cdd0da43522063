// The calibration file: store/load, every kind of bad file, band choice, and what a new Throttle
// takes from it (auto_calibrate) or not (explicit correction).
#include "mpt/calibration.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.hpp"
#include "mpt/error.hpp"
#include "mpt/throttle.hpp"

namespace mpt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Calibration sample() {
  Calibration c;
  c.host = HostIdentity::current();
  c.created_utc = "2026-11-22T06:00:00Z";
  c.tool_version = "0.1.0";
  c.ground_truth = "monitor";
  c.workers = 4;
  c.seconds = 2;
  c.futex_lateness = {300, 55.5, 120.25, 900};
  c.nanosleep_lateness = {300, 56, 130, 1000};
  c.spin_lead_ns = 70'000;
  c.spin_lead_trials = {{35'000, {300, 1, 40, 90}, 30.5}, {70'000, {300, 0.5, 3, 20}, 71}};
  auto band = [](Hardcap h, double rate, double corr, std::int64_t lead) {
    CalibrationBand b;
    b.hardcap = h;
    b.rate_per_sec = rate;
    b.correction = corr;
    b.spin_lead_ns = lead;
    b.uncorrected = {rate * 0.99, -0.01, 1000, 999, 0, lead, std::nullopt};
    b.verified = {rate, 0.0001, 1001, 1000, corr, lead, std::nullopt};
    b.note = "test band";
    return b;
  };
  c.bands = {band(Hardcap::kLimit, 100, 0.01, 60'000), band(Hardcap::kLimit, 10'000, 0.03, 80'000),
             band(Hardcap::kOne, 1000, 0.002, 50'000)};
  return c;
}

// A fresh directory, a calibration path in it set as $MPT_CALIBRATION, and a log hook that
// collects warnings; all undone at the end.
class CalibrationFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / test::unique_name("cal");
    fs::create_directories(dir_);
    path_ = dir_ / "calibration.json";
    const char* old = std::getenv("MPT_CALIBRATION");
    if (old) old_env_ = old;
    setenv("MPT_CALIBRATION", path_.c_str(), 1);
    old_hook_ = set_log_hook([this](std::string_view m) { warnings_.emplace_back(m); });
    reload_calibration();
  }
  void TearDown() override {
    set_log_hook(old_hook_);
    if (old_env_) {
      setenv("MPT_CALIBRATION", old_env_->c_str(), 1);
    } else {
      unsetenv("MPT_CALIBRATION");
    }
    reload_calibration();
    fs::remove_all(dir_);
  }
  void write(const std::string& text) {
    std::ofstream(path_, std::ios::trunc) << text;
    reload_calibration();
  }
  std::string read() {
    std::ifstream in(path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
  fs::path path_;
  std::optional<std::string> old_env_;
  LogHook old_hook_;
  std::vector<std::string> warnings_;
};

TEST_F(CalibrationFileTest, StoreAndLoadRoundTrip) {
  const Calibration c = sample();
  c.store(path_);
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  std::string why;
  const auto back = Calibration::load(path_, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->host, c.host);
  EXPECT_EQ(back->created_utc, c.created_utc);
  EXPECT_EQ(back->ground_truth, "monitor");
  EXPECT_EQ(back->spin_lead_ns, 70'000);
  EXPECT_DOUBLE_EQ(back->futex_lateness.p99_us, 120.25);
  ASSERT_EQ(back->spin_lead_trials.size(), 2u);
  EXPECT_DOUBLE_EQ(back->spin_lead_trials[0].cpu_us_per_wait, 30.5);
  ASSERT_EQ(back->bands.size(), 3u);
  EXPECT_EQ(back->bands[2].hardcap, Hardcap::kOne);
  EXPECT_DOUBLE_EQ(back->bands[1].correction, 0.03);
  EXPECT_EQ(back->bands[1].verified.max_in_window, 1000u);
  EXPECT_EQ(back->to_json(), c.to_json());
}

TEST_F(CalibrationFileTest, MissingFileMeansNoCorrectionAndNoWarning) {
  Throttle t(1000, 1s);
  EXPECT_EQ(t.snapshot().correction_source, "none");
  EXPECT_EQ(t.snapshot().correction, 0);
  EXPECT_TRUE(warnings_.empty());
}

ThrottleOptions with_hardcap(Hardcap h) {
  ThrottleOptions o;
  o.hardcap = h;
  return o;
}

// Where this host is known to fall short uncalibrated (hardcap one from 2,000/s), a throttle that
// auto_calibrate would tune but no calibration covers says so once, naming the fix; elsewhere, or
// when told what to use, it says nothing.
TEST_F(CalibrationFileTest, UncalibratedWhereItFallsShortWarnsOnceNamingTheFix) {
  (void)Throttle(1000, 1s, with_hardcap(Hardcap::kOne));       // under the threshold
  (void)Throttle(500'000, 1s, with_hardcap(Hardcap::kLimit));  // limit holds uncalibrated
  (void)Throttle(500'000, 1s, with_hardcap(Hardcap::kNone));   // so does none
  EXPECT_TRUE(warnings_.empty());
  ThrottleOptions one = with_hardcap(Hardcap::kOne);
  (void)Throttle(100'000, 1s, one);
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("100000/s with hardcap one runs uncalibrated"), std::string::npos)
      << warnings_[0];
  EXPECT_NE(warnings_[0].find("does not exist"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("mpt calibrate"), std::string::npos) << warnings_[0];
  (void)Throttle(100'000, 1s, one);
  EXPECT_EQ(warnings_.size(), 1u) << "once per process";
  (void)Throttle(2000, 1s, one);
  EXPECT_EQ(warnings_.size(), 2u) << "another rate is another warning";
  one.correction = 0.1;
  (void)Throttle(200'000, 1s, one);
  one.correction.reset();
  one.auto_calibrate = false;
  (void)Throttle(300'000, 1s, one);
  EXPECT_EQ(warnings_.size(), 2u) << "an explicit correction or auto_calibrate off: no warning";
}

TEST_F(CalibrationFileTest, CalibrationThatDoesNotCoverTheRateWarns) {
  sample().store(path_);  // bands: limit 100/s and 10,000/s, one 1,000/s
  reload_calibration();
  (void)Throttle(1000, 1s, with_hardcap(Hardcap::kOne));  // a band
  EXPECT_TRUE(warnings_.empty());
  (void)Throttle(8000, 1s, with_hardcap(Hardcap::kOne));
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("outside the rates calibrated"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("mpt calibrate"), std::string::npos) << warnings_[0];
  EXPECT_TRUE(sample().covers(5000, Hardcap::kLimit));
  EXPECT_TRUE(sample().covers(5000, Hardcap::kNone)) << "none uses limit's bands";
  EXPECT_FALSE(sample().covers(50'000, Hardcap::kLimit));
  EXPECT_FALSE(sample().covers(999, Hardcap::kOne));
}

TEST_F(CalibrationFileTest, AutoCalibrateTakesTheBandsCorrectionAndSpinLead) {
  sample().store(path_);
  reload_calibration();
  Throttle t(10'000, 1s);  // exactly a band
  const Snapshot s = t.snapshot();
  EXPECT_DOUBLE_EQ(s.correction, 0.03);
  EXPECT_EQ(s.spin_lead_ns, 80'000);
  EXPECT_EQ(s.correction_source, "calibration " + path_.string());
  EXPECT_EQ(s.interval_ns, std::llround(1e5 * (1 - 0.03)));
  EXPECT_TRUE(warnings_.empty());

  // Below 49/s auto_calibrate is off by default (the seed's rule), on when asked.
  EXPECT_EQ(Throttle(10, 1s).snapshot().correction_source, "none");
  ThrottleOptions on;
  on.auto_calibrate = true;
  EXPECT_DOUBLE_EQ(Throttle(10, 1s, on).snapshot().correction, 0.01);  // clamped to 100/s band
  ThrottleOptions off;
  off.auto_calibrate = false;
  EXPECT_EQ(Throttle(10'000, 1s, off).snapshot().correction_source, "none");
}

TEST_F(CalibrationFileTest, ExplicitCorrectionBeatsTheFile) {
  sample().store(path_);
  reload_calibration();
  ThrottleOptions o;
  o.correction = 0.001;
  const Snapshot s = Throttle(10'000, 1s, o).snapshot();
  EXPECT_DOUBLE_EQ(s.correction, 0.001);
  EXPECT_EQ(s.correction_source, "explicit");
  EXPECT_EQ(s.spin_lead_ns, kDefaultSpinLead.count());

  // An explicit spin lead wins over the file's, while the correction still comes from it.
  ThrottleOptions lead;
  lead.spin_lead = 5us;
  const Snapshot s2 = Throttle(10'000, 1s, lead).snapshot();
  EXPECT_EQ(s2.spin_lead_ns, 5000);
  EXPECT_DOUBLE_EQ(s2.correction, 0.03);
}

TEST_F(CalibrationFileTest, SetRateTakesTheNewRatesCorrection) {
  sample().store(path_);
  reload_calibration();
  Throttle t(100, 1s);
  EXPECT_DOUBLE_EQ(t.snapshot().correction, 0.01);
  t.set_rate(10'000, 1s);
  EXPECT_DOUBLE_EQ(t.snapshot().correction, 0.03);
  EXPECT_EQ(t.interval().count(), std::llround(1e5 * (1 - 0.03)));
}

TEST(CalibrationChoose, InterpolatesInLogRateAndClampsOutside) {
  const Calibration c = sample();
  // limit: 100/s -> 0.01, 10,000/s -> 0.03; 1,000/s is half way in log-rate.
  EXPECT_NEAR(c.choose(1000, Hardcap::kLimit).correction, 0.02, 1e-12);
  EXPECT_EQ(c.choose(1000, Hardcap::kLimit).spin_lead_ns, 70'000);
  EXPECT_NEAR(c.choose(std::sqrt(100.0 * 1000), Hardcap::kLimit).correction, 0.015, 1e-12);
  EXPECT_DOUBLE_EQ(c.choose(1, Hardcap::kLimit).correction, 0.01);
  EXPECT_DOUBLE_EQ(c.choose(1e7, Hardcap::kLimit).correction, 0.03);
  EXPECT_EQ(c.choose(1e7, Hardcap::kLimit).spin_lead_ns, 80'000);
  // one has a single band: it applies everywhere; none borrows limit's.
  EXPECT_DOUBLE_EQ(c.choose(5, Hardcap::kOne).correction, 0.002);
  EXPECT_DOUBLE_EQ(c.choose(1e6, Hardcap::kOne).correction, 0.002);
  EXPECT_NEAR(c.choose(1000, Hardcap::kNone).correction, 0.02, 1e-12);
  // No bands at all for a hardcap: no correction, the host's spin lead.
  Calibration bare = c;
  bare.bands.clear();
  EXPECT_EQ(bare.choose(1000, Hardcap::kOne).correction, 0);
  EXPECT_EQ(bare.choose(1000, Hardcap::kOne).spin_lead_ns, 70'000);
}

// Each bad file: ignored (no correction) with exactly one warning naming the problem.
TEST_F(CalibrationFileTest, EveryBadFileIsIgnoredWithOneWarning) {
  const std::string good = sample().to_json();
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  HostIdentity other = HostIdentity::current();
  other.hostname += "-elsewhere";
  Calibration foreign = sample();
  foreign.host = other;

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated", good.substr(0, good.size() / 2)},
      {"empty", ""},
      {"not an object", "[1, 2, 3]"},
      {"wrong type", replace("\"correction\": 0.03", "\"correction\": \"0.03\"")},
      {"NaN", replace("\"correction\": 0.03", "\"correction\": NaN")},
      {"negative", replace("\"spin_lead_ns\": 70000", "\"spin_lead_ns\": -5")},
      {"huge", replace("\"correction\": 0.03", "\"correction\": 1e308")},
      {"overflowing", replace("\"correction\": 0.03", "\"correction\": 1e999")},
      {"out of range", replace("\"correction\": 0.03", "\"correction\": 0.9")},
      {"missing field", replace("\"ground_truth\": \"monitor\",", "")},
      {"bad hardcap", replace("\"hardcap\": \"one\"", "\"hardcap\": \"two\"")},
      {"other schema", replace("\"schema\": 1", "\"schema\": 2")},
      {"other host", foreign.to_json()},
  };
  for (const auto& [what, text] : cases) {
    SCOPED_TRACE(what);
    warnings_.clear();
    write(text);
    const Snapshot s = Throttle(10'000, 1s).snapshot();
    EXPECT_EQ(s.correction_source, "none");
    EXPECT_EQ(s.correction, 0);
    EXPECT_EQ(s.spin_lead_ns, kDefaultSpinLead.count());
    // Loaded once per process: a second throttle does not warn again.
    (void)Throttle(1000, 1s);
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_NE(warnings_[0].find(path_.string()), std::string::npos) << warnings_[0];
    std::string why;
    EXPECT_FALSE(Calibration::load(path_, &why));
    EXPECT_FALSE(why.empty());
  }
  // The reasons are specific.
  write(replace("\"schema\": 1", "\"schema\": 2"));
  std::string why;
  Calibration::load(path_, &why);
  EXPECT_NE(why.find("schema"), std::string::npos) << why;
  write(foreign.to_json());
  Calibration::load(path_, &why);
  EXPECT_NE(why.find("-elsewhere"), std::string::npos) << why;
  write(replace("\"correction\": 0.03", "\"correction\": 0.9"));
  Calibration::load(path_, &why);
  EXPECT_NE(why.find("bands[1].correction"), std::string::npos) << why;
}

// The CPU per grant of a band's trials: written where measured, absent where not (files written
// before it was measured), and checked like every other field.
TEST(CalibrationCpuPerGrant, RoundTripsAndAnOldFileWithoutItLoads) {
  Calibration c = sample();
  c.bands[1].uncorrected.cpu_us_per_grant = 17.5;
  c.bands[1].verified.cpu_us_per_grant = 42.25;
  c.bands[2].verified.cpu_us_per_grant = 0.0;
  const std::string text = c.to_json();
  EXPECT_NE(text.find("\"cpu_us_per_grant\": 42.25"), std::string::npos) << text;
  const Calibration back = Calibration::from_json(text);
  EXPECT_EQ(back.bands[1].uncorrected.cpu_us_per_grant, 17.5);
  EXPECT_EQ(back.bands[1].verified.cpu_us_per_grant, 42.25);
  EXPECT_EQ(back.bands[2].verified.cpu_us_per_grant, 0.0);
  EXPECT_EQ(back.bands[0].verified.cpu_us_per_grant, std::nullopt);
  EXPECT_EQ(back.bands[2].uncorrected.cpu_us_per_grant, std::nullopt);
  EXPECT_EQ(back.to_json(), text);

  // A file written before: no key anywhere; it loads, every CPU per grant unknown.
  const std::string old = sample().to_json();
  EXPECT_EQ(old.find("cpu_us_per_grant"), std::string::npos) << old;
  const Calibration from_old = Calibration::from_json(old);
  for (const auto& b : from_old.bands) {
    EXPECT_EQ(b.uncorrected.cpu_us_per_grant, std::nullopt);
    EXPECT_EQ(b.verified.cpu_us_per_grant, std::nullopt);
  }
  EXPECT_EQ(from_old.to_json(), old);
}

TEST(CalibrationCpuPerGrant, BadValuesAreRejectedNamingTheField) {
  Calibration c = sample();
  c.bands[1].verified.cpu_us_per_grant = 42.25;
  const std::string good = c.to_json();
  const std::string key = "\"cpu_us_per_grant\": 42.25";
  ASSERT_NE(good.find(key), std::string::npos);
  for (const std::string bad_value : {"-1", "NaN", "\"42\"", "null", "true", "1e999", "1e10"}) {
    SCOPED_TRACE(bad_value);
    std::string text = good;
    text.replace(text.find(key), key.size(), "\"cpu_us_per_grant\": " + bad_value);
    try {
      (void)Calibration::from_json(text);
      ADD_FAILURE() << "accepted";
    } catch (const InvalidArgument& e) {
      const std::string what = e.what();
      // NaN is not JSON and 1e999 overflows a double: the parser refuses the file before any
      // field is read, so no field is named (docs/calibration.md says so).
      const bool parser = bad_value == "NaN" || bad_value == "1e999";
      EXPECT_EQ(what.find("cpu_us_per_grant") == std::string::npos, parser) << what;
    }
  }
}

// calibration::choose_spin_lead(): the cheapest trial within kLeadWorth (plus its resolution) of
// the most accurate one. Counts of 10^7 make the resolution (2e-7) negligible unless a case is
// about it.
using calibration::choose_spin_lead;
using calibration::kLeadWorth;
using calibration::LeadTrial;
constexpr std::uint64_t kMany = 10'000'000;

TEST(CalibrationChooseSpinLead, TheCheapestWithinTheWorthOfTheMostAccurateWins) {
  // The host's lead is the most accurate; a quarter of it is within the worth and cheaper; none
  // misses by more than the worth.
  EXPECT_EQ(choose_spin_lead({{0, 0.0010, kMany, 10.0},
                              {25'000, 0.0001 + kLeadWorth * 0.9, kMany, 30.0},
                              {100'000, 0.0001, kMany, 60.0}}),
            1u);
  // None within the worth: none, the cheapest, wins though it is the least accurate.
  EXPECT_EQ(
      choose_spin_lead(
          {{0, 0.0004, kMany, 10.0}, {25'000, 0.0002, kMany, 30.0}, {100'000, 0.0, kMany, 60.0}}),
      0u);
  // The order of the trials does not matter.
  EXPECT_EQ(choose_spin_lead({{100'000, 0.0, kMany, 60.0}, {0, 0.0004, kMany, 10.0}}), 1u);
  // Where a lead costs less (a measurement says so), it wins even if no more accurate.
  EXPECT_EQ(choose_spin_lead({{0, 0.0001, kMany, 40.0}, {25'000, 0.0001, kMany, 35.0}}), 1u);
}

TEST(CalibrationChooseSpinLead, ALeadThatBuysMoreThanTheWorthWins) {
  EXPECT_EQ(choose_spin_lead({{0, 0.01, kMany, 10.0}, {100'000, 0.001, kMany, 60.0}}), 1u);
  // Just beyond the worth: the lead; the quarter lead is within the worth of it and cheaper.
  EXPECT_EQ(choose_spin_lead({{0, kLeadWorth * 1.1, kMany, 10.0},
                              {25'000, kLeadWorth * 0.05, kMany, 30.0},
                              {100'000, 0.0, kMany, 60.0}}),
            1u);
  // A negative error counts by its size.
  EXPECT_EQ(choose_spin_lead({{0, -0.02, kMany, 10.0}, {100'000, -0.001, kMany, 60.0}}), 1u);
}

TEST(CalibrationChooseSpinLead, TiesGoToTheSmallerLeadThenTheEarlierTrial) {
  EXPECT_EQ(choose_spin_lead({{100'000, 0.0, kMany, 20.0}, {0, 0.0002, kMany, 20.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{0, 0.0, kMany, 20.0}, {0, 0.0, kMany, 20.0}}), 0u);
  // CPU unknown (a trial without grants) weighs as the most expensive; all unknown: the smaller.
  EXPECT_EQ(choose_spin_lead({{0, 0.0, kMany, std::nullopt}, {100'000, 0.0, kMany, 60.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{100'000, 0.0, kMany, std::nullopt}, {0, 0.0, kMany, std::nullopt}}),
            1u);
  EXPECT_EQ(choose_spin_lead({{25'000, 0.003, kMany, 5.0}}), 0u);  // one trial: that one
  EXPECT_THROW(choose_spin_lead({}), InvalidArgument);
}

TEST(CalibrationChooseSpinLead, ACoarseCountWidensWhatIsWithinReach) {
  // 200 grants: a resolution of 1 %, so -0.8 % is as good as the host's lead's 0 as far as the
  // count can tell: the cheap trial wins. At 20,000 grants (0.01 %) it is not.
  EXPECT_EQ(choose_spin_lead({{0, 0.008, 200, 10.0}, {100'000, 0.0, 200, 60.0}}), 0u);
  EXPECT_EQ(choose_spin_lead({{0, 0.008, 20'000, 10.0}, {100'000, 0.0, 20'000, 60.0}}), 1u);
  // The resolution is the trial's own: a coarse most-accurate trial does not widen the others'.
  EXPECT_EQ(choose_spin_lead({{0, 0.008, 20'000, 10.0}, {100'000, 0.0, 200, 60.0}}), 1u);
  // A NaN error weighs as the least accurate.
  EXPECT_EQ(choose_spin_lead({{0, NAN, kMany, 10.0}, {100'000, 0.01, kMany, 60.0}}), 1u);
}

// What `mpt calibrate`'s early stop relies on: a trial whose |error| is within the resolution of
// the largest count a trial can reach (2 / max) is kept over any larger lead that costs at least
// as much CPU, however accurate; so not running those leads changes nothing, as long as a larger
// lead is not cheaper (the early stop's stated assumption; measured cheaper, it would win).
TEST(CalibrationChooseSpinLead, ATrialWithinEveryCountsResolutionBeatsLargerLeadsNoCheaper) {
  const std::uint64_t max = 1'502;  // 1,000/s for 1 s: at most 1.5 x rate x seconds + 2
  const double within = 2.0 / static_cast<double>(max);
  for (const std::uint64_t count : {std::uint64_t{2}, std::uint64_t{1'000}, max}) {
    SCOPED_TRACE(count);
    EXPECT_EQ(choose_spin_lead(
                  {{0, within, count, 10.0}, {25'000, 0.0, max, 10.0}, {100'000, 0.0, max, 60.0}}),
              0u);
  }
  EXPECT_EQ(choose_spin_lead({{0, within, max, 10.0}, {100'000, 0.0, max, 9.0}}), 1u);
}

TEST(CalibrationChooseSpinLead, ATrialThatCountedNothingIsNotEligible) {
  // Count 0 measured no error: however small its error and cheap its CPU, a counted trial wins,
  // even a far less accurate one, and its error does not set the most accurate for the others.
  EXPECT_EQ(choose_spin_lead({{0, 0.5, 0, 10.0}, {100'000, 0.0, kMany, 60.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{0, 0.0, 0, 1.0}, {25'000, 0.3, 200, 60.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{0, 0.0, 0, 1.0},
                              {25'000, 0.002, kMany, 30.0},
                              {100'000, 0.002 - kLeadWorth * 0.5, kMany, 60.0}}),
            1u);
  // Every trial counted nothing: the most accurate, with no worth or resolution to widen it;
  // among equals the cheapest, then the smaller lead.
  EXPECT_EQ(choose_spin_lead({{0, 0.2, 0, 10.0}, {100'000, 0.1, 0, 60.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{0, 0.1, 0, 60.0}, {100'000, 0.1, 0, 10.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{100'000, 0.1, 0, 10.0}, {0, 0.1, 0, 10.0}}), 1u);
  EXPECT_EQ(choose_spin_lead({{25'000, NAN, 0, 10.0}}), 0u);
}

TEST_F(CalibrationFileTest, FailureBeforeRenameLeavesTheOldFile) {
  Calibration old = sample();
  old.created_utc = "2000-01-01T00:00:00Z";
  old.store(path_);
  const std::string before = read();

  Calibration next = sample();
  fs::path temp_seen;
  EXPECT_THROW(next.store(path_,
                          [&](const fs::path& temp) {
                            temp_seen = temp;
                            EXPECT_TRUE(fs::exists(temp));
                            throw std::runtime_error("injected failure");
                          }),
               std::runtime_error);
  EXPECT_EQ(read(), before);
  EXPECT_FALSE(temp_seen.empty());
  EXPECT_FALSE(fs::exists(temp_seen));
  // Nothing else was left in the directory.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_))
    ++entries;
  EXPECT_EQ(entries, 1u);

  // A directory that cannot be made: SystemError, nothing written.
  std::ofstream(dir_ / "plainfile") << "x";
  EXPECT_THROW(next.store(dir_ / "plainfile" / "calibration.json"), SystemError);

  next.store(path_);
  EXPECT_NE(read(), before);
}

TEST(CalibrationPath, EnvironmentThenRootThenStateHome) {
  const char* old = std::getenv("MPT_CALIBRATION");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  setenv("MPT_CALIBRATION", "/tmp/some/cal.json", 1);
  EXPECT_EQ(default_calibration_path(), "/tmp/some/cal.json");
  unsetenv("MPT_CALIBRATION");
  if (geteuid() == 0) {
    EXPECT_EQ(default_calibration_path(), "/var/lib/mpthrottle/calibration.json");
  } else {
    const char* xdg = std::getenv("XDG_STATE_HOME");
    if (xdg && *xdg) {
      EXPECT_EQ(default_calibration_path(), fs::path(xdg) / "mpthrottle" / "calibration.json");
    } else {
      EXPECT_EQ(default_calibration_path(),
                fs::path(std::getenv("HOME")) / ".local/state/mpthrottle/calibration.json");
    }
  }
  if (saved) setenv("MPT_CALIBRATION", saved->c_str(), 1);
}

TEST(CalibrationMeasure, LatenessIsMeasuredAndSpinningHidesIt) {
  double cpu_sleep = 0, cpu_spin = 0;
  const LatenessStats slept = calibration::measure_futex_lateness(50, 200us, 0ns, &cpu_sleep);
  const LatenessStats spun = calibration::measure_futex_lateness(50, 200us, 200us, &cpu_spin);
  EXPECT_EQ(slept.samples, 50);
  EXPECT_LE(slept.p50_us, slept.p99_us);
  EXPECT_LE(slept.p99_us, slept.max_us);
  EXPECT_GT(slept.p50_us, 0);  // a futex wake-up is never exactly on time
  // Spinning the whole 200 us: a wait ends on time bar the clock read, and costs its CPU.
  EXPECT_LT(spun.p50_us, slept.p50_us);
  EXPECT_GT(cpu_spin, cpu_sleep);
  const LatenessStats ns = calibration::measure_nanosleep_lateness(20, 100us);
  EXPECT_EQ(ns.samples, 20);
  EXPECT_THROW(calibration::measure_futex_lateness(0, 1ms), InvalidArgument);
}

// The one definition of an achieved rate: (count - 1) / (last - first), no rate below two.
TEST(CalibrationAchievedRate, CountsIntervalsNotEmissionsAndNeedsTwo) {
  using calibration::achieved_rate_per_sec;
  const std::int64_t t0 = 5'000'000'000;  // any CLOCK_MONOTONIC origin
  EXPECT_EQ(achieved_rate_per_sec(0, 0, 0), std::nullopt);
  EXPECT_EQ(achieved_rate_per_sec(1, t0, t0), std::nullopt);
  EXPECT_EQ(achieved_rate_per_sec(2, t0, t0), std::nullopt);      // two at one instant
  EXPECT_EQ(achieved_rate_per_sec(2, t0, t0 - 1), std::nullopt);  // last before first
  // Two emissions 100 ms apart: 10 per second.
  EXPECT_DOUBLE_EQ(*achieved_rate_per_sec(2, t0, t0 + 100'000'000), 10.0);
  // 10/s for 1 s from start(): 11 emissions, at 0, 0.1, ..., 1.0 s. The rate is 10/s exactly;
  // 11 / 1 s would be the fence post (+10 %).
  EXPECT_DOUBLE_EQ(*achieved_rate_per_sec(11, t0, t0 + 1'000'000'000), 10.0);
  // N emissions at 100,000/s over 5 s.
  EXPECT_NEAR(*achieved_rate_per_sec(500'001, t0, t0 + 5'000'000'000), 100'000.0, 1e-6);

  EXPECT_EQ(calibration::rel_error(std::nullopt, 10), std::nullopt);
  EXPECT_EQ(calibration::rel_error(10.0, 0), std::nullopt);
  EXPECT_DOUBLE_EQ(*calibration::rel_error(10.0, 10), 0.0);
  EXPECT_DOUBLE_EQ(*calibration::rel_error(9.0, 10), -0.1);
}

}  // namespace
}  // namespace mpt
