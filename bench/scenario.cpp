// bench/scenario.cpp — mpt_scenario: how exactly a throttle holds a rate on this host.
//
// Makes one anonymous throttle of --rate per second, forks --workers processes that each loop
//
//   while (!throttle.kill_flag().is_set()) throttle.await_fuel();
//
// and record the CLOCK_MONOTONIC time of every successful acquisition in their own part of a shared
// anonymous mapping (sized so that any one worker could hold the whole run). The parent starts the
// throttle, sleeps --seconds (absolute deadline), stops it, reaps the workers, merges the
// timestamps and reports: the target and achieved totals, the achieved rate and its relative error,
// the most emissions in any window of one second, the intervals between consecutive emissions (p50,
// p99, max) and the workers' CPU time per 1,000 emissions.
//
// Definitions: achieved_total counts the recorded acquisitions stamped between start() and the
// return of stop() (it should equal the total in stop()'s summary); achieved_rate_per_sec is
// achieved_total over the summary's runtime, and rel_error is achieved_rate_per_sec / rate - 1.
// start() makes one unit available at once, so a perfect run takes rate * seconds units, +1 at
// most.
//
// Human text by default, one JSON object with --json (schema 1). Exit 0 ok, 1 runtime error, 2 bad
// usage.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mpt/throttle.hpp"

namespace {

constexpr std::int64_t kPerNs = 1'000'000'000;  // the window of the rate: one second
constexpr int kMaxWorkers = 256;
constexpr double kMaxSeconds = 3600;
constexpr std::size_t kMaxRecordBytes = std::size_t{4} << 30;  // timestamps kept, all workers
constexpr int kSchema = 1;

// ---------------------------------------------------------------------------------------------
// Options.

struct ScenarioOptions {
  std::int64_t rate_per_sec = 0;  // required
  int workers = 4;
  double seconds = 5;
  mpt::Hardcap hardcap = mpt::Hardcap::kLimit;
  std::optional<double> correction;
  std::optional<double> spin_lead_us;
  bool json = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* kHelp =
    "usage: mpt_scenario --rate N [options]\n"
    "\n"
    "Runs W worker processes against one throttle of N per second for S seconds, records every\n"
    "acquisition's CLOCK_MONOTONIC time and reports how exactly the rate was held.\n"
    "\n"
    "options:\n"
    "  --rate N            units per second (max_n N, per 1 s); required\n"
    "  --workers W         worker processes (default 4)\n"
    "  --seconds S         run time in seconds (default 5)\n"
    "  --hardcap H         limit, one or none (default limit)\n"
    "  --correction C      the throttle's correction, -1 < C < 1 (default: the library's)\n"
    "  --spin-lead-us U    spin this many microseconds before each slot, 0 to 10000\n"
    "  --json              print one JSON object instead of text\n"
    "  -h, --help          print this help\n";

std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw UsageError(std::string(flag) + " needs an integer, got '" + std::string(text) + "'");
  }
  return v;
}

double parse_double(std::string_view flag, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) {
    throw UsageError(std::string(flag) + " needs a number, got '" + s + "'");
  }
  return v;
}

// Parses argv; returns nullopt when --help was printed. Throws UsageError naming the flag.
std::optional<ScenarioOptions> parse_args(int argc, char** argv) {
  ScenarioOptions o;
  bool have_rate = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string_view {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(std::string(arg) + " needs a value");
      return argv[++i];
    };
    auto no_value = [&] {
      if (inline_value) throw UsageError(std::string(arg) + " takes no value");
    };

    if (arg == "-h" || arg == "--help") {
      no_value();
      std::fputs(kHelp, stdout);
      return std::nullopt;
    } else if (arg == "--rate") {
      o.rate_per_sec = parse_int(arg, value());
      if (o.rate_per_sec < 1 || o.rate_per_sec > 1'000'000'000) {
        throw UsageError("--rate must be between 1 and 1000000000 per second");
      }
      have_rate = true;
    } else if (arg == "--workers") {
      const std::int64_t w = parse_int(arg, value());
      if (w < 1 || w > kMaxWorkers) {
        throw UsageError("--workers must be between 1 and " + std::to_string(kMaxWorkers));
      }
      o.workers = static_cast<int>(w);
    } else if (arg == "--seconds") {
      o.seconds = parse_double(arg, value());
      if (o.seconds <= 0 || o.seconds > kMaxSeconds) {
        throw UsageError("--seconds must be greater than 0 and at most 3600");
      }
    } else if (arg == "--hardcap") {
      const std::string_view h = value();
      if (h == "limit") {
        o.hardcap = mpt::Hardcap::kLimit;
      } else if (h == "one") {
        o.hardcap = mpt::Hardcap::kOne;
      } else if (h == "none") {
        o.hardcap = mpt::Hardcap::kNone;
      } else {
        throw UsageError("--hardcap must be limit, one or none, got '" + std::string(h) + "'");
      }
    } else if (arg == "--correction") {
      o.correction = parse_double(arg, value());
      if (*o.correction <= -1 || *o.correction >= 1) {
        throw UsageError("--correction must be greater than -1 and less than 1");
      }
    } else if (arg == "--spin-lead-us") {
      o.spin_lead_us = parse_double(arg, value());
      if (*o.spin_lead_us < 0 || *o.spin_lead_us > 10'000) {
        throw UsageError("--spin-lead-us must be between 0 and 10000");
      }
    } else if (arg == "--json") {
      no_value();
      o.json = true;
    } else {
      throw UsageError("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (!have_rate) throw UsageError("--rate is required");
  return o;
}

// ---------------------------------------------------------------------------------------------
// Time and processes.

std::int64_t mono_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
  timespec ts;
  ts.tv_sec = deadline_ns / 1'000'000'000;
  ts.tv_nsec = deadline_ns % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

double cpu_seconds(const rusage& r) {
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(r.ru_utime) + s(r.ru_stime);
}

// What each worker leaves for the parent, one cache line each.
struct alignas(64) WorkerSlot {
  std::atomic<std::uint64_t> recorded{0};  // timestamps written
  std::atomic<std::uint64_t> dropped{0};   // acquisitions that did not fit
  std::atomic<std::uint32_t> ready{0};     // about to wait for the start
};

// The shared anonymous mapping: W slots, then W arrays of `capacity` timestamps.
class Record {
 public:
  Record(int workers, std::uint64_t capacity) : workers_(workers), capacity_(capacity) {
    const std::size_t slots = sizeof(WorkerSlot) * static_cast<std::size_t>(workers);
    const double stamps = static_cast<double>(capacity) * workers * sizeof(std::int64_t);
    if (stamps > static_cast<double>(kMaxRecordBytes)) {
      throw std::runtime_error("recording every emission would need " +
                               std::to_string(static_cast<std::uint64_t>(stamps) >> 20) +
                               " MiB (limit 4096); lower --rate or --seconds");
    }
    bytes_ = slots + static_cast<std::size_t>(stamps);
    // Populated up front, so that workers do not take page faults while they are being measured.
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
      throw std::runtime_error("cannot map " + std::to_string(bytes_ >> 20) +
                               " MiB for the timestamps: " + std::strerror(errno));
    }
    base_ = p;
    for (int w = 0; w < workers; ++w)
      new (&slots_begin()[w]) WorkerSlot();
  }
  ~Record() { munmap(base_, bytes_); }
  Record(const Record&) = delete;
  Record& operator=(const Record&) = delete;

  WorkerSlot& slot(int w) const noexcept { return slots_begin()[w]; }
  std::int64_t* stamps(int w) const noexcept {
    auto* first = reinterpret_cast<std::int64_t*>(slots_begin() + workers_);
    return first + static_cast<std::size_t>(w) * capacity_;
  }
  std::uint64_t capacity() const noexcept { return capacity_; }

 private:
  WorkerSlot* slots_begin() const noexcept { return static_cast<WorkerSlot*>(base_); }
  int workers_;
  std::uint64_t capacity_;
  std::size_t bytes_ = 0;
  void* base_ = nullptr;
};

// The body of one worker process; never returns.
[[noreturn]] void run_worker(mpt::Throttle& throttle, Record& record, int w) {
  WorkerSlot& slot = record.slot(w);
  std::int64_t* stamps = record.stamps(w);
  const std::uint64_t capacity = record.capacity();
  std::uint64_t n = 0;
  std::uint64_t dropped = 0;
  const mpt::Event kill = throttle.kill_flag();
  slot.ready.store(1, std::memory_order_release);
  while (!kill.is_set()) {
    if (!throttle.await_fuel()) continue;
    const std::int64_t t = mono_ns();
    if (n < capacity) {
      stamps[n++] = t;
    } else {
      ++dropped;
    }
  }
  slot.recorded.store(n, std::memory_order_release);
  slot.dropped.store(dropped, std::memory_order_release);
  _exit(0);
}

// ---------------------------------------------------------------------------------------------
// The run and its statistics.

struct ScenarioResult {
  // Configuration, as the throttle reports it.
  std::int64_t interval_ns = 0;
  double correction = 0;
  std::string correction_source;
  std::int64_t spin_lead_ns = 0;
  // Counts.
  double target_total = 0;
  std::uint64_t achieved_total = 0;  // recorded timestamps between start and stop
  std::uint64_t monitor_total = 0;   // stop()'s summary
  std::uint64_t monitor_total_after_reap = 0;
  std::uint64_t recorded_total = 0;  // every recorded timestamp
  std::uint64_t dropped = 0;         // acquisitions that did not fit in the record
  double runtime_s = 0;              // stop()'s summary
  double achieved_rate_per_sec = 0;
  double rel_error = 0;
  std::uint64_t max_in_window = 0;
  std::int64_t interval_p50_ns = 0;
  std::int64_t interval_p99_ns = 0;
  std::int64_t interval_max_ns = 0;
  double cpu_s = 0;
  double cpu_s_per_1000 = 0;
};

// Nearest-rank percentile of sorted values (q in (0, 1]).
std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// The most timestamps in any half-open window [t, t + width) of sorted times.
std::uint64_t max_in_window(const std::vector<std::int64_t>& sorted, std::int64_t width) {
  std::uint64_t best = 0;
  std::size_t j = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    j = std::max(j, i);
    while (j < sorted.size() && sorted[j] < sorted[i] + width)
      ++j;
    best = std::max<std::uint64_t>(best, j - i);
  }
  return best;
}

ScenarioResult run_scenario(const ScenarioOptions& o) {
  mpt::ThrottleOptions to;
  to.hardcap = o.hardcap;
  to.correction = o.correction;
  if (o.spin_lead_us) {
    to.spin_lead = std::chrono::nanoseconds(std::llround(*o.spin_lead_us * 1000));
  }
  mpt::Throttle throttle(o.rate_per_sec, std::chrono::seconds(1), to);

  const double expected = static_cast<double>(o.rate_per_sec) * o.seconds;
  const auto capacity = static_cast<std::uint64_t>(std::ceil(expected * 1.2)) + 1000;
  Record record(o.workers, capacity);

  rusage before{};
  getrusage(RUSAGE_CHILDREN, &before);
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int w = 0; w < o.workers; ++w) {
    const pid_t pid = fork();
    if (pid < 0) {
      const int e = errno;
      (void)throttle.stop();  // the workers forked so far see the kill flag and leave
      for (pid_t p : pids)
        waitpid(p, nullptr, 0);
      throw std::runtime_error(std::string("cannot fork worker ") + std::to_string(w) + ": " +
                               std::strerror(e));
    }
    if (pid == 0) run_worker(throttle, record, w);
    pids.push_back(pid);
  }
  for (int w = 0; w < o.workers; ++w) {
    while (record.slot(w).ready.load(std::memory_order_acquire) == 0) {
      sleep_until_ns(mono_ns() + 100'000);
    }
  }

  const auto start_tp = std::chrono::steady_clock::now();
  const std::int64_t start_ns = to_ns(start_tp);
  throttle.start(start_tp);
  sleep_until_ns(start_ns + std::llround(o.seconds * 1e9));
  const mpt::Summary summary = throttle.stop();
  const std::int64_t stop_ns = mono_ns();

  std::string failure;
  for (std::size_t w = 0; w < pids.size(); ++w) {
    int status = 0;
    while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR) {
    }
    if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      failure = "worker " + std::to_string(w) +
                (WIFSIGNALED(status) ? " was killed by signal " + std::to_string(WTERMSIG(status))
                                     : " exited with status " + std::to_string(status));
    }
  }
  rusage after{};
  getrusage(RUSAGE_CHILDREN, &after);
  if (!failure.empty()) throw std::runtime_error(failure);

  ScenarioResult r;
  const mpt::Snapshot snap = throttle.snapshot();
  r.interval_ns = snap.interval_ns;
  r.correction = snap.correction;
  r.correction_source = snap.correction_source;
  r.spin_lead_ns = snap.spin_lead_ns;

  std::vector<std::int64_t> times;
  for (int w = 0; w < o.workers; ++w) {
    const std::uint64_t n = record.slot(w).recorded.load(std::memory_order_acquire);
    r.dropped += record.slot(w).dropped.load(std::memory_order_acquire);
    r.recorded_total += n;
    const std::int64_t* s = record.stamps(w);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (s[i] >= start_ns && s[i] <= stop_ns) times.push_back(s[i]);
    }
  }
  std::sort(times.begin(), times.end());

  r.target_total = expected;
  r.achieved_total = times.size();
  r.monitor_total = summary.total;
  r.monitor_total_after_reap = throttle.total();
  r.runtime_s = summary.runtime.count();
  if (r.runtime_s > 0)
    r.achieved_rate_per_sec = static_cast<double>(r.achieved_total) / r.runtime_s;
  r.rel_error = r.achieved_rate_per_sec / static_cast<double>(o.rate_per_sec) - 1.0;
  r.max_in_window = max_in_window(times, kPerNs);

  std::vector<std::int64_t> gaps;
  gaps.reserve(times.empty() ? 0 : times.size() - 1);
  for (std::size_t i = 1; i < times.size(); ++i)
    gaps.push_back(times[i] - times[i - 1]);
  std::sort(gaps.begin(), gaps.end());
  r.interval_p50_ns = percentile(gaps, 0.50);
  r.interval_p99_ns = percentile(gaps, 0.99);
  r.interval_max_ns = gaps.empty() ? 0 : gaps.back();

  r.cpu_s = cpu_seconds(after) - cpu_seconds(before);
  if (r.achieved_total > 0) {
    r.cpu_s_per_1000 = r.cpu_s / static_cast<double>(r.achieved_total) * 1000.0;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reports.

bool totals_match(const ScenarioResult& r) {
  return r.achieved_total == r.monitor_total && r.recorded_total == r.monitor_total_after_reap &&
         r.dropped == 0;
}

nlohmann::ordered_json to_json(const ScenarioOptions& o, const ScenarioResult& r) {
  nlohmann::ordered_json j;
  j["schema"] = kSchema;
  j["rate_per_sec"] = o.rate_per_sec;
  j["per_s"] = 1.0;
  j["workers"] = o.workers;
  j["seconds"] = o.seconds;
  j["hardcap"] = mpt::to_string(o.hardcap);
  j["correction"] = r.correction;
  j["correction_source"] = r.correction_source;
  j["spin_lead_ns"] = r.spin_lead_ns;
  j["slot_interval_ns"] = r.interval_ns;
  j["target_total"] = r.target_total;
  j["achieved_total"] = r.achieved_total;
  j["monitor_total"] = r.monitor_total;
  j["monitor_total_after_reap"] = r.monitor_total_after_reap;
  j["recorded_total"] = r.recorded_total;
  j["dropped"] = r.dropped;
  j["totals_match"] = totals_match(r);
  j["runtime_s"] = r.runtime_s;
  j["achieved_rate_per_sec"] = r.achieved_rate_per_sec;
  j["rel_error"] = r.rel_error;
  j["max_in_window"] = r.max_in_window;
  j["window_s"] = static_cast<double>(kPerNs) / 1e9;
  j["interval_p50_ns"] = r.interval_p50_ns;
  j["interval_p99_ns"] = r.interval_p99_ns;
  j["interval_max_ns"] = r.interval_max_ns;
  j["cpu_s"] = r.cpu_s;
  j["cpu_s_per_1000"] = r.cpu_s_per_1000;
  return j;
}

void print_text(const ScenarioOptions& o, const ScenarioResult& r) {
  std::printf("rate %lld/s, %d workers, %g s, hardcap %s, correction %g (%s), spin lead %.1f us\n",
              static_cast<long long>(o.rate_per_sec), o.workers, o.seconds,
              mpt::to_string(o.hardcap), r.correction, r.correction_source.c_str(),
              static_cast<double>(r.spin_lead_ns) / 1e3);
  std::printf("%-22s %14s\n", "QUANTITY", "VALUE");
  std::printf("%-22s %14.0f\n", "target", r.target_total);
  std::printf("%-22s %14llu\n", "achieved", static_cast<unsigned long long>(r.achieved_total));
  std::printf("%-22s %14llu\n", "monitor total", static_cast<unsigned long long>(r.monitor_total));
  std::printf("%-22s %14.3f\n", "achieved rate(/s)", r.achieved_rate_per_sec);
  std::printf("%-22s %+14.4f\n", "rel error(%)", r.rel_error * 100);
  std::printf("%-22s %14llu\n", "max in 1 s window",
              static_cast<unsigned long long>(r.max_in_window));
  std::printf("%-22s %14.1f\n", "interval p50(us)", static_cast<double>(r.interval_p50_ns) / 1e3);
  std::printf("%-22s %14.1f\n", "interval p99(us)", static_cast<double>(r.interval_p99_ns) / 1e3);
  std::printf("%-22s %14.1f\n", "interval max(us)", static_cast<double>(r.interval_max_ns) / 1e3);
  std::printf("%-22s %14.3f\n", "cpu per 1000(ms)", r.cpu_s_per_1000 * 1e3);
  if (!totals_match(r)) {
    std::fprintf(
        stderr,
        "mpt_scenario: warning: counts differ: %llu recorded in the run, %llu counted by "
        "stop(); %llu recorded in all, %llu counted after the workers left; %llu dropped\n",
        static_cast<unsigned long long>(r.achieved_total),
        static_cast<unsigned long long>(r.monitor_total),
        static_cast<unsigned long long>(r.recorded_total),
        static_cast<unsigned long long>(r.monitor_total_after_reap),
        static_cast<unsigned long long>(r.dropped));
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i)
    json = json || std::string_view(argv[i]) == "--json";

  std::optional<ScenarioOptions> options;
  try {
    options = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mpt_scenario: %s (see --help)\n", e.what());
    if (json) std::printf("%s\n", nlohmann::json{{"error", e.what()}}.dump().c_str());
    return 2;
  }
  if (!options) return 0;

  try {
    const ScenarioResult r = run_scenario(*options);
    if (options->json) {
      std::printf("%s\n", to_json(*options, r).dump(2).c_str());
    } else {
      print_text(*options, r);
    }
  } catch (const std::exception& e) {
    if (json) {
      std::printf("%s\n", nlohmann::json{{"error", e.what()}}.dump().c_str());
    } else {
      std::fprintf(stderr, "mpt_scenario: %s\n", e.what());
    }
    return 1;
  }
  return 0;
}
