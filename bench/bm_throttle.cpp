// bench/bm_throttle.cpp — the cost of one throttle operation, against the floor it is built on.
//
// Every fuel operation is at least one clock read and one compare-and-swap on the GCRA word, so
// BM_Floor_ClockPlusCas measures exactly that and bench/ratios.py divides every other median by it.
// The throttles here are "unlimited" (1e9 per second, hardcap none): fuel is always available, so
// the numbers are the cost of the bookkeeping, never of waiting.
//
// BM_Contention_* fork two processes that hammer one shared word for one second (kContentionNs) and
// count what they got: through has_fuel() on one anonymous throttle, and with bare CAS increments
// in an anonymous MAP_SHARED mapping. Their "ops_per_sec" counters are acquisitions per second
// summed over both processes, measured between a shared start flag and a shared stop flag.
//
//   bm_throttle --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//       --benchmark_out=bm.json --benchmark_out_format=json
//   python3 bench/ratios.py bm.json
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "mpt/error.hpp"
#include "mpt/process.hpp"
#include "mpt/throttle.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kUnlimitedMaxN = 1'000'000'000;  // one unit per ns: never runs dry here
constexpr int kContentionProcesses = 2;
constexpr std::int64_t kContentionNs = 1'000'000'000;  // measured window of one iteration

std::int64_t mono_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
  timespec ts;
  ts.tv_sec = deadline_ns / 1'000'000'000;
  ts.tv_nsec = deadline_ns % 1'000'000'000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Fuel is always available: 1e9 per second, and unused fuel accumulates (hardcap none).
mpt::ThrottleOptions unlimited_options(bool monitor) {
  mpt::ThrottleOptions o;
  o.hardcap = mpt::Hardcap::kNone;
  o.auto_calibrate = false;
  o.correction = 0.0;
  o.as_monitor = monitor;
  o.auto_emit = monitor;
  return o;
}

// A started throttle, or nullopt after SkipWithError naming what failed.
std::optional<mpt::Throttle> make_started(benchmark::State& state,
                                          const mpt::ThrottleOptions& options) {
  try {
    mpt::Throttle throttle(kUnlimitedMaxN, 1s, options);
    throttle.start();
    return throttle;
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("cannot create the throttle: ") + e.what()).c_str());
    return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------------
// Single process.

// BM_Floor_ClockPlusCas: one clock_gettime(CLOCK_MONOTONIC) and one compare-and-swap that moves a
// timestamp word forward, as a GCRA acquisition does. The floor of every other result.
void BM_Floor_ClockPlusCas(benchmark::State& state) {
  alignas(64) static std::atomic<std::uint64_t> word{0};
  for (auto _ : state) {
    const auto now = static_cast<std::uint64_t>(mono_ns());
    std::uint64_t w = word.load(std::memory_order_acquire);
    const bool ok = word.compare_exchange_strong(w, std::max(w, now) + 1, std::memory_order_acq_rel,
                                                 std::memory_order_acquire);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Floor_ClockPlusCas);

// Runs has_fuel() in the benchmark loop; counts refusals, which should stay at 0.
void run_has_fuel(benchmark::State& state, const mpt::ThrottleOptions& options) {
  auto throttle = make_started(state, options);
  if (!throttle) return;
  std::int64_t refused = 0;
  for (auto _ : state) {
    const bool ok = throttle->has_fuel();
    benchmark::DoNotOptimize(ok);
    refused += ok ? 0 : 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["refused"] = static_cast<double>(refused);
  (void)throttle->stop();
}

// BM_Throttle_HasFuel: has_fuel() with the monitor off (as_monitor=false, auto_emit=false).
void BM_Throttle_HasFuel(benchmark::State& state) {
  run_has_fuel(state, unlimited_options(false));
}
BENCHMARK(BM_Throttle_HasFuel);

// BM_Throttle_HasFuelAutoEmit: has_fuel() counting each unit in the monitor (auto_emit=true).
void BM_Throttle_HasFuelAutoEmit(benchmark::State& state) {
  run_has_fuel(state, unlimited_options(true));
}
BENCHMARK(BM_Throttle_HasFuelAutoEmit);

// BM_Throttle_HasFuelOne: has_fuel() under hardcap one (monitor off): the GCRA CAS, then hardcap
// one's gate (a read of two ring entries, a CAS on the third, the head moved on). The rate is
// unlimited and the gate steps over 65,535 grants of a second's 1e9, so nothing is refused.
void BM_Throttle_HasFuelOne(benchmark::State& state) {
  mpt::ThrottleOptions o = unlimited_options(false);
  o.hardcap = mpt::Hardcap::kOne;
  run_has_fuel(state, o);
}
BENCHMARK(BM_Throttle_HasFuelOne);

// BM_Throttle_AwaitFuelAvailable: await_fuel() when the next unit is already due (never sleeps).
void BM_Throttle_AwaitFuelAvailable(benchmark::State& state) {
  auto throttle = make_started(state, unlimited_options(false));
  if (!throttle) return;
  std::int64_t refused = 0;
  for (auto _ : state) {
    const bool ok = throttle->await_fuel();
    benchmark::DoNotOptimize(ok);
    refused += ok ? 0 : 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["refused"] = static_cast<double>(refused);
  (void)throttle->stop();
}
BENCHMARK(BM_Throttle_AwaitFuelAvailable);

// BM_Throttle_Emit: emit() on a monitor (as_throttle=false): total, the latest() bucket ring and
// the shortest/longest interval.
void BM_Throttle_Emit(benchmark::State& state) {
  mpt::ThrottleOptions o = unlimited_options(true);
  o.as_throttle = false;
  o.auto_emit = false;
  auto monitor = make_started(state, o);
  if (!monitor) return;
  for (auto _ : state) {
    monitor->emit();
  }
  state.SetItemsProcessed(state.iterations());
  if (monitor->total() != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("the monitor's total does not match the number of emit() calls");
  }
  (void)monitor->stop();
}
BENCHMARK(BM_Throttle_Emit);

// ---------------------------------------------------------------------------------------------
// Two processes.

struct alignas(64) Line {
  std::atomic<std::uint64_t> v{0};
};

// The control block the parent shares with its children, one cache line per field.
struct ContentionShared {
  Line word;   // the bare-CAS target
  Line ready;  // children that are waiting for `go`
  Line go;     // set by the parent: start counting
  Line stop;   // set by the parent: stop counting
  Line ops[kContentionProcesses];
  Line refused[kContentionProcesses];
};

// An anonymous MAP_SHARED mapping of one ContentionShared, unmapped on scope exit.
class SharedControl {
 public:
  SharedControl() {
    void* p = mmap(nullptr, sizeof(ContentionShared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) c_ = new (p) ContentionShared();
  }
  ~SharedControl() {
    if (c_) munmap(c_, sizeof(ContentionShared));
  }
  SharedControl(const SharedControl&) = delete;
  SharedControl& operator=(const SharedControl&) = delete;
  ContentionShared* get() const noexcept { return c_; }

 private:
  ContentionShared* c_ = nullptr;
};

// Runs one timed round: forks kContentionProcesses children that each call `op` (returning true
// for an acquisition) until the stop flag, between a common start and stop. Adds the children's
// counts and the measured window to the totals. Returns an error message, or "" on success.
template <typename Op>
std::string contention_round(ContentionShared* c, Op op, std::uint64_t* ops, std::uint64_t* refused,
                             std::int64_t* window_ns) {
  c->ready.v.store(0);
  c->go.v.store(0);
  c->stop.v.store(0);
  for (auto& l : c->ops)
    l.v.store(0);
  for (auto& l : c->refused)
    l.v.store(0);

  mpt::ProcessGroup children(kContentionProcesses,
                             [c, op](int i) mutable {
                               c->ready.v.fetch_add(1);
                               while (c->go.v.load(std::memory_order_acquire) == 0)
                                 sched_yield();
                               std::uint64_t n = 0;
                               std::uint64_t no = 0;
                               while (c->stop.v.load(std::memory_order_relaxed) == 0) {
                                 if (op()) {
                                   ++n;
                                 } else {
                                   ++no;
                                 }
                               }
                               c->ops[i].v.store(n);
                               c->refused[i].v.store(no);
                             },
                             {.daemon = true});
  std::string error;
  try {
    children.start();
  } catch (const mpt::SystemError& e) {
    error = std::string("fork: ") + std::strerror(e.sys_errno());
  }

  if (error.empty()) {
    while (c->ready.v.load() < static_cast<std::uint64_t>(kContentionProcesses)) {
      sleep_until_ns(mono_ns() + 50'000);
    }
    const std::int64_t t0 = mono_ns();
    c->go.v.store(1, std::memory_order_release);
    sleep_until_ns(t0 + kContentionNs);
    c->stop.v.store(1, std::memory_order_release);
    *window_ns += mono_ns() - t0;
  } else {
    c->go.v.store(1);
    c->stop.v.store(1);
  }

  children.join();
  if (const auto f = children.first_failure(); error.empty() && f) {
    error = "a child process failed (" + mpt::describe_exitcode(f->exitcode) + ")";
  }
  if (!error.empty()) return error;
  for (const auto& l : c->ops)
    *ops += l.v.load();
  for (const auto& l : c->refused)
    *refused += l.v.load();
  return "";
}

template <typename Op>
void run_contention(benchmark::State& state, ContentionShared* c, Op op) {
  std::uint64_t ops = 0;
  std::uint64_t refused = 0;
  std::int64_t window_ns = 0;
  for (auto _ : state) {
    const std::string error = contention_round(c, op, &ops, &refused, &window_ns);
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  if (window_ns <= 0 || ops == 0) {
    state.SkipWithError("no acquisitions were measured");
    return;
  }
  const double seconds = static_cast<double>(window_ns) / 1e9;
  state.counters["ops_per_sec"] = static_cast<double>(ops) / seconds;
  state.counters["ns_per_op_per_process"] =
      seconds * 1e9 * kContentionProcesses / static_cast<double>(ops);
  state.counters["refused"] = static_cast<double>(refused);
  state.counters["processes"] = kContentionProcesses;
}

// BM_Contention_TwoProcessesThrottle: two processes calling has_fuel() on one anonymous throttle
// (unlimited, monitor off).
void BM_Contention_TwoProcessesThrottle(benchmark::State& state) {
  SharedControl control;
  if (!control.get()) {
    state.SkipWithError("cannot map the shared control block");
    return;
  }
  auto throttle = make_started(state, unlimited_options(false));
  if (!throttle) return;
  run_contention(state, control.get(), [&] { return throttle->has_fuel(); });
  (void)throttle->stop();
}
BENCHMARK(BM_Contention_TwoProcessesThrottle)->UseRealTime()->Iterations(1);

// BM_Contention_TwoProcessesBareCas: two processes incrementing one shared word by CAS: the best a
// shared-memory counter can do on this host.
void BM_Contention_TwoProcessesBareCas(benchmark::State& state) {
  SharedControl control;
  if (!control.get()) {
    state.SkipWithError("cannot map the shared control block");
    return;
  }
  std::atomic<std::uint64_t>* word = &control.get()->word.v;
  run_contention(state, control.get(), [word] {
    std::uint64_t w = word->load(std::memory_order_relaxed);
    while (!word->compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
    }
    return true;
  });
}
BENCHMARK(BM_Contention_TwoProcessesBareCas)->UseRealTime()->Iterations(1);

// BM_Contention_TwoProcessesClockPlusCas: two processes doing what BM_Floor_ClockPlusCas does on
// one shared word, retrying a failed CAS with the same clock reading as has_fuel() does. Not a
// target: it separates the cost of the clock read between CASes (which lets the other process take
// the cache line every time) from the cost of the throttle's own code.
void BM_Contention_TwoProcessesClockPlusCas(benchmark::State& state) {
  SharedControl control;
  if (!control.get()) {
    state.SkipWithError("cannot map the shared control block");
    return;
  }
  std::atomic<std::uint64_t>* word = &control.get()->word.v;
  run_contention(state, control.get(), [word] {
    const auto now = static_cast<std::uint64_t>(mono_ns());
    std::uint64_t w = word->load(std::memory_order_acquire);
    while (!word->compare_exchange_weak(w, std::max(w, now) + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
    }
    return true;
  });
}
BENCHMARK(BM_Contention_TwoProcessesClockPlusCas)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
