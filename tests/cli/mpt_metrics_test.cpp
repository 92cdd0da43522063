// `mpt stat --openmetrics` and `mpt export --textfile`, checked by the real tools: promtool
// (Debian's prometheus package) lints and parses what mpt writes, and a real
// prometheus-node-exporter serves the exported file back over HTTP. A missing tool fails the test
// (scripts/install-deps installs both). Each test has a private segment directory ($MPT_SHM_DIR)
// and a private temporary directory.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mpt/event.hpp"
#include "mpt/throttle.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using mpt::test::MptProcess;
using mpt::test::Program;
using mpt::test::ProgramResult;
using mpt::test::run_mpt;
using mpt::test::run_program;
using mpt::test::slurp_file;
using mpt::test::wait_for;

// The path of a program the tests need, or "" (the test then fails, saying what to install).
std::string find_tool(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// The samples of an exposition: "metric{labels}" as written, to its value.
std::map<std::string, double> samples_of(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

// Checks the OpenMetrics structure the parsers leave alone: each family once, its HELP and TYPE
// before its samples, a counter's samples named _total, a UNIT that ends the family's name, and
// "# EOF" as the last line.
void expect_openmetrics_shape(const std::string& text) {
  ASSERT_GE(text.size(), 6u);
  EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n") << text;
  std::istringstream in(text);
  std::string line, family, type;
  std::set<std::string> families;
  bool help = false;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string hash, what, name, rest;
    if (line.rfind("# ", 0) == 0) {
      words >> hash >> what >> name >> rest;
      if (what == "EOF") continue;
      if (what == "HELP") {  // the first line of a family, as mpt writes them
        EXPECT_TRUE(families.insert(name).second) << "family twice: " << name;
        family = name;
        type.clear();
        help = true;
      }
      EXPECT_EQ(name, family) << line;
      if (what == "TYPE") type = rest;
      if (what == "UNIT") {
        EXPECT_TRUE(name.ends_with("_" + rest)) << line;
      }
      continue;
    }
    const std::string sample = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(help && !type.empty()) << "no HELP or TYPE before " << line;
    EXPECT_EQ(sample, type == "counter" ? family + "_total" : family) << line;
  }
}

// `promtool ARGS... < file`: promtool reads the exposition on its standard input.
ProgramResult promtool_stdin(const std::string& promtool, const std::string& args,
                             const std::string& file) {
  return run_program({"/bin/sh", "-c", "exec \"$0\" " + args + " < \"$1\"", promtool, file});
}

// A plain HTTP/1.0 GET on 127.0.0.1:port; the body, or "" when nothing answers.
std::string http_get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0)
        response.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fd);
  const auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// A loopback port nothing listened on a moment ago (the exporter may still lose it: retried).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

class MptMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shm_ = "/dev/shm/" + mpt::test::unique_name("metrics-shm");
    tmp_ = fs::temp_directory_path() / mpt::test::unique_name("metrics-tmp");
    fs::create_directories(shm_);
    fs::create_directories(tmp_);
    setenv("MPT_SHM_DIR", shm_.c_str(), 1);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(shm_, ec);
    fs::remove_all(tmp_, ec);
    unsetenv("MPT_SHM_DIR");
  }
  std::string write_tmp(const std::string& name, const std::string& text) const {
    const std::string p = (tmp_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  // Two throttles: `running_` (1000 per s, 7 units taken, running) and `stopped_` (100 per 2 s,
  // correction 0.01 given, 3 units taken, then stopped).
  void make_throttles() {
    running_name_ = mpt::test::unique_name("om-run");
    stopped_name_ = mpt::test::unique_name("om-stop");
    running_.emplace(mpt::Throttle::create(running_name_, 1000, 1s));
    running_->start();
    for (int i = 0; i < 7; ++i)
      ASSERT_TRUE(running_->await_fuel());
    mpt::ThrottleOptions o;
    o.correction = 0.01;
    stopped_.emplace(mpt::Throttle::create(stopped_name_, 100, 2s, o));
    stopped_->start();
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(stopped_->await_fuel());
    stopped_->stop();
  }
  // promtool's OpenMetrics parser (the one Prometheus scrapes with) accepts `text`: it reads it as
  // a backfill, which needs a timestamp on each sample, added here to a copy.
  void expect_promtool_parses_openmetrics(const std::string& promtool, const std::string& text) {
    std::istringstream in(text);
    std::string line, stamped;
    const std::string now = std::to_string(std::time(nullptr));
    while (std::getline(in, line))
      stamped += line + (line.rfind('#', 0) == 0 ? "" : " " + now) + "\n";
    const std::string file = write_tmp("stamped.om", stamped);
    const ProgramResult r = run_program({promtool, "tsdb", "create-blocks-from", "openmetrics",
                                         "-q", file, (tmp_ / "tsdb").string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err << "\n" << text;
  }
  std::string shm_;
  fs::path tmp_;
  std::string running_name_, stopped_name_;
  std::optional<mpt::Throttle> running_, stopped_;
};

std::string key(const std::string& series, const std::string& name, const std::string& more = "") {
  return series + "{name=\"" + name + "\"" + (more.empty() ? "" : "," + more) + "}";
}

TEST_F(MptMetricsTest, StatOpenMetricsOfTwoThrottlesIsValidAndRight) {
  const std::string promtool = find_tool("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool is missing: install Debian's prometheus package "
                                    "(scripts/install-deps)";
  make_throttles();
  const ProgramResult r = run_mpt({"stat", running_name_, stopped_name_, "--openmetrics"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  expect_openmetrics_shape(r.out);
  expect_promtool_parses_openmetrics(promtool, r.out);

  auto s = samples_of(r.out);
  const std::string& a = running_name_;
  const std::string& b = stopped_name_;
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", a)), 7);
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", b)), 3);
  EXPECT_EQ(s.at(key("mpthrottle_state", a, "state=\"running\"")), 1);
  EXPECT_EQ(s.at(key("mpthrottle_state", a, "state=\"stopped\"")), 0);
  EXPECT_EQ(s.at(key("mpthrottle_state", a, "state=\"created\"")), 0);
  EXPECT_EQ(s.at(key("mpthrottle_state", b, "state=\"running\"")), 0);
  EXPECT_EQ(s.at(key("mpthrottle_state", b, "state=\"stopped\"")), 1);
  EXPECT_EQ(s.at(key("mpthrottle_configured_rate", a)), 1000);
  EXPECT_EQ(s.at(key("mpthrottle_configured_rate", b)), 50);
  EXPECT_EQ(s.at(key("mpthrottle_max_units", b)), 100);
  EXPECT_EQ(s.at(key("mpthrottle_period_seconds", b)), 2);
  EXPECT_DOUBLE_EQ(s.at(key("mpthrottle_interval_seconds", a)),
                   running_->interval().count() * 1e-9);
  EXPECT_GT(s.at(key("mpthrottle_runtime_seconds_total", b)), 0);
  EXPECT_EQ(s.at(key("mpthrottle_correction", b, "source=\"explicit\",file=\"\"")), 0.01);
  EXPECT_EQ(s.count(key("mpthrottle_correction", a, "source=\"none\",file=\"\"")), 1u) << r.out;
  EXPECT_EQ(s.at(key("mpthrottle_creator_alive", a)), 1);
  EXPECT_GE(s.at(key("mpthrottle_available_units", b)), 0);
  EXPECT_GT(s.at(key("mpthrottle_creation_time_seconds", a)), 1.5e9);
  char id[24];
  std::snprintf(id, sizeof id, "0x%016llx", static_cast<unsigned long long>(running_->id()));
  const std::string info = "id=\"" + std::string(id) + "\",hardcap=\"limit\",creator_pid=\"" +
                           std::to_string(getpid()) + "\"";
  EXPECT_EQ(s.at(key("mpthrottle_throttle_info", a, info)), 1) << r.out;

  // promtool's linter reads the Prometheus text format 0.0.4, which names a counter's family as
  // its samples: for the OpenMetrics counters (family mpthrottle_emissions, sample
  // mpthrottle_emissions_total) it finds samples without HELP, and that is all it may find.
  const ProgramResult lint = promtool_stdin(promtool, "check metrics", write_tmp("stat.om", r.out));
  std::istringstream complaints(lint.out + lint.err);
  std::string line;
  while (std::getline(complaints, line)) {
    EXPECT_TRUE(line == "mpthrottle_emissions_total no help text" ||
                line == "mpthrottle_runtime_seconds_total no help text")
        << line;
  }
}

TEST_F(MptMetricsTest, StatOpenMetricsWithoutNamesHasEveryThrottleOnly) {
  const std::string promtool = find_tool("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool is missing: install Debian's prometheus package";
  make_throttles();
  const std::string event = mpt::test::unique_name("om-event");
  auto e = mpt::Event::create(event);
  const std::string corrupt = mpt::test::unique_name("om-corrupt");
  std::ofstream(shm_ + "/mpt." + corrupt) << "not a segment header";

  const ProgramResult r = run_mpt({"stat", "--openmetrics"});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_openmetrics_shape(r.out);
  expect_promtool_parses_openmetrics(promtool, r.out);
  const auto s = samples_of(r.out);
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", running_name_)), 7);
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", stopped_name_)), 3);
  EXPECT_EQ(r.out.find(event), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(corrupt), std::string::npos) << r.out;
  EXPECT_NE(r.err.find(corrupt), std::string::npos) << r.err;  // said why it is left out

  // No throttle at all: an empty exposition, still valid.
  running_.reset();
  stopped_.reset();
  const ProgramResult none = run_mpt({"stat", "--openmetrics"});
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(none.out, "# EOF\n");
}

TEST_F(MptMetricsTest, BadInputExits1Or2AndNamesIt) {
  make_throttles();
  const std::string missing = mpt::test::unique_name("om-missing");
  const ProgramResult unknown = run_mpt({"stat", running_name_, missing, "--openmetrics"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_EQ(unknown.out, "");
  EXPECT_NE(unknown.err.find(missing), std::string::npos) << unknown.err;

  const ProgramResult json = run_mpt({"stat", running_name_, "--openmetrics", "--json"});
  EXPECT_EQ(json.code, 2);
  EXPECT_NE(json.out.find("\"error\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("--openmetrics"), std::string::npos) << json.out;
  const ProgramResult watch = run_mpt({"stat", "--openmetrics", "--watch", "1"});
  EXPECT_EQ(watch.code, 2);
  EXPECT_NE(watch.err.find("--watch"), std::string::npos) << watch.err;
  const ProgramResult redis = run_mpt({"stat", "redis://127.0.0.1:1/x", "--openmetrics"});
  EXPECT_EQ(redis.code, 2);  // out of scope: only local throttles have metrics
  EXPECT_NE(redis.err.find("Redis"), std::string::npos) << redis.err;
  const ProgramResult two = run_mpt({"stat", running_name_, stopped_name_});
  EXPECT_EQ(two.code, 2);
  EXPECT_NE(two.err.find("--openmetrics"), std::string::npos) << two.err;

  const std::string dir = tmp_.string();
  for (const char* every : {"0", "-1", "nan"}) {
    const ProgramResult r = run_mpt({"export", "--textfile", dir, "--every", every});
    EXPECT_EQ(r.code, 2) << every;
    EXPECT_NE(r.err.find("--every"), std::string::npos) << r.err;
  }
  const ProgramResult no_dir = run_mpt({"export"});
  EXPECT_EQ(no_dir.code, 2);
  EXPECT_NE(no_dir.err.find("--textfile"), std::string::npos) << no_dir.err;
  const std::string absent = (tmp_ / "absent").string();
  const ProgramResult r1 = run_mpt({"export", "--textfile", absent});
  EXPECT_EQ(r1.code, 1);
  EXPECT_NE(r1.err.find(absent), std::string::npos) << r1.err;
  const std::string file = write_tmp("a-file", "x");
  const ProgramResult r2 = run_mpt({"export", "--textfile", file});
  EXPECT_EQ(r2.code, 1);
  EXPECT_NE(r2.err.find("not a directory"), std::string::npos) << r2.err;
  const ProgramResult r3 = run_mpt({"export", "--textfile", dir, missing});
  EXPECT_EQ(r3.code, 1);
  EXPECT_NE(r3.err.find(missing), std::string::npos) << r3.err;
  EXPECT_FALSE(fs::exists(tmp_ / "mpthrottle.prom"));
}

// A real node_exporter on a loopback port, reading `dir` with its textfile collector only.
class NodeExporter {
 public:
  NodeExporter(const std::string& binary, const std::string& dir) {
    for (int attempt = 0; attempt < 5 && port_ < 0; ++attempt) {
      const int port = free_port();
      auto p = std::make_unique<Program>(
          std::vector<std::string>{binary, "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                   "--collector.disable-defaults", "--collector.textfile",
                                   "--collector.textfile.directory=" + dir});
      // Up when it serves its own series; gone (a zombie) when the port was taken meanwhile.
      const bool up = wait_for([&] {
        return mpt::test::thread_state(p->pid(), p->pid()) == 'Z' ||
               http_get(port, "/metrics").find("node_textfile_scrape_error") != std::string::npos;
      });
      if (up && mpt::test::thread_state(p->pid(), p->pid()) != 'Z') {
        port_ = port;
        program_ = std::move(p);
      } else {
        last_error_ = p->wait(10s).err;
      }
    }
  }
  ~NodeExporter() {
    if (program_) {
      program_->signal(SIGTERM);
      program_->wait(10s);
    }
  }
  int port() const { return port_; }
  const std::string& last_error() const { return last_error_; }

 private:
  int port_ = -1;
  std::unique_ptr<Program> program_;
  std::string last_error_;
};

TEST_F(MptMetricsTest, ExportIsReadBackByNodeExporter) {
  const std::string promtool = find_tool("promtool");
  const std::string exporter = find_tool("prometheus-node-exporter");
  ASSERT_FALSE(promtool.empty()) << "promtool is missing: install Debian's prometheus package";
  ASSERT_FALSE(exporter.empty()) << "prometheus-node-exporter is missing: install it "
                                    "(scripts/install-deps)";
  make_throttles();
  const fs::path dir = tmp_ / "textfile";
  fs::create_directories(dir);
  const ProgramResult r =
      run_mpt({"export", "--textfile", dir.string(), running_name_, stopped_name_});
  ASSERT_EQ(r.code, 0) << r.err;
  // Only the file itself is left: the temporary one was renamed over it.
  std::vector<std::string> files;
  for (const auto& f : fs::directory_iterator(dir))
    files.push_back(f.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"mpthrottle.prom"});
  const std::string prom = (dir / "mpthrottle.prom").string();
  const ProgramResult lint = promtool_stdin(promtool, "check metrics", prom);
  EXPECT_EQ(lint.code, 0) << lint.out << lint.err;
  EXPECT_EQ(lint.out + lint.err, "");

  NodeExporter node(exporter, dir.string());
  ASSERT_GT(node.port(), 0) << "node_exporter did not start: " << node.last_error();
  const std::string body = http_get(node.port(), "/metrics");
  const auto s = samples_of(body);
  EXPECT_EQ(s.count("node_textfile_scrape_error"), 1u) << body;
  EXPECT_EQ(s.at("node_textfile_scrape_error"), 0) << body;
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", running_name_)), 7) << body;
  EXPECT_EQ(s.at(key("mpthrottle_emissions_total", stopped_name_)), 3);
  EXPECT_EQ(s.at(key("mpthrottle_state", running_name_, "state=\"running\"")), 1);
  EXPECT_EQ(s.at(key("mpthrottle_state", stopped_name_, "state=\"stopped\"")), 1);
  EXPECT_EQ(s.at(key("mpthrottle_configured_rate", stopped_name_)), 50);
  EXPECT_NE(body.find("# TYPE mpthrottle_emissions_total counter"), std::string::npos) << body;
}

TEST_F(MptMetricsTest, ExportEveryRewritesUntilSigterm) {
  make_throttles();
  const std::string prom = (tmp_ / "mpthrottle.prom").string();
  MptProcess p({"export", "--textfile", tmp_.string(), "--every", "0.05", running_name_});
  const std::string k = key("mpthrottle_emissions_total", running_name_);
  ASSERT_TRUE(wait_for([&] {
    const auto s = samples_of(slurp_file(prom));
    return s.count(k) == 1 && s.at(k) == 7;
  })) << slurp_file(prom);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(running_->await_fuel());
  EXPECT_TRUE(wait_for([&] {
    const auto s = samples_of(slurp_file(prom));
    return s.count(k) == 1 && s.at(k) == 11;
  })) << slurp_file(prom);
  p.signal(SIGTERM);
  const ProgramResult r = p.wait(30s);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(samples_of(slurp_file(prom)).at(k), 11);  // the last file stays
  for (const auto& f : fs::directory_iterator(tmp_))
    EXPECT_FALSE(f.path().filename().string().starts_with(".mpthrottle.prom")) << f.path();
}

}  // namespace
