#include "trial.hpp"

#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

#include "mpt/calibration.hpp"
#include "mpt/error.hpp"
#include "mpt/process.hpp"

namespace mpt::trial {

namespace {

constexpr std::int64_t kPerNs = 1'000'000'000;  // the window of the rate: one second
constexpr int kMaxWorkers = 256;
constexpr std::size_t kMaxRecordBytes = std::size_t{4} << 30;  // timestamps kept, all workers

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
  std::atomic<std::uint64_t> dropped{0};   // grants that did not fit
  std::atomic<std::uint32_t> ready{0};     // about to wait for the start
};

// The shared anonymous mapping: W slots, then W arrays of `capacity` timestamps.
class Record {
 public:
  Record(int workers, std::uint64_t capacity) : workers_(workers), capacity_(capacity) {
    const std::size_t slots = sizeof(WorkerSlot) * static_cast<std::size_t>(workers);
    const double stamps = static_cast<double>(capacity) * workers * sizeof(std::int64_t);
    if (stamps > static_cast<double>(kMaxRecordBytes)) {
      throw std::runtime_error("recording every grant would need " +
                               std::to_string(static_cast<std::uint64_t>(stamps) >> 20) +
                               " MiB (limit 4096); lower the rate or the seconds");
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

// The body of worker process w: records grants until the kill flag is set.
void run_worker(Throttle& throttle, Record& record, int w) {
  WorkerSlot& slot = record.slot(w);
  std::int64_t* stamps = record.stamps(w);
  const std::uint64_t capacity = record.capacity();
  std::uint64_t n = 0;
  std::uint64_t dropped = 0;
  const Event kill = throttle.kill_flag();
  slot.ready.store(1, std::memory_order_release);
  while (!kill.is_set()) {
    const auto granted = throttle.await_grant();
    if (!granted) continue;
    if (n < capacity) {
      stamps[n++] = to_ns(*granted);
    } else {
      ++dropped;
    }
  }
  slot.recorded.store(n, std::memory_order_release);
  slot.dropped.store(dropped, std::memory_order_release);
}

// The figures of the sorted grant times r.times (r.achieved_total of them): first and last, the
// rate achieved and its error against `rate`, the most in a window, the intervals.
void measure_grants(TrialResult& r, double rate) {
  const std::vector<std::int64_t>& times = r.times;
  if (!times.empty()) {
    r.first_ns = times.front();
    r.last_ns = times.back();
  }
  r.achieved_rate_per_sec =
      calibration::achieved_rate_per_sec(r.achieved_total, r.first_ns, r.last_ns);
  r.rel_error = calibration::rel_error(r.achieved_rate_per_sec, rate);
  r.max_in_window = max_in_window(times, kPerNs);

  std::vector<std::int64_t> gaps;
  gaps.reserve(times.empty() ? 0 : times.size() - 1);
  for (std::size_t i = 1; i < times.size(); ++i)
    gaps.push_back(times[i] - times[i - 1]);
  std::sort(gaps.begin(), gaps.end());
  r.interval_p50_ns = calibration::percentile(gaps, 0.50);
  r.interval_p99_ns = calibration::percentile(gaps, 0.99);
  r.interval_max_ns = gaps.empty() ? 0 : gaps.back();
}

}  // namespace

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

namespace {

void check_options(const TrialOptions& o) {
  if (o.rate_per_sec < 1) throw InvalidArgument("the rate must be at least 1 per second");
  if (o.workers < 1 || o.workers > kMaxWorkers) {
    throw InvalidArgument("workers must be between 1 and " + std::to_string(kMaxWorkers));
  }
  if (!(o.seconds > 0) || o.seconds > 3600) {
    throw InvalidArgument("seconds must be greater than 0 and at most 3600");
  }
}

// Starts the workers (daemons: they never outlive the trial's process) and waits until each is
// about to wait for the start. If one cannot be forked, the throttle is stopped (the workers
// forked so far see the kill flag and leave), they are reaped, and runtime_error says why.
ProcessGroup start_workers(Throttle& throttle, Record& record, int workers) {
  ProcessGroup group(workers, [t = &throttle, rec = &record](int w) { run_worker(*t, *rec, w); },
                     {.name = "trial-worker", .daemon = true});
  try {
    group.start();
  } catch (const SystemError& e) {
    (void)throttle.stop();
    group.join();
    throw std::runtime_error("cannot fork worker " + std::to_string(group.started()) + ": " +
                             std::strerror(e.sys_errno()));
  }
  for (int w = 0; w < workers; ++w) {
    while (record.slot(w).ready.load(std::memory_order_acquire) == 0) {
      sleep_until_ns(mono_ns() + 100'000);
    }
  }
  return group;
}

// The run itself: from start() to stop().
struct RunWindow {
  std::int64_t start_ns = 0;
  std::int64_t stop_ns = 0;
  Summary summary;
};

// Starts the throttle, sleeps o.seconds (calling o.tick about every 100 ms) and stops it. If the
// tick gives up (an interrupt, say), stops the throttle and reaps the workers before rethrowing:
// no worker is left behind.
RunWindow run_window(const TrialOptions& o, Throttle& throttle, ProcessGroup& workers) {
  RunWindow w;
  const auto start_tp = std::chrono::steady_clock::now();
  w.start_ns = to_ns(start_tp);
  const std::int64_t end_ns = w.start_ns + std::llround(o.seconds * 1e9);
  throttle.start(start_tp);
  try {
    for (std::int64_t now = mono_ns(); now < end_ns; now = mono_ns()) {
      sleep_until_ns(std::min(end_ns, now + 100'000'000));
      if (o.tick) o.tick(static_cast<double>(mono_ns() - w.start_ns) / 1e9);
    }
  } catch (...) {
    (void)throttle.stop();
    workers.join();
    throw;
  }
  w.summary = throttle.stop();
  w.stop_ns = mono_ns();
  return w;
}

// Reaps the workers; throws runtime_error naming the first that failed.
void reap_workers(ProcessGroup& workers) {
  workers.join();
  if (const auto f = workers.first_failure()) {
    throw std::runtime_error("worker " + std::to_string(f->index) + " " +
                             describe_exitcode(f->exitcode));
  }
}

// Merges the workers' timestamps between start and stop into r.times, sorted, and counts what
// they recorded and dropped.
void merge_record(TrialResult& r, const Record& record, int workers, const RunWindow& w) {
  std::vector<std::int64_t>& times = r.times;
  for (int i = 0; i < workers; ++i) {
    const std::uint64_t n = record.slot(i).recorded.load(std::memory_order_acquire);
    r.dropped += record.slot(i).dropped.load(std::memory_order_acquire);
    r.recorded_total += n;
    const std::int64_t* s = record.stamps(i);
    for (std::uint64_t k = 0; k < n; ++k) {
      if (s[k] >= w.start_ns && s[k] <= w.stop_ns) times.push_back(s[k]);
    }
  }
  std::sort(times.begin(), times.end());
}

}  // namespace

TrialResult run_trial(const TrialOptions& o) {
  check_options(o);
  Throttle throttle(o.rate_per_sec, std::chrono::seconds(1), o.throttle);

  const double expected = static_cast<double>(o.rate_per_sec) * o.seconds;
  const auto capacity = static_cast<std::uint64_t>(std::ceil(expected * 1.2)) + 1000;
  Record record(o.workers, capacity);

  rusage before{};
  getrusage(RUSAGE_CHILDREN, &before);
  ProcessGroup workers = start_workers(throttle, record, o.workers);
  if (o.before_start) o.before_start(throttle);
  const RunWindow window = run_window(o, throttle, workers);
  reap_workers(workers);
  rusage after{};
  getrusage(RUSAGE_CHILDREN, &after);

  TrialResult r;
  const Snapshot snap = throttle.snapshot();
  r.throttle_id = snap.id;
  r.interval_ns = snap.interval_ns;
  r.correction = snap.correction;
  r.correction_source = snap.correction_source;
  r.spin_lead_ns = snap.spin_lead_ns;
  merge_record(r, record, o.workers, window);

  r.start_ns = window.start_ns;
  r.target_total = expected;
  r.achieved_total = r.times.size();
  r.monitor_total = window.summary.total;
  r.monitor_total_after_reap = throttle.total();
  r.runtime_s = window.summary.runtime.count();
  r.mean_rate_per_sec = window.summary.mean_rate_per_sec;
  measure_grants(r, static_cast<double>(o.rate_per_sec));

  r.cpu_s = cpu_seconds(after) - cpu_seconds(before);
  if (r.achieved_total > 0) {
    r.cpu_s_per_1000 = r.cpu_s / static_cast<double>(r.achieved_total) * 1000.0;
  }
  return r;
}

}  // namespace mpt::trial
