// `mpt report`: renders the committed fixture report (tests/report/fixtures/small.json) and checks
// the page: it parses (tests/report/check_html.py, Python's html.parser), has every chart (its
// <svg> elements), no script and no external resource, and every number in its tables equals the
// value in the JSON that its data-field names (the Redis fleet's table and chart among them; a
// report without a fleet has neither). Then --compare's ratios, escaping, and the errors:
// a bad, truncated or wrong-typed report exits 1 naming the field; bad usage exits 2.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.hpp"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using mpt::test::ProgramResult;
using mpt::test::run_mpt;
using mpt::test::slurp_file;

void spit(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mpt-report-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fixture_ = json::parse(slurp_file(fs::path(MPT_REPORT_FIXTURES) / "small.json"));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_report(const std::string& name, const json& j) {
    const fs::path p = dir_ / name;
    spit(p, j.dump(1));
    return p;
  }
  // check_html.py's findings, or nullopt (and a skip) without python3.
  std::optional<json> check_page(const std::string& page) {
    if (mpt::test::run_program({"sh", "-c", "command -v python3"}).code != 0) return std::nullopt;
    const ProgramResult r = mpt::test::run_program({"python3", MPT_HTML_CHECKER, page});
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out);
  }

  fs::path dir_;
  json fixture_;
};

// The unit a cell shows its field in, by the field's name: relative errors in per cent, the
// scenarios' intervals in µs, CPU seconds per 1,000 in ms; rates, counts and the benchmarks' ns as
// they are.
double shown_scale(const std::string& field) {
  const auto ends_with = [&](const std::string& s) {
    return field.size() >= s.size() && field.compare(field.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("rel_error")) return 100;
  if (ends_with("cpu_s_per_1000")) return 1e3;
  if (ends_with("_ns") && field.rfind("/suites/", 0) != 0) return 1e-3;
  return 1;
}

// The visible text of a cell ("1,000.4", "+0.190 %", "−0.005 %", "12.34", "0 %") is the JSON value
// in the cell's unit, rounded to the digits shown.
void expect_shows(const std::string& text, double value, const std::string& field) {
  std::string digits;
  int decimals = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == ',') continue;                  // grouping
    if (text.compare(i, 3, "\u2212") == 0) {  // a typographic minus
      digits += '-';
      i += 2;
      continue;
    }
    if (ch == '.') decimals = 0;
    if ((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+') {
      digits += ch;
      if (decimals >= 0 && ch >= '0' && ch <= '9') ++decimals;
    } else if (ch != ' ' && ch != '%') {
      ADD_FAILURE() << field << ": '" << text << "' is not a number as a reader sees one";
      return;
    }
  }
  ASSERT_FALSE(digits.empty()) << field << ": no number in '" << text << "'";
  const double shown = std::stod(digits);
  const double half_digit = 0.5 * std::pow(10.0, -std::max(decimals, 0));
  EXPECT_NEAR(shown, value * shown_scale(field), half_digit * (1 + 1e-9))
      << field << " shows '" << text << "' for " << value;
}

TEST_F(ReportTest, RendersEveryChartAndTheNumbersOfTheJson) {
  const std::string report = write_report("report.json", fixture_);
  const std::string page = dir_ / "report.html";
  const ProgramResult r = run_mpt({"report", report, "--html", page});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ACCURACY (3 scenarios"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("highest rate reached"), std::string::npos) << r.out;
  // The fleet's table: a row per host count, leased figures then those of one call per grant.
  EXPECT_NE(r.out.find("REDIS FLEET"), std::string::npos) << r.out;
  for (std::size_t i = 0; i < fixture_["fleet"]["leased"]["runs"].size(); ++i) {
    const json& a = fixture_["fleet"]["leased"]["runs"][i];
    const json& b = fixture_["fleet"]["per_grant"]["runs"][i];
    char row[160];
    std::snprintf(row, sizeof row, "\n%6d  ", a["hosts"].get<int>());
    const std::size_t at = r.out.find(row);
    ASSERT_NE(at, std::string::npos) << row << r.out;
    const std::string line = r.out.substr(at + 1, r.out.find('\n', at + 1) - at - 1);
    for (const json* run : {&a, &b}) {
      std::snprintf(row, sizeof row, "%.5f", (*run)["achieved_over_target"].get<double>());
      EXPECT_NE(line.find(row), std::string::npos) << row << " in " << line;
      std::snprintf(row, sizeof row, "%.4f", (*run)["calls_per_grant"].get<double>());
      EXPECT_NE(line.find(row), std::string::npos) << row << " in " << line;
    }
  }
  ASSERT_TRUE(fs::exists(page));

  const auto checked = check_page(page);
  if (!checked) GTEST_SKIP() << "python3 is not installed: the page is not parsed";
  const json& c = *checked;
  EXPECT_TRUE(c["well_formed"].get<bool>()) << c["errors"].dump();
  EXPECT_EQ(c["scripts"], 0);
  EXPECT_TRUE(c["external"].empty()) << c["external"].dump();
  const json& svgs = c["svg_per_section"];
  EXPECT_EQ(svgs.value("chart-achieved", 0), 2);  // achieved vs target, and the relative error
  EXPECT_EQ(svgs.value("chart-histograms", 0), static_cast<int>(fixture_["scenarios"].size()));
  EXPECT_EQ(svgs.value("chart-rate-over-time", 0), 1);
  EXPECT_EQ(svgs.value("chart-floors", 0), 1);

  // Every numeric cell names its value in the report; all of them must match, both the exact
  // value it carries and the number a reader sees, and every scenario's figures (ours and the
  // peer's) must be on the page.
  std::set<std::string> seen;
  for (const json& f : c["fields"]) {
    const std::string field = f["field"];
    seen.insert(field);
    const json::json_pointer ptr(field);
    ASSERT_TRUE(fixture_.contains(ptr)) << field;
    const double value = fixture_.at(ptr).get<double>();
    EXPECT_DOUBLE_EQ(std::stod(f["value"].get<std::string>()), value) << field;
    expect_shows(f["text"].get<std::string>(), value, field);
  }
  for (std::size_t i = 0; i < fixture_["scenarios"].size(); ++i) {
    for (const char* key : {"rate_per_sec", "achieved_rate_per_sec", "rel_error", "max_in_window",
                            "interval_p50_ns", "interval_p99_ns", "cpu_s_per_1000"}) {
      EXPECT_TRUE(seen.count("/scenarios/" + std::to_string(i) + "/" + key)) << i << key;
      EXPECT_TRUE(seen.count("/peers/throttle/scenarios/" + std::to_string(i) + "/" + key) ||
                  std::string(key) == "rate_per_sec" || std::string(key) == "max_in_window" ||
                  std::string(key).starts_with("interval_"))
          << i << key;
    }
  }
  EXPECT_TRUE(seen.count("/suites/0/benchmarks/1/real_time_ns"));
  EXPECT_TRUE(seen.count("/peers/pipeline/imap_chunk1000_items_per_sec"));

  // The fleet: its chart, and every run's figures with leases and with one call per grant.
  EXPECT_EQ(svgs.value("fleet", 0), 1);
  for (const char* series : {"leased", "per_grant"}) {
    const json& runs = fixture_["fleet"][series]["runs"];
    ASSERT_GE(runs.size(), 2u);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      for (const char* key :
           {"achieved_per_sec", "achieved_over_target", "calls_per_sec", "calls_per_grant"}) {
        EXPECT_TRUE(
            seen.count("/fleet/" + std::string(series) + "/runs/" + std::to_string(i) + "/" + key))
            << series << i << key;
      }
    }
  }
  EXPECT_NE(c["text"].get<std::string>().find("calls, 1 call/grant"), std::string::npos);

  // Visible text: the achieved rate of limit 1,000/s as printed (one decimal, grouped).
  const double achieved = fixture_["scenarios"][1]["achieved_rate_per_sec"];
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", achieved);
  std::string grouped = buf;
  if (achieved >= 1000) grouped.insert(grouped.size() - 5, ",");
  EXPECT_NE(c["text"].get<std::string>().find(grouped), std::string::npos) << grouped;
}

// A scenario of fewer than two grants has no rate: null in the report, "n/a" where a reader looks,
// no point in the charts, no ratio; the rest of the report is still rendered.
TEST_F(ReportTest, NoRateIsNullInTheReportAndNotAvailableOnThePage) {
  json j = fixture_;
  for (json* s : {&j["scenarios"][0], &j["peers"]["throttle"]["scenarios"][0]}) {
    (*s)["achieved_total"] = 1;
    (*s)["achieved_rate_per_sec"] = nullptr;
    (*s)["rel_error"] = nullptr;
  }
  j["scenarios"][0]["kernel_total"] = 1;
  j["scenarios"][0]["kernel_achieved_rate_per_sec"] = nullptr;
  j["scenarios"][0]["kernel_rel_error"] = nullptr;
  const std::string report = write_report("one-grant.json", j);
  const std::string page = dir_ / "one-grant.html";
  const ProgramResult r = run_mpt({"report", report, "--html", page});
  ASSERT_EQ(r.code, 0) << r.err;
  // The text row of limit 100/s: n/a for the rate, the kernel's rate, the error and the peer's.
  const std::size_t row = r.out.find("\nlimit         100 ");
  ASSERT_NE(row, std::string::npos) << r.out;
  const std::string line = r.out.substr(row + 1, r.out.find('\n', row + 1) - row - 1);
  std::istringstream words(line);
  std::vector<std::string> cells;
  for (std::string w; words >> w;)
    cells.push_back(w);
  ASSERT_GE(cells.size(), 13u) << line;
  EXPECT_EQ(cells[2], "n/a") << line;   // achieved
  EXPECT_EQ(cells[3], "n/a") << line;   // kernel
  EXPECT_EQ(cells[4], "n/a") << line;   // error
  EXPECT_EQ(cells[9], "n/a") << line;   // peer achieved
  EXPECT_EQ(cells[10], "n/a") << line;  // peer error
  EXPECT_EQ(cells[11], "-") << line;    // |error| / peer's

  const auto checked = check_page(page);
  if (!checked) GTEST_SKIP() << "python3 is not installed: the page is not parsed";
  EXPECT_TRUE((*checked)["well_formed"].get<bool>()) << (*checked)["errors"].dump();
  std::set<std::string> na;
  for (const json& f : (*checked)["fields"]) {
    const json::json_pointer ptr(f["field"].get<std::string>());
    ASSERT_TRUE(j.contains(ptr)) << f["field"];
    if (f["value"] == "null") {
      EXPECT_TRUE(j.at(ptr).is_null()) << f["field"];
      EXPECT_EQ(f["text"], "n/a") << f["field"];
      na.insert(f["field"].get<std::string>());
    } else {
      EXPECT_FALSE(j.at(ptr).is_null()) << f["field"];
    }
  }
  EXPECT_EQ(na, (std::set<std::string>{"/scenarios/0/achieved_rate_per_sec",
                                       "/scenarios/0/kernel_achieved_rate_per_sec",
                                       "/scenarios/0/rel_error", "/scenarios/0/kernel_rel_error",
                                       "/peers/throttle/scenarios/0/achieved_rate_per_sec",
                                       "/peers/throttle/scenarios/0/rel_error"}));
}

// Reports made before the fleet simulation have no "fleet" (or null, when it was not run): they
// are read and rendered without the fleet's table or chart.
TEST_F(ReportTest, AReportWithoutAFleetHasNoFleetSection) {
  for (const bool null : {false, true}) {
    json j = fixture_;
    if (null) {
      j["fleet"] = nullptr;
    } else {
      j.erase("fleet");
    }
    const std::string page = dir_ / "no-fleet.html";
    const ProgramResult r = run_mpt({"report", write_report("no-fleet.json", j), "--html", page});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("ACCURACY (3 scenarios"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("REDIS FLEET"), std::string::npos) << r.out;
    const std::string html = slurp_file(page);
    EXPECT_EQ(html.find("<section id=\"fleet\">"), std::string::npos);
    EXPECT_NE(html.find("<section id=\"chart-floors\">"), std::string::npos);
  }
}

TEST_F(ReportTest, CompareShowsBothReportsWithRatios) {
  json other = fixture_;
  other["host"]["hostname"] = "other-host";
  for (json& s : other["scenarios"])
    s["achieved_rate_per_sec"] = s["achieved_rate_per_sec"].get<double>() / 2;
  for (json& b : other["suites"][0]["benchmarks"])
    b["real_time_ns"] = b["real_time_ns"].get<double>() * 4;
  const std::string a = write_report("a.json", fixture_);
  const std::string b = write_report("b.json", other);
  const std::string page = dir_ / "compare.html";
  const ProgramResult r = run_mpt({"report", a, "--compare", b, "--html", page});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("COMPARED WITH other-host"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2.00×"), std::string::npos) << r.out;  // achieved: this / other
  EXPECT_NE(r.out.find("0.25×"), std::string::npos) << r.out;  // benchmark time: this / other
  const std::string html = slurp_file(page);
  EXPECT_NE(html.find("<section id=\"compare\">"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">2.00×</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"num\">0.25×</td>"), std::string::npos);
  EXPECT_NE(html.find("other limit"), std::string::npos);  // the other's series in the chart
  if (const auto c = check_page(page)) {
    EXPECT_TRUE((*c)["well_formed"].get<bool>()) << (*c)["errors"].dump();
  }
}

TEST_F(ReportTest, PeerRatiosAsJson) {
  const ProgramResult r = run_mpt({"report", write_report("r.json", fixture_), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["scenarios"], fixture_["scenarios"].size());
  double ours = 0, peer = 0;
  for (const json& s : fixture_["scenarios"])
    ours = std::max(ours, s["achieved_rate_per_sec"].get<double>());
  for (const json& s : fixture_["peers"]["throttle"]["scenarios"])
    peer = std::max(peer, s["achieved_rate_per_sec"].get<double>());
  EXPECT_DOUBLE_EQ(j["highest_rate_per_sec"].get<double>(), ours);
  EXPECT_DOUBLE_EQ(j["peer_highest_rate_per_sec"].get<double>(), peer);
  EXPECT_DOUBLE_EQ(j["highest_rate_ratio"].get<double>(), ours / peer);
  EXPECT_TRUE(j["median_abs_error_ratio"].is_number());
  EXPECT_TRUE(j["median_cpu_ratio"].is_number());
}

TEST_F(ReportTest, EscapesEveryStringFromTheReport) {
  json j = fixture_;
  j["host"]["hostname"] = "<script>alert(1)</script>";
  j["calibration"]["note"] = "a \"quoted\" & <b>bold</b> note";
  j["suites"][0]["name"] = "bm_<i>x</i>";
  const std::string page = dir_ / "e.html";
  const ProgramResult r = run_mpt({"report", write_report("e.json", j), "--html", page});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string html = slurp_file(page);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<b>bold"), std::string::npos);
  EXPECT_EQ(html.find("<i>x"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  if (const auto c = check_page(page)) {
    EXPECT_TRUE((*c)["well_formed"].get<bool>()) << (*c)["errors"].dump();
    EXPECT_EQ((*c)["scripts"], 0);
  }
}

TEST_F(ReportTest, NoStringFromTheReportAddsALineToTheText) {
  json j = fixture_;
  j["host"]["hostname"] = "host\nforged: one";
  j["calibration"]["note"] = "note\r\nforged: two";
  j["left_out"] = json::array({{{"part", "a\nforged: three"}, {"why", "b\nforged: four"}}});
  const ProgramResult r = run_mpt({"report", write_report("n.json", j)});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    EXPECT_NE(line.rfind("forged:", 0), 0u) << line;
  EXPECT_NE(r.out.find("a\\nforged: three"), std::string::npos) << r.out;
}

TEST_F(ReportTest, BadReportsExitOneNamingTheField) {
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"missing field", [](json& j) { j["scenarios"][0].erase("rel_error"); },
       "scenarios[0].rel_error: missing"},
      {"wrong type", [](json& j) { j["scenarios"][1]["rel_error"] = "0.1"; },
       "scenarios[1].rel_error: expected a number, got a string"},
      {"another schema", [](json& j) { j["schema"] = 1; }, "schema: expected 2, got 1"},
      {"another kind", [](json& j) { j["kind"] = "calibration"; }, "kind: expected"},
      {"negative cores", [](json& j) { j["host"]["cores"] = -1; }, "host.cores: out of range"},
      {"fractional count", [](json& j) { j["scenarios"][0]["achieved_total"] = 1.5; },
       "scenarios[0].achieved_total: expected an integer"},
      {"bad hardcap", [](json& j) { j["scenarios"][2]["hardcap"] = "two"; },
       "scenarios[2].hardcap: expected limit, one or none"},
      {"bucket not a power of two",
       [](json& j) { j["scenarios"][0]["interval_histogram"][0]["lo_ns"] = 3; },
       "scenarios[0].interval_histogram[0].lo_ns: not a power of two"},
      {"negative series count", [](json& j) { j["scenarios"][0]["rate_series"]["counts"][0] = -4; },
       "scenarios[0].rate_series.counts[0]: negative"},
      {"floor naming nothing",
       [](json& j) { j["suites"][0]["benchmarks"][1]["floor"] = "BM_Nothing"; },
       "suites[0].benchmarks[1].floor: names no benchmark"},
      {"peer scenario wrong type", [](json& j) { j["peers"]["throttle"]["scenarios"][0] = 7; },
       "peers.throttle.scenarios[0]: expected an object, got an integer"},
      {"missing peers", [](json& j) { j.erase("peers"); }, "peers: missing"},
      {"kernel half set", [](json& j) { j["scenarios"][0]["kernel_total"] = nullptr; },
       "scenarios[0].kernel_total: null, but kernel_achieved_rate_per_sec"},
      {"rate without its error", [](json& j) { j["scenarios"][0]["rel_error"] = nullptr; },
       "scenarios[0].achieved_rate_per_sec: achieved_rate_per_sec and rel_error must be both"},
      {"a rate from one grant", [](json& j) { j["scenarios"][1]["achieved_total"] = 1; },
       "scenarios[1].achieved_rate_per_sec: set, but fewer than two grants"},
      {"not an object", [](json& j) { j = json::array(); }, "report: expected an object"},
      {"fleet without leased runs", [](json& j) { j["fleet"].erase("leased"); },
       "fleet.leased: missing"},
      {"fleet run wrong type",
       [](json& j) { j["fleet"]["per_grant"]["runs"][1]["calls_per_sec"] = "many"; },
       "fleet.per_grant.runs[1].calls_per_sec: expected a number, got a string"},
      {"fleet hosts out of order", [](json& j) { j["fleet"]["leased"]["runs"][1]["hosts"] = 1; },
       "fleet.leased.runs[1].hosts: not more than the previous run's hosts"},
      {"fleet not an object", [](json& j) { j["fleet"] = 3; },
       "fleet: expected an object, got an integer"},
  };
  for (const Case& c : cases) {
    json j = fixture_;
    c.mutate(j);
    const std::string path = write_report("bad.json", j);
    const ProgramResult r = run_mpt({"report", path});
    EXPECT_EQ(r.code, 1) << c.what << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.what << ": " << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << c.what << ": the file is named";
  }

  // Truncated: not JSON.
  const std::string text = fixture_.dump();
  const fs::path cut = dir_ / "cut.json";
  spit(cut, text.substr(0, text.size() / 2));
  ProgramResult r = run_mpt({"report", cut});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not JSON"), std::string::npos) << r.err;

  // A number too large for a double (found by fuzz_report): not JSON, exit 1, the file named.
  const fs::path huge = dir_ / "huge.json";
  spit(huge, "{\"schema\": 5E4288}");
  r = run_mpt({"report", huge});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("not JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("huge.json"), std::string::npos) << r.err;

  // JSON mode: the error as a document on stdout.
  r = run_mpt({"report", cut, "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(json::parse(r.out)["error"].get<std::string>().find("not JSON"), std::string::npos);

  // A missing file, and a good report compared with a bad one.
  r = run_mpt({"report", (dir_ / "none.json").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  r = run_mpt({"report", write_report("good.json", fixture_), "--compare", cut});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cut.json"), std::string::npos) << r.err;
  // Nothing half-written where the page would go.
  r = run_mpt({"report", cut, "--html", (dir_ / "never.html").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(dir_ / "never.html"));
}

// In a sticky world-writable directory another user plants `page.html.tmp -> victim`: the report
// used to write that predictable name through an ofstream, that is, into the victim. The page is
// now written under a random name (O_CREAT|O_EXCL|O_NOFOLLOW) and renamed; a page path that is a
// symlink, a FIFO, a directory or a device is refused (exit 1) and left alone.
TEST_F(ReportTest, TheHtmlPageIsNeverWrittenThroughALinkOrOverADevice) {
  const std::string report = write_report("report.json", fixture_);
  ::chmod(dir_.c_str(), 01777);
  const fs::path victim = dir_ / "victim";
  spit(victim, "precious\n");
  fs::create_symlink(victim, dir_ / "page.html.tmp");
  fs::create_symlink(victim, dir_ / ".page.html.tmp");
  ProgramResult r = run_mpt({"report", report, "--html", (dir_ / "page.html").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp_file(victim), "precious\n");
  EXPECT_NE(slurp_file(dir_ / "page.html").find("<svg"), std::string::npos);
  EXPECT_TRUE(fs::is_symlink(dir_ / "page.html.tmp"));

  const fs::path fifo = dir_ / "fifo.html";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const fs::path link = dir_ / "link.html";
  fs::create_symlink(victim, link);
  std::vector<fs::path> targets = {fifo, link, dir_ / "sub"};
  fs::create_directories(dir_ / "sub");
  const fs::path dev = dir_ / "null";  // a /dev/null of our own: a failure hurts nothing
  if (::mknod(dev.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0) targets.push_back(dev);
  const auto before = std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
  for (const auto& target : targets) {
    for (const bool as_json : {false, true}) {
      std::vector<std::string> args = {"report", report, "--html", target.string()};
      if (as_json) args.push_back("--json");
      r = run_mpt(args);
      EXPECT_EQ(r.code, 1) << target << ": " << r.out << r.err;
      EXPECT_NE((as_json ? r.out : r.err).find("refusing"), std::string::npos) << r.out << r.err;
    }
  }
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::is_directory(dir_ / "sub"));
  if (targets.size() == 4) {
    EXPECT_TRUE(fs::is_character_file(dev));
  }
  EXPECT_EQ(slurp_file(victim), "precious\n");
  // Nothing left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), before);
}

TEST_F(ReportTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run_mpt({"report"}).code, 2);
  EXPECT_EQ(run_mpt({"report", write_report("r.json", fixture_), "--bogus"}).code, 2);
  EXPECT_EQ(run_mpt({"report", write_report("r.json", fixture_), "--html"}).code, 2);
  const ProgramResult r = run_mpt({"reprot"});
  EXPECT_EQ(r.code, 2);
  // The message lists every subcommand (those of `mpt --help`).
  EXPECT_NE(r.err.find("unknown subcommand 'reprot'; expected run, stat, ls, rm, create, acquire"),
            std::string::npos)
      << r.err;
  for (const char* sub : {"start", "stop", "export", "calibrate", "bench", "report", "probe"})
    EXPECT_NE(r.err.find(sub), std::string::npos) << sub << " in " << r.err;
}

}  // namespace
